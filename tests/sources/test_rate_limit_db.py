"""The database limiter: slot reservation in SQL, quota pauses, grants, and several processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from devstack.stub_server import stub_server
from shared.sources.errors import Provider, QuotaExhausted, RateLimited
from shared.sources.http import RATE_HEADROOM, RetryPolicy, Transport
from shared.sources.ratelimit import DatabaseRateLimiter
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.conftest import TM_BASE, TM_KEY, CollectingObserver, payload
from tests.support.db import Connection

WORKER = Path(__file__).with_name("rate_limit_worker.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _reserve(db: Connection, provider: str, per_second: float) -> datetime:
    row = db.execute(
        "select slot_at from private.reserve_rate_slot(%s, %s)", [provider, per_second]
    ).fetchone()
    assert row is not None and row["slot_at"] is not None
    slot: datetime = row["slot_at"]
    return slot


def _book_ahead(db: Connection, provider: str) -> datetime:
    """Move the provider's next free slot an hour ahead, as a long burst would; return it."""
    row = db.execute(
        "update private.source_rate_limits set next_slot_at = clock_timestamp() + interval '1 hour'"
        " where provider = %s returning next_slot_at",
        [provider],
    ).fetchone()
    assert row is not None
    start: datetime = row["next_slot_at"]
    return start


def test_reservations_are_spaced_by_the_rate(database_url: str, db: Connection) -> None:
    start = _book_ahead(db, "setlistfm")

    slots = [_reserve(db, "setlistfm", 2) for _ in range(5)]

    # Each slot is exactly half a second after the previous one, and the clock
    # moved on by as much.
    assert slots == [start + timedelta(seconds=0.5 * index) for index in range(5)]
    assert _next_slot(db, "setlistfm") == start + timedelta(seconds=2.5)


def test_idle_time_is_not_saved_up_for_a_burst(database_url: str, db: Connection) -> None:
    db.execute(
        "update private.source_rate_limits set next_slot_at = now() - interval '1 hour'"
        " where provider = 'ticketmaster'"
    )
    row = db.execute("select now() as now").fetchone()
    assert row is not None

    slots = [_reserve(db, "ticketmaster", 5) for _ in range(3)]

    # The first slot is not in the past, and the ones after it are no closer
    # than 1/rate: an idle hour buys no burst.
    assert slots[0] >= row["now"]
    assert all(later - earlier >= timedelta(seconds=0.2) for earlier, later in pairwise(slots))


def _next_slot(db: Connection, provider: str) -> datetime:
    row = db.execute(
        "select next_slot_at from private.source_rate_limits where provider = %s", [provider]
    ).fetchone()
    assert row is not None
    next_slot: datetime = row["next_slot_at"]
    return next_slot


def test_a_slot_beyond_the_max_wait_is_not_reserved(database_url: str, db: Connection) -> None:
    # One slot every 1,000 s: the second slot is always more than 10 s away.
    first = db.execute("select * from private.reserve_rate_slot('spotify', 0.001, 10)").fetchone()
    assert first is not None and first["reserved"]
    booked = _next_slot(db, "spotify")
    assert booked - first["slot_at"] == timedelta(seconds=1000)

    refused = db.execute("select * from private.reserve_rate_slot('spotify', 0.001, 10)").fetchone()

    assert refused is not None
    assert (refused["reserved"], refused["slot_at"], refused["paused_until"]) == (False, None, None)
    assert refused["wait_seconds"] > 10
    assert _next_slot(db, "spotify") == booked  # nothing advanced

    # Without a bound (or with one far enough) the very slot the refusal skipped is reserved.
    taken = db.execute("select * from private.reserve_rate_slot('spotify', 0.001)").fetchone()
    assert taken is not None and taken["reserved"]
    assert taken["slot_at"] == booked
    assert _next_slot(db, "spotify") == booked + timedelta(seconds=1000)


def test_a_negative_max_wait_is_rejected(database_url: str, db: Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select * from private.reserve_rate_slot('spotify', 5, -1)")


def test_a_client_refused_a_slot_books_nothing_in_the_database(
    database_url: str, db: Connection, httpx_mock: HTTPXMock
) -> None:
    limiter = DatabaseRateLimiter()
    # A burst elsewhere has booked the next 20 s of Ticketmaster slots.
    db.execute(
        "update private.source_rate_limits set next_slot_at = clock_timestamp() + interval '20 s'"
        " where provider = 'ticketmaster'"
    )
    booked = _next_slot(db, "ticketmaster")
    client = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=lambda seconds: pytest.fail(f"slept {seconds} s"),
            retry=RetryPolicy(max_slot_wait_seconds=10),
        ),
    )

    with client, pytest.raises(RateLimited) as raised:
        client.get_venue("KovZpZAEvAJA")

    assert raised.value.retry_after is not None and raised.value.retry_after > 10
    assert _next_slot(db, "ticketmaster") == booked
    assert httpx_mock.get_requests() == []


def test_reservation_rejects_unknown_providers_and_rates(database_url: str, db: Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select * from private.reserve_rate_slot('lastfm', 1)")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select * from private.reserve_rate_slot('spotify', 0)")


def test_database_limiter_pauses_every_process_until_the_reset(database_url: str) -> None:
    one, other = DatabaseRateLimiter(), DatabaseRateLimiter()
    reset = datetime.now(UTC) + timedelta(hours=3)

    one.pause_until("ticketmaster", reset)
    one.pause_until("ticketmaster", reset - timedelta(hours=1))  # an earlier pause does not win

    assert other.reserve("ticketmaster", 5).paused_until == reset
    assert other.reserve("spotify", 5).paused_until is None


def test_quota_exhausted_in_one_client_stops_a_client_elsewhere(
    database_url: str, httpx_mock: HTTPXMock
) -> None:
    def client() -> TicketmasterClient:
        return TicketmasterClient(
            api_key=SecretStr(TM_KEY),
            transport=Transport(
                base_url=TM_BASE,
                requests_per_second=5,
                timeout_seconds=10,
                limiter=DatabaseRateLimiter(),
                observer=CollectingObserver(),
            ),
        )

    reset_ms = int((time.time() + 7200) * 1000)
    httpx_mock.add_response(
        status_code=429,
        headers={"Rate-Limit-Reset": str(reset_ms)},
        json={
            "fault": {
                "faultstring": f"Rate limit quota violation. Identifier : {TM_KEY}",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
            }
        },
    )
    with client() as first, pytest.raises(QuotaExhausted):
        first.get_venue("KovZpZAEvAJA")

    with client() as second, pytest.raises(QuotaExhausted) as raised:
        second.get_venue("KovZpZAEvAJA")

    assert raised.value.reset_at == datetime.fromtimestamp(reset_ms / 1000, UTC)
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_clients_of_the_data_api_cannot_touch_the_limiter(
    database_url: str, db: Connection, role: str
) -> None:
    for statement in (
        "select * from private.reserve_rate_slot('ticketmaster', 5)",
        "select private.pause_rate_limited_source('ticketmaster', now() + interval '1 day')",
        "select * from private.source_rate_limits",
    ):
        with db.transaction(force_rollback=True):
            db.execute(f"set local role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)


def test_service_role_can_reserve(database_url: str, db: Connection) -> None:
    with db.transaction(force_rollback=True):
        db.execute("set local role service_role")
        row = db.execute("select * from private.reserve_rate_slot('spotify', 5)").fetchone()
    assert row is not None and row["paused_until"] is None
    enabled = db.execute(
        "select relrowsecurity from pg_class where oid = 'private.source_rate_limits'::regclass"
    ).fetchone()
    assert enabled == {"relrowsecurity": True}


@pytest.mark.parametrize(
    ("provider", "per_second", "calls_per_worker", "booked_ahead"),
    [("ticketmaster", 5.0, 5, False), ("setlistfm", 2.0, 5, True)],
)
def test_rate_is_honoured_across_processes(
    database_url: str,
    db: Connection,
    provider: Provider,
    per_second: float,
    calls_per_worker: int,
    booked_ahead: bool,
) -> None:
    """Clients in several processes take slots from the database that are never too close.

    Judged from the slot times the database handed out, never from wall-clock
    time (the workers' sleeps return at once): the wall-clock rate is the
    benchmark's business.
    """
    workers = 4
    start = _book_ahead(db, provider) if booked_ahead else None
    routes = {
        "/tm/venues/KovZpZAEvAJA.json": payload("tm_venue.json"),
        "/setlistfm/setlist/4b943b7a": payload("setlistfm_setlist_nested.json"),
    }
    with stub_server(routes) as server:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TICKETMASTER_API_KEY": TM_KEY,
            "TICKETMASTER_BASE_URL": f"{server.base_url}/tm",
            "SETLISTFM_API_KEY": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
            "SETLISTFM_BASE_URL": f"{server.base_url}/setlistfm",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        processes = [
            subprocess.Popen(
                [sys.executable, str(WORKER), provider, str(calls_per_worker)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        outputs: list[str] = []
        try:
            for process in processes:
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "ready"
            # Every worker is ready before any starts: their reservations overlap.
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            for process in processes:
                out, _ = process.communicate(timeout=60)
                assert process.returncode == 0
                outputs.append(out)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        prefix = "/tm/" if provider == "ticketmaster" else "/setlistfm/"
        served = len(server.arrival_times(prefix))

    total = workers * calls_per_worker
    per_worker = [
        [
            datetime.fromisoformat(line.removeprefix("slot "))
            for line in out.splitlines()
            if line.startswith("slot ")
        ]
        for out in outputs
    ]
    # One slot per call, then one request per slot.
    assert [len(slots) for slots in per_worker] == [calls_per_worker] * workers
    assert served == total
    slots = sorted(slot for slots in per_worker for slot in slots)
    gaps = [later - earlier for earlier, later in pairwise(slots)]
    # The database's interval for the client's rate, to the microsecond.
    spacing = timedelta(microseconds=round(1e6 / (per_second * RATE_HEADROOM)))
    tolerance = timedelta(microseconds=1)
    # No two requests, from whichever process, were given slots closer than 1/rate ...
    assert min(gaps) >= spacing - tolerance
    if start is not None:
        # ... and from a booked-ahead clock they are handed out back to back,
        # none lost or given twice.
        assert slots[0] == start
        assert all(abs(gap - spacing) <= tolerance for gap in gaps)
        assert abs(_next_slot(db, provider) - (slots[-1] + spacing)) <= tolerance
    logged = db.execute(
        "select count(*) as calls from private.api_calls where provider = %s and outcome = 'ok'",
        [provider],
    ).fetchone()
    assert logged == {"calls": total}
