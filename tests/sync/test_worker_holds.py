"""Jobs a limit held back keep their attempts; a killed worker's job comes back
within a minute; jobs spend the sync share of the daily quotas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import db as shared_db
from shared.quota import current_share
from shared.sources.errors import QuotaExhausted, RateLimited, UpstreamError
from shared.sync.errors import FlightPending
from shared.sync.queue import enqueue
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.sync.worker import Worker, WorkerConfig, load_handlers
from tests.support.db import Connection
from tests.sync.test_worker import PROJECT_ROOT

HELD_KIND = "test_held"
# What the test job raises on each run, in order; then it succeeds.
_script: list[BaseException] = []
_shares: list[str] = []


@job_handler(HELD_KIND)
def _held_job(job: Job) -> JobOutcome:
    _shares.append(current_share())
    if _script:
        raise _script.pop(0)
    return {"ran": True}


@pytest.fixture(autouse=True)
def _handlers() -> Iterator[None]:
    load_handlers()
    _script.clear()
    _shares.clear()
    yield
    _script.clear()


def _enqueue(entity: uuid.UUID) -> int:
    with shared_db.transaction() as conn:
        queued = enqueue(conn, HELD_KIND, entity)
    assert queued.msg_id is not None
    return queued.msg_id


def _time_passes(db: Connection) -> None:
    db.execute("update pgmq.q_sync set vt = clock_timestamp() - interval '1 second'")


def _slot_refused() -> RateLimited:
    return RateLimited("ticketmaster", "/events.json", "next request slot is 12.0 s away",
                       status_code=None, retry_after=12.0)


def _share_spent() -> QuotaExhausted:
    return QuotaExhausted("ticketmaster", "/events.json", "the sync share is used up",
                          status_code=None, reset_at=datetime.now(UTC) + timedelta(hours=2))


def test_held_back_runs_do_not_use_up_attempts(sync_env: str, db: Connection) -> None:
    msg_id = _enqueue(uuid.uuid4())
    _script.extend([_slot_refused(), _share_spent(),
                    FlightPending("artist_shows:x", retry_after=10.0)])
    worker = Worker(WorkerConfig(heartbeat=False, max_attempts=2), rng=lambda: 0.0)

    results = []
    for _ in range(4):
        results += worker.run_batch()
        _time_passes(db)

    assert [(r.outcome, r.attempt) for r in results] == [
        ("held", 1), ("held", 1), ("held", 1), ("done", 1)]
    assert [r.retry_in_seconds for r in results[:3]] == [12, pytest.approx(7200, abs=5), 10]
    assert _shares == ["sync"] * 4
    runs = db.execute("select outcome, attempt from private.sync_job_runs").fetchall()
    assert runs == [{"outcome": "done", "attempt": 1}]
    assert db.execute("select count(*) as n from private.sync_job_holds").fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from pgmq.q_sync where msg_id = %s",
                      [msg_id]).fetchone() == {"n": 0}


def test_a_held_job_waits_as_long_as_the_limit_says(sync_env: str, db: Connection) -> None:
    _enqueue(uuid.uuid4())
    _script.append(_share_spent())
    Worker(WorkerConfig(heartbeat=False), rng=lambda: 0.0).run_batch()
    wait = db.execute("select extract(epoch from vt - now()) as s from pgmq.q_sync").fetchone()
    assert wait is not None and 7100 < float(wait["s"]) <= 7200


def test_real_failures_still_count_and_dead_letters_report_real_attempts(
    sync_env: str, db: Connection
) -> None:
    _enqueue(uuid.uuid4())
    failure = UpstreamError("ticketmaster", "/events.json", "503 Service Unavailable",
                            status_code=503)
    _script.extend([_slot_refused(), failure, _slot_refused(), failure])
    worker = Worker(WorkerConfig(heartbeat=False, max_attempts=2), rng=lambda: 0.0)

    results = []
    for _ in range(4):
        results += worker.run_batch()
        _time_passes(db)

    assert [(r.outcome, r.attempt) for r in results] == [
        ("held", 1), ("retry", 1), ("held", 2), ("dead", 2)]
    letter = db.execute("select attempts from private.sync_dead_letters").fetchone()
    assert letter == {"attempts": 2}
    assert db.execute("select count(*) as n from private.sync_job_holds").fetchone() == {"n": 0}


def test_a_killed_workers_job_is_visible_again_within_a_minute(
    sync_env: str, db: Connection, tmp_path: os.PathLike[str]
) -> None:
    db.execute("create schema testing")
    db.execute("create table testing.job_runs (msg_id bigint not null)")
    import tests.sync.blocking_job as blocking

    with shared_db.transaction() as conn:
        queued = enqueue(conn, blocking.KIND, uuid.uuid4())
    marker = os.path.join(tmp_path, "started")
    env = {**os.environ, "DATABASE_URL": sync_env, blocking.BLOCK_FILE: marker}
    # The worker as the local stack runs it: default visibility timeout.
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.sync.worker", "--once", "--import",
         "tests.sync.blocking_job"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(marker):
            assert process.poll() is None, "the worker exited before blocking"
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    hidden_for = db.execute(
        "select extract(epoch from vt - clock_timestamp()) as s from pgmq.q_sync"
        " where msg_id = %s", [queued.msg_id]).fetchone()
    assert hidden_for is not None and 0 < float(hidden_for["s"]) <= 60
