"""The show and artist page reads, as anon and as a signed-in fan, through PostgREST."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from devstack.fixtures import BAND_OF_HORSES_SONGS
from tests.setlists.helpers import build_stage, cast_vote
from tests.support.catalogue import insert_show, insert_venue
from tests.support.db import Connection, create_user, request_as


def show_page(url: str, show_id: uuid.UUID, user: uuid.UUID | None = None) -> dict[str, Any]:
    role = "anon" if user is None else "authenticated"
    with request_as(url, role, user) as conn:
        row = conn.execute("select public.get_show_page(%s) as page", [show_id]).fetchone()
    assert row is not None
    page: dict[str, Any] = row["page"]
    return page


def artist_page(url: str, artist_id: uuid.UUID) -> dict[str, Any]:
    with request_as(url, "anon") as conn:
        row = conn.execute("select public.get_artist_page(%s) as page", [artist_id]).fetchone()
    assert row is not None
    page: dict[str, Any] = row["page"]
    return page


def test_show_page_orders_by_votes_then_position(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan, other = create_user(db), create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[3])
        cast_vote(conn, other, stage.entries[3])
        cast_vote(conn, fan, stage.entries[4])

    page = show_page(database_url, stage.show_id)
    assert page["show"]["id"] == str(stage.show_id)
    assert page["artist"] == {
        "id": str(stage.artist_id), "name": "Band of Horses", "image_url": None, "genres": [],
        "spotify_url": None, "ticketmaster_url": None}
    assert (page["venue"]["name"], page["venue"]["city"]) == ("Crypto.com Arena", "Los Angeles")
    songs = page["predicted_setlist"]["songs"]
    assert [s["setlist_song_id"] for s in songs] == [str(e) for e in (
        stage.entries[3], stage.entries[4], stage.entries[0], stage.entries[1], stage.entries[2])]
    assert [s["vote_count"] for s in songs] == [2, 1, 0, 0, 0]
    assert songs[0]["title"] == BAND_OF_HORSES_SONGS[3]
    assert page["predicted_setlist"]["topic"] == f"setlist:{stage.setlist_id}"
    # Anon: no votes of their own, nothing about who voted.
    assert page["my_votes"] is None and page["votes_used"] is None
    assert not any(s["voted"] for s in songs)
    assert page["voting"]["open"] is True and page["voting"]["votes_limit"] == 10
    assert page["played"] is None and page["accuracy"] is None

    mine = show_page(database_url, stage.show_id, fan)
    assert mine["my_votes"] == [str(stage.entries[3]), str(stage.entries[4])]
    assert mine["votes_used"] == 2
    assert [s["voted"] for s in mine["predicted_setlist"]["songs"]] == [
        True, True, False, False, False]
    theirs = show_page(database_url, stage.show_id, other)
    assert theirs["my_votes"] == [str(stage.entries[3])]


def test_show_page_with_the_played_setlist_and_no_prediction(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db, on_setlist=0, days_ahead=-2)
    setlist = db.execute(
        "insert into public.setlists (show_id, kind, source_id, source_url)"
        " values (%s, 'actual', '63de4613', 'https://www.setlist.fm/setlist/band-of-horses/x.html')"
        " returning id", [stage.show_id]).fetchone()
    assert setlist is not None
    for position, song in enumerate(stage.song_ids[:3], start=1):
        db.execute("insert into public.setlist_songs (setlist_id, song_id, position, encore)"
                   " values (%s, %s, %s, %s)",
                   [setlist["id"], song, position, 1 if position == 3 else None])
    page = show_page(database_url, stage.show_id, create_user(db))
    assert page["predicted_setlist"] is None
    assert page["my_votes"] == []
    assert page["voting"]["open"] is False
    played = page["played"]
    assert played["status"] == "found"
    assert played["source_url"].startswith("https://www.setlist.fm/")
    assert [(s["title"], s["encore"]) for s in played["songs"]] == [
        (BAND_OF_HORSES_SONGS[0], None), (BAND_OF_HORSES_SONGS[1], None),
        (BAND_OF_HORSES_SONGS[2], 1)]
    assert page["accuracy"] is None  # nothing was predicted


def _played(db: Connection, show: uuid.UUID, songs: list[uuid.UUID]) -> None:
    setlist = db.execute(
        "insert into public.setlists (show_id, kind, source_id, source_url) values"
        " (%s, 'actual', '63de4613', 'https://www.setlist.fm/setlist/band-of-horses/x.html')"
        " returning id", [show]).fetchone()
    assert setlist is not None
    for position, song in enumerate(songs, start=1):
        db.execute("insert into public.setlist_songs (setlist_id, song_id, position)"
                   " values (%s, %s, %s)", [setlist["id"], song, position])


def test_accuracy_ranks_the_prediction_by_votes_against_what_was_played(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    fan, other = create_user(db), create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[3])
        cast_vote(conn, other, stage.entries[3])
        cast_vote(conn, fan, stage.entries[4])
    db.execute("update public.shows set local_date = current_date - 2 where id = %s",
               [stage.show_id])
    song = stage.song_ids
    # Six songs played, two of them predicted (3 with two votes, 0 with none).
    _played(db, stage.show_id, [song[3], song[0], song[7], song[8], song[9], song[10]])

    page = show_page(database_url, stage.show_id)

    assert page["accuracy"] == {
        "hits": 2, "predicted": 5, "played": 6, "precision": 0.4, "recall": 0.3333,
        "hit_song_ids": [str(song[3]), str(song[0])]}
    assert [s["title"] for s in page["played"]["songs"]][:2] == [
        BAND_OF_HORSES_SONGS[3], BAND_OF_HORSES_SONGS[0]]

    # Two songs played: the prediction is cut to its two most voted (3 and 4).
    db.execute("delete from public.setlist_songs ss using public.setlists sl"
               " where ss.setlist_id = sl.id and sl.kind = 'actual'")
    db.execute("delete from public.setlists where kind = 'actual'")
    _played(db, stage.show_id, [song[0], song[4]])
    assert show_page(database_url, stage.show_id)["accuracy"] == {
        "hits": 1, "predicted": 2, "played": 2, "precision": 0.5, "recall": 0.5,
        "hit_song_ids": [str(song[4])]}


def test_artist_page_lists_past_shows_and_averages_their_accuracy(
    database_url: str, db: Connection
) -> None:
    first = build_stage(db, days_ahead=-9)
    song = first.song_ids
    _played(db, first.show_id, [song[3], song[0], song[7], song[8], song[9], song[10]])
    second = insert_show(db, first.artist_id, insert_venue(db, "9:30 Club", "Washington"), -2)
    second_setlist = db.execute("insert into public.setlists (show_id, kind) values"
                                " (%s, 'predicted') returning id", [second]).fetchone()
    assert second_setlist is not None
    db.execute("insert into public.setlist_songs (setlist_id, song_id, position)"
               " values (%s, %s, 1), (%s, %s, 2)",
               [second_setlist["id"], song[5], second_setlist["id"], song[6]])
    _played(db, second, [song[5]])
    # Looked up, nothing found yet: listed, no accuracy.
    third = insert_show(db, first.artist_id, insert_venue(db, "Ryman Auditorium", "Nashville"),
                        -1)
    db.execute("insert into private.played_setlist_lookups (show_id, status) values"
               " (%s, 'waiting')", [third])

    page = artist_page(database_url, first.artist_id)

    past = page["past_shows"]
    assert [s["id"] for s in past] == [str(third), str(second), str(first.show_id)]
    assert [s["played"] for s in past] == ["waiting", "found", "found"]
    assert past[1]["accuracy"]["precision"] == 1.0
    assert past[2]["accuracy"]["recall"] == 0.3333
    # First: 2 hits of 5 predicted, 6 played; second: its top song of 1 played.
    assert page["accuracy"] == {"shows": 2, "hits": 3, "precision": 0.7, "recall": 0.6667}
    assert page["upcoming_shows"] == []


def test_unknown_show_and_artist_are_not_found(database_url: str, db: Connection) -> None:
    with pytest.raises(psycopg.errors.NoDataFound):
        show_page(database_url, uuid.uuid4())
    with pytest.raises(psycopg.errors.NoDataFound):
        artist_page(database_url, uuid.uuid4())


def test_artist_page_lists_upcoming_shows_by_date(database_url: str, db: Connection) -> None:
    stage = build_stage(db, days_ahead=60)
    later = stage.show_id
    soon = insert_show(db, stage.artist_id, insert_venue(db, "Ryman Auditorium", "Nashville"), 3)
    today = insert_show(db, stage.artist_id, insert_venue(db, "The Fillmore", "San Francisco"), 0)
    insert_show(db, stage.artist_id, insert_venue(db, "9:30 Club", "Washington"), -1)
    removed = insert_show(db, stage.artist_id, insert_venue(db, "Red Rocks", "Morrison"), 10)
    db.execute("update public.shows set status = 'removed' where id = %s", [removed])

    page = artist_page(database_url, stage.artist_id)
    assert page["artist"]["name"] == "Band of Horses"
    shows = page["upcoming_shows"]
    assert [s["id"] for s in shows] == [str(today), str(soon), str(later)]
    assert shows[1]["venue"]["name"] == "Ryman Auditorium"
