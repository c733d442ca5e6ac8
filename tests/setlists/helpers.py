"""Helpers for the setlist and voting tests: shows with a real Band of Horses
catalogue (``tests.support.catalogue``), users in bulk, and calls made exactly as
PostgREST makes them for a signed-in user."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from devstack.fixtures import BAND_OF_HORSES_SONGS
from tests.support.catalogue import (
    insert_artist,
    insert_show,
    insert_songs,
    insert_venue,
)
from tests.support.db import Connection, claims_for

T = TypeVar("T")

# Real Phish songs, for "songs of another artist".
PHISH_SONGS = ["Tweezer", "You Enjoy Myself", "Harry Hood"]


@dataclass(frozen=True)
class Stage:
    """A show with its artist's catalogue and, when asked, a predicted setlist."""

    artist_id: uuid.UUID
    venue_id: uuid.UUID
    show_id: uuid.UUID
    song_ids: list[uuid.UUID]
    setlist_id: uuid.UUID | None
    entries: list[uuid.UUID]  # setlist_songs ids, by position


def build_stage(
    db: Connection,
    *,
    catalogue: Sequence[str] = BAND_OF_HORSES_SONGS,
    on_setlist: int = 5,
    days_ahead: int = 30,
    artist_name: str = "Band of Horses",
    venue_name: str = "Crypto.com Arena",
) -> Stage:
    artist_id = insert_artist(db, artist_name)
    venue_id = insert_venue(db, venue_name)
    show_id = insert_show(db, artist_id, venue_id, days_ahead)
    song_ids = insert_songs(db, artist_id, list(catalogue))
    setlist_id: uuid.UUID | None = None
    entries: list[uuid.UUID] = []
    if on_setlist:
        row = db.execute(
            "insert into public.setlists (show_id, kind) values (%s, 'predicted') returning id",
            [show_id]).fetchone()
        assert row is not None
        setlist_id = row["id"]
        for position, song_id in enumerate(song_ids[:on_setlist], start=1):
            entry = db.execute(
                "insert into public.setlist_songs (setlist_id, song_id, position)"
                " values (%s, %s, %s) returning id", [setlist_id, song_id, position]).fetchone()
            assert entry is not None
            entries.append(entry["id"])
    return Stage(artist_id, venue_id, show_id, song_ids, setlist_id, entries)


def create_users(db: Connection, count: int) -> list[uuid.UUID]:
    """``count`` users in auth.users, inserted as Supabase Auth would, in one statement."""
    rows = db.execute(
        "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data,"
        " raw_user_meta_data)"
        " select id, 'authenticated', 'authenticated', id::text || '@example.com', now(),"
        " '{\"provider\": \"email\", \"providers\": [\"email\"]}', '{}'"
        " from (select gen_random_uuid() as id from generate_series(1, %s)) g returning id",
        [count]).fetchall()
    return [row["id"] for row in rows]


def act_as_user(conn: Connection, user_id: uuid.UUID, **extra_claims: Any) -> None:
    """Inside the current transaction: become ``user_id`` as PostgREST would."""
    claims = {**claims_for("authenticated", user_id), **extra_claims}
    conn.execute(
        "select set_config('request.jwt.claims', %s, true),"
        " set_config('role', 'authenticated', true)",
        [json.dumps(claims)])


def cast_vote(
    conn: Connection, user_id: uuid.UUID, entry: uuid.UUID, vote: bool = True
) -> dict[str, Any]:
    """One PostgREST-style request: ``rpc/cast_vote`` as ``user_id``, committed."""
    with conn.transaction():
        act_as_user(conn, user_id)
        row = conn.execute("select public.cast_vote(%s, %s) as answer", [entry, vote]).fetchone()
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def run_concurrently(
    url: str, tasks: Sequence[T], work: Callable[[Connection, T], Any], *, connections: int = 64
) -> list[Any]:
    """Run ``work(conn, task)`` for every task on ``connections`` threads with a
    connection each; all threads start together (barrier) so the calls overlap.
    Exceptions are returned in place of results."""
    workers = min(connections, len(tasks))
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * len(tasks)

    def worker(index: int) -> None:
        with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
            barrier.wait()
            for position in range(index, len(tasks), workers):
                try:
                    results[position] = work(conn, tasks[position])
                except Exception as error:
                    results[position] = error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(worker, index) for index in range(workers)]:
            future.result()
    return results


def scalar(db: Connection, query: str, params: Sequence[Any] = ()) -> Any:
    row = db.execute(query, list(params)).fetchone()
    assert row is not None
    return next(iter(row.values()))


def exact_count(db: Connection, entry: uuid.UUID) -> int:
    """The song's exact vote count (the sum of its tallies)."""
    value: int = scalar(db, "select private.exact_vote_count(ss) from public.setlist_songs ss"
                            " where ss.id = %s", [entry])
    return value


def flush(db: Connection, every: str = "1 second") -> list[dict[str, Any]]:
    """One run of the broadcast flush; the messages it sent ({setlist_id, version, songs})."""
    return db.execute("select * from private.flush_vote_broadcasts(%s::interval)",
                      [every]).fetchall()


def vote_messages(db: Connection, setlist_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """The setlist's 'vote_counts' broadcasts, payloads by version."""
    rows = db.execute(
        "select payload from realtime.messages where topic = %s and event = 'vote_counts'"
        " order by (payload ->> 'version')::bigint", [f"setlist:{setlist_id}"]).fetchall()
    return [row["payload"] for row in rows]


def last_broadcast_counts(db: Connection, setlist_id: uuid.UUID | None) -> dict[str, int]:
    """Each song's count in the last message that carried it."""
    counts: dict[str, int] = {}
    for payload in vote_messages(db, setlist_id):
        counts.update({c["setlist_song_id"]: c["vote_count"] for c in payload["vote_counts"]})
    return counts
