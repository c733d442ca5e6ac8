"""The test harness: one private PostgreSQL cluster per test run, and a fresh
database per test cloned from a migrated template (milliseconds, not a
migration run).

Roles as on hosted Supabase: the platform stand-in is installed by the
superuser ``supabase_admin``; the migrations, the functions and the tests' own
connections run as ``postgres``, which is not a superuser."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from devstack.cluster import OWNER, Cluster, free_port
from devstack.migrate import apply_migrations, apply_platform
from devstack.pooler import transaction_pooler
from shared.config import get_settings
from shared.db import close_pool
from tests.support.db import Connection

TEMPLATE = "theset_template"
# THESET_TEST_POOLER=transaction: every test reaches its database through
# PgBouncer in transaction mode, as production reaches Supavisor (.ci/run runs
# the function suites so); the harness's own housekeeping stays direct.
POOLER = os.environ.get("THESET_TEST_POOLER", "")
# Durability buys nothing in a throw-away cluster.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "log_min_messages": "warning",
}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="theset-test-")), free_port())
    cluster.init(TEST_SETTINGS)
    # pg_cron can only be created in the database its launcher watches, and the
    # launcher's connection would then block cloning the template: build the
    # template under one setting, then restart watching another database.
    cluster.start({"cron.database_name": TEMPLATE})
    try:
        with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(TEMPLATE)))
        apply_platform(cluster.admin_url(TEMPLATE))
        apply_migrations(cluster.url(TEMPLATE))
        with psycopg.connect(cluster.admin_url(TEMPLATE), autocommit=True) as admin:
            # Test tooling, not part of the platform: pgTAP is not a trusted extension.
            admin.execute("create extension if not exists pgtap with schema extensions")
        cluster.stop()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def prepare_threshold_off() -> Iterator[bool]:
    """Under the pooler, the tests' own helper connections get what production's
    connections have: no server-side prepared statements. shared.db and
    shared.setlists pass it themselves and stay unpatched, so a product
    connection without it still fails."""
    if POOLER not in ("", "transaction"):
        raise pytest.UsageError("THESET_TEST_POOLER is 'transaction' or unset")
    if not POOLER:
        yield False
        return
    original_connect = psycopg.Connection.connect

    def connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("tests."):
            kwargs.setdefault("prepare_threshold", None)
        return original_connect(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg, "connect", connect)
        yield True


@pytest.fixture
def database_url(
    pg_cluster: Cluster, prepare_threshold_off: bool, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh migrated database for this test; ``shared.db`` points at it (through
    its own PgBouncer in transaction mode under THESET_TEST_POOLER=transaction,
    with fewer server connections than the concurrent tests' clients, so they
    queue and share them as behind Supavisor)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_cluster.admin_url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("create database {} owner postgres template {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    with ExitStack() as stack:
        url = pg_cluster.url(name)
        if POOLER:
            port = stack.enter_context(transaction_pooler(pg_cluster, pool_size=20))
            url = f"postgresql://{OWNER}@127.0.0.1:{port}/{name}"
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        close_pool()
        try:
            yield url
        finally:
            close_pool()
            get_settings.cache_clear()
            stack.close()
            with psycopg.connect(pg_cluster.admin_url(), autocommit=True) as admin:
                admin.execute(
                    sql.SQL("drop database {} with (force)").format(sql.Identifier(name))
                )


@pytest.fixture
def superuser_database_url(pg_cluster: Cluster, database_url: str) -> str:
    """The same test database as the cluster's superuser: only for diagnostics the
    platform reserves to it (auto_explain), never to arrange what a test proves."""
    return pg_cluster.admin_url(str(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]))


@pytest.fixture
def db(database_url: str) -> Iterator[Connection]:
    """An autocommit connection to the test database as ``postgres`` (not a superuser)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn
