"""Pydantic models of setlist.fm API 1.0 (JSON) responses.

Songs come nested as ``"sets": {"set": [...]}``; the documentation's example
shows ``set`` directly: both are accepted and exposed as ``Setlist.sets``.
Setlists without songs are common and valid. Dates are ``dd-MM-yyyy``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _setlistfm_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%d-%m-%Y").date()
        except ValueError:
            return value  # let pydantic report the bad date
    return value


SetlistDate = Annotated[date, BeforeValidator(_setlistfm_date)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Artist(_Model):
    mbid: NonEmptyStr
    name: NonEmptyStr
    sort_name: str | None = Field(default=None, alias="sortName")
    disambiguation: str | None = None
    url: str | None = None
    # Ticketmaster's *legacy* numeric artist id, not a Discovery attraction id.
    tmid: int | None = None


class ArtistRef(_Model):
    """An artist mentioned on a song (``cover``, ``with``): only the name is dependable."""

    mbid: str | None = None
    name: str | None = None


class Coords(_Model):
    lat: float | None = None
    long: float | None = None


class Country(_Model):
    code: str | None = None
    name: str | None = None


class City(_Model):
    id: str | None = None
    name: str | None = None
    state: str | None = None
    state_code: str | None = Field(default=None, alias="stateCode")
    coords: Coords | None = None
    country: Country | None = None


class Venue(_Model):
    id: str | None = None
    name: str | None = None
    city: City | None = None
    url: str | None = None


class Tour(_Model):
    name: str | None = None


class Song(_Model):
    # Empty when the song is unknown ("" on setlist.fm), hence not required.
    name: str = ""
    info: str | None = None
    tape: bool = False
    cover: ArtistRef | None = None
    with_: ArtistRef | None = Field(default=None, alias="with")


class Set(_Model):
    name: str | None = None
    # 1 for the first encore, 2 for the second; absent on the main sets.
    encore: int | None = None
    song: list[Song] = []


class Setlist(_Model):
    id: NonEmptyStr
    version_id: str | None = Field(default=None, alias="versionId")
    event_date: SetlistDate = Field(alias="eventDate")
    last_updated: datetime | None = Field(default=None, alias="lastUpdated")
    artist: Artist
    venue: Venue | None = None
    tour: Tour | None = None
    info: str | None = None
    url: str | None = None
    sets: list[Set] = []

    @model_validator(mode="before")
    @classmethod
    def _unwrap_sets(cls, data: Any) -> Any:
        """Accept ``"sets": {"set": [...]}`` (live API) and ``"set": [...]`` (docs example)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        sets = data.get("sets")
        if isinstance(sets, dict):
            data["sets"] = sets.get("set") or []
        elif sets is None and isinstance(data.get("set"), list):
            data["sets"] = data["set"]
        return data


class SetlistsPage(_Model):
    type: str | None = None
    items_per_page: int = Field(alias="itemsPerPage")
    page: int
    total: int
    setlist: list[Setlist] = []


class ArtistsPage(_Model):
    type: str | None = None
    items_per_page: int = Field(alias="itemsPerPage")
    page: int
    total: int
    artist: list[Artist] = []
