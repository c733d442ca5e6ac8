"""Small, explicit catalogue rows for tests that need something to point at."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from devstack.fixtures import BAND_OF_HORSES_SONGS
from tests.support.db import Connection


@dataclass(frozen=True)
class ShowRows:
    artist_id: uuid.UUID
    venue_id: uuid.UUID
    show_id: uuid.UUID
    song_ids: list[uuid.UUID]


def insert_artist(db: Connection, name: str = "Band of Horses", **columns: Any) -> uuid.UUID:
    row = db.execute(
        "insert into public.artists (name) values (%s) returning id", [name]
    ).fetchone()
    assert row is not None
    for column, value in columns.items():
        db.execute(f"update public.artists set {column} = %s where id = %s", [value, row["id"]])
    artist_id: uuid.UUID = row["id"]
    return artist_id


def insert_venue(
    db: Connection, name: str = "Crypto.com Arena", city: str = "Los Angeles", country: str = "US"
) -> uuid.UUID:
    row = db.execute(
        "insert into public.venues (name, city, country_code) values (%s, %s, %s) returning id",
        [name, city, country],
    ).fetchone()
    assert row is not None
    venue_id: uuid.UUID = row["id"]
    return venue_id


def insert_show(
    db: Connection, artist_id: uuid.UUID, venue_id: uuid.UUID, days_ahead: int = 30
) -> uuid.UUID:
    row = db.execute(
        "insert into public.shows (artist_id, venue_id, local_date)"
        " values (%s, %s, current_date + %s) returning id",
        [artist_id, venue_id, days_ahead],
    ).fetchone()
    assert row is not None
    show_id: uuid.UUID = row["id"]
    return show_id


def insert_songs(db: Connection, artist_id: uuid.UUID, titles: list[str]) -> list[uuid.UUID]:
    """Insert the artist's songs, then, as a catalogue import that created songs
    does (``private.ingest_songs``), queue create_setlist for its shows still
    without a setlist."""
    ids = []
    for title in titles:
        row = db.execute(
            "insert into public.songs (artist_id, title) values (%s, %s) returning id",
            [artist_id, title],
        ).fetchone()
        assert row is not None
        ids.append(row["id"])
    if ids:
        db.execute("select private.queue_setlists_for_artist(%s)", [artist_id])
    return ids



def insert_show_with_catalogue(db: Connection) -> ShowRows:
    artist_id = insert_artist(db)
    venue_id = insert_venue(db)
    show_id = insert_show(db, artist_id, venue_id)
    song_ids = insert_songs(db, artist_id, BAND_OF_HORSES_SONGS)
    return ShowRows(artist_id, venue_id, show_id, song_ids)
