"""Catalogue rows and RPC calls for the discovery tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from psycopg import sql

from tests.support.db import Connection, request_as

TODAY = dt.date.today()


def artist(db: Connection, name: str, *, popularity: int | None = None,
           image_url: str | None = None) -> uuid.UUID:
    row = db.execute(
        "insert into public.artists (name, popularity, image_url) values (%s, %s, %s)"
        " returning id", [name, popularity, image_url]).fetchone()
    assert row is not None
    artist_id: uuid.UUID = row["id"]
    return artist_id


def venue(db: Connection, name: str, city: str, country_code: str | None = "US") -> uuid.UUID:
    row = db.execute(
        "insert into public.venues (name, city, country_code) values (%s, %s, %s) returning id",
        [name, city, country_code]).fetchone()
    assert row is not None
    venue_id: uuid.UUID = row["id"]
    return venue_id


def show(db: Connection, artist_id: uuid.UUID, venue_id: uuid.UUID, days_ahead: int,
         status: str = "scheduled") -> uuid.UUID:
    row = db.execute(
        "insert into public.shows (artist_id, venue_id, local_date, status)"
        " values (%s, %s, current_date + %s, %s) returning id",
        [artist_id, venue_id, days_ahead, status]).fetchone()
    assert row is not None
    show_id: uuid.UUID = row["id"]
    return show_id


def predicted_setlist(db: Connection, show_id: uuid.UUID, artist_id: uuid.UUID,
                      songs: int = 1) -> list[uuid.UUID]:
    """A predicted setlist of ``songs`` placeholder catalogue entries; its setlist_song ids."""
    setlist = db.execute(
        "insert into public.setlists (show_id, kind) values (%s, 'predicted') returning id",
        [show_id]).fetchone()
    assert setlist is not None
    entries = []
    for position in range(1, songs + 1):
        song = db.execute(
            "insert into public.songs (artist_id, title) values (%s, %s) returning id",
            [artist_id, f"Song {position} of {show_id}"],
        ).fetchone()
        assert song is not None
        entry = db.execute(
            "insert into public.setlist_songs (setlist_id, song_id, position)"
            " values (%s, %s, %s) returning id",
            [setlist["id"], song["id"], position]).fetchone()
        assert entry is not None
        entries.append(entry["id"])
    return entries


def vote(db: Connection, user_id: uuid.UUID, setlist_song_id: uuid.UUID,
         days_ago: float = 0) -> None:
    db.execute(
        "insert into public.votes (user_id, setlist_song_id, created_at)"
        " values (%s, %s, now() - make_interval(secs => %s))",
        [user_id, setlist_song_id, days_ago * 86400])
    # Rankings read setlist_songs.vote_count, the count as last broadcast: send
    # it now (an interval this short is never within the last message's window).
    db.execute("select * from private.flush_vote_broadcasts('1 microsecond')")


def call(url: str, function: str, role: str = "anon", user_id: uuid.UUID | None = None,
         **arguments: Any) -> Any:
    """``select public.<function>(name => value, ...)`` as PostgREST would run it for ``role``."""
    named = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in arguments)
    query = sql.SQL("select public.{}({}) as result").format(sql.Identifier(function), named)
    with request_as(url, role, user_id) as conn:
        row = conn.execute(query, arguments).fetchone()
    assert row is not None
    return row["result"]


def rows(url: str, function: str, role: str = "anon", user_id: uuid.UUID | None = None,
         **arguments: Any) -> list[dict[str, Any]]:
    """``select * from public.<function>(...)`` (set-returning RPCs; scalar rows as "result")."""
    named = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in arguments)
    query = sql.SQL("select * from public.{}({}) as result").format(
        sql.Identifier(function), named)
    with request_as(url, role, user_id) as conn:
        return conn.execute(query, arguments).fetchall()


def walk_feed(url: str, **filters: Any) -> list[list[dict[str, Any]]]:
    """Every page of the feed, following next_cursor to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        answer = call(url, "upcoming_shows", **filters, cursor=cursor)
        pages.append(answer["items"])
        cursor = answer["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the walk does not end"
