"""Fixtures for the source-client tests: real-shaped payloads, a fake clock, captured calls."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shared.quota import DailyQuota, QuotaShare
from shared.sources.calllog import ApiCall
from shared.sources.errors import Provider
from shared.sources.http import Transport
from shared.sources.ratelimit import InMemoryRateLimiter, Reservation
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient

PAYLOADS = Path(__file__).parent / "payloads"

TM_BASE = "https://app.ticketmaster.com/discovery/v2"
SPOTIFY_API = "https://api.spotify.com/v1"
SPOTIFY_ACCOUNTS = "https://accounts.spotify.com"
SETLISTFM_BASE = "https://api.setlist.fm/rest/1.0"

TM_KEY = "tmKey8a7B6c5D4e3F2g1H0iJkLmNoPqRs"
SPOTIFY_SECRET = "spotifySecret0f1e2d3c4b5a69788"
SETLISTFM_KEY = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"

# 2026-09-01T00:00:00Z: the tests' "now".
NOW = 1788220800.0


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


class FakeClock:
    """Wall clock that only moves when something sleeps; every sleep is recorded."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CollectingObserver:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []

    def record(self, call: ApiCall) -> None:
        self.calls.append(call)


class NoWaitLimiter:
    """Never makes anyone wait: isolates retry waits from rate-limit waits."""

    def __init__(self) -> None:
        self.reservations = 0
        self.shares: list[QuotaShare] = []
        self.paused: dict[Provider, datetime] = {}

    def reserve(
        self,
        provider: Provider,
        requests_per_second: float,
        max_wait_seconds: float | None = None,
        *,
        share: QuotaShare = "sync",
        quota: DailyQuota | None = None,
        count_call: bool = True,
    ) -> Reservation:
        self.reservations += 1
        self.shares.append(share)
        return Reservation(wait_seconds=0.0)

    def pause_until(self, provider: Provider, until: datetime) -> None:
        self.paused[provider] = until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def observer() -> CollectingObserver:
    return CollectingObserver()


@pytest.fixture
def limiter() -> NoWaitLimiter:
    return NoWaitLimiter()


@pytest.fixture
def tm(
    clock: FakeClock, observer: CollectingObserver, limiter: NoWaitLimiter
) -> Iterator[TicketmasterClient]:
    client = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=observer,
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    with client:
        yield client


@pytest.fixture
def spotify(
    clock: FakeClock, observer: CollectingObserver, limiter: NoWaitLimiter
) -> Iterator[SpotifyClient]:
    client = SpotifyClient(
        client_id="theset-client-id",
        client_secret=SecretStr(SPOTIFY_SECRET),
        accounts_base_url=SPOTIFY_ACCOUNTS,
        transport=Transport(
            base_url=SPOTIFY_API,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=observer,
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    with client:
        yield client


@pytest.fixture
def setlistfm(
    clock: FakeClock, observer: CollectingObserver, limiter: NoWaitLimiter
) -> Iterator[SetlistFmClient]:
    client = SetlistFmClient(
        api_key=SecretStr(SETLISTFM_KEY),
        transport=Transport(
            base_url=SETLISTFM_BASE,
            requests_per_second=2,
            timeout_seconds=10,
            limiter=limiter,
            observer=observer,
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    with client:
        yield client


@pytest.fixture
def in_memory_limiter(clock: FakeClock) -> InMemoryRateLimiter:
    return InMemoryRateLimiter(clock=clock.time)


# -- pages built from one real-shaped item -------------------------------------------------------


def ticketmaster_events_page(
    first_day: date, count: int, *, number: int, total: int, size: int = 200
) -> dict[str, Any]:
    """A Discovery ``events.json`` page of ``count`` copies of the real-shaped event, one a day."""
    template = payload("tm_event.json")
    events = []
    for index in range(count):
        event = copy.deepcopy(template)
        day = first_day + timedelta(days=index)
        event["id"] = f"vvG1IZ9pK{day:%Y%m%d}"  # one event a day: the id follows the day
        event["url"] = f"https://www.ticketmaster.com/event/{event['id']}"
        event["dates"]["start"]["localDate"] = day.isoformat()
        event["dates"]["start"]["dateTime"] = f"{day + timedelta(days=1)}T01:00:00Z"
        events.append(event)
    pages = -(-total // size)
    page: dict[str, Any] = {
        "_links": {"self": {"href": f"/discovery/v2/events.json?page={number}&size={size}"}},
        "page": {"size": size, "totalElements": total, "totalPages": pages, "number": number},
    }
    if events:
        page["_embedded"] = {"events": events}
    return page


def setlistfm_setlists_page(page: int, total: int, items_per_page: int = 20) -> dict[str, Any]:
    """An ``/artist/{mbid}/setlists`` page of copies of the real-shaped setlist, newest first."""
    template = payload("setlistfm_setlist_nested.json")
    start = (page - 1) * items_per_page
    setlists = []
    for index in range(start, min(start + items_per_page, total)):
        setlist = copy.deepcopy(template)
        day = date(2018, 12, 31) - timedelta(days=index)
        setlist["id"] = f"{0x4B943B7A + index:08x}"
        setlist["eventDate"] = day.strftime("%d-%m-%Y")
        setlists.append(setlist)
    return {
        "type": "setlists",
        "itemsPerPage": items_per_page,
        "page": page,
        "total": total,
        "setlist": setlists,
    }
