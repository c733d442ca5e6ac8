"""Ticketmaster Discovery client: auth, endpoints, paging and date windows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.config import Settings
from shared.sources.errors import ConfigurationError, NotFound
from shared.sources.ticketmaster import TicketmasterClient, format_ticketmaster_datetime
from shared.sources.ticketmaster_models import MUSIC_SEGMENT_ID
from tests.sources.conftest import (
    TM_BASE,
    TM_KEY,
    CollectingObserver,
    NoWaitLimiter,
    payload,
    ticketmaster_events_page,
)

EVENTS_URL = re.compile(re.escape(f"{TM_BASE}/events.json") + r"\?.*")


def test_search_attractions_is_music_only_and_keeps_artists_with_upcoming_events(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=payload("tm_attractions_search.json"))

    found = tm.search_attractions("band of horses")

    # The duplicate attraction without upcoming events is left out.
    assert [(a.id, a.upcoming_events.total) for a in found] == [("K8vZ9171ob7", 14)]
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.path == "/discovery/v2/attractions.json"
    assert dict(request.url.params) == {
        "keyword": "band of horses",
        "segmentId": MUSIC_SEGMENT_ID,
        "size": "20",
        "apikey": TM_KEY,
    }


def test_search_without_match_has_no_embedded_and_is_empty(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=payload("tm_attractions_empty.json"))

    assert tm.search_attractions("zzzzqqq") == []


def test_search_size_is_bounded(tm: TicketmasterClient) -> None:
    with pytest.raises(ValueError, match="size"):
        tm.search_attractions("phish", size=201)


def test_get_attraction_event_and_venue(tm: TicketmasterClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{TM_BASE}/attractions/K8vZ9171ob7.json?apikey={TM_KEY}",
        json=payload("tm_attraction.json"),
    )
    httpx_mock.add_response(
        url=f"{TM_BASE}/events/vvG1IZ9pKbvS7J.json?apikey={TM_KEY}", json=payload("tm_event.json")
    )
    httpx_mock.add_response(
        url=f"{TM_BASE}/venues/KovZpZAEvAJA.json?apikey={TM_KEY}", json=payload("tm_venue.json")
    )

    attraction = tm.get_attraction("K8vZ9171ob7")
    event = tm.get_event("vvG1IZ9pKbvS7J")
    venue = tm.get_venue("KovZpZAEvAJA")

    assert attraction.external_links["musicbrainz"][0].id == "7cb5a2e9-e3a1-4b9f-9e5d-6b1bab0e6a3a"
    assert event.dates.start.date_time == datetime(2026, 10, 17, 1, 0, tzinfo=UTC)
    assert event.embedded.venues[0].id == "KovZpZAEvAJA"
    # Coordinates arrive as strings.
    assert venue.location is not None
    assert venue.location.latitude == pytest.approx(36.161206)
    assert venue.location.longitude == pytest.approx(-86.778495)


def test_unknown_id_is_not_found(tm: TicketmasterClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=404, json=payload("tm_404.json"))

    with pytest.raises(NotFound, match="DIS1004"):
        tm.get_attraction("Zz9zZ9zZ9zZ")


def test_upcoming_events_reads_every_page_of_200(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=EVENTS_URL,
        json=ticketmaster_events_page(date(2026, 9, 2), 200, number=0, total=260),
    )
    httpx_mock.add_response(
        url=EVENTS_URL,
        json=ticketmaster_events_page(date(2027, 3, 21), 60, number=1, total=260),
    )

    events = tm.upcoming_events("K8vZ9171ob7")

    assert len(events) == 260
    assert len({e.id for e in events}) == 260
    first, second = httpx_mock.get_requests()
    assert dict(first.url.params) == {
        "attractionId": "K8vZ9171ob7",
        "segmentId": MUSIC_SEGMENT_ID,
        "startDateTime": "2026-09-01T00:00:00Z",
        "sort": "date,asc",
        "size": "200",
        "page": "0",
        "apikey": TM_KEY,
    }
    assert second.url.params["page"] == "1"


def test_upcoming_events_beyond_the_paging_depth_continue_in_a_new_date_window(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    day = date(2026, 9, 2)
    for number in range(5):
        httpx_mock.add_response(
            url=EVENTS_URL,
            json=ticketmaster_events_page(
                date.fromordinal(day.toordinal() + number * 200), 200, number=number, total=1150
            ),
        )
    # The new window starts at the last event read (2029-02-23 local, 01:00Z next day),
    # so that event comes back first and is not counted twice.
    last_day = date.fromordinal(day.toordinal() + 999)
    httpx_mock.add_response(
        url=EVENTS_URL,
        json=ticketmaster_events_page(last_day, 151, number=0, total=151),
    )

    events = tm.upcoming_events("K8vZ9171ob7")

    requests = httpx_mock.get_requests()
    assert [r.url.params["page"] for r in requests] == ["0", "1", "2", "3", "4", "0"]
    # page * size stays below 1000 in every request
    assert all(int(r.url.params["page"]) * int(r.url.params["size"]) < 1000 for r in requests)
    window_start = date.fromordinal(last_day.toordinal() + 1)
    assert requests[5].url.params["startDateTime"] == f"{window_start}T01:00:00Z"
    assert len(events) == 1150
    assert len({e.id for e in events}) == 1150


def test_upcoming_events_of_an_attraction_without_events(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=EVENTS_URL, json=payload("tm_events_empty.json"))

    assert tm.upcoming_events("K8vZ917G9a0") == []


def test_datetime_format_is_exactly_what_discovery_accepts() -> None:
    moment = datetime(2026, 9, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert format_ticketmaster_datetime(moment) == "2026-09-01T12:30:15Z"


def test_from_settings_requires_the_api_key() -> None:
    with pytest.raises(ConfigurationError, match="TICKETMASTER_API_KEY"):
        TicketmasterClient.from_settings(Settings(ticketmaster_api_key=None))


def test_from_settings_uses_the_configured_base_url(
    httpx_mock: HTTPXMock, limiter: NoWaitLimiter, observer: CollectingObserver
) -> None:
    settings = Settings(
        ticketmaster_api_key=SecretStr(TM_KEY), ticketmaster_base_url="http://127.0.0.1:9/tm"
    )
    httpx_mock.add_response(
        url=f"http://127.0.0.1:9/tm/venues/KovZpZAEvAJA.json?apikey={TM_KEY}",
        json=payload("tm_venue.json"),
    )
    with TicketmasterClient.from_settings(settings, limiter=limiter, observer=observer) as client:
        assert client.get_venue("KovZpZAEvAJA").name == "Ryman Auditorium"
