"""Single flight: concurrent callers of the same upstream work share one fetch.

Twenty fans opening the page of an artist nobody imported yet must cost one
Ticketmaster call, not twenty, whichever function instances or workers they
reach. The flight of a key (``artist:ticketmaster:K8vZ…``, ``artist_shows:<id>``)
lives in ``private.sync_flights``, shared by every process:

* the caller that takes the flight leads: it checks once more that the work is
  still needed, does it, and ends the flight **in the transaction of its own
  writes** (``Flight.finish``), so a flight seen finished means its writes are
  visible; while it works, a thread renews its short lease, so a leader that
  dies frees the key within ``LEASE_SECONDS``;
* every other caller waits (polling, bounded) for the flight to end, then
  takes the result from the database (``done``), or re-raises the error the
  leader recorded (a source's 404 or 429 is everybody's), or gives up with
  ``FlightPending`` when the wait runs out.

An error the leader could not share (a database error, its client's budget)
ends the flight without an outcome: a waiting caller then tries for itself.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from shared import db
from shared.config import get_settings
from shared.db import Connection
from shared.logging import get_logger
from shared.sources import errors as source_errors
from shared.sync.errors import FlightPending

log = get_logger(__name__)

T = TypeVar("T")

# A leader renews its lease every third of this; a dead leader's flight is free after it.
LEASE_SECONDS = 30.0
_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 0.5


_shared_errors: dict[str, Callable[[dict[str, Any]], BaseException]] = {}


def shares_its_outcome(
    name: str, rebuild: Callable[[dict[str, Any]], BaseException]
) -> Callable[[type[T]], type[T]]:
    """Class decorator of an error a leader hands to the callers waiting for it: its
    ``flight_outcome()`` (a JSON object with ``"error": name``) is recorded with the
    flight, and each waiting caller raises ``rebuild(outcome)``."""

    def register(cls: type[T]) -> type[T]:
        _shared_errors[name] = rebuild
        return cls

    return register


@dataclass
class Flight:
    key: str
    holder: uuid.UUID
    finished: bool = False

    def finish(self, conn: Connection, outcome: dict[str, Any] | None = None) -> None:
        """End the flight in ``conn``'s transaction (the leader's writes)."""
        conn.execute(
            "select private.sync_flight_finish(%s, %s, %s)",
            [self.key, self.holder, Jsonb(outcome) if outcome is not None else None],
        )
        self.finished = True


def single_flight(
    key: str,
    lead: Callable[[Flight], T],
    done: Callable[[bool], T | None],
    *,
    wait_seconds: float | None = None,
    checked: bool = False,
) -> T:
    """``done(False)`` if the work is done already, else ``lead``'s result or the leader's.

    ``done(after_flight)`` reads the database only and answers None while the
    work is still to do; ``after_flight`` is true right after another caller's
    flight succeeded (a caller asking to force a refresh takes that one).
    ``lead(flight)`` must call ``flight.finish(conn)`` in its write transaction.
    ``checked``: the caller has just seen ``done(False)`` answer None (it needed the
    same read to name the flight), so the first look is not made again.
    Raises ``FlightPending`` when another caller's flight outlasts the wait.
    """
    if wait_seconds is None:
        wait_seconds = get_settings().single_flight_wait_seconds
    deadline = time.monotonic() + wait_seconds
    holder = uuid.uuid4()
    after_flight = False
    while True:
        result = None if checked else done(after_flight)
        checked = False
        if result is not None:
            return result
        if _take(key, holder):
            return _lead(Flight(key, holder), lead, done, after_flight)
        outcome = _wait(key, deadline)
        if outcome is _STILL_FLYING:
            log.info("single_flight_pending", key=key)
            raise FlightPending(key, retry_after=max(1.0, wait_seconds))
        if isinstance(outcome, dict) and "error" in outcome:
            rebuild = _shared_errors.get(str(outcome["error"]))
            if rebuild is not None:
                raise rebuild(outcome)
            after_flight = False  # the leader gave up: try for ourselves
        else:
            after_flight = outcome is None


def _lead(flight: Flight, lead: Callable[[Flight], T], done: Callable[[bool], T | None],
          after_flight: bool) -> T:
    with _LeaseKeeper(flight):
        try:
            # A flight that ended just before this one was taken: its writes are visible now.
            result = done(after_flight)
            if result is None:
                result = lead(flight)
        except BaseException as error:
            if not flight.finished:
                _finish_alone(flight, _outcome_of(error))
            raise
    if not flight.finished:
        _finish_alone(flight, None)
    return result


def _take(key: str, holder: uuid.UUID) -> bool:
    with db.transaction() as conn:
        row = conn.execute(
            "select private.sync_flight_take(%s, %s, %s) as holder", [key, holder, LEASE_SECONDS]
        ).fetchone()
    return row is not None and row["holder"] == holder


def _finish_alone(flight: Flight, outcome: dict[str, Any] | None) -> None:
    try:
        with db.transaction() as conn:
            flight.finish(conn, outcome)
    except psycopg.Error as error:
        # The lease runs out by itself; the waiting callers then try for themselves.
        log.warning("single_flight_finish_failed", key=flight.key, error=type(error).__name__)


_STILL_FLYING = object()


def _wait(key: str, deadline: float) -> object:
    """The outcome (None for success, or a dict) of the flight of ``key`` another caller
    holds; ``{"error": "gone"}`` when it vanished or expired; ``_STILL_FLYING`` at the deadline."""
    pause = _POLL_FIRST_SECONDS
    while True:
        with db.transaction() as conn:
            state = conn.execute(
                "select holder, live, finished, outcome from private.sync_flight_state(%s)", [key]
            ).fetchone()
        if state is None or (not state["live"] and not state["finished"]):
            return {"error": "gone"}
        if state["finished"]:
            outcome: dict[str, Any] | None = state["outcome"]
            return outcome
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _STILL_FLYING
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, _POLL_MAX_SECONDS)


class _LeaseKeeper:
    """Renews a flight's lease while its leader works."""

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self._stop = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._renew,), name=f"flight-{flight.key}", daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                with db.transaction() as conn:
                    conn.execute(
                        "select private.sync_flight_extend(%s, %s, %s)",
                        [self._flight.key, self._flight.holder, LEASE_SECONDS],
                    )
            except psycopg.Error as error:
                log.warning("single_flight_renew_failed", error=type(error).__name__)


# -- outcomes -------------------------------------------------------------------------------


def _outcome_of(error: BaseException) -> dict[str, Any]:
    if isinstance(error, source_errors.SourceError):
        outcome: dict[str, Any] = {
            "error": "source",
            "class": type(error).__name__,
            "provider": error.provider,
            "endpoint": error.endpoint,
            "detail": error.detail,
            "status_code": error.status_code,
        }
        if isinstance(error, source_errors.RateLimited):
            outcome["retry_after"] = error.retry_after
        if isinstance(error, source_errors.QuotaExhausted):
            outcome["reset_at"] = error.reset_at.isoformat()
        return outcome
    shared = getattr(error, "flight_outcome", None)
    if callable(shared):
        return dict(shared())
    return {"error": "abandoned"}


_SOURCE_ERRORS: dict[str, type[source_errors.SourceError]] = {
    cls.__name__: cls
    for cls in (
        source_errors.ConfigurationError,
        source_errors.BadCredentials,
        source_errors.Forbidden,
        source_errors.NotFound,
        source_errors.ClientError,
        source_errors.UpstreamError,
        source_errors.InvalidPayload,
    )
}


def _rebuild_source_error(outcome: dict[str, Any]) -> BaseException:
    provider = outcome["provider"]
    endpoint = str(outcome["endpoint"])
    detail = str(outcome["detail"])
    status = outcome.get("status_code")
    match outcome.get("class"):
        case "RateLimited":
            return source_errors.RateLimited(
                provider, endpoint, detail, status_code=status, retry_after=outcome["retry_after"]
            )
        case "QuotaExhausted":
            return source_errors.QuotaExhausted(
                provider, endpoint, detail, status_code=status,
                reset_at=datetime.fromisoformat(outcome["reset_at"]),
            )
        case name:
            cls = _SOURCE_ERRORS.get(str(name), source_errors.SourceError)
            return cls(provider, endpoint, detail, status_code=status)


_shared_errors["source"] = _rebuild_source_error
