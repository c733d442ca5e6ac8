"""The functions through PgBouncer in transaction mode (Supavisor's port 6543 in
production): server connections are shared between clients and change between
transactions, so any session state or server-side prepared statement breaks.

.ci/run also runs the function suites with THESET_TEST_POOLER=transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from werkzeug.test import Client

from devstack.cluster import OWNER, Cluster
from devstack.migrate import latest_version
from devstack.pooler import transaction_pooler
from devstack.server import build_app
from devstack.tokens import mint_local_token
from shared.config import get_settings
from shared.db import close_pool
from tests.setlists.conftest import HS_SECRET, INTERNAL_SECRET, ISSUER, SUPABASE_URL
from tests.setlists.helpers import build_stage, create_users, scalar
from tests.support.db import Connection

SERVER_CONNECTIONS = 2


@pytest.fixture
def pooled_url(
    pg_cluster: Cluster, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``DATABASE_URL`` through a pooler with two server connections for everyone."""
    name = str(conninfo_to_dict(database_url)["dbname"])
    with transaction_pooler(pg_cluster, pool_size=SERVER_CONNECTIONS) as port:
        url = f"postgresql://{OWNER}@127.0.0.1:{port}/{name}"
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
        monkeypatch.setenv("SUPABASE_JWT_SECRET", HS_SECRET)
        monkeypatch.setenv("INTERNAL_SECRET", INTERNAL_SECRET)
        get_settings.cache_clear()
        close_pool()
        try:
            yield url
        finally:
            close_pool()
            get_settings.cache_clear()


def test_the_pooler_shares_server_connections(pg_cluster: Cluster, database_url: str) -> None:
    """What makes this a real check: session state set by one client is seen by
    another, as it would be behind Supavisor."""
    name = str(conninfo_to_dict(database_url)["dbname"])
    with transaction_pooler(pg_cluster, pool_size=1) as port:
        url = f"postgresql://{OWNER}@127.0.0.1:{port}/{name}"
        with psycopg.connect(url, autocommit=True) as first, \
                psycopg.connect(url, autocommit=True) as second:
            first.execute("select set_config('theset.leak', 'first client', false)")
            row = second.execute("select current_setting('theset.leak', true)").fetchone()
            assert row == ("first client",)


def test_health_and_reads_through_the_pooler(pooled_url: str, database_url: str) -> None:
    client = Client(build_app())
    for _ in range(5):
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json is not None
        assert response.json["migration_version"] == latest_version(database_url)


def test_concurrent_votes_through_the_pooler(pooled_url: str, db: Connection) -> None:
    """40 fans vote at once through the functions' pool, over two server connections."""
    stage = build_stage(db)
    fans = create_users(db, 40)
    entry = str(stage.entries[0])
    client = Client(build_app())

    def vote(fan: object) -> int:
        minted = mint_local_token(str(fan), secret=HS_SECRET, issuer=ISSUER)
        response = client.post(
            "/cast_vote", data=json.dumps({"setlist_song_id": entry}),
            headers={"Authorization": f"Bearer {minted}"}, content_type="application/json")
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(vote, fans))
    assert statuses == [200] * len(fans)
    assert scalar(db, "select private.exact_vote_count(ss) from public.setlist_songs ss"
                      " where ss.id = %s",
                  [entry]) == len(fans)
    assert scalar(db, "select count(*) from public.votes") == len(fans)


def test_create_setlist_and_the_queue_through_the_pooler(
    pooled_url: str, db: Connection
) -> None:
    """A new show's queued create_setlist job runs through run_jobs, and the
    client's create_setlist answers the same setlist, all through the pooler."""
    stage = build_stage(db, on_setlist=0)
    client = Client(build_app())
    ran = client.post("/run_jobs", json={"budget_seconds": 20},
                      headers={"X-Internal-Secret": INTERNAL_SECRET})
    assert ran.status_code == 200, ran.get_data(as_text=True)
    assert ran.json is not None and ran.json["done"] >= 1
    setlist = scalar(db, "select id from public.setlists where show_id = %s", [stage.show_id])
    assert setlist is not None
    answered = client.post("/create_setlist", json={"show_id": str(stage.show_id)})
    assert answered.status_code == 200
    assert answered.json is not None
    assert answered.json["setlist_id"] == str(setlist)
    assert answered.json["created"] is False
