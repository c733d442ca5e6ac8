"""search_artists under load: the shared cache, single flight, per-client budgets,
the request share of Ticketmaster's daily quota, and the offline answer.

Ticketmaster is replaced at the HTTP boundary (pytest-httpx), and every test
counts the calls that reached it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock
from werkzeug.test import Client

from shared.config import get_settings
from tests.discovery.conftest import TM_KEY
from tests.discovery.helpers import artist, show, venue
from tests.support.db import Connection

PAYLOADS = Path(__file__).parent / "payloads"
ATTRACTIONS = re.compile(r"^https://app\.ticketmaster\.com/discovery/v2/attractions\.json\?.*$")


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def search(client: Client, q: str, *, address: str = "198.51.100.7", **extra: str) -> Any:
    return client.get("/search_artists", query_string={"q": q, **extra},
                      headers={"X-Forwarded-For": address})


def tm_calls(httpx_mock: HTTPXMock) -> list[str]:
    return [r.url.params["keyword"] for r in httpx_mock.get_requests()]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, discovery_env: str) -> pytest.MonkeyPatch:
    """Change settings for one test: ``settings_env.setenv(...)`` then ``apply()``."""
    return monkeypatch


def apply(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


# -- the shared cache --------------------------------------------------------------------------


def test_the_same_normalised_query_is_answered_from_the_cache(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_search.json"),
                            is_reusable=True)

    first = search(client, "Band of Horses")
    again = [search(client, q) for q in ("band of horses", "  BAND   of HORSES ",
                                         "Bánd öf Horses", "band-of-horses")]

    assert first.status_code == 200 and first.json is not None
    assert first.json["cached"] is False and first.json["source"] == "ticketmaster"
    assert datetime.fromisoformat(first.json["fetched_at"]) > datetime.now().astimezone() \
        - timedelta(minutes=1)
    for answer in again:
        assert answer.status_code == 200 and answer.json is not None
        assert answer.json["cached"] is True
        assert answer.json["fetched_at"] == first.json["fetched_at"]
        assert answer.json["items"] == first.json["items"]
    assert tm_calls(httpx_mock) == ["Band of Horses"]


def test_typed_prefixes_cost_one_call_per_distinct_query(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_empty.json"),
                            is_reusable=True)
    for _ in range(3):
        for prefix in ("rad", "radi", "radio", "Radio"):
            assert search(client, prefix).status_code == 200
    assert tm_calls(httpx_mock) == ["rad", "radi", "radio"]


def test_a_cached_answer_expires_after_its_ttl(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_search.json"),
                            is_reusable=True)
    assert search(client, "horses").json["cached"] is False
    assert search(client, "horses").json["cached"] is True
    ttl = get_settings().search_cache_ttl_seconds
    db.execute("update private.search_cache set fetched_at = now() - make_interval(secs => %s)",
               [ttl + 1])
    assert search(client, "horses").json["cached"] is False
    assert len(tm_calls(httpx_mock)) == 2


def test_a_larger_limit_than_was_fetched_is_fetched_again(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    full = payload("tm_attractions_search.json")
    full["page"]["size"] = 1
    httpx_mock.add_response(url=ATTRACTIONS, json=full, is_reusable=True)
    search(client, "horses", limit="1")
    search(client, "horses", limit="1")
    search(client, "horses", limit="10")
    assert [r.url.params["size"] for r in httpx_mock.get_requests()] == ["1", "10"]


def test_concurrent_identical_searches_make_one_call(
    app: Any, discovery_env: str, httpx_mock: HTTPXMock
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)
        return httpx.Response(200, json=payload("tm_attractions_search.json"))

    httpx_mock.add_callback(slow, url=ATTRACTIONS, is_optional=True, is_reusable=True)
    barrier = threading.Barrier(12)

    def one(i: int) -> Any:
        own = Client(app)
        barrier.wait()
        return search(own, "Band of Horses", address=f"198.51.100.{i + 1}")

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(one, range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    assert sum(not a.json["cached"] for a in answers) == 1
    assert len({json.dumps(a.json["items"]) for a in answers}) == 1
    assert len(httpx_mock.get_requests()) == 1


# -- per-client budgets ------------------------------------------------------------------------


def test_a_client_over_its_budget_gets_429_and_ticketmaster_is_not_called(
    client: Client, httpx_mock: HTTPXMock, settings_env: pytest.MonkeyPatch
) -> None:
    apply(settings_env, CLIENT_SEARCH_BURST="3", CLIENT_SEARCH_PER_MINUTE="6")
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_empty.json"),
                            is_reusable=True)

    answers = [search(client, f"query {i}") for i in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.json["error"]["details"]["retry_after_seconds"] == int(
        refused.headers["Retry-After"])
    assert tm_calls(httpx_mock) == ["query 0", "query 1", "query 2"]
    # Answers from the cache cost no budget: the same client still gets them.
    assert search(client, "query 1").status_code == 200
    # Another client has its own budget.
    assert search(client, "query 9", address="203.0.113.50").status_code == 200


def test_only_the_address_the_platform_appended_identifies_a_client(
    client: Client, httpx_mock: HTTPXMock, settings_env: pytest.MonkeyPatch
) -> None:
    apply(settings_env, CLIENT_SEARCH_BURST="2", CLIENT_SEARCH_PER_MINUTE="1")
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_empty.json"),
                            is_reusable=True)
    # A script forging a new first entry every time is still the last entry's client.
    statuses = [search(client, f"forged {i}", address=f"10.0.0.{i}, 198.51.100.99").status_code
                for i in range(4)]
    assert statuses == [200, 200, 429, 429]

    # Behind a load balancer (two hops) the client is the second entry from the end.
    apply(settings_env, TRUSTED_PROXY_HOPS="2")
    assert search(client, "lb 1", address="1.1.1.1, 198.51.100.20, 130.211.0.5").status_code \
        == 200
    assert search(client, "lb 2", address="2.2.2.2, 198.51.100.21, 130.211.0.5").status_code \
        == 200


def test_budgets_are_shared_by_every_process(database_url: str, discovery_env: str) -> None:
    """Two processes spending one client's budget at once: exactly the burst gets through."""
    script = (
        "import json, sys\n"
        "from shared.budgets import OverBudget, take_budget\n"
        "ok = 0\n"
        "for _ in range(15):\n"
        "    try:\n"
        "        take_budget('same-client', 'search'); ok += 1\n"
        "    except OverBudget:\n"
        "        pass\n"
        "print(ok)\n"
    )
    import os
    import subprocess
    import sys

    from devstack.migrate import PROJECT_ROOT

    env = {**os.environ, "DATABASE_URL": database_url, "CLIENT_SEARCH_BURST": "10",
           "CLIENT_SEARCH_PER_MINUTE": "0.5"}
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env,
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
    # The last line is the count; log lines come before it.
    allowed = [int(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert sum(allowed) == 10


# -- the request share of the daily quota ------------------------------------------------------


def test_request_traffic_stops_at_its_share_and_the_sync_share_stays_free(
    client: Client, httpx_mock: HTTPXMock, settings_env: pytest.MonkeyPatch, db: Connection
) -> None:
    apply(settings_env, TICKETMASTER_DAILY_QUOTA="5", TICKETMASTER_SYNC_RESERVED_CALLS="3")
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_empty.json"),
                            is_reusable=True)

    answers = [search(client, f"share {i}", address=f"198.51.100.{i + 1}") for i in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 503, 503]
    assert answers[2].json["error"]["code"] == "upstream_rate_limited"
    assert len(httpx_mock.get_requests()) == 2
    quota = db.execute("select request_calls, sync_calls, daily_limit, sync_reserved"
                       " from private.source_daily_quotas where provider = 'ticketmaster'"
                       ).fetchone()
    assert quota == {"request_calls": 2, "sync_calls": 0, "daily_limit": 5, "sync_reserved": 3}

    # The sync engine still has its reserve.
    from shared.quota import spending
    from shared.sync import clients

    with spending("sync"):
        for i in range(3):
            clients.ticketmaster().search_attractions(f"sync {i}")
    assert len(httpx_mock.get_requests()) == 5


# -- offline search ----------------------------------------------------------------------------


@pytest.fixture
def our_artists(db: Connection) -> dict[str, Any]:
    touring = artist(db, "Radiohead", popularity=80)
    show(db, touring, venue(db, "Madison Square Garden", "New York"), days_ahead=30)
    resting = artist(db, "Radio Moscow", popularity=90)
    accented = artist(db, "Beyoncé")
    db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
               " values ('ticketmaster', 'K8vZ917G7x0', %s)", [touring])
    return {"touring": touring, "resting": resting, "accented": accented}


FAILURES: dict[str, dict[str, Any]] = {
    "quota": dict(status_code=429, content=json.dumps(payload("tm_429_quota.json")).replace(
        "{API_KEY}", TM_KEY).encode(), headers={"Content-Type": "application/json"}),
    "server_error": dict(status_code=503, text="<html>Service Unavailable", is_reusable=True),
}


@pytest.mark.parametrize(
    "failure", ["quota", "server_error", "connection_refused", "request_share_spent"])
def test_when_ticketmaster_fails_our_own_artists_answer(
    client: Client, httpx_mock: HTTPXMock, our_artists: dict[str, Any], failure: str,
    db: Connection
) -> None:
    if failure == "request_share_spent":
        db.execute("update private.source_daily_quotas set request_calls = 2000"
                   " where provider = 'ticketmaster'")
    elif failure == "connection_refused":
        httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"),
                                 url=ATTRACTIONS, is_reusable=True)
    else:
        httpx_mock.add_response(url=ATTRACTIONS, **FAILURES[failure])

    answer = search(client, "RADIO")

    assert answer.status_code == 200, answer.json
    assert answer.json["source"] == "local"
    assert answer.json["cached"] is False and answer.json["fetched_at"] is None
    assert answer.json["fallback_reason"] in ("upstream_rate_limited", "upstream_error")
    items = answer.json["items"]
    # Prefix match; the artist with an upcoming show first, though less popular.
    assert [i["name"] for i in items] == ["Radiohead", "Radio Moscow"]
    assert items[0] == {
        "name": "Radiohead", "ticketmaster_id": "K8vZ917G7x0", "spotify_id": None,
        "musicbrainz_id": None, "image_url": None, "genres": [], "upcoming_event_count": 1,
        "ticketmaster_url": None, "artist_id": str(our_artists["touring"])}
    assert TM_KEY not in answer.get_data(as_text=True)
    if failure == "request_share_spent":
        assert httpx_mock.get_requests() == []


def test_without_ticketmaster_configured_search_is_accent_insensitive_and_local(
    client: Client, httpx_mock: HTTPXMock, our_artists: dict[str, Any],
    settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.delenv("TICKETMASTER_API_KEY")
    apply(settings_env)
    from shared.sync import clients
    clients.configure()

    answer = search(client, "beyonce")

    assert answer.status_code == 200
    assert answer.json["source"] == "local"
    assert answer.json["fallback_reason"] == "upstream_unavailable"
    assert [i["name"] for i in answer.json["items"]] == ["Beyoncé"]
    assert httpx_mock.get_requests() == []


def test_with_nothing_local_either_the_answer_is_still_503(
    client: Client, httpx_mock: HTTPXMock, our_artists: dict[str, Any]
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, **FAILURES["server_error"])
    answer = search(client, "zzz no such band")
    assert answer.status_code == 502
    assert answer.json["error"]["code"] == "upstream_error"
