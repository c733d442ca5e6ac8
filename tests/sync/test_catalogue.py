"""The catalogue import: Spotify albums and singles → one song per title, once."""

from __future__ import annotations

import uuid

import pytest

from shared import db as shared_db
from shared.sources.records import ArtistRecord
from shared.sync.catalogue import NoSpotifyId, import_artist_catalogue
from shared.sync.ingest import ingest_artists
from tests.support.db import Connection
from tests.sync.snapshots import count, row_versions
from tests.sync.upstream import BOH_SPOTIFY, Upstream


def _artist(spotify_id: str | None = BOH_SPOTIFY) -> uuid.UUID:
    with shared_db.transaction() as conn:
        [resolved] = ingest_artists(
            conn,
            [
                ArtistRecord(
                    name="Band of Horses", spotify_id=spotify_id, ticketmaster_id="K8vZ9171ob7"
                )
            ],
        )
    return resolved.id


def test_catalogue_import_keeps_one_song_per_title(upstream: Upstream, db: Connection) -> None:
    upstream.spotify_catalogue()
    artist_id = _artist()

    result = import_artist_catalogue(artist_id)

    assert result.fetched
    titles = [
        r["title"]
        for r in db.execute(
            "select title from public.songs where artist_id = %s order by title", [artist_id]
        )
    ]
    # "Laredo" is on Infinite Arms and on its single: one song, the album version.
    assert titles.count("Laredo") == 1
    laredo = db.execute(
        "select album, spotify_id from public.songs where title = 'Laredo'"
    ).fetchone()
    assert laredo == {"album": "Infinite Arms", "spotify_id": "3Ez1mWZPSxVbsJW4mfuKSn"}
    assert "NW Apt." in titles  # the second page of an album's tracks
    assert result.created == len(titles) == len(set(titles))
    assert sorted(result.song_ids) == sorted(
        r["id"] for r in db.execute("select id from public.songs")
    )


def test_a_fresh_catalogue_costs_no_call_and_force_refetches_without_writing(
    upstream: Upstream, db: Connection
) -> None:
    upstream.spotify_catalogue()
    artist_id = _artist()
    first = import_artist_catalogue(artist_id)
    calls = len(upstream.api_requests())
    before = row_versions(db)

    again = import_artist_catalogue(artist_id)
    assert not again.fetched
    assert len(upstream.api_requests()) == calls
    assert sorted(again.song_ids) == sorted(first.song_ids)

    forced = import_artist_catalogue(artist_id, force=True)
    assert forced.fetched and len(upstream.api_requests()) > calls
    assert (forced.created, forced.updated) == (0, 0)
    assert row_versions(db) == before


def test_an_artist_without_a_spotify_id_is_a_clear_error(sync_env: str, db: Connection) -> None:
    artist_id = _artist(spotify_id=None)
    with pytest.raises(NoSpotifyId):
        import_artist_catalogue(artist_id)
    assert count(db, "public.songs") == 0
