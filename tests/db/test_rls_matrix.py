"""The RLS matrix: anon, user A, user B and service_role × every table ×
select/insert/update/delete is exactly what the grants and policies promise.

Every table in ``public`` (the client's API) and ``private`` (the engine) must be
listed here: a new table without an entry fails the completeness test, so nobody
adds a table without deciding who sees it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import psycopg
import pytest

from tests.support.catalogue import insert_show_with_catalogue
from tests.support.db import Connection, create_user, request_as


class Access(Enum):
    PUBLIC_READ = "everyone reads every row; only the backend writes"
    OWN_ROWS = "a signed-in user reads their own rows; anon nothing; only the backend writes"
    BACKEND_ONLY = "no API role but service_role may touch it"


@dataclass(frozen=True)
class Rule:
    access: Access
    owner_column: str | None = None
    # A column the update probe may assign to itself.
    probe_column: str = "created_at"


TABLES: dict[str, Rule] = {
    "public.artists": Rule(Access.PUBLIC_READ),
    "public.artist_external_ids": Rule(Access.PUBLIC_READ),
    "public.venues": Rule(Access.PUBLIC_READ),
    "public.venue_external_ids": Rule(Access.PUBLIC_READ),
    "public.shows": Rule(Access.PUBLIC_READ),
    "public.show_external_ids": Rule(Access.PUBLIC_READ),
    "public.songs": Rule(Access.PUBLIC_READ),
    "public.setlists": Rule(Access.PUBLIC_READ),
    "public.setlist_songs": Rule(Access.PUBLIC_READ),
    "public.votes": Rule(Access.OWN_ROWS, owner_column="user_id"),
    "private.vote_tallies": Rule(Access.PUBLIC_READ, probe_column="votes"),
    "private.vote_broadcasts": Rule(Access.PUBLIC_READ, probe_column="sent_at"),
    "public.profiles": Rule(Access.OWN_ROWS, owner_column="id"),
    "public.user_artists": Rule(Access.OWN_ROWS, owner_column="user_id", probe_column="synced_at"),
    "private.sync_state": Rule(Access.BACKEND_ONLY, probe_column="last_error"),
    "private.sync_dead_letters": Rule(Access.BACKEND_ONLY, probe_column="failed_at"),
    "private.api_calls": Rule(Access.BACKEND_ONLY, probe_column="called_at"),
    "private.sync_pending_jobs": Rule(Access.BACKEND_ONLY, probe_column="enqueued_at"),
    "private.source_rate_limits": Rule(Access.BACKEND_ONLY, probe_column="next_slot_at"),
    "private.sync_job_runs": Rule(Access.BACKEND_ONLY, probe_column="finished_at"),
    "private.sync_job_kinds": Rule(Access.BACKEND_ONLY, probe_column="ttl"),
    "private.played_setlist_lookups": Rule(Access.BACKEND_ONLY, probe_column="updated_at"),
    "private.artist_live_history": Rule(Access.BACKEND_ONLY, probe_column="updated_at"),
    "private.artist_live_songs": Rule(Access.BACKEND_ONLY, probe_column="plays"),
    "private.source_daily_quotas": Rule(Access.BACKEND_ONLY, probe_column="request_calls"),
    "private.search_cache": Rule(Access.BACKEND_ONLY, probe_column="fetched_at"),
    "private.client_budgets": Rule(Access.BACKEND_ONLY, probe_column="tat"),
    "private.sync_flights": Rule(Access.BACKEND_ONLY, probe_column="expires_at"),
    "private.sync_job_holds": Rule(Access.BACKEND_ONLY, probe_column="holds"),
}


@dataclass(frozen=True)
class World:
    user_a: uuid.UUID
    user_b: uuid.UUID


def populate(db: Connection) -> World:
    """At least one row in every table, some owned by A, none of the votes by B."""
    user_a = create_user(db)
    user_b = create_user(db)
    rows = insert_show_with_catalogue(db)
    db.execute(
        "insert into public.artist_external_ids (source, external_id, artist_id)"
        " values ('ticketmaster', 'K8vZ9171ob7', %s)", [rows.artist_id])
    db.execute(
        "insert into public.venue_external_ids (source, external_id, venue_id)"
        " values ('ticketmaster', 'KovZpZA7AAEA', %s)", [rows.venue_id])
    db.execute(
        "insert into public.show_external_ids (source, external_id, show_id)"
        " values ('ticketmaster', 'vvG1fZ9aBcDeF', %s)", [rows.show_id])
    setlist = db.execute(
        "insert into public.setlists (show_id, kind) values (%s, 'predicted') returning id",
        [rows.show_id]).fetchone()
    assert setlist is not None
    entry = db.execute(
        "insert into public.setlist_songs (setlist_id, song_id, position) values (%s, %s, 1)"
        " returning id", [setlist["id"], rows.song_ids[0]]).fetchone()
    assert entry is not None
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)",
               [user_a, entry["id"]])
    db.execute("select * from private.flush_vote_broadcasts()")
    db.execute("insert into public.user_artists (user_id, artist_id, relation, rank)"
               " values (%s, %s, 'top', 1)", [user_a, rows.artist_id])
    db.execute("insert into private.sync_state (job_kind, entity_id) values ('artist_details', %s)",
               [rows.artist_id])
    db.execute("insert into private.sync_dead_letters (msg_id, job_kind, message, attempts,"
               " last_error) values (1, 'artist_details', '{}', 5, 'HTTP 500')")
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [rows.artist_id])
    db.execute("insert into private.sync_job_runs (msg_id, job_kind, attempt, outcome)"
               " values (1, 'artist_details', 1, 'done')")
    db.execute("insert into private.api_calls (provider, endpoint, method, status_code,"
               " latency_ms, attempt, outcome) values ('spotify', '/artists/{id}', 'GET', 200,"
               " 12, 1, 'ok')")
    db.execute("insert into private.played_setlist_lookups (show_id, status)"
               " values (%s, 'waiting')", [rows.show_id])
    db.execute("insert into private.artist_live_history (artist_id, setlists_counted)"
               " values (%s, 1)", [rows.artist_id])
    db.execute("insert into private.artist_live_songs (artist_id, song_id, plays, last_played_on)"
               " values (%s, %s, 1, current_date)", [rows.artist_id, rows.song_ids[0]])
    db.execute("select private.search_cache_store('radiohead', 20, '[]'::jsonb)")
    db.execute("select private.take_client_budget('a1b2c3', 'search', 20, 10)")
    db.execute("select private.sync_flight_take('artist_shows:x', gen_random_uuid(), 30)")
    db.execute("insert into private.sync_job_holds (msg_id, holds) values (1, 1)")
    return World(user_a, user_b)


def test_every_table_has_a_rule(db: Connection) -> None:
    tables = {
        f"{row['schemaname']}.{row['tablename']}"
        for row in db.execute(
            "select schemaname, tablename from pg_tables"
            " where schemaname in ('public', 'private')")
    }
    assert tables == set(TABLES)


def test_rls_is_enabled_on_every_table(db: Connection) -> None:
    unprotected = db.execute(
        "select relname from pg_class"
        " where relnamespace in ('public'::regnamespace, 'private'::regnamespace)"
        " and relkind in ('r', 'p') and not relrowsecurity").fetchall()
    assert unprotected == []


def _denied(url: str, role: str, user: uuid.UUID | None, statement: str) -> bool:
    with request_as(url, role, user) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def _visible(url: str, role: str, user: uuid.UUID | None, table: str) -> list[dict[str, Any]]:
    with request_as(url, role, user) as conn:
        return conn.execute(f"select * from {table}").fetchall()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_access_matrix(table: str, database_url: str, db: Connection) -> None:
    rule = TABLES[table]
    world = populate(db)
    total = db.execute(f"select count(*) as n from {table}").fetchone()
    assert total is not None and total["n"] > 0
    column = rule.probe_column
    writes = {
        "insert": f"insert into {table} ({column}) select {column} from {table}"
                  " where false",
        "update": f"update {table} set {column} = {column}",
        "delete": f"delete from {table} where false",
    }
    callers: list[tuple[str, str, uuid.UUID | None]] = [
        ("anon", "anon", None),
        ("user A", "authenticated", world.user_a),
        ("user B", "authenticated", world.user_b),
    ]

    for label, role, user in callers:
        for operation, statement in writes.items():
            assert _denied(database_url, role, user, statement), f"{label} may {operation}"
        if rule.access is Access.PUBLIC_READ:
            assert len(_visible(database_url, role, user, table)) == total["n"], label
        elif rule.access is Access.OWN_ROWS and user is not None:
            rows = _visible(database_url, role, user, table)
            owned = db.execute(
                f"select count(*) as n from {table} where {rule.owner_column} = %s",
                [user]).fetchone()
            assert owned is not None
            assert len(rows) == owned["n"], label
            owner_column = rule.owner_column
            assert owner_column is not None
            assert all(row[owner_column] == user for row in rows), label
            if user == world.user_a:
                assert rows, "user A should see their own row"
        else:
            assert _denied(database_url, role, user, f"select * from {table}"), label

    # The backend's role reads every row and may write (RLS bypassed).
    assert len(_visible(database_url, "service_role", None, table)) == total["n"]
    for operation, statement in writes.items():
        assert not _denied(database_url, "service_role", None, statement), operation
