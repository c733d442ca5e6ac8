"""Single flight: concurrent imports of one entity make the upstream calls once.

Every caller runs in its own thread with its own functions-framework client,
released together by a barrier; the upstream answers slowly enough that the
callers really overlap, and pytest-httpx counts every call.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from werkzeug.test import Client

from shared import db as shared_db
from shared.sync.errors import FlightPending
from shared.sync.singleflight import single_flight
from shared.sync.worker import load_handlers
from tests.sources.conftest import payload
from tests.support.db import Connection
from tests.support.functions import functions_app
from tests.sync.snapshots import count
from tests.sync.upstream import (
    BOH_SPOTIFY,
    BOH_TM,
    SPOTIFY,
    TM,
    Upstream,
    _url,
    attraction,
    future_events,
)

FUNCTIONS = ("sync_artist", "sync_shows")
CALLERS = 20


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return functions_app(tmp_path_factory.mktemp("functions"), FUNCTIONS)


@pytest.fixture
def client(app: Any, sync_env: str) -> Client:
    load_handlers()
    return Client(app)


def _slow(body: Any, seconds: float = 0.3, status: int = 200) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        time.sleep(seconds)
        return httpx.Response(status, json=body)

    return answer


def _calls(upstream: Upstream, host: str, path: str) -> int:
    return sum(1 for r in upstream.requests(host) if r.url.path == path)


def _all_at_once(app: Any, call: Any, callers: int = CALLERS) -> list[Any]:
    barrier = threading.Barrier(callers)

    def one(i: int) -> Any:
        own = Client(app)
        barrier.wait()
        return call(own, i)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(one, range(callers)))


def test_twenty_concurrent_imports_of_a_new_artist_make_one_call_per_source(
    app: Any, client: Client, upstream: Upstream, db: Connection
) -> None:
    upstream.mock.add_callback(_slow(attraction()), url=_url(TM, f"/attractions/{BOH_TM}.json"),
                               is_optional=True, is_reusable=True)
    upstream.mock.add_callback(
        _slow(payload("spotify_search_artists.json")["artists"]["items"][0], 0.1),
        url=_url(SPOTIFY, f"/artists/{BOH_SPOTIFY}"), is_optional=True, is_reusable=True)

    answers = _all_at_once(
        app, lambda own, _: own.post("/sync_artist", json={"ticketmaster_id": BOH_TM}))

    assert [a.status_code for a in answers] == [200] * CALLERS
    assert len({a.json["artist"]["id"] for a in answers}) == 1
    assert sum(a.json["refreshed"] for a in answers) == 1  # the leader; the others shared it
    assert count(db, "public.artists") == 1
    assert _calls(upstream, "app.ticketmaster.com",
                  f"/discovery/v2/attractions/{BOH_TM}.json") == 1
    assert _calls(upstream, "api.spotify.com", f"/v1/artists/{BOH_SPOTIFY}") == 1
    # Everything the import called, once: attraction and Spotify artist (the
    # attraction links the MusicBrainz id, so setlist.fm is not asked).
    assert len(upstream.api_requests()) == 2


def test_a_failure_upstream_is_every_waiting_callers_answer_without_more_calls(
    app: Any, client: Client, upstream: Upstream, db: Connection
) -> None:
    upstream.mock.add_callback(_slow(payload("tm_404.json"), status=404),
                               url=_url(TM, "/attractions/K8vZ9170000.json"),
                               is_optional=True, is_reusable=True)

    answers = _all_at_once(
        app, lambda own, _: own.post("/sync_artist", json={"ticketmaster_id": "K8vZ9170000"}),
        callers=8)

    assert {a.status_code for a in answers} == {404}
    assert len(upstream.api_requests()) == 1
    assert count(db, "public.artists") == 0


def test_concurrent_show_refreshes_of_one_artist_fetch_its_events_once(
    app: Any, client: Client, upstream: Upstream, db: Connection
) -> None:
    upstream.tm_attraction()
    upstream.spotify_artist()
    imported = client.post("/sync_artist", json={"ticketmaster_id": BOH_TM})
    assert imported.status_code == 200 and imported.json is not None
    artist_id = imported.json["artist"]["id"]
    upstream.mock.add_callback(_slow(future_events()), url=_url(TM, "/events.json"),
                               is_optional=True, is_reusable=True)
    before = len(upstream.api_requests())

    answers = _all_at_once(
        app, lambda own, _: own.post("/sync_shows", json={"artist_id": artist_id}), callers=10)

    assert [a.status_code for a in answers] == [200] * 10
    assert sum(a.json["refreshed"] for a in answers) == 1
    assert len({tuple(a.json["shows"]) for a in answers}) == 1
    assert len(upstream.api_requests()) - before == 1
    assert _calls(upstream, "app.ticketmaster.com", "/discovery/v2/events.json") == 1


def test_a_caller_whose_wait_runs_out_gets_202_with_the_job_queued(
    client: Client, upstream: Upstream, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.tm_attraction()
    upstream.spotify_artist()
    imported = client.post("/sync_artist", json={"ticketmaster_id": BOH_TM})
    assert imported.json is not None
    artist_id = imported.json["artist"]["id"]
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    # Another instance is refreshing this artist's shows right now (a live lease).
    db.execute("select private.sync_flight_take(%s, %s, 60)",
               [f"artist_shows:{artist_id}", uuid.uuid4()])
    monkeypatch.setenv("SINGLE_FLIGHT_WAIT_SECONDS", "0.3")
    from shared.config import get_settings
    get_settings.cache_clear()

    answer = client.post("/sync_shows", json={"artist_id": artist_id})

    assert answer.status_code == 202
    assert answer.json is not None
    assert answer.json["status"] == "pending" and answer.json["reason"] == "import_in_progress"
    assert int(answer.headers["Retry-After"]) >= 1
    [queued] = answer.json["queued"]
    assert (queued["kind"], queued["entity_id"]) == ("artist_shows", artist_id)
    assert _calls(upstream, "app.ticketmaster.com", "/discovery/v2/events.json") == 0
    jobs = db.execute("select message ->> 'kind' as kind from pgmq.q_sync").fetchall()
    assert jobs == [{"kind": "artist_shows"}]


def test_a_dead_leaders_flight_is_taken_over_once_its_lease_runs_out(
    sync_env: str, db: Connection
) -> None:
    key = "test:" + str(uuid.uuid4())
    db.execute("insert into private.sync_flights (key, holder, expires_at)"
               " values (%s, %s, now() - interval '1 second')", [key, uuid.uuid4()])
    runs: list[str] = []

    def lead(flight: Any) -> str:
        runs.append("led")
        with shared_db.transaction() as conn:
            flight.finish(conn)
        return "fetched"

    assert single_flight(key, lead, lambda _: None, wait_seconds=1) == "fetched"
    assert runs == ["led"]
    row = db.execute("select finished_at is not null as finished, outcome"
                     " from private.sync_flights where key = %s", [key]).fetchone()
    assert row == {"finished": True, "outcome": None}


def test_a_live_flight_of_another_caller_is_waited_for_then_pending(
    sync_env: str, db: Connection
) -> None:
    key = "test:" + str(uuid.uuid4())
    db.execute("select private.sync_flight_take(%s, %s, 60)", [key, uuid.uuid4()])
    started = time.monotonic()
    with pytest.raises(FlightPending):
        single_flight(key, lambda flight: "never", lambda _: None, wait_seconds=0.3)
    assert time.monotonic() - started >= 0.3


def test_the_leader_renews_its_lease_while_it_works(
    sync_env: str, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.sync import singleflight

    monkeypatch.setattr(singleflight, "LEASE_SECONDS", 0.6)
    key = "test:" + str(uuid.uuid4())
    seen: list[bool] = []

    def lead(flight: Any) -> str:
        for _ in range(6):  # three leases long
            time.sleep(0.3)
            row = db.execute("select live from private.sync_flight_state(%s)", [key]).fetchone()
            seen.append(bool(row and row["live"]))
        with shared_db.transaction() as conn:
            flight.finish(conn)
        return "done"

    assert single_flight(key, lead, lambda _: None) == "done"
    assert seen == [True] * 6


def test_a_caller_that_just_checked_is_not_asked_again_before_taking_the_flight(
    sync_env: str, db: Connection
) -> None:
    looks: list[bool] = []

    def done(after_flight: bool) -> str | None:
        looks.append(after_flight)
        return None

    def lead(flight: Any) -> str:
        with shared_db.transaction() as conn:
            flight.finish(conn)
        return "led"

    # Without `checked`: the first look, then the leader's look once it holds the flight.
    assert single_flight("test:" + str(uuid.uuid4()), lead, done) == "led"
    assert looks == [False, False]
    looks.clear()
    assert single_flight("test:" + str(uuid.uuid4()), lead, done, checked=True) == "led"
    assert looks == [False]
