"""The worker against a real database: retries with growing delays, dead
letters, crash recovery, forced and fresh jobs, structured logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared import db as shared_db
from shared.sources.records import ArtistRecord
from shared.sync.ingest import ingest_artists
from shared.sync.queue import enqueue
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.sync.worker import JobResult, Worker, WorkerConfig, load_handlers
from tests.sources.conftest import payload
from tests.support.db import Connection
from tests.sync.snapshots import count
from tests.sync.upstream import BOH_TM, TM, Upstream, _url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _handlers() -> None:
    load_handlers()


def _worker(**config: int) -> Worker:
    return Worker(WorkerConfig(heartbeat=False, **config), rng=lambda: 0.5)


def _artist() -> uuid.UUID:
    with shared_db.transaction() as conn:
        [resolved] = ingest_artists(
            conn, [ArtistRecord(name="Band of Horses", ticketmaster_id=BOH_TM)]
        )
    return resolved.id


def _enqueue(kind: str, entity: uuid.UUID, **options: object) -> int:
    with shared_db.transaction() as conn:
        queued = enqueue(conn, kind, entity, options)
    assert queued.msg_id is not None
    return queued.msg_id


def _time_passes(db: Connection) -> None:
    """The retry delay is over: make hidden messages visible (instead of sleeping)."""
    db.execute("update pgmq.q_sync set vt = clock_timestamp() - interval '1 second'")


def test_upstream_5xx_then_success_is_retried_with_growing_delays(
    upstream: Upstream, db: Connection
) -> None:
    artist_id = _artist()
    # Each queue attempt makes 4 HTTP attempts (the client's own retries): 2 failed jobs.
    for _ in range(8):
        upstream.mock.add_response(
            url=_url(TM, f"/attractions/{BOH_TM}.json"),
            status_code=503,
            json={"fault": {"faultstring": "Service unavailable"}},
        )
    upstream.tm_attraction()
    upstream.spotify_artist()
    msg_id = _enqueue("artist_details", artist_id)
    worker = _worker()

    first = worker.run_batch()
    _time_passes(db)
    second = worker.run_batch()
    _time_passes(db)
    third = worker.run_batch()

    assert [r.outcome for r in first + second + third] == ["retry", "retry", "done"]
    assert [r.attempt for r in first + second + third] == [1, 2, 3]
    delays = [first[0].retry_in_seconds, second[0].retry_in_seconds]
    assert delays[0] is not None and delays[1] is not None and delays[1] > delays[0]
    runs = db.execute(
        "select outcome, error from private.sync_job_runs where msg_id = %s order by id", [msg_id]
    ).fetchall()
    assert [r["outcome"] for r in runs] == ["retry", "retry", "done"]
    assert "503" in runs[0]["error"]
    assert count(db, "private.sync_dead_letters") == 0
    assert db.execute(
        "select count(*) as n from pgmq.q_sync where msg_id = %s", [msg_id]
    ).fetchone() == {"n": 0}
    state = db.execute(
        "select last_success_at, last_error from private.sync_state"
        " where job_kind = 'artist_details' and entity_id = %s",
        [artist_id],
    ).fetchone()
    assert (
        state is not None and state["last_success_at"] is not None and state["last_error"] is None
    )


def test_a_failure_that_persists_becomes_a_dead_letter_after_n_attempts(
    upstream: Upstream, db: Connection
) -> None:
    artist_id = _artist()
    upstream.add(
        _url(TM, f"/attractions/{BOH_TM}.json"),
        {"fault": {"faultstring": "Service unavailable"}},
        status=503,
    )
    msg_id = _enqueue("artist_details", artist_id)
    worker = _worker(max_attempts=3)

    outcomes = []
    for _ in range(3):
        outcomes += [r.outcome for r in worker.run_batch()]
        _time_passes(db)
    assert outcomes == ["retry", "retry", "dead"]
    assert worker.run_batch() == []

    letter = db.execute(
        "select msg_id, job_kind, attempts, last_error, message from private.sync_dead_letters"
    ).fetchone()
    assert letter is not None
    assert (letter["msg_id"], letter["job_kind"], letter["attempts"]) == (
        msg_id,
        "artist_details",
        3,
    )
    assert "UpstreamError" in letter["last_error"] and "503" in letter["last_error"]
    assert letter["message"]["entity_id"] == str(artist_id)
    assert db.execute("select count(*) as n from pgmq.a_sync").fetchone() == {"n": 1}
    assert count(db, "private.sync_pending_jobs") == 0
    # The same job can be queued again once it is dead.
    assert _enqueue("artist_details", artist_id) > msg_id


def test_an_error_no_retry_can_fix_is_dead_at_once(upstream: Upstream, db: Connection) -> None:
    artist_id = _artist()
    upstream.add(_url(TM, f"/attractions/{BOH_TM}.json"), payload("tm_404.json"), status=404)
    _enqueue("artist_details", artist_id)
    [result] = _worker().run_batch()
    assert result.outcome == "dead"
    assert count(db, "private.sync_dead_letters") == 1


def test_a_job_of_an_unknown_kind_is_retried_then_dead(sync_env: str, db: Connection) -> None:
    _enqueue("no_such_kind", uuid.uuid4())
    worker = _worker(max_attempts=2)
    [first] = worker.run_batch()
    _time_passes(db)
    [second] = worker.run_batch()
    assert (first.outcome, second.outcome) == ("retry", "dead")
    letter = db.execute("select last_error from private.sync_dead_letters").fetchone()
    assert letter is not None and "UnknownJobKind" in letter["last_error"]


def test_drain_runs_every_visible_job_and_reports(upstream: Upstream, db: Connection) -> None:
    upstream.tm_attraction()
    upstream.spotify_artist()
    upstream.tm_events()
    upstream.spotify_catalogue()
    artist_id = _artist()
    _enqueue("artist_details", artist_id)

    summary = _worker().drain(budget_seconds=60).as_dict()

    # The artist job queued the shows and the catalogue; drain ran those too (and
    # whatever they queued in turn, such as predicted setlists for new shows).
    assert summary["processed"] >= 3 and summary["done"] == summary["processed"]
    assert {"artist_details", "artist_shows", "artist_catalogue"} <= set(summary["by_kind"])
    assert count(db, "public.shows") == 3
    assert count(db, "public.songs") > 0
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 0}


def test_every_log_line_of_a_job_carries_its_context(
    upstream: Upstream, db: Connection, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.tm_attraction()
    upstream.spotify_artist()
    artist_id = _artist()
    msg_id = _enqueue("artist_details", artist_id)
    capfd.readouterr()
    _worker().run_batch(1)
    lines = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]
    job_lines = [line for line in lines if line.get("job_id") == msg_id]
    events = {line["event"] for line in job_lines}
    assert {"job_started", "source_call", "job_done"} <= events
    for line in job_lines:
        assert line["kind"] == "artist_details"
        assert line["entity"] == str(artist_id)
        assert line["attempt"] == 1
        assert isinstance(line["duration_ms"], int)
        assert line["duration_ms"] >= 0
    assert isinstance(next(x for x in job_lines if x["event"] == "job_done")["duration_ms"], int)
    assert all("tmKey" not in json.dumps(line) for line in lines)


def test_a_worker_killed_mid_job_loses_nothing(
    sync_env: str, db: Connection, tmp_path: Path
) -> None:
    db.execute("create schema testing")
    db.execute("create table testing.job_runs (msg_id bigint not null)")
    import tests.sync.blocking_job as blocking  # registers the job kind here too

    msg_id = _enqueue(blocking.KIND, uuid.uuid4())
    marker = tmp_path / "started"
    env = {**os.environ, "DATABASE_URL": sync_env, blocking.BLOCK_FILE: str(marker)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shared.sync.worker",
            "--once",
            "--vt",
            "2",
            "--import",
            "tests.sync.blocking_job",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, "the worker exited before blocking"
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    # Nothing of the half-done job is visible; the message waits for its timeout.
    assert db.execute("select count(*) as n from testing.job_runs").fetchone() == {"n": 0}
    assert count(db, "public.artists") == 0
    hidden = db.execute("select read_ct from pgmq.q_sync where msg_id = %s", [msg_id]).fetchone()
    assert hidden == {"read_ct": 1}
    assert _worker().run_batch() == []  # still invisible to everyone

    deadline = time.monotonic() + 30
    while db.execute("select vt > clock_timestamp() as hidden from pgmq.q_sync").fetchone() == {
        "hidden": True
    }:
        assert time.monotonic() < deadline, "the message never came back"
        time.sleep(0.1)

    results = _worker().run_batch()
    assert [(r.msg_id, r.outcome, r.attempt) for r in results] == [(msg_id, "done", 2)]
    assert db.execute("select count(*) as n from testing.job_runs").fetchone() == {"n": 1}
    assert count(db, "public.artists") == 1
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from pgmq.a_sync").fetchone() == {"n": 0}
    assert count(db, "private.sync_pending_jobs") == 0
    assert count(db, "private.sync_dead_letters") == 0


# -- budgets and concurrent workers ---------------------------------------------------------

TICK_KIND = "test_tick"
_fake_now = [0.0]
_runs: Counter[uuid.UUID] = Counter()
_concurrent: list[Callable[[], None]] = []


@job_handler(TICK_KIND)
def _tick_job(job: Job) -> JobOutcome:
    """A test job: counts its runs, takes 20 s of fake time, and (when asked)
    lets something happen while it runs."""
    _runs[job.entity_id] += 1
    _fake_now[0] += 20.0
    if job.options.get("meanwhile") and _concurrent:
        _concurrent.pop()()
    return {"ran": True}


@pytest.fixture
def _tick_jobs() -> Iterator[None]:
    _fake_now[0] = 0.0
    _runs.clear()
    _concurrent.clear()
    yield
    _concurrent.clear()


@pytest.mark.usefixtures("_tick_jobs")
def test_drain_checks_its_budget_before_each_job(sync_env: str, db: Connection) -> None:
    entities = [uuid.uuid4() for _ in range(5)]
    for entity in entities:
        _enqueue(TICK_KIND, entity)
    worker = Worker(WorkerConfig(heartbeat=False), rng=lambda: 0.5, clock=lambda: _fake_now[0])

    summary = worker.drain(budget_seconds=50)

    # Jobs start at 0, 20 and 40 s; at 60 s the budget is spent: no 4th job.
    assert len(summary.results) == 3 and summary.stopped_by_budget
    assert sum(_runs.values()) == 3
    # The jobs not started are back in the queue at once, for the next run.
    left = db.execute(
        "select count(*) filter (where vt <= clock_timestamp()) as visible, count(*) as n"
        " from pgmq.q_sync"
    ).fetchone()
    assert left == {"visible": 2, "n": 2}
    assert [r.outcome for r in _worker().run_batch(5)] == ["done", "done"]
    assert set(_runs) == set(entities) and set(_runs.values()) == {1}


@pytest.mark.usefixtures("_tick_jobs")
def test_jobs_waiting_behind_a_long_job_are_not_run_twice_by_a_concurrent_worker(
    sync_env: str, db: Connection
) -> None:
    slow = uuid.uuid4()
    _enqueue(TICK_KIND, slow, meanwhile=True)
    others = [uuid.uuid4() for _ in range(3)]
    for entity in others:
        _enqueue(TICK_KIND, entity)
    second: list[JobResult] = []

    def time_passes_and_another_worker_runs() -> None:
        # The visibility timeout of every message not kept hidden by the running
        # job's heartbeat runs out, and a concurrent run_jobs drains the queue.
        db.execute(
            "update pgmq.q_sync set vt = clock_timestamp() - interval '1 second'"
            " where message ->> 'entity_id' <> %s",
            [str(slow)],
        )
        thread = threading.Thread(target=lambda: second.extend(_worker().run_batch(10)))
        thread.start()
        thread.join()

    _concurrent.append(time_passes_and_another_worker_runs)
    first = _worker().run_batch(10)

    assert _runs == Counter({entity: 1 for entity in [slow, *others]})
    assert sorted(r.outcome for r in first + second) == ["done"] * 4
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 0}
