"""Daily quota shares in ``private.reserve_rate_slot``: every call counted in its
share, request traffic stopped at the quota less the sync's reserve, the sync
free to use the rest, exact under concurrency, reset each UTC day."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.quota import DailyQuota, spending
from shared.sources.http import RATE_HEADROOM, Transport
from shared.sources.ratelimit import InMemoryRateLimiter
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.conftest import TM_BASE, TM_KEY, CollectingObserver, FakeClock, payload
from tests.support.db import Connection

# A rate so high that no reservation waits: only the quota decides.
FAST = 1_000_000.0


def reserve(db: Connection, share: str, limit: int = 10, reserved: int = 4) -> bool:
    row = db.execute(
        "select reserved, quota_reset_at from private.reserve_rate_slot"
        "('ticketmaster', %s, null, %s, %s, %s)", [FAST, share, limit, reserved]).fetchone()
    assert row is not None
    assert row["reserved"] == (row["quota_reset_at"] is None)
    return bool(row["reserved"])


def test_requests_stop_at_their_share_and_the_sync_uses_the_rest(db: Connection) -> None:
    assert [reserve(db, "request") for _ in range(8)] == [True] * 6 + [False] * 2
    assert [reserve(db, "sync") for _ in range(6)] == [True] * 4 + [False] * 2
    status = db.execute("select private.source_quota_status() as s").fetchone()
    assert status is not None
    [tm] = [q for q in status["s"] if q["provider"] == "ticketmaster"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert tm["resets_at"].startswith(tomorrow.isoformat())
    assert {k: tm[k] for k in ("daily_limit", "sync_reserved", "request_limit", "request_calls",
                               "sync_calls", "remaining")} == {
        "daily_limit": 10, "sync_reserved": 4, "request_limit": 6, "request_calls": 6,
        "sync_calls": 4, "remaining": 0}


def test_the_sync_may_use_the_request_share_when_requests_do_not(db: Connection) -> None:
    assert [reserve(db, "sync") for _ in range(11)] == [True] * 10 + [False]
    assert reserve(db, "request") is False


def test_a_refused_call_books_no_slot_and_is_not_counted(db: Connection) -> None:
    for _ in range(6):
        reserve(db, "request")
    before = db.execute("select next_slot_at from private.source_rate_limits"
                        " where provider = 'ticketmaster'").fetchone()
    assert reserve(db, "request") is False
    after = db.execute("select next_slot_at from private.source_rate_limits"
                       " where provider = 'ticketmaster'").fetchone()
    assert before == after
    counts = db.execute("select request_calls from private.source_daily_quotas"
                        " where provider = 'ticketmaster'").fetchone()
    assert counts == {"request_calls": 6}


def test_counters_start_again_on_a_new_utc_day(db: Connection) -> None:
    for _ in range(6):
        reserve(db, "request")
    db.execute("update private.source_daily_quotas set day = day - 1"
               " where provider = 'ticketmaster'")
    assert reserve(db, "request") is True
    counts = db.execute("select request_calls, sync_calls from private.source_daily_quotas"
                        " where provider = 'ticketmaster'").fetchone()
    assert counts == {"request_calls": 1, "sync_calls": 0}


def test_concurrent_callers_get_exactly_the_share(database_url: str) -> None:
    def one(i: int) -> bool:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            row = conn.execute(
                "select reserved from private.reserve_rate_slot"
                "('ticketmaster', %s, null, %s, 100, 40)",
                [FAST, "request" if i % 2 else "sync"]).fetchone()
            return bool(row and row["reserved"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        granted = list(pool.map(one, range(200)))
    requests = sum(ok for i, ok in enumerate(granted) if i % 2)
    syncs = sum(ok for i, ok in enumerate(granted) if not i % 2)
    assert requests + syncs == 100
    assert requests <= 60


@pytest.mark.parametrize(("limit", "reserved"), [(10, 11), (0, 0), (10, -1)])
def test_a_quota_that_makes_no_sense_is_refused(db: Connection, limit: int,
                                                reserved: int) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select * from private.reserve_rate_slot('ticketmaster', 5, null, 'sync',"
                   " %s, %s)", [limit, reserved])


def test_the_in_memory_limiter_keeps_the_same_shares() -> None:
    limiter = InMemoryRateLimiter()
    quota = DailyQuota(10, 4)
    granted = [limiter.reserve("ticketmaster", FAST, share="request", quota=quota).reserved
               for _ in range(8)]
    assert granted == [True] * 6 + [False] * 2
    refused = limiter.reserve("ticketmaster", FAST, share="request", quota=quota)
    assert refused.quota_reset_at is not None and refused.quota_reset_at > datetime.now(UTC)
    assert [limiter.reserve("ticketmaster", FAST, share="sync", quota=quota).reserved
            for _ in range(5)] == [True] * 4 + [False]


def test_a_slot_taken_again_for_a_call_already_counted_is_not_counted(db: Connection) -> None:
    reserve(db, "request")
    for _ in range(3):
        row = db.execute(
            "select reserved from private.reserve_rate_slot"
            "('ticketmaster', %s, null, 'request', 10, 4, false)", [FAST]).fetchone()
        assert row == {"reserved": True}
    counts = db.execute("select request_calls from private.source_daily_quotas"
                        " where provider = 'ticketmaster'").fetchone()
    assert counts == {"request_calls": 1}


def test_a_request_that_wakes_up_late_is_one_call_in_the_quota(
    httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    quota = DailyQuota(10, 4)
    limiter.reserve("ticketmaster", 5 * RATE_HEADROOM, quota=quota)  # the slot someone holds

    def late(seconds: float) -> None:
        clock.sleep(seconds + 0.1)  # every wake-up 100 ms late: three slots, one request

    tm = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=late,
            clock=clock.time,
            daily_quota=quota,
        ),
    )
    httpx_mock.add_response(
        url=f"{TM_BASE}/venues/KovZpZAEvAJA.json?apikey={TM_KEY}", json=payload("tm_venue.json"))
    with tm, spending("request"):
        tm.get_venue("KovZpZAEvAJA")

    assert len(clock.sleeps) == 3 and len(httpx_mock.get_requests()) == 1
    # Of the request share (10 - 4 = 6), the one request took exactly one call.
    granted = [limiter.reserve("ticketmaster", FAST, share="request", quota=quota).reserved
               for _ in range(6)]
    assert granted == [True] * 5 + [False]
