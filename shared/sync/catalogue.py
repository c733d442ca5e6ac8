"""An artist's song catalogue: Spotify albums and singles → songs, one per title.

Fetched once and refreshed on demand (``force``): a fresh catalogue costs no
API call. ``import_artist_catalogue`` is the synchronous entry point (the
setlist code calls it before drawing a predicted setlist); the
``artist_catalogue`` job runs the same code from the queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from shared import db
from shared.keys import song_title_keys
from shared.logging import get_logger
from shared.sources.errors import SourceError
from shared.sources.records import SongRecord, catalogue_from_spotify, song_from_spotify
from shared.sync import clients
from shared.sync.errors import ArtistNotFound, NoSpotifyId
from shared.sync.freshness import is_fresh, record_failure, record_success
from shared.sync.ingest import IngestCounts, ingest_songs
from shared.sync.jobs import job_transaction
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.sync.singleflight import Flight, single_flight

__all__ = ["ArtistNotFound", "CatalogueResult", "NoSpotifyId", "import_artist_catalogue"]

log = get_logger(__name__)

KIND: Final = "artist_catalogue"


@dataclass(frozen=True, slots=True)
class CatalogueResult:
    artist_id: uuid.UUID
    spotify_id: str
    # False when the catalogue was fresh and nothing was fetched.
    fetched: bool
    counts: IngestCounts
    # The artist's songs resolved by this import (all of its songs when not fetched).
    song_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.counts.created

    @property
    def updated(self) -> int:
        return self.counts.updated

    @property
    def unchanged(self) -> int:
        return self.counts.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "artist_id": str(self.artist_id),
            "fetched": self.fetched,
            **self.counts.as_dict(),
            "songs": len(self.song_ids),
        }


def _artist_spotify_id(artist_id: uuid.UUID) -> tuple[str, bool]:
    """The artist's Spotify id and whether its catalogue is fresh."""
    with db.transaction() as conn:
        row = conn.execute(
            "select a.id,"
            " (select x.external_id from public.artist_external_ids x"
            "   where x.artist_id = a.id and x.source = 'spotify'"
            "   order by x.created_at, x.external_id limit 1) as spotify_id"
            " from public.artists a where a.id = %s",
            [artist_id],
        ).fetchone()
        if row is None:
            raise ArtistNotFound(artist_id)
        if row["spotify_id"] is None:
            raise NoSpotifyId(artist_id)
        return str(row["spotify_id"]), is_fresh(conn, KIND, artist_id)


def fetch_tracks(spotify_id: str) -> list[SongRecord]:
    """Every track by the artist on its albums and singles: versions of one song included."""
    client = clients.spotify()
    songs: list[SongRecord] = []
    seen_albums: set[str] = set()
    for album in client.artist_albums(spotify_id, include_groups=("album", "single")):
        if album.id in seen_albums:
            continue
        seen_albums.add(album.id)
        for track in client.album_tracks(album.id):
            if track.is_local:
                continue
            if track.artists and spotify_id not in {a.id for a in track.artists}:
                continue  # a guest's track on a split release
            songs.append(song_from_spotify(track, album))
    return songs


def import_artist_catalogue(
    artist_id: uuid.UUID, *, force: bool = False, job: Job | None = None
) -> CatalogueResult:
    """Import (or, with ``force``, refresh) the artist's songs from Spotify.

    Raises ``ArtistNotFound``, ``NoSpotifyId``, or a ``SourceError`` subclass
    when Spotify fails. A fresh catalogue is not fetched again unless forced;
    concurrent imports of one artist share one fetch (single flight), and
    ``FlightPending`` says another caller's import outlasted the wait.
    """
    spotify_ids: list[str] = []

    def done(after_flight: bool) -> CatalogueResult | None:
        spotify_id, fresh = _artist_spotify_id(artist_id)
        spotify_ids[:] = [spotify_id]
        if not fresh or (force and not after_flight):
            return None
        with db.transaction() as conn:
            rows = conn.execute(
                "select id from public.songs where artist_id = %s order by title_key", [artist_id]
            ).fetchall()
        log.info("catalogue_fresh", artist_id=str(artist_id))
        song_ids = [r["id"] for r in rows]
        return CatalogueResult(artist_id, spotify_id, False, IngestCounts(), song_ids)

    def lead(flight: Flight) -> CatalogueResult:
        [spotify_id] = spotify_ids
        try:
            tracks = fetch_tracks(spotify_id)
        except SourceError as error:
            record_failure(KIND, artist_id, error, job=job)
            raise
        with job_transaction(job) as conn:
            keys = song_title_keys(conn, [track.title for track in tracks])
            resolved = ingest_songs(conn, artist_id, catalogue_from_spotify(tracks, keys))
            record_success(conn, KIND, artist_id)
            flight.finish(conn)
        counts = IngestCounts.of(resolved)
        log.info("catalogue_imported", artist_id=str(artist_id), **counts.as_dict())
        return CatalogueResult(artist_id, spotify_id, True, counts, [r.id for r in resolved])

    return single_flight(f"{KIND}:{artist_id}", lead, done)


@job_handler(KIND)
def catalogue_job(job: Job) -> JobOutcome:
    try:
        result = import_artist_catalogue(job.entity_id, force=job.force, job=job)
    except NoSpotifyId:
        # Nothing to import (yet): the artist import enqueues this job again
        # once it learns the Spotify id.
        log.info("catalogue_skipped", reason="no_spotify_id")
        return {"skipped": "no_spotify_id"}
    return result.as_dict()
