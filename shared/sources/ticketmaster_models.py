"""Pydantic models of Ticketmaster Discovery API v2 responses.

Tolerant where the API is loose (optional blocks missing, string coordinates,
``cancelled`` next to ``canceled``, no ``_embedded`` on an empty page, the
1900 placeholder sales date); strict where a missing field means the record
is garbage (an event, attraction or venue without id or name).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

MUSIC_SEGMENT_ID = "KZFzniwnSyZfZ7v7nJ"
MISCELLANEOUS_SEGMENT_ID = "KZFzniwnSyZfZ7v7n1"


def _lenient_float(value: Any) -> Any:
    """Coordinates arrive as strings ("34.043003"); blank or unparsable means unknown."""
    if value is None or isinstance(value, int | float):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _sales_date(value: Any) -> Any:
    """``1900-01-01T06:00:00Z`` is Ticketmaster's placeholder for "no date": treat as unknown."""
    if isinstance(value, str) and value.startswith("1900-"):
        return None
    return value


LenientFloat = Annotated[float | None, BeforeValidator(_lenient_float)]
SalesDateTime = Annotated[datetime | None, BeforeValidator(_sales_date)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Image(_Model):
    url: NonEmptyStr
    ratio: str | None = None
    width: int | None = None
    height: int | None = None
    fallback: bool = False


class Named(_Model):
    id: str | None = None
    name: str | None = None


class Classification(_Model):
    primary: bool = False
    segment: Named | None = None
    genre: Named | None = None
    sub_genre: Named | None = Field(default=None, alias="subGenre")
    type: Named | None = None
    sub_type: Named | None = Field(default=None, alias="subType")


class ExternalLink(_Model):
    id: str | None = None
    url: str | None = None


class UpcomingEvents(_Model):
    total: int = Field(default=0, alias="_total")


class Attraction(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    url: str | None = None
    images: list[Image] = []
    classifications: list[Classification] = []
    # Keys exist only when known: musicbrainz, spotify, youtube, homepage, …
    external_links: dict[str, list[ExternalLink]] = Field(default={}, alias="externalLinks")
    upcoming_events: UpcomingEvents = Field(default=UpcomingEvents(), alias="upcomingEvents")


class City(_Model):
    name: str | None = None


class State(_Model):
    name: str | None = None
    state_code: str | None = Field(default=None, alias="stateCode")


class Country(_Model):
    name: str | None = None
    country_code: str | None = Field(default=None, alias="countryCode")


class Address(_Model):
    line1: str | None = None
    line2: str | None = None


class Location(_Model):
    latitude: LenientFloat = None
    longitude: LenientFloat = None


class Venue(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    url: str | None = None
    timezone: str | None = None
    postal_code: str | None = Field(default=None, alias="postalCode")
    city: City | None = None
    state: State | None = None
    country: Country | None = None
    address: Address | None = None
    location: Location | None = None
    images: list[Image] = []


class EventStart(_Model):
    local_date: date | None = Field(default=None, alias="localDate")
    local_time: time | None = Field(default=None, alias="localTime")
    date_time: datetime | None = Field(default=None, alias="dateTime")
    date_tbd: bool = Field(default=False, alias="dateTBD")
    date_tba: bool = Field(default=False, alias="dateTBA")
    time_tba: bool = Field(default=False, alias="timeTBA")
    no_specific_time: bool = Field(default=False, alias="noSpecificTime")


class EventStatus(_Model):
    code: str | None = None


class EventDates(_Model):
    start: EventStart = EventStart()
    timezone: str | None = None
    status: EventStatus = EventStatus()


class PublicSale(_Model):
    start_date_time: SalesDateTime = Field(default=None, alias="startDateTime")
    end_date_time: SalesDateTime = Field(default=None, alias="endDateTime")


class Presale(_Model):
    name: str | None = None
    start_date_time: SalesDateTime = Field(default=None, alias="startDateTime")
    end_date_time: SalesDateTime = Field(default=None, alias="endDateTime")


class Sales(_Model):
    public: PublicSale | None = None
    presales: list[Presale] = []


class PriceRange(_Model):
    type: str | None = None
    currency: str | None = None
    min: float | None = None
    max: float | None = None


class EventEmbedded(_Model):
    venues: list[Venue] = []
    attractions: list[Attraction] = []


class Event(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    type: str | None = None
    url: str | None = None
    test: bool = False
    images: list[Image] = []
    sales: Sales | None = None
    dates: EventDates = EventDates()
    classifications: list[Classification] = []
    price_ranges: list[PriceRange] = Field(default=[], alias="priceRanges")
    embedded: EventEmbedded = Field(default=EventEmbedded(), alias="_embedded")


class PageInfo(_Model):
    size: int
    total_elements: int = Field(alias="totalElements")
    total_pages: int = Field(alias="totalPages")
    number: int


class _EventsEmbedded(_Model):
    events: list[Event] = []


class _AttractionsEmbedded(_Model):
    attractions: list[Attraction] = []


class EventsPage(_Model):
    # No ``_embedded`` at all when nothing matched.
    embedded: _EventsEmbedded = Field(default=_EventsEmbedded(), alias="_embedded")
    page: PageInfo

    @property
    def events(self) -> list[Event]:
        return self.embedded.events


class AttractionsPage(_Model):
    embedded: _AttractionsEmbedded = Field(default=_AttractionsEmbedded(), alias="_embedded")
    page: PageInfo

    @property
    def attractions(self) -> list[Attraction]:
        return self.embedded.attractions
