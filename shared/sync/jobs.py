"""A job's transaction: its writes and the removal of its queue message commit together.

The worker runs a handler inside ``running(job)``. A handler that calls
``job_transaction(job)`` for its writes gets the message deleted (and the
pending row released, and the run recorded) inside that same transaction:
either everything the job wrote is committed and the job is gone from the
queue, or nothing is and the message comes back after its visibility
timeout. Handlers that do not use it (other modules' jobs) are completed by
the worker right after they return; their writes must then be idempotent,
which the ingest RPCs are.

Outside the worker (a function refreshing something synchronously) ``job``
is ``None`` and ``job_transaction`` is a plain transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from shared import db
from shared.db import Connection
from shared.logging import get_logger
from shared.sync import queue
from shared.sync.registry import Job

log = get_logger(__name__)


@dataclass
class JobRun:
    job: Job
    started: float
    # 'done' | 'redelivered' | 'gone' once the job's transaction committed.
    completion: str | None = None

    def elapsed_ms(self) -> int:
        return max(0, round((time.monotonic() - self.started) * 1000))


_current: ContextVar[JobRun | None] = ContextVar("theset_sync_job_run", default=None)


@contextmanager
def running(job: Job) -> Iterator[JobRun]:
    """Mark ``job`` as the one this thread runs (the worker's side)."""
    run = JobRun(job=job, started=time.monotonic())
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def complete(conn: Connection, run: JobRun) -> str:
    """Delete the job's message and release its pending row in ``conn``'s transaction."""
    return queue.complete(conn, run.job.msg_id, run.job.attempt, run.elapsed_ms())


@contextmanager
def job_transaction(job: Job | None = None) -> Iterator[Connection]:
    """One transaction for a job's writes; finishes the job's message in it when queued."""
    run = _current.get()
    if job is None or run is None or run.job.msg_id != job.msg_id or job.msg_id <= 0:
        with db.transaction() as conn:
            yield conn
        return
    with db.transaction() as conn:
        yield conn
        status = complete(conn, run)
    run.completion = status
    if status != "done":
        log.warning("job_finished_elsewhere", status=status)
