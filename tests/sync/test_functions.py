"""sync_artist, sync_shows, run_jobs and sync_status as deployed (functions-framework
apps), against a real database, with the sources answered at the HTTP boundary."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from werkzeug.test import Client, TestResponse

from shared.sync.api import caller_may_force
from shared.sync.worker import Worker, WorkerConfig, load_handlers
from shared.web import Unauthorized
from tests.sources.conftest import payload
from tests.support.db import Connection
from tests.support.functions import functions_app
from tests.sync.snapshots import count, row_versions
from tests.sync.upstream import (
    BOH_MBID,
    BOH_SPOTIFY,
    BOH_TM,
    INTERNAL_SECRET,
    SPOTIFY,
    TM,
    Upstream,
    _url,
    future_events,
)

FUNCTIONS = ("sync_artist", "sync_shows", "run_jobs", "sync_status")
INTERNAL = {"X-Internal-Secret": INTERNAL_SECRET}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return functions_app(tmp_path_factory.mktemp("functions"), FUNCTIONS)


@pytest.fixture
def client(app: Any, sync_env: str) -> Client:
    load_handlers()
    return Client(app)


@dataclass(frozen=True)
class Answer:
    status_code: int
    json: Any
    text: str


def _answer(response: TestResponse) -> Answer:
    return Answer(response.status_code, response.json, response.get_data(as_text=True))


def _post(client: Client, name: str, body: dict[str, Any], **headers: str) -> Answer:
    return _answer(client.post(f"/{name}", json=body, headers=headers))


def _get(client: Client, name: str, **headers: str) -> Answer:
    return _answer(client.get(f"/{name}", headers=headers))


def _artist_sources(upstream: Upstream) -> None:
    upstream.tm_attraction()
    upstream.tm_search()
    upstream.spotify_artist()
    upstream.setlistfm_search()


def _ids(db: Connection) -> list[tuple[str, str]]:
    rows = db.execute("select source, external_id from public.artist_external_ids order by 1")
    return [(r["source"], r["external_id"]) for r in rows]


EXPECTED_IDS = [("musicbrainz", BOH_MBID), ("spotify", BOH_SPOTIFY), ("ticketmaster", BOH_TM)]


def test_sync_artist_imports_now_and_queues_shows_and_catalogue(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    response = _post(client, "sync_artist", {"ticketmaster_id": BOH_TM})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["refreshed"] is True and body["action"] == "created"
    assert body["artist"]["name"] == "Band of Horses"
    assert body["artist"]["popularity"] == 59
    assert body["artist"]["external_ids"] == {
        "musicbrainz": [BOH_MBID],
        "spotify": [BOH_SPOTIFY],
        "ticketmaster": [BOH_TM],
    }
    assert sorted(q["kind"] for q in body["queued"]) == ["artist_catalogue", "artist_shows"]
    assert _ids(db) == EXPECTED_IDS


@pytest.mark.parametrize(
    "first",
    [
        {"ticketmaster_id": BOH_TM},
        {"spotify_id": BOH_SPOTIFY},
        {"musicbrainz_id": BOH_MBID},
        {"name": "band of horses"},
    ],
    ids=["ticketmaster", "spotify", "musicbrainz", "name"],
)
def test_every_way_in_reaches_the_same_artist(
    first: dict[str, str], client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    answers = [_post(client, "sync_artist", first)]
    for other in (
        {"ticketmaster_id": BOH_TM},
        {"spotify_id": BOH_SPOTIFY},
        {"musicbrainz_id": BOH_MBID},
        {"name": "Band of Horses"},
    ):
        answers.append(_post(client, "sync_artist", other))
    assert [a.status_code for a in answers] == [200] * 5
    assert {a.json["artist"]["id"] for a in answers} == {answers[0].json["artist"]["id"]}
    assert count(db, "public.artists") == 1
    assert _ids(db) == EXPECTED_IDS


def test_a_fresh_artist_costs_no_call_and_a_stale_one_is_refreshed(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    assert _post(client, "sync_artist", {"ticketmaster_id": BOH_TM}).status_code == 200
    calls = len(upstream.api_requests())

    fresh = _post(client, "sync_artist", {"spotify_id": BOH_SPOTIFY})
    assert fresh.status_code == 200 and fresh.json["refreshed"] is False
    assert len(upstream.api_requests()) == calls

    db.execute(
        "update private.sync_state set next_due_at = now() - interval '1 minute'"
        " where job_kind = 'artist_details'"
    )
    stale = _post(client, "sync_artist", {"spotify_id": BOH_SPOTIFY})
    assert stale.status_code == 200 and stale.json["refreshed"] is True
    assert stale.json["action"] == "unchanged"
    assert len(upstream.api_requests()) > calls

    forced_by_client = _post(client, "sync_artist", {"spotify_id": BOH_SPOTIFY, "force": True})
    assert forced_by_client.status_code == 403
    forced = _post(client, "sync_artist", {"spotify_id": BOH_SPOTIFY, "force": True}, **INTERNAL)
    assert forced.status_code == 200 and forced.json["refreshed"] is True


def test_twenty_concurrent_syncs_of_one_artist_make_one_row(
    app: Any, client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    barrier = threading.Barrier(20)
    ways = [{"ticketmaster_id": BOH_TM}, {"spotify_id": BOH_SPOTIFY}, {"musicbrainz_id": BOH_MBID}]

    def call(i: int) -> int:
        own = Client(app)
        barrier.wait()
        return _post(own, "sync_artist", ways[i % 3]).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(20)))
    assert statuses == [200] * 20
    assert count(db, "public.artists") == 1
    assert _ids(db) == EXPECTED_IDS
    # One pending job each, however many callers queued them.
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 2}


def test_a_name_several_artists_share_is_a_conflict_with_candidates(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    search = payload("tm_attractions_search.json")
    other = copy.deepcopy(search["_embedded"]["attractions"][0])
    other["id"] = "K8vZ917OTHR"
    other["externalLinks"] = {
        "spotify": [{"url": "https://open.spotify.com/artist/7dGJo4pcD2V6oG8kP0tJRR"}]
    }
    search["_embedded"]["attractions"].append(other)
    upstream.tm_search(search)
    response = _post(client, "sync_artist", {"name": "Band of Horses"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "ambiguous_artist"
    assert {c["ticketmaster_id"] for c in response.json["error"]["details"]} == {
        BOH_TM,
        "K8vZ917OTHR",
    }
    assert count(db, "public.artists") == 0


def test_client_errors_and_upstream_failures_are_json(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    assert _post(client, "sync_artist", {}).status_code == 400
    assert _post(client, "sync_artist", {"spotify_id": "x", "name": "y"}).status_code == 400
    assert client.post("/sync_artist", data="{", content_type="application/json").status_code == 400
    assert (
        _post(client, "sync_artist", {"name": "B"}, **{"X-Internal-Secret": "wrong"}).status_code
        == 401
    )

    upstream.add(_url(TM, "/attractions/K8vZ917NONE.json"), payload("tm_404.json"), status=404)
    missing = _post(client, "sync_artist", {"ticketmaster_id": "K8vZ917NONE"})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found_upstream"

    upstream.add(
        _url(SPOTIFY, "/artists/6olE6TJLqED3rqDCT0FyPh"), {"error": {"status": 502}}, status=502
    )
    down = _post(client, "sync_artist", {"spotify_id": "6olE6TJLqED3rqDCT0FyPh"})
    assert down.status_code == 502 and down.json["error"]["code"] == "upstream_error"
    assert "Traceback" not in down.text

    unknown = _post(client, "sync_shows", {"artist_id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "artist_not_found"


def test_sync_shows_refreshes_when_stale_and_retires_what_vanished(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    artist_id = _post(client, "sync_artist", {"ticketmaster_id": BOH_TM}).json["artist"]["id"]
    events = future_events()
    upstream.tm_events(events)

    first = _post(client, "sync_shows", {"artist_id": artist_id})
    assert first.status_code == 200
    assert (first.json["refreshed"], first.json["created"], first.json["removed"]) == (True, 3, 0)
    calls = len(upstream.api_requests())

    fresh = _post(client, "sync_shows", {"artist_id": artist_id})
    assert fresh.json["refreshed"] is False and len(fresh.json["shows"]) == 3
    assert len(upstream.api_requests()) == calls

    before = row_versions(db)
    same = _post(client, "sync_shows", {"artist_id": artist_id, "force": True}, **INTERNAL)
    assert (same.json["created"], same.json["updated"], same.json["unchanged"]) == (0, 0, 3)
    assert row_versions(db) == before

    # The rescheduled show disappears upstream: retired, not deleted.
    gone = copy.deepcopy(events)
    gone["_embedded"]["events"] = [
        e for e in gone["_embedded"]["events"] if e["id"] != "G5vzZ9b1kRq8m"
    ]
    upstream.mock.reset()
    Upstream(upstream.mock).tm_events(gone)
    later = _post(client, "sync_shows", {"artist_id": artist_id, "force": True}, **INTERNAL)
    assert later.json["removed"] == 1
    statuses = {r["status"] for r in db.execute("select status from public.shows")}
    assert statuses == {"scheduled", "cancelled", "removed"}
    assert count(db, "public.shows") == 3


def test_a_second_full_sync_of_unchanged_data_writes_no_catalogue_row(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    upstream.tm_events()
    upstream.spotify_catalogue()
    worker = Worker(WorkerConfig(heartbeat=False))
    assert _post(client, "sync_artist", {"ticketmaster_id": BOH_TM}).status_code == 200
    worker.drain(60)
    assert count(db, "public.songs") > 0 and count(db, "public.shows") == 3
    before = row_versions(db)

    again = _post(client, "sync_artist", {"ticketmaster_id": BOH_TM, "force": True}, **INTERNAL)
    assert again.json["action"] == "unchanged"
    summary = worker.drain(60).as_dict()
    assert summary["by_kind"]["artist_shows"] == {"done": 1}
    assert summary["by_kind"]["artist_catalogue"] == {"done": 1}
    assert row_versions(db) == before


def test_run_jobs_and_sync_status_are_internal(
    client: Client, upstream: Upstream, db: Connection
) -> None:
    _artist_sources(upstream)
    upstream.tm_events()
    upstream.spotify_catalogue()
    assert client.post("/run_jobs", json={}).status_code == 401
    assert client.get("/sync_status").status_code == 401
    assert _post(client, "sync_artist", {"ticketmaster_id": BOH_TM}).status_code == 200

    status = _get(client, "sync_status", **INTERNAL).json
    assert status["queue"]["depth"] == 2
    kinds = {job["kind"]: job for job in status["jobs"]}
    assert kinds["artist_shows"]["depth"] == 1 and kinds["artist_shows"]["oldest_age_seconds"] >= 0

    ran = _post(client, "run_jobs", {"budget_seconds": 30}, **INTERNAL)
    assert ran.status_code == 200 and ran.json["dead"] == 0 and ran.json["processed"] >= 2

    status = _get(client, "sync_status", **INTERNAL).json
    kinds = {job["kind"]: job for job in status["jobs"]}
    assert kinds["artist_shows"]["done_last_hour"] == 1
    assert kinds["artist_catalogue"]["depth"] == 0
    providers = {p["provider"]: p for p in status["providers"]}
    assert providers["spotify"]["calls_last_hour"] > 0
    assert providers["ticketmaster"]["error_rate"] == 0
    assert set(providers) == {"ticketmaster", "spotify", "setlistfm"}



@pytest.mark.parametrize("force", [False, True])
def test_may_force_refuses_a_wrong_internal_secret_forcing_or_not(
    sync_env: str, force: bool
) -> None:
    with flask.Flask(__name__).test_request_context(
        "/sync_artist", method="POST", headers={"X-Internal-Secret": "not-the-secret"}
    ), pytest.raises(Unauthorized):
        caller_may_force(flask.request, force)
