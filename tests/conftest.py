"""The test harness: one private PostgreSQL cluster per test run, and a fresh
database per test cloned from a migrated template (milliseconds, not a
migration run)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from devstack.cluster import Cluster, free_port
from devstack.migrate import apply_migrations, apply_platform
from shared.config import get_settings
from shared.db import close_pool
from tests.support.db import Connection

TEMPLATE = "theset_template"
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
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(TEMPLATE)))
        template_url = cluster.url(TEMPLATE)
        apply_platform(template_url)
        apply_migrations(template_url)
        with psycopg.connect(template_url, autocommit=True) as conn:
            conn.execute("create extension if not exists pgtap with schema extensions")
        cluster.stop()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def database_url(pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh migrated database for this test; ``shared.db`` points at it."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    url = pg_cluster.url(name)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    close_pool()
    try:
        yield url
    finally:
        close_pool()
        get_settings.cache_clear()
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture
def db(database_url: str) -> Iterator[Connection]:
    """An autocommit connection to the test database as the superuser."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn
