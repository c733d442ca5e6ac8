"""Ticketmaster Discovery API v2 client.

Auth is the ``apikey`` query parameter. The key therefore sits in every
request URL, which is why nothing here ever logs or reports a URL: calls are
observed by endpoint template, and any text taken from a response (the quota
429 body quotes the key) is redacted before it goes anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from shared.config import Settings
from shared.logging import get_logger
from shared.sources.errors import ConfigurationError, RateLimited, SourceError
from shared.sources.http import (
    ModelT,
    SourceClient,
    Transport,
    json_field,
    parse_retry_after,
)
from shared.sources.ticketmaster_models import (
    MUSIC_SEGMENT_ID,
    Attraction,
    AttractionsPage,
    Event,
    EventsPage,
    Venue,
)

_log = get_logger("shared.sources.ticketmaster")

# ``size`` may not exceed 200, and ``page * size`` must stay below 1000
# (DIS1035 "Max paging depth exceeded"): at most pages 0 to 4 of 200 per query.
EVENTS_PAGE_SIZE = 200
MAX_PAGING_DEPTH = 1000
SEARCH_PAGE_SIZE_MAX = 200

_QUOTA_ERROR_CODE = "policies.ratelimit.QuotaViolation"


def format_ticketmaster_datetime(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:mm:ssZ`` exactly: milliseconds or a missing Z are a 400 (DIS1015)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TicketmasterClient(SourceClient):
    """Synchronous client; one instance per process reuses its connections."""

    provider = "ticketmaster"
    base_url_setting = "ticketmaster_base_url"

    def __init__(self, *, api_key: SecretStr, transport: Transport) -> None:
        key = api_key.get_secret_value()
        if not key:
            raise ConfigurationError("ticketmaster", "-", "TICKETMASTER_API_KEY is empty")
        self._api_key = key
        super().__init__(transport, secret=key, classify=self._classify)

    @classmethod
    def settings_credentials(cls, settings: Settings) -> dict[str, Any]:
        if settings.ticketmaster_api_key is None:
            raise ConfigurationError("ticketmaster", "-", "TICKETMASTER_API_KEY is not set")
        return {"api_key": settings.ticketmaster_api_key}

    # -- endpoints ---------------------------------------------------------------------------

    def search_attractions(self, keyword: str, *, size: int = 20) -> list[Attraction]:
        """Music attractions matching ``keyword`` that have at least one upcoming event."""
        if not 1 <= size <= SEARCH_PAGE_SIZE_MAX:
            raise ValueError(f"size must be between 1 and {SEARCH_PAGE_SIZE_MAX}")
        page = self._get(
            "/attractions.json",
            AttractionsPage,
            params={"keyword": keyword, "segmentId": MUSIC_SEGMENT_ID, "size": size},
        )
        return [a for a in page.attractions if a.upcoming_events.total > 0]

    def get_attraction(self, attraction_id: str) -> Attraction:
        return self._get("/attractions/{id}.json", Attraction, path={"id": attraction_id})

    def get_event(self, event_id: str) -> Event:
        return self._get("/events/{id}.json", Event, path={"id": event_id})

    def get_venue(self, venue_id: str) -> Venue:
        return self._get("/venues/{id}.json", Venue, path={"id": venue_id})

    def upcoming_events(self, attraction_id: str, *, since: datetime | None = None) -> list[Event]:
        """Every upcoming event of an attraction, in date order, add-ons included.

        Pages of 200 are read within the ``page * size < 1000`` limit; when
        more remain, the query restarts in a new date window beginning at the
        last event read, and events seen twice are dropped. Filtering add-on
        events is the job of ``shared.sources.records``.
        """
        window_start = since or datetime.fromtimestamp(self.clock(), UTC)
        events: dict[str, Event] = {}
        while True:
            last_page = self._events_window(attraction_id, window_start, events)
            if last_page is None:
                return list(events.values())
            next_start = _window_restart(last_page)
            if next_start is None or next_start <= window_start:
                # More than 1000 events share one start time: there is no way
                # to page deeper, so keep what was read rather than loop.
                _log.warning(
                    "ticketmaster_events_truncated",
                    attraction_id=attraction_id,
                    events=len(events),
                )
                return list(events.values())
            window_start = next_start

    def _events_window(
        self, attraction_id: str, window_start: datetime, into: dict[str, Event]
    ) -> EventsPage | None:
        """Read one date window into ``into``; return its last page if events remain beyond it."""
        page_number = 0
        while True:
            page = self._get(
                "/events.json",
                EventsPage,
                params={
                    "attractionId": attraction_id,
                    "segmentId": MUSIC_SEGMENT_ID,
                    "startDateTime": format_ticketmaster_datetime(window_start),
                    "sort": "date,asc",
                    "size": EVENTS_PAGE_SIZE,
                    "page": page_number,
                },
            )
            for event in page.events:
                into.setdefault(event.id, event)
            if page_number + 1 >= page.page.total_pages or not page.events:
                return None
            if (page_number + 1) * EVENTS_PAGE_SIZE >= MAX_PAGING_DEPTH:
                return page
            page_number += 1

    # -- plumbing ----------------------------------------------------------------------------

    def _get(
        self,
        endpoint: str,
        model: type[ModelT],
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> ModelT:
        return self.http.get(
            endpoint, model, path=path, params={**(params or {}), "apikey": self._api_key}
        )

    def _classify(self, response: httpx.Response, endpoint: str, body: str) -> SourceError | None:
        if response.status_code != 429:
            return None
        try:
            error_code = json_field(response.json(), "fault", "detail", "errorcode")
        except ValueError:
            error_code = None
        if error_code == _QUOTA_ERROR_CODE:
            return self.http.quota_exhausted(response, endpoint, body, _quota_reset(response))
        # SpikeArrestViolation (per-second burst) or an unknown 429: short wait.
        return RateLimited(
            "ticketmaster",
            endpoint,
            body,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), self.clock()),
        )


def _quota_reset(response: httpx.Response) -> datetime | None:
    """``Rate-Limit-Reset`` is the epoch in milliseconds at which the daily quota resets."""
    raw = response.headers.get("Rate-Limit-Reset")
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None
    except ValueError:
        return None


def _window_restart(page: EventsPage) -> datetime | None:
    """Start of the next date window: the start of the last event read (it is re-read, deduped)."""
    for event in reversed(page.events):
        start = event.dates.start
        if start.date_time is not None:
            return start.date_time.astimezone(UTC)
        if start.local_date is not None:
            return datetime(
                start.local_date.year, start.local_date.month, start.local_date.day, tzinfo=UTC
            )
    return None
