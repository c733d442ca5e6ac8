"""The queue worker: read jobs from pgmq queue ``sync``, run them, finish them.

Messages are read one at a time, each when its job starts (see ``Worker.read``).
For each message read (hidden for ``vt_seconds``):

* the handler of its kind runs with job id, kind, entity and attempt bound
  to every log line (structlog contextvars);
* while it runs, a heartbeat keeps the message hidden (``pgmq.set_vt``), up
  to ``max_job_seconds``; past that the job is reported as overrunning and
  the message is allowed to reappear, so no job outlives its visibility
  timeout unnoticed;
* success: the message is deleted and its pending row released — inside the
  job's own write transaction when the handler uses ``job_transaction``;
* failure: the message is hidden again for an exponentially growing, jittered
  delay (or as long as the source asked); after ``max_attempts`` attempts, or
  at once for errors no retry can fix, it is archived with a dead letter
  carrying the last error;
* held back (a rate-limit slot refused, a spent quota, another caller doing
  the same import): the message is hidden until the limit lifts, and the run
  does not count as one of its attempts.

Jobs spend the ``sync`` share of the sources' daily quotas, which request
traffic cannot use up.

A worker killed mid-job loses nothing: its job's transaction never
committed, and the message reappears when its visibility timeout ends: 30
seconds (the heartbeat renews it every 10 while the job runs).

``python -m shared.sync.worker`` runs the loop (the local stack starts it);
``Worker.drain`` is what the ``run_jobs`` cron webhook calls.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import importlib.util
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import psycopg
import structlog

from shared import db
from shared.logging import STARTED_AT, get_logger
from shared.quota import spending
from shared.sync import queue
from shared.sync.errors import held_back_for, is_permanent, retry_after_seconds
from shared.sync.jobs import complete, running
from shared.sync.registry import Job, handler_for

log = get_logger(__name__)

_MAX_ERROR_CHARS = 2000


def load_handlers(extra_modules: Iterable[str] = ()) -> list[str]:
    """Register every job kind's handler, and those of ``extra_modules`` (``--import``: a
    test's job kinds, by name); returns the extra modules that are missing (logged).

    A module registers the handlers it defines when it is imported
    (``shared.sync.registry.job_handler``): these imports are the registrations.
    """
    from shared import setlists  # noqa: F401
    from shared.sync import artists, catalogue, played, popularity, shows  # noqa: F401

    missing = []
    for name in extra_modules:
        if importlib.util.find_spec(name) is None:
            log.warning("handler_module_missing", module=name)
            missing.append(name)
            continue
        importlib.import_module(name)
    return missing


@dataclass(frozen=True)
class WorkerConfig:
    # Short, so a killed worker's job comes back soon; the heartbeat renews it.
    vt_seconds: int = 30
    # Jobs per run_batch (each read when it starts, never ahead).
    batch_size: int = 5
    max_attempts: int = 5
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    # A job still running after this long stops being kept hidden.
    max_job_seconds: float = 900.0
    heartbeat: bool = True


@dataclass(frozen=True, slots=True)
class JobResult:
    msg_id: int
    kind: str
    outcome: str  # done | retry | dead | held | gone
    attempt: int
    duration_ms: int
    retry_in_seconds: int | None = None
    error: str | None = None


@dataclass
class DrainSummary:
    results: list[JobResult] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    stopped_by_budget: bool = False

    def as_dict(self) -> dict[str, Any]:
        outcomes = Counter(r.outcome for r in self.results)
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        for result in self.results:
            by_kind[result.kind][result.outcome] += 1
        return {
            "processed": len(self.results),
            "done": outcomes["done"],
            "retried": outcomes["retry"],
            "dead": outcomes["dead"],
            "held": outcomes["held"],
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "stopped_by_budget": self.stopped_by_budget,
            "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
        }


class _Heartbeat:
    """Keeps one message hidden while its job runs, up to ``max_seconds``."""

    def __init__(self, msg_id: int, vt_seconds: int, max_seconds: float) -> None:
        self._msg_id = msg_id
        self._vt = vt_seconds
        self._max = max_seconds
        self._stop = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._beat,), name=f"heartbeat-{msg_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        started = time.monotonic()
        interval = max(self._vt / 3.0, 0.2)
        while not self._stop.wait(interval):
            if time.monotonic() - started > self._max:
                log.error("job_overran", max_job_seconds=self._max, vt_seconds=self._vt)
                return
            try:
                with db.transaction() as conn:
                    queue.extend(conn, self._msg_id, self._vt)
            except psycopg.Error as error:
                log.warning("heartbeat_failed", error=type(error).__name__)


class Worker:
    def __init__(
        self,
        config: WorkerConfig | None = None,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or WorkerConfig()
        self._rng = rng
        self._clock = clock

    # -- policy ------------------------------------------------------------------------------

    def backoff_seconds(self, attempt: int) -> int:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(
            self.config.backoff_max_seconds,
            self.config.backoff_base_seconds * 2 ** max(attempt - 1, 0),
        )
        jittered: float = step / 2 + self._rng() * step / 2
        return max(1, round(jittered))

    # -- reading and running -----------------------------------------------------------------

    # Jobs are read ONE AT A TIME, each just before it starts. A message read
    # is hidden for ``vt_seconds`` and only the running job's heartbeat keeps
    # it hidden; messages read ahead of their turn would reappear while this
    # worker is still busy with an earlier job, and a concurrent worker (two
    # overlapping run_jobs calls) would run them twice. Reading one at a time
    # is the simplest correct answer: no message is ever held unstarted, so
    # there is nothing to extend and nothing to give back when the budget
    # ends, at the cost of one short query per job (jobs make HTTP calls).

    def read(self, qty: int = 1) -> list[dict[str, Any]]:
        with db.transaction() as conn:
            return queue.read(conn, self.config.vt_seconds, qty)

    def run_next(self) -> JobResult | None:
        """Read one job and run it; None when no job is visible."""
        rows = self.read(1)
        return self.process(rows[0]) if rows else None

    def visible_count(self, limit: int) -> int:
        """How many jobs (at most ``limit``) could be read now."""
        with db.transaction() as conn:
            return queue.visible_count(conn, limit)

    def run_batch(self, qty: int | None = None) -> list[JobResult]:
        """Run the jobs visible now, up to ``qty`` (``batch_size``), each read when it starts.

        Jobs these queue in turn wait for the next batch (a batch read at once
        used to behave the same way); ``drain`` runs them too.
        """
        results: list[JobResult] = []
        for _ in range(self.visible_count(qty or self.config.batch_size)):
            result = self.run_next()
            if result is None:
                break
            results.append(result)
        return results

    def drain(self, budget_seconds: float) -> DrainSummary:
        """Run jobs until the queue has none visible or the time budget is spent.

        The budget is checked before each job; a job started within it runs
        to its end. Jobs not started stay in the queue, visible (never read).
        """
        started = self._clock()
        summary = DrainSummary()
        while True:
            if self._clock() - started >= budget_seconds:
                summary.stopped_by_budget = True
                break
            result = self.run_next()
            if result is None:
                break
            summary.results.append(result)
        summary.elapsed_seconds = self._clock() - started
        log.info("drain_finished", **{k: v for k, v in summary.as_dict().items() if k != "by_kind"})
        return summary

    def loop(self, stop: threading.Event, *, idle_seconds: float = 2.0) -> None:
        """Run until ``stop`` is set, pausing ``idle_seconds`` when the queue is empty."""
        log.info("worker_started", **{"vt_seconds": self.config.vt_seconds})
        while not stop.is_set():
            try:
                results = self.run_batch()
            except psycopg.OperationalError as error:
                log.warning("worker_database_unavailable", error=type(error).__name__)
                results = []
            if not results:
                stop.wait(idle_seconds)
        log.info("worker_stopped")

    def process(self, row: Mapping[str, Any]) -> JobResult:
        msg_id = int(row["msg_id"])
        attempt = int(row["attempt"])
        message = row["message"] if isinstance(row["message"], dict) else {}
        kind = str(message.get("kind") or "?")
        with structlog.contextvars.bound_contextvars(
            job_id=msg_id,
            kind=kind,
            entity=message.get("entity_id"),
            attempt=attempt,
            **{STARTED_AT: time.monotonic()},
        ):
            try:
                entity_id = uuid.UUID(str(message.get("entity_id")))
                options = row.get("options") or {}
                if not isinstance(options, dict) or kind == "?":
                    raise ValueError("malformed message")
            except ValueError:
                return self._fail(msg_id, kind, attempt, ValueError("malformed message"), 0)
            job = Job(
                msg_id=msg_id, kind=kind, entity_id=entity_id, attempt=attempt, options=options
            )
            return self._run(job)

    def _run(self, job: Job) -> JobResult:
        log.info("job_started", force=job.force)
        with running(job) as run, spending("sync"):
            try:
                if self.config.heartbeat:
                    with _Heartbeat(
                        job.msg_id, self.config.vt_seconds, self.config.max_job_seconds
                    ):
                        outcome = handler_for(job.kind)(job)
                else:
                    outcome = handler_for(job.kind)(job)
                if run.completion is None:
                    with db.transaction() as conn:
                        run.completion = complete(conn, run)
            except Exception as error:
                hold = held_back_for(error)
                if hold is not None:
                    return self._hold(job, error, hold, run.elapsed_ms())
                return self._fail(job.msg_id, job.kind, job.attempt, error, run.elapsed_ms())
            duration_ms = run.elapsed_ms()
        status = "done" if run.completion in ("done", "redelivered") else str(run.completion)
        if run.completion == "redelivered":
            log.warning("job_outlived_visibility_timeout", duration_ms=duration_ms)
        log.info(
            "job_done",
            outcome=status,
            duration_ms=duration_ms,
            result=dict(outcome) if outcome else None,
        )
        return JobResult(job.msg_id, job.kind, status, job.attempt, duration_ms)

    def _hold(self, job: Job, error: BaseException, wait: float, duration_ms: int) -> JobResult:
        # A little jitter, so jobs held by one limit do not all come back at once.
        delay = max(1, round(wait + self._rng() * min(wait, 30.0) / 10))
        reason = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
        with db.transaction() as conn:
            status = queue.hold(conn, job.msg_id, delay, reason)
        log.info("job_held_back", outcome=status, retry_in_seconds=delay, reason=reason,
                 duration_ms=duration_ms)
        return JobResult(job.msg_id, job.kind, status, job.attempt, duration_ms,
                         delay if status == "held" else None, reason)

    def _fail(
        self, msg_id: int, kind: str, attempt: int, error: BaseException, duration_ms: int
    ) -> JobResult:
        text = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
        dead = is_permanent(error) or attempt >= self.config.max_attempts
        delay = self.backoff_seconds(attempt)
        asked = retry_after_seconds(error)
        if asked is not None:
            delay = max(delay, round(asked))
        with db.transaction() as conn:
            status = queue.fail(
                conn, msg_id, attempt, text, retry_in_seconds=delay, dead=dead,
                duration_ms=duration_ms,
            )
        fields: dict[str, Any] = {"outcome": status, "duration_ms": duration_ms, "error": text}
        if status == "retry":
            fields["retry_in_seconds"] = delay
        if status == "dead" or not isinstance(error, Exception) or is_permanent(error):
            log.error("job_failed", **fields)
        else:
            log.warning("job_failed", **fields)
        return JobResult(
            msg_id, kind, status, attempt, duration_ms, delay if status == "retry" else None, text
        )


# -- command line ----------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shared.sync.worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--once", action="store_true", help="run up to --batch jobs and exit")
    parser.add_argument(
        "--drain", type=float, metavar="SECONDS", help="drain the queue within this budget and exit"
    )
    parser.add_argument(
        "--vt",
        type=int,
        default=WorkerConfig.vt_seconds,
        help="visibility timeout of a read job, seconds",
    )
    parser.add_argument(
        "--batch", type=int, default=WorkerConfig.batch_size, help="jobs per --once run"
    )
    parser.add_argument("--max-attempts", type=int, default=WorkerConfig.max_attempts)
    parser.add_argument(
        "--idle", type=float, default=2.0, help="pause when the queue is empty, seconds"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="also import this handler module",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    load_handlers(args.imports)
    worker = Worker(
        WorkerConfig(vt_seconds=args.vt, batch_size=args.batch, max_attempts=args.max_attempts)
    )
    try:
        if args.once:
            worker.run_batch()
        elif args.drain is not None:
            worker.drain(args.drain)
        else:
            stop = threading.Event()

            def request_stop(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)
            worker.loop(stop, idle_seconds=args.idle)
    finally:
        db.close_pool()


if __name__ == "__main__":
    main()
