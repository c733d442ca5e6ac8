"""The schema PostgREST serves is exactly the API openapi.yaml documents.

``public`` is reachable at ``/rest/v1``; the engine lives in ``private``, which
is not served. A function or table added to ``public`` without being documented
under ``x-postgrest`` (or documented but missing) fails here, as does a caller
the document and the grants disagree on.
"""

from __future__ import annotations

import tomllib
from typing import Any

from devstack.migrate import PROJECT_ROOT
from tests.support.db import Connection
from tests.test_openapi import SPEC

DOCUMENTED: dict[str, Any] = SPEC["x-postgrest"]
API_ROLES = ("anon", "authenticated")


def test_postgrest_serves_public_and_not_the_engine() -> None:
    config = tomllib.loads((PROJECT_ROOT / "supabase" / "config.toml").read_text())
    schemas = config["api"]["schemas"]
    assert "public" in schemas
    assert "private" not in schemas


def test_public_functions_are_the_documented_rpcs(db: Connection) -> None:
    rows = db.execute(
        "select p.proname as name,"
        " array(select r from unnest(%s::text[]) as r"
        "       where has_function_privilege(r, p.oid, 'execute')) as callers"
        " from pg_proc p where p.pronamespace = 'public'::regnamespace",
        [list(API_ROLES)],
    ).fetchall()
    assert {row["name"]: sorted(row["callers"]) for row in rows} == {
        name: sorted(rpc["callers"]) for name, rpc in DOCUMENTED["rpc"].items()
    }


def test_public_relations_are_the_documented_tables(db: Connection) -> None:
    rows = db.execute(
        "select c.relname as name, c.relkind::text as kind,"
        " has_table_privilege('anon', c.oid, 'select') as anon_reads,"
        " has_table_privilege('authenticated', c.oid, 'select') as users_read"
        " from pg_class c where c.relnamespace = 'public'::regnamespace"
        " and c.relkind in ('r', 'p', 'v', 'm', 'f')"
    ).fetchall()
    assert {row["name"] for row in rows} == set(DOCUMENTED["tables"])
    for row in rows:
        readers = DOCUMENTED["tables"][row["name"]]["readers"]
        # Which rows a signed-in user sees is the RLS matrix's (tests/db/test_rls_matrix.py).
        assert row["users_read"], row["name"]
        assert row["anon_reads"] == (readers == "everyone"), row["name"]


def test_no_engine_function_is_executable_by_everyone(db: Connection) -> None:
    # A new function is executable by PUBLIC (every role, anon included, which has
    # USAGE on private for the helpers the API calls) until it revokes that.
    open_to_all = db.execute(
        "select p.oid::regprocedure::text as function from pg_proc p"
        " where p.pronamespace = 'private'::regnamespace"
        " and (p.proacl is null or exists (select from aclexplode(p.proacl) as a"
        "      where a.grantee = 0 and a.privilege_type = 'EXECUTE'))"
    ).fetchall()
    assert open_to_all == []


def test_the_engine_is_in_private(db: Connection) -> None:
    # Spot checks that the move kept what it must: the queue's functions and
    # tables, the vote trigger, and the Realtime policy's helper.
    rows = db.execute(
        "select to_regprocedure('private.sync_read_jobs(integer, integer)') is not null as queue,"
        " to_regclass('private.sync_state') is not null as state,"
        " exists (select from pg_trigger where tgfoid = 'private.votes_maintain_count'::regproc)"
        "   as trigger,"
        " exists (select from pg_policies where schemaname = 'realtime'"
        "         and qual like '%private.is_setlist_topic%') as realtime_policy"
    ).fetchone()
    assert rows == {"queue": True, "state": True, "trigger": True, "realtime_policy": True}
