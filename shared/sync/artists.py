"""Importing and refreshing artists: Ticketmaster attraction, Spotify details, MusicBrainz id.

Details are fresh for 7 days (``artist_details``); a fresh artist costs no
API call unless forced. Sources are merged into one record before the ingest
RPC sees it (Spotify wins for name, image, genres and popularity where it has
them; Ticketmaster supplies its attraction ids and page), so refreshing
unchanged data writes nothing.

Resolving a name is careful, never "the first hit": only attractions whose
name has the same key count, an attraction whose Spotify or MusicBrainz link
contradicts what we know is dropped, and when several different artists
remain the caller gets ``AmbiguousArtist`` with the candidates to choose from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, NamedTuple

from shared import db
from shared.db import Connection
from shared.keys import name_keys
from shared.logging import get_logger
from shared.sources import errors as source_errors
from shared.sources.records import (
    ArtistRecord,
    artist_from_spotify,
    artist_from_ticketmaster,
)
from shared.sources.ticketmaster_models import Attraction
from shared.sync import clients
from shared.sync.errors import ArtistNotFound, FlightPending, SyncError
from shared.sync.freshness import is_fresh, record_failure, record_success
from shared.sync.ingest import ingest_artists
from shared.sync.jobs import job_transaction
from shared.sync.queue import Enqueued, enqueue
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.sync.singleflight import Flight, shares_its_outcome, single_flight
from shared.web import ApiError, Conflict, NotFound, answers

log = get_logger(__name__)

KIND: Final = "artist_details"


def _rebuild_ambiguous(outcome: dict[str, Any]) -> AmbiguousArtist:
    return AmbiguousArtist(
        str(outcome["name"]),
        [ArtistRecord(**{**c, "genres": tuple(c["genres"])}) for c in outcome["candidates"]],
    )


@shares_its_outcome("ambiguous_artist", _rebuild_ambiguous)
class AmbiguousArtist(SyncError):
    """A name matches several different artists; the caller must pick one."""

    def __init__(self, name: str, candidates: Sequence[ArtistRecord]) -> None:
        super().__init__(f"{len(candidates)} different artists are called {name!r}")
        self.name = name
        self.candidates = list(candidates)

    def flight_outcome(self) -> dict[str, Any]:
        return {
            "error": "ambiguous_artist",
            "name": self.name,
            "candidates": [asdict(c) for c in self.candidates],
        }


@shares_its_outcome("artist_unknown", lambda outcome: ArtistUnknownUpstream(outcome["message"]))
class ArtistUnknownUpstream(SyncError):
    """No source knows an artist matching the request."""

    def flight_outcome(self) -> dict[str, Any]:
        return {"error": "artist_unknown", "message": str(self)}


@dataclass(frozen=True, slots=True)
class ArtistLookup:
    ticketmaster_id: str | None = None
    spotify_id: str | None = None
    musicbrainz_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ArtistSync:
    artist_id: uuid.UUID
    # True when the sources were called (stale, new or forced).
    refreshed: bool
    action: str  # created | updated | unchanged | fresh
    queued: list[Enqueued] = field(default_factory=list)


@answers(AmbiguousArtist)
def _ambiguous_artist(error: AmbiguousArtist) -> ApiError:
    return Conflict(
        str(error),
        code="ambiguous_artist",
        details=[
            {
                "name": c.name,
                "ticketmaster_id": c.ticketmaster_id,
                "spotify_id": c.spotify_id,
                "musicbrainz_id": c.musicbrainz_id,
                "upcoming_events": c.upcoming_event_count,
                "url": c.ticketmaster_url,
            }
            for c in error.candidates
        ],
    )


@answers(ArtistUnknownUpstream)
def _artist_unknown(error: ArtistUnknownUpstream) -> ApiError:
    return NotFound(str(error), code="artist_not_found")


# -- what the database knows -------------------------------------------------------------------


def known_ids(conn: Connection, artist_id: uuid.UUID) -> dict[str, list[str]]:
    rows = conn.execute(
        "select source, external_id from public.artist_external_ids where artist_id = %s"
        " order by source, created_at, external_id",
        [artist_id],
    ).fetchall()
    ids: dict[str, list[str]] = {}
    for row in rows:
        ids.setdefault(row["source"], []).append(row["external_id"])
    return ids


class KnownArtist(NamedTuple):
    # The artist an id points at; by name only when exactly one artist has it.
    artist_id: uuid.UUID | None
    # One flight per artist we have, else per identifier asked for (a name by its name key).
    flight_key: str


def find_known_artist(conn: Connection, lookup: ArtistLookup) -> KnownArtist:
    ids = [
        (source, value)
        for source, value in (
            ("ticketmaster", lookup.ticketmaster_id),
            ("spotify", lookup.spotify_id),
            ("musicbrainz", lookup.musicbrainz_id),
        )
        if value
    ]
    for source, value in ids:
        row = conn.execute(
            "select artist_id from public.artist_external_ids"
            " where source = %s and external_id = %s",
            [source, value],
        ).fetchone()
        if row is not None:
            return KnownArtist(row["artist_id"], f"artist:{row['artist_id']}")
    if ids:
        source, value = ids[0]
        return KnownArtist(None, f"artist:{source}:{value}")
    row = conn.execute(
        "select k.key, array(select a.id from public.artists a where a.name_key = k.key"
        " limit 2) as ids from (select private.name_key(%s) as key) as k",
        [lookup.name or ""],
    ).fetchone()
    assert row is not None
    if len(row["ids"]) == 1:
        return KnownArtist(row["ids"][0], f"artist:{row['ids'][0]}")
    return KnownArtist(None, f"artist:name:{row['key']}")


def artist_summary(conn: Connection, artist_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(
        "select id, name, image_url, genres, popularity, followers, ticketmaster_url,"
        " spotify_url, updated_at from public.artists where id = %s",
        [artist_id],
    ).fetchone()
    if row is None:
        raise ArtistNotFound(artist_id)
    ids = known_ids(conn, artist_id)
    return {
        **{k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items()},
        "external_ids": ids,
    }


# -- choosing an attraction ------------------------------------------------------------------


def _contradicts(record: ArtistRecord, spotify_id: str | None, mbid: str | None) -> bool:
    return bool(
        (spotify_id and record.spotify_id and record.spotify_id != spotify_id)
        or (mbid and record.musicbrainz_id and record.musicbrainz_id != mbid)
    )


def _confirms(record: ArtistRecord, spotify_id: str | None, mbid: str | None) -> bool:
    return bool(
        (spotify_id and record.spotify_id == spotify_id) or (mbid and record.musicbrainz_id == mbid)
    )


def choose_attraction(
    attractions: Iterable[Attraction],
    name: str,
    *,
    spotify_id: str | None = None,
    musicbrainz_id: str | None = None,
) -> ArtistRecord | None:
    """The attraction that is this artist, None if none is, AmbiguousArtist if several could be.

    Several attractions may be one artist (Ticketmaster lists duplicates):
    when exactly one identity (Spotify or MusicBrainz link) is among the
    exact-name matches, the linked attraction with the most upcoming events
    stands for it and unlinked duplicates are ignored.
    """
    records = [artist_from_ticketmaster(a) for a in attractions]
    same = _same_name(name, [r.name for r in records])
    matches = [r for r, is_same in zip(records, same, strict=True) if is_same]
    confirmed = [r for r in matches if _confirms(r, spotify_id, musicbrainz_id)]
    if confirmed:
        return max(confirmed, key=lambda r: r.upcoming_event_count or 0)
    matches = [r for r in matches if not _contradicts(r, spotify_id, musicbrainz_id)]
    if len(matches) <= 1:
        return matches[0] if matches else None
    linked = [r for r in matches if r.spotify_id or r.musicbrainz_id]
    identities = {(r.spotify_id, r.musicbrainz_id) for r in linked}
    if len(identities) == 1:
        return max(linked, key=lambda r: r.upcoming_event_count or 0)
    raise AmbiguousArtist(name, linked or matches)


# -- fetching and merging --------------------------------------------------------------------


def merge_records(
    name: str,
    ticketmaster: ArtistRecord | None,
    spotify: ArtistRecord | None,
    musicbrainz_id: str | None,
) -> ArtistRecord:
    tm = ticketmaster or ArtistRecord(name=name)
    sp = spotify or ArtistRecord(name=name)
    return ArtistRecord(
        name=(spotify.name if spotify else None) or tm.name or name,
        ticketmaster_id=tm.ticketmaster_id,
        spotify_id=sp.spotify_id or tm.spotify_id,
        musicbrainz_id=musicbrainz_id or tm.musicbrainz_id,
        image_url=sp.image_url or tm.image_url,
        genres=sp.genres or tm.genres,
        popularity=sp.popularity,
        followers=sp.followers,
        ticketmaster_url=tm.ticketmaster_url,
        spotify_url=sp.spotify_url or tm.spotify_url,
        upcoming_event_count=tm.upcoming_event_count,
    )


def _optional(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """An enrichment lookup: its failure must not fail the import."""
    try:
        return call(*args, **kwargs)
    except source_errors.SourceError as error:
        log.warning("artist_enrichment_failed", lookup=what, error=str(error))
        return None


def _same_name(name: str, names: Sequence[str]) -> list[bool]:
    """Which of ``names`` share ``name``'s name key (asked of the database in one statement)."""
    if not names:
        return []
    with db.transaction() as conn:
        wanted, *keys = name_keys(conn, [name, *names])
    return [key == wanted for key in keys]


def _mbid_for_name(name: str) -> str | None:
    found = _optional("setlistfm_search", lambda: clients.setlistfm().search_artists(name=name))
    candidates = [a for a in found or [] if a.mbid]
    same = _same_name(name, [a.name for a in candidates])
    exact = {a.mbid for a, is_same in zip(candidates, same, strict=True) if is_same}
    return exact.pop() if len(exact) == 1 else None


def _name_for_mbid(mbid: str) -> str | None:
    found = clients.setlistfm().search_artists(mbid=mbid)
    return found[0].name if found else None


def fetch_artist(
    lookup: ArtistLookup, *, known: dict[str, list[str]] | None = None
) -> ArtistRecord:
    """Every source's view of the artist, merged into one record.

    Raises ``ArtistUnknownUpstream`` when nothing matches, ``AmbiguousArtist``
    for a name that several artists share, ``SourceError`` when a source fails.
    """
    known = known or {}
    tm_id = lookup.ticketmaster_id or next(iter(known.get("ticketmaster", [])), None)
    spotify_id = lookup.spotify_id or next(iter(known.get("spotify", [])), None)
    mbid = lookup.musicbrainz_id or next(iter(known.get("musicbrainz", [])), None)
    name = lookup.name

    tm_record: ArtistRecord | None = None
    sp_record: ArtistRecord | None = None
    if tm_id:
        tm_record = artist_from_ticketmaster(clients.ticketmaster().get_attraction(tm_id))
        spotify_id = spotify_id or tm_record.spotify_id
        mbid = mbid or tm_record.musicbrainz_id
        name = name or tm_record.name
    if spotify_id:
        sp_record = artist_from_spotify(clients.spotify().get_artist(spotify_id))
        name = sp_record.name
    if name is None and mbid:
        name = _name_for_mbid(mbid)
    if name is None:
        raise ArtistUnknownUpstream("no source knows this artist")

    if tm_record is None:
        attractions = clients.ticketmaster().search_attractions(name, size=20)
        tm_record = choose_attraction(attractions, name, spotify_id=spotify_id, musicbrainz_id=mbid)
        if tm_record is not None:
            spotify_id = spotify_id or tm_record.spotify_id
            mbid = mbid or tm_record.musicbrainz_id
    if sp_record is None and spotify_id:
        sp_record = artist_from_spotify(clients.spotify().get_artist(spotify_id))
    if tm_record is None and sp_record is None and not known and not mbid:
        raise ArtistUnknownUpstream(f"no artist called {name!r} has upcoming shows")
    if mbid is None:
        mbid = _mbid_for_name(name)
    return merge_records(name, tm_record, sp_record, mbid)


# -- import and refresh ----------------------------------------------------------------------


def _follow_ups(conn: Connection, artist_id: uuid.UUID, force: bool) -> list[Enqueued]:
    """Queue the artist's shows and catalogue when they are stale (or forced)."""
    ids = known_ids(conn, artist_id)
    queued = []
    options = {"force": True} if force else {}
    if ids.get("ticketmaster") and (force or not is_fresh(conn, "artist_shows", artist_id)):
        queued.append(enqueue(conn, "artist_shows", artist_id, options))
    if ids.get("spotify") and (force or not is_fresh(conn, "artist_catalogue", artist_id)):
        queued.append(enqueue(conn, "artist_catalogue", artist_id, options))
    return queued


def sync_artist(lookup: ArtistLookup, *, force: bool = False) -> ArtistSync:
    """Import or refresh an artist now and queue its shows and catalogue.

    Concurrent callers asking for the same artist share one import (single
    flight); a caller whose wait for it runs out gets ``FlightPending``.
    """
    if not (lookup.ticketmaster_id or lookup.spotify_id or lookup.musicbrainz_id or lookup.name):
        raise ValueError("an artist id or name is required")
    with db.transaction() as conn:
        existing, flight_key = find_known_artist(conn, lookup)
        answer = _fresh_sync(conn, existing, forced=force)
    if answer is not None:  # the common case: one transaction, no flight, no call
        return answer

    def done(after_flight: bool) -> ArtistSync | None:
        with db.transaction() as conn:
            found = find_known_artist(conn, lookup).artist_id
            return _fresh_sync(conn, found, forced=force and not after_flight)

    try:
        return single_flight(
            flight_key, lambda flight: _import(lookup, force, flight), done, checked=True
        )
    except FlightPending as pending:
        if existing is not None:
            with db.transaction() as conn:
                pending.queued.append(enqueue(conn, KIND, existing))
        raise


def _fresh_sync(
    conn: Connection, artist_id: uuid.UUID | None, *, forced: bool
) -> ArtistSync | None:
    """The answer for an artist we have with fresh details (its follow-ups queued); None
    when there is none, it is stale, or a refresh is forced."""
    if artist_id is None or forced or not is_fresh(conn, KIND, artist_id):
        return None
    return ArtistSync(artist_id, False, "fresh", _follow_ups(conn, artist_id, False))


def _import(lookup: ArtistLookup, force: bool, flight: Flight) -> ArtistSync:
    with db.transaction() as conn:
        existing = find_known_artist(conn, lookup).artist_id
        known = known_ids(conn, existing) if existing is not None else {}
    if existing is not None:
        lookup = replace(lookup, name=lookup.name or _artist_name(existing))
    try:
        record = fetch_artist(lookup, known=known)
    except source_errors.SourceError as error:
        if existing is not None:
            record_failure(KIND, existing, error, job=None)
        raise
    with db.transaction() as conn:
        [resolved] = ingest_artists(conn, [record])
        record_success(conn, KIND, resolved.id)
        queued = _follow_ups(conn, resolved.id, force)
        flight.finish(conn)
    log.info("artist_synced", artist_id=str(resolved.id), action=resolved.action)
    return ArtistSync(resolved.id, True, resolved.action, queued)


def _artist_name(artist_id: uuid.UUID) -> str | None:
    with db.transaction() as conn:
        row = conn.execute("select name from public.artists where id = %s", [artist_id]).fetchone()
    return None if row is None else str(row["name"])


def refresh_artist(
    artist_id: uuid.UUID, *, force: bool = False, job: Job | None = None
) -> ArtistSync:
    """The ``artist_details`` job: refresh a known artist from its sources when stale."""

    def done(after_flight: bool) -> ArtistSync | None:
        with db.transaction() as conn:
            exists = conn.execute(
                "select 1 from public.artists where id = %s", [artist_id]
            ).fetchone()
            if exists is None:
                raise ArtistNotFound(artist_id)
            if (force and not after_flight) or not is_fresh(conn, KIND, artist_id):
                return None
        return ArtistSync(artist_id, False, "fresh")

    def lead(flight: Flight) -> ArtistSync:
        with db.transaction() as conn:
            known = known_ids(conn, artist_id)
        record = fetch_artist(ArtistLookup(name=_artist_name(artist_id)), known=known)
        with job_transaction(job) as conn:
            [resolved] = ingest_artists(conn, [record])
            if resolved.id != artist_id:
                log.warning("artist_resolved_elsewhere", resolved_id=str(resolved.id))
            record_success(conn, KIND, artist_id)
            queued = _follow_ups(conn, artist_id, False)
            flight.finish(conn)
        return ArtistSync(artist_id, True, resolved.action, queued)

    return single_flight(f"artist:{artist_id}", lead, done)


@job_handler(KIND)
def artist_details_job(job: Job) -> JobOutcome:
    result = refresh_artist(job.entity_id, force=job.force, job=job)
    return {
        "action": result.action,
        "queued": [q.kind for q in result.queued if not q.already_pending],
    }
