"""Slot arithmetic of the in-process limiter, and the clients waiting for their slots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.sources.errors import RateLimited
from shared.sources.http import (
    DEFAULT_MAX_SLOT_WAIT_SECONDS,
    RATE_HEADROOM,
    RetryPolicy,
    Transport,
)
from shared.sources.ratelimit import InMemoryRateLimiter
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.ticketmaster import TicketmasterClient
from shared.sync.errors import api_error_for
from tests.sources.conftest import (
    NOW,
    SETLISTFM_BASE,
    SETLISTFM_KEY,
    TM_BASE,
    TM_KEY,
    CollectingObserver,
    FakeClock,
    payload,
)


def test_slots_are_spaced_by_the_rate(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)

    waits = [limiter.reserve("ticketmaster", 5).wait_seconds for _ in range(5)]

    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])


def test_idle_time_is_not_saved_up_for_a_burst(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    limiter.reserve("setlistfm", 2)
    clock.now += 60

    waits = [limiter.reserve("setlistfm", 2).wait_seconds for _ in range(3)]

    assert waits == pytest.approx([0.0, 0.5, 1.0])


def test_providers_have_separate_slots(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    limiter.reserve("ticketmaster", 5)

    assert limiter.reserve("spotify", 5).wait_seconds == 0.0


def test_a_pause_refuses_slots_until_it_ends(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    until = datetime.fromtimestamp(NOW + 600, UTC)
    limiter.pause_until("ticketmaster", until)
    limiter.pause_until("ticketmaster", datetime.fromtimestamp(NOW + 60, UTC))  # earlier: ignored

    assert limiter.reserve("ticketmaster", 5).paused_until == until
    clock.now = NOW + 601
    assert limiter.reserve("ticketmaster", 5).paused_until is None


def test_clients_sleep_until_their_slot(httpx_mock: HTTPXMock, clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    tm = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    setlistfm = SetlistFmClient(
        api_key=SecretStr(SETLISTFM_KEY),
        transport=Transport(
            base_url=SETLISTFM_BASE,
            requests_per_second=2,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    httpx_mock.add_response(
        url=f"{TM_BASE}/venues/KovZpZAEvAJA.json?apikey={TM_KEY}",
        json=payload("tm_venue.json"),
        is_reusable=True,
    )
    httpx_mock.add_response(
        url=f"{SETLISTFM_BASE}/setlist/4b943b7a",
        json=payload("setlistfm_setlist_nested.json"),
        is_reusable=True,
    )

    with tm, setlistfm:
        for _ in range(3):
            tm.get_venue("KovZpZAEvAJA")
        tm_sleeps = list(clock.sleeps)
        clock.sleeps.clear()
        for _ in range(3):
            setlistfm.get_setlist("4b943b7a")

    assert tm_sleeps == pytest.approx([1 / (5 * RATE_HEADROOM)] * 2)
    assert clock.sleeps == pytest.approx([1 / (2 * RATE_HEADROOM)] * 2)


def test_a_request_that_wakes_up_late_takes_a_new_slot(
    httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    limiter.reserve("ticketmaster", 5 * RATE_HEADROOM)  # someone else holds the current slot
    oversleeps = [0.1]

    def sleep(seconds: float) -> None:
        # The first wake-up comes 100 ms late, as on an overloaded machine.
        clock.sleep(seconds + (oversleeps.pop() if oversleeps else 0.0))

    tm = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=sleep,
            clock=clock.time,
        ),
    )
    httpx_mock.add_response(
        url=f"{TM_BASE}/venues/KovZpZAEvAJA.json?apikey={TM_KEY}", json=payload("tm_venue.json")
    )

    with tm:
        tm.get_venue("KovZpZAEvAJA")

    spacing = 1 / (5 * RATE_HEADROOM)
    # Missed slot 1 (woke at 1 + 0.1), so the request went out in slot 2.
    assert clock.sleeps == pytest.approx([spacing + 0.1, spacing - 0.1])
    assert clock.now == pytest.approx(NOW + 2 * spacing)
    assert len(httpx_mock.get_requests()) == 1


def test_a_slot_beyond_the_max_wait_is_not_reserved(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    for _ in range(3):
        limiter.reserve("ticketmaster", 0.25)  # slots now, +4 s, +8 s: the next is +12 s

    refused = limiter.reserve("ticketmaster", 0.25, max_wait_seconds=10)

    assert (refused.reserved, refused.slot_at, refused.paused_until) == (False, None, None)
    assert refused.wait_seconds == pytest.approx(12.0)
    # Nothing was booked: the next reservation still gets the +12 s slot.
    taken = limiter.reserve("ticketmaster", 0.25, max_wait_seconds=12)
    assert taken.reserved
    assert taken.wait_seconds == pytest.approx(12.0)
    assert taken.slot_at == datetime.fromtimestamp(NOW + 12, UTC)


def _busy_ticketmaster(
    clock: FakeClock, limiter: InMemoryRateLimiter, retry: RetryPolicy | None
) -> TicketmasterClient:
    return TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=CollectingObserver(),
            sleep=clock.sleep,
            clock=clock.time,
            retry=retry,
        ),
    )


def _book_slots(limiter: InMemoryRateLimiter, seconds_ahead: float) -> float:
    """Reserve Ticketmaster slots (as a burst elsewhere would) until the next is that far away."""
    spacing = 1 / (5 * RATE_HEADROOM)
    count = round(seconds_ahead / spacing)
    for _ in range(count):
        limiter.reserve("ticketmaster", 5 * RATE_HEADROOM)
    return count * spacing


def test_a_client_does_not_wait_past_its_max_slot_wait(
    httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    ahead = _book_slots(limiter, 12.0)

    with (
        _busy_ticketmaster(clock, limiter, RetryPolicy(max_slot_wait_seconds=10)) as tm,
        pytest.raises(RateLimited) as raised,
    ):
        tm.get_venue("KovZpZAEvAJA")

    assert raised.value.retry_after == pytest.approx(ahead)
    assert raised.value.status_code is None
    assert clock.sleeps == []  # neither waited for the slot nor retried after it
    assert httpx_mock.get_requests() == []
    # The refused call booked nothing: the next caller gets the same slot.
    assert limiter.reserve("ticketmaster", 5 * RATE_HEADROOM).wait_seconds == pytest.approx(ahead)


def test_the_default_max_slot_wait_is_ten_seconds(httpx_mock: HTTPXMock, clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    _book_slots(limiter, 12.0)

    with _busy_ticketmaster(clock, limiter, None) as tm, pytest.raises(RateLimited):
        tm.get_venue("KovZpZAEvAJA")

    assert tm.http.retry.max_slot_wait_seconds == DEFAULT_MAX_SLOT_WAIT_SECONDS == 10.0


def test_a_longer_max_slot_wait_waits_for_the_slot(httpx_mock: HTTPXMock, clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    ahead = _book_slots(limiter, 12.0)
    httpx_mock.add_response(
        url=f"{TM_BASE}/venues/KovZpZAEvAJA.json?apikey={TM_KEY}", json=payload("tm_venue.json")
    )

    with _busy_ticketmaster(clock, limiter, RetryPolicy(max_slot_wait_seconds=60)) as tm:
        tm.get_venue("KovZpZAEvAJA")

    assert clock.sleeps == pytest.approx([ahead])
    assert len(httpx_mock.get_requests()) == 1


def test_a_refused_slot_answers_503_with_retry_after(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    _book_slots(limiter, 12.0)

    with _busy_ticketmaster(clock, limiter, None) as tm, pytest.raises(RateLimited) as raised:
        tm.get_venue("KovZpZAEvAJA")

    answer = api_error_for(raised.value)
    assert answer.status == 503
    assert answer.headers == {"Retry-After": "12"}
