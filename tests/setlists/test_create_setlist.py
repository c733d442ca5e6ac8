"""create_setlist: every show gets five distinct songs of its artist, once,
whoever asks and however many ask at once; never an invented song."""

from __future__ import annotations

import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from werkzeug.test import Client, TestResponse

from devstack.fixtures import BAND_OF_HORSES_SONGS
from shared import setlists
from shared.sync import jobs as sync_jobs
from shared.sync.catalogue import import_artist_catalogue
from shared.sync.jobs import JobRun
from shared.sync.registry import Job, handler_for
from shared.sync.worker import JobResult, Worker, WorkerConfig
from tests.setlists.conftest import INTERNAL_SECRET
from tests.setlists.helpers import build_stage, run_concurrently, scalar
from tests.sources.conftest import payload
from tests.support.catalogue import (
    insert_artist,
    insert_show,
    insert_songs,
    insert_venue,
)
from tests.support.db import Connection, request_as
from tests.sync.upstream import BOH_SPOTIFY, SPOTIFY, Upstream, _tracks_page, _url


def rpc(conn: Connection, show_id: uuid.UUID, enqueue: bool = True) -> dict[str, Any]:
    row = conn.execute("select public.create_setlist(%s, %s) as answer",
                       [show_id, enqueue]).fetchone()
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def setlist_rows(db: Connection, show_id: uuid.UUID) -> list[dict[str, Any]]:
    return db.execute(
        "select ss.position, ss.vote_count, ss.added_by, so.title, so.artist_id"
        " from public.setlists sl join public.setlist_songs ss on ss.setlist_id = sl.id"
        " join public.songs so on so.id = ss.song_id"
        " where sl.show_id = %s and sl.kind = 'predicted' order by ss.position",
        [show_id]).fetchall()


def queued_setlist_jobs(db: Connection) -> list[str]:
    return [row["entity_id"] for row in db.execute(
        "select message ->> 'entity_id' as entity_id from pgmq.q_sync"
        " where message ->> 'kind' = 'create_setlist' order by msg_id")]


def test_draws_five_distinct_songs_of_the_artist(db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    answer = rpc(db, stage.show_id)
    rows = setlist_rows(db, stage.show_id)
    assert len(rows) == 5
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5]
    assert {r["vote_count"] for r in rows} == {0}
    assert {r["artist_id"] for r in rows} == {stage.artist_id}
    assert len({r["title"] for r in rows}) == 5
    assert {r["title"] for r in rows} <= set(BAND_OF_HORSES_SONGS)
    assert {r["added_by"] for r in rows} == {None}
    assert (answer["status"], answer["created"], answer["pending_reason"]) == ("ready", True, None)
    assert sorted(s["title"] for s in answer["songs"]) == sorted(r["title"] for r in rows)

    again = rpc(db, stage.show_id)
    assert (again["created"], again["setlist_id"]) == (False, answer["setlist_id"])
    assert setlist_rows(db, stage.show_id) == rows


def test_a_small_catalogue_gives_a_shorter_setlist(db: Connection) -> None:
    stage = build_stage(db, catalogue=BAND_OF_HORSES_SONGS[:3], on_setlist=0)
    rpc(db, stage.show_id)
    rows = setlist_rows(db, stage.show_id)
    assert sorted(r["title"] for r in rows) == sorted(BAND_OF_HORSES_SONGS[:3])
    assert [r["position"] for r in rows] == [1, 2, 3]


def test_fifty_parallel_calls_make_one_setlist(database_url: str, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    answers = run_concurrently(database_url, list(range(50)),
                               lambda conn, _: rpc(conn, stage.show_id), connections=50)
    assert [a for a in answers if isinstance(a, Exception)] == []
    assert sum(a["created"] for a in answers) == 1
    assert len({a["setlist_id"] for a in answers}) == 1
    assert len({json.dumps(a["songs"], sort_keys=True) for a in answers}) == 1
    assert scalar(db, "select count(*) from public.setlists") == 1
    rows = setlist_rows(db, stage.show_id)
    assert len(rows) == 5 and {r["vote_count"] for r in rows} == {0}


def test_an_empty_setlist_row_is_filled_once(database_url: str, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    db.execute("insert into public.setlists (show_id, kind) values (%s, 'predicted')",
               [stage.show_id])
    answers = run_concurrently(database_url, list(range(20)),
                               lambda conn, _: rpc(conn, stage.show_id), connections=20)
    assert sum(a["created"] for a in answers) == 1
    assert len(setlist_rows(db, stage.show_id)) == 5


def test_the_picks_vary_across_shows(db: Connection) -> None:
    artist = insert_artist(db)
    insert_songs(db, artist, BAND_OF_HORSES_SONGS)
    draws = set()
    for days in range(1, 21):
        show = insert_show(db, artist, insert_venue(db, f"Ryman Auditorium {days}"), days)
        rpc(db, show)
        draws.add(tuple(r["title"] for r in setlist_rows(db, show)))
    # 20 draws of 5 out of 16: all equal would take 1 chance in 4368**19.
    assert len(draws) > 1
    assert len({title for draw in draws for title in draw}) > 5


def test_an_empty_catalogue_is_pending_and_queued_never_invented(db: Connection) -> None:
    artist = insert_artist(db)
    show = insert_show(db, artist, insert_venue(db))
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    answer = rpc(db, show)
    assert answer == {
        "show_id": str(show), "artist_id": str(artist), "status": "pending", "created": False,
        "setlist_id": None, "songs": [], "pending_reason": "catalogue_empty", "job_queued": True,
    }
    assert scalar(db, "select count(*) from public.setlists") == 0
    assert scalar(db, "select count(*) from public.setlist_songs") == 0
    assert queued_setlist_jobs(db) == [str(show)]
    rpc(db, show)  # asked again while pending: still one job
    assert queued_setlist_jobs(db) == [str(show)]


@pytest.mark.parametrize("closed", ["cancelled", "removed", "yesterday", "started"])
def test_a_closed_show_gets_no_setlist_and_no_job(db: Connection, closed: str) -> None:
    artist = insert_artist(db)
    insert_songs(db, artist, BAND_OF_HORSES_SONGS)
    show = insert_show(db, artist, insert_venue(db), -1 if closed == "yesterday" else 30)
    if closed in ("cancelled", "removed"):
        db.execute("update public.shows set status = %s where id = %s", [closed, show])
    if closed == "started":
        db.execute("update public.shows set local_date = current_date,"
                   " starts_at = now() - interval '1 hour' where id = %s", [show])
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    with pytest.raises(psycopg.Error) as refused:
        rpc(db, show)
    assert (refused.value.sqlstate, refused.value.diag.message_hint) == ("PT409", "show_closed")
    assert scalar(db, "select count(*) from public.setlists") == 0
    assert queued_setlist_jobs(db) == []


def test_a_closed_show_without_a_catalogue_is_refused_not_queued(db: Connection) -> None:
    show = insert_show(db, insert_artist(db), insert_venue(db), -3)
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    with pytest.raises(psycopg.Error, match="no predicted setlist"):
        rpc(db, show)
    assert queued_setlist_jobs(db) == []


def test_a_show_closed_after_its_draw_still_answers_its_setlist(db: Connection) -> None:
    stage = build_stage(db, on_setlist=5)
    db.execute("update public.shows set status = 'cancelled' where id = %s", [stage.show_id])
    answer = rpc(db, stage.show_id)
    assert (answer["status"], answer["created"], answer["setlist_id"]) == (
        "ready", False, str(stage.setlist_id))
    assert len(answer["songs"]) == 5


def test_unknown_show_is_not_found(db: Connection) -> None:
    with pytest.raises(psycopg.errors.NoDataFound):
        rpc(db, uuid.uuid4())


def test_new_shows_and_new_songs_queue_the_job(db: Connection, spotify: Upstream) -> None:
    artist = _artist_on_spotify(db)
    show = insert_show(db, artist, insert_venue(db))
    cancelled = insert_show(db, artist, insert_venue(db, "The Fillmore", "San Francisco"), 40)
    db.execute("update public.shows set status = 'cancelled' where id = %s", [cancelled])
    assert queued_setlist_jobs(db) == [str(show), str(cancelled)]
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    # The catalogue arrives (imported, as the catalogue job does): the show
    # still without a setlist is queued again.
    spotify.spotify_catalogue()
    assert import_artist_catalogue(artist).created > 0
    assert queued_setlist_jobs(db) == [str(show)]


def test_anon_may_call_the_rpc_through_postgrest(database_url: str, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    with request_as(database_url, "anon", commit=True) as conn:
        assert rpc(conn, stage.show_id)["status"] == "ready"
    assert len(setlist_rows(db, stage.show_id)) == 5
    with request_as(database_url, "anon") as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("insert into public.setlists (show_id, kind) values (%s, 'actual')",
                     [stage.show_id])


# -- the function ------------------------------------------------------------------


def post(client: Client, body: Any, **headers: str) -> TestResponse:
    return client.post("/create_setlist", data=json.dumps(body) if not isinstance(body, str)
                       else body, headers=headers, content_type="application/json")


def webhook(show_id: uuid.UUID | str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "INSERT", "table": "shows", "schema": "public",
        "record": {"id": str(show_id), "artist_id": str(uuid.uuid4()), "status": "scheduled",
                   "local_date": "2026-12-01"},
        "old_record": None,
    }
    payload.update(changes)
    return payload


def test_function_direct_request(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    response = post(client, {"show_id": str(stage.show_id)})
    assert response.status_code == 200
    assert response.json is not None
    assert (response.json["status"], response.json["created"]) == ("ready", True)
    assert len(response.json["songs"]) == 5
    again = post(client, {"show_id": str(stage.show_id)})
    assert again.status_code == 200 and again.json is not None
    assert again.json["created"] is False
    assert again.json["songs"] == response.json["songs"]


def test_function_webhook_needs_the_internal_secret(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    refused = post(client, webhook(stage.show_id))
    assert refused.status_code == 401
    wrong = post(client, webhook(stage.show_id), **{"X-Internal-Secret": "guess"})
    assert wrong.status_code == 401
    assert scalar(db, "select count(*) from public.setlists") == 0
    accepted = post(client, webhook(stage.show_id), **{"X-Internal-Secret": INTERNAL_SECRET})
    assert accepted.status_code == 200
    assert len(setlist_rows(db, stage.show_id)) == 5


@pytest.mark.parametrize(
    "body",
    [
        webhook(uuid.uuid4(), type="UPDATE"),
        webhook(uuid.uuid4(), table="venues"),
        webhook(uuid.uuid4(), record={"name": "no id"}),
    ],
)
def test_function_refuses_other_webhooks(client: Client, db: Connection, body: Any) -> None:
    response = post(client, body, **{"X-Internal-Secret": INTERNAL_SECRET})
    assert response.status_code == 400
    assert response.json is not None and "error" in response.json


@pytest.mark.parametrize("body", ["{oops", {}, {"show_id": "nope"}, {"show_id": 7}, [1]])
def test_function_malformed_is_400(client: Client, db: Connection, body: Any) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert response.json is not None and response.json["error"]["code"] in (
        "bad_request", "invalid_json")


def test_function_unknown_show_is_404(client: Client, db: Connection) -> None:
    response = post(client, {"show_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["error"]["code"] == "show_not_found"


def test_function_closed_show_is_409(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0, days_ahead=-1)
    response = post(client, {"show_id": str(stage.show_id)})
    assert response.status_code == 409
    assert response.json is not None
    assert response.json["error"]["code"] == "show_closed"
    assert scalar(db, "select count(*) from public.setlists") == 0


def test_function_bad_token_is_401(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    response = post(client, {"show_id": str(stage.show_id)}, Authorization="Bearer garbage")
    assert response.status_code == 401
    assert scalar(db, "select count(*) from public.setlists") == 0


def _artist_on_spotify(db: Connection, spotify_id: str | None = BOH_SPOTIFY) -> uuid.UUID:
    artist = insert_artist(db)
    if spotify_id is not None:
        db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
                   " values ('spotify', %s, %s)", [spotify_id, artist])
    return artist


def test_function_imports_an_empty_catalogue_first(
    client: Client, db: Connection, spotify: Upstream
) -> None:
    spotify.spotify_catalogue()
    artist = _artist_on_spotify(db)
    show = insert_show(db, artist, insert_venue(db))
    response = post(client, {"show_id": str(show)})
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "ready"
    rows = setlist_rows(db, show)
    assert len(rows) == 5
    catalogue = {r["title"] for r in db.execute(
        "select title from public.songs where artist_id = %s", [artist])}
    assert "NW Apt." in catalogue  # from the Spotify payloads
    assert {r["title"] for r in rows} <= catalogue


def test_concurrent_requests_fetch_an_empty_catalogue_once(
    client: Client, db: Connection, spotify: Upstream
) -> None:
    """Many page openings of a show whose artist has no songs yet: one of them
    fetches the catalogue, the others answer pending at once instead of
    fetching it again."""
    requests = 8
    artist = _artist_on_spotify(db)
    show = insert_show(db, artist, insert_venue(db))
    first, second = (payload("spotify_artist_albums_page1.json"),
                     payload("spotify_artist_albums_page2.json"))
    names = {a["id"]: a["name"] for a in first["items"] + second["items"]}
    # The album listing is held until every request has either reached it or
    # answered: without single flight, every request would be fetching at once.
    progress = threading.Condition()
    fetching, answered = [0], [0]

    def albums(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        if offset == 0:
            with progress:
                fetching[0] += 1
                progress.notify_all()
                progress.wait_for(lambda: fetching[0] + answered[0] >= requests, timeout=60)
        return httpx.Response(200, json=second if offset >= 10 else first)

    def tracks(request: httpx.Request) -> httpx.Response:
        album_id = request.url.path.split("/")[-2]
        return httpx.Response(200, json=_tracks_page(album_id, names[album_id]))

    spotify.mock.add_callback(albums, url=_url(SPOTIFY, f"/artists/{BOH_SPOTIFY}/albums"),
                              is_optional=True, is_reusable=True)
    spotify.mock.add_callback(tracks, url=re.compile(re.escape(SPOTIFY)
                                                     + r"/albums/[^/]+/tracks(\?.*)?$"),
                              is_optional=True, is_reusable=True)

    def open_page(_: int) -> TestResponse:
        try:
            return post(Client(client.application), {"show_id": str(show)})
        finally:
            with progress:
                answered[0] += 1
                progress.notify_all()

    with ThreadPoolExecutor(max_workers=requests) as pool:
        responses = list(pool.map(open_page, range(requests)))

    listings = [r for r in spotify.mock.get_requests()
                if r.url.path == f"/v1/artists/{BOH_SPOTIFY}/albums"
                and int(r.url.params.get("offset", "0")) == 0]
    assert len(listings) == 1
    assert sorted({r.status_code for r in responses}) in ([200], [200, 202])
    for response in responses:
        assert response.json is not None
        if response.status_code == 202:
            assert response.json["status"] == "pending"
            assert response.json["pending_reason"] == "catalogue_importing"
            assert response.json["job_queued"] is True
        else:
            assert response.json["status"] == "ready" and len(response.json["songs"]) == 5
    assert scalar(db, "select count(*) from public.setlists") == 1
    rows = setlist_rows(db, show)
    assert len(rows) == 5 and {r["artist_id"] for r in rows} == {artist}


def test_function_answers_pending_when_spotify_fails(
    client: Client, db: Connection, spotify: Upstream
) -> None:
    spotify.add(_url(SPOTIFY, f"/artists/{BOH_SPOTIFY}/albums"), {"error": {"status": 503}}, 503)
    artist = _artist_on_spotify(db)
    show = insert_show(db, artist, insert_venue(db))
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    response = post(client, {"show_id": str(show)})
    assert response.status_code == 202
    assert response.json is not None
    assert response.json == {
        "show_id": str(show), "artist_id": str(artist), "status": "pending", "created": False,
        "setlist_id": None, "songs": [], "pending_reason": "catalogue_unavailable",
        "job_queued": True,
    }
    assert scalar(db, "select count(*) from public.setlist_songs") == 0
    assert queued_setlist_jobs(db) == [str(show)]


def test_function_answers_pending_without_a_spotify_id(client: Client, db: Connection) -> None:
    artist = _artist_on_spotify(db, spotify_id=None)
    show = insert_show(db, artist, insert_venue(db))
    response = post(client, {"show_id": str(show)})
    assert response.status_code == 202
    assert response.json is not None and response.json["pending_reason"] == "no_spotify_id"
    assert scalar(db, "select count(*) from public.setlists") == 0


# -- the queue job --------------------------------------------------------------------


def job_for(show: uuid.UUID) -> Job:
    return Job(msg_id=0, kind="create_setlist", entity_id=show, attempt=1)


def queued_jobs(db: Connection) -> list[tuple[str, str]]:
    return [(row["kind"], row["entity_id"]) for row in db.execute(
        "select message ->> 'kind' as kind, message ->> 'entity_id' as entity_id"
        " from pgmq.q_sync order by msg_id")]


def worker() -> Worker:
    return Worker(WorkerConfig(heartbeat=False))


def run_one_job(db: Connection) -> JobResult:
    """Read the next visible job off the queue and run it as the worker does."""
    row = db.execute("select msg_id, attempt, enqueued_at, message, options"
                     " from private.sync_read_jobs(300, 1)").fetchone()
    assert row is not None
    return worker().process(row)


def test_the_job_is_registered_and_draws(db: Connection) -> None:
    assert handler_for("create_setlist") is setlists.create_setlist_job
    stage = build_stage(db, on_setlist=0)
    outcome = setlists.create_setlist_job(job_for(stage.show_id))
    assert outcome is not None
    assert (outcome["status"], outcome["created"]) == ("ready", True)
    assert len(setlist_rows(db, stage.show_id)) == 5
    again = setlists.create_setlist_job(job_for(stage.show_id))
    assert again is not None and again["created"] is False


def test_the_jobs_draw_and_completion_commit_together(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = build_stage(db, on_setlist=0)  # the new show queued the job
    assert queued_jobs(db) == [("create_setlist", str(stage.show_id))]

    def connection_lost(conn: Connection, run: JobRun) -> str:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    # The job's transaction fails after the draw, when it removes the message.
    monkeypatch.setattr(sync_jobs, "complete", connection_lost)
    failed = run_one_job(db)
    assert failed.outcome == "retry"
    assert scalar(db, "select count(*) from public.setlists") == 0
    assert scalar(db, "select count(*) from public.setlist_songs") == 0
    assert queued_jobs(db) == [("create_setlist", str(stage.show_id))]

    monkeypatch.undo()
    db.execute("update pgmq.q_sync set vt = now()")  # its retry is due now
    done = run_one_job(db)
    assert done.outcome == "done"
    assert len(setlist_rows(db, stage.show_id)) == 5
    assert queued_jobs(db) == []


def test_the_job_queues_the_catalogue_instead_of_fetching_it(
    db: Connection, spotify: Upstream
) -> None:
    artist = _artist_on_spotify(db)
    show = insert_show(db, artist, insert_venue(db))
    assert queued_jobs(db) == [("create_setlist", str(show))]
    done = run_one_job(db)
    assert done.outcome == "done"
    assert spotify.api_requests() == []  # no Spotify call inside the job
    assert queued_jobs(db) == [("artist_catalogue", str(artist))]
    assert scalar(db, "select count(*) from public.setlists") == 0

    # The catalogue job fetches it; the songs' arrival queues the setlist again.
    spotify.spotify_catalogue()
    worker().drain(60)
    assert queued_jobs(db) == []
    assert len(setlist_rows(db, show)) == 5


def test_the_job_ends_pending_without_a_spotify_id(database_url: str, db: Connection) -> None:
    artist = _artist_on_spotify(db, spotify_id=None)
    show = insert_show(db, artist, insert_venue(db))
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    assert setlists.create_setlist_job(job_for(show)) == {
        "status": "pending", "created": False, "setlist_id": None,
        "pending_reason": "no_spotify_id", "catalogue_queued": False,
        "live_history_queued": False}
    assert queued_jobs(db) == []
    assert setlists.create_setlist_job(job_for(uuid.uuid4())) == {"status": "show_not_found"}


def test_the_job_for_a_show_cancelled_since_ends_without_a_retry(db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)  # the new show queued the job
    db.execute("update public.shows set status = 'cancelled' where id = %s", [stage.show_id])
    assert setlists.create_setlist_job(job_for(stage.show_id)) == {"status": "show_closed"}
    done = run_one_job(db)
    assert done.outcome == "done"
    assert queued_jobs(db) == []
    assert scalar(db, "select count(*) from public.setlists") == 0
