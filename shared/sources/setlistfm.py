"""setlist.fm API 1.0 client.

Auth is the ``x-api-key`` header, and ``Accept: application/json`` is required
(the API answers XML by default). A search that matches nothing is an HTTP
404: the search methods turn it into an empty result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Literal, TypeVar

from pydantic import SecretStr

from shared.config import Settings
from shared.sources.errors import ConfigurationError, NotFound
from shared.sources.http import (
    ModelT,
    RetryPolicy,
    SourceClient,
    Transport,
)
from shared.sources.setlistfm_models import Artist, ArtistsPage, Setlist, SetlistsPage

PageT = TypeVar("PageT", ArtistsPage, SetlistsPage)


def format_setlistfm_date(day: date) -> str:
    """setlist.fm dates are ``dd-MM-yyyy``."""
    return day.strftime("%d-%m-%Y")


class SetlistFmClient(SourceClient):
    """Synchronous client; one instance per process reuses its connections."""

    provider = "setlistfm"
    base_url_setting = "setlistfm_base_url"
    # Its gateway's 429s carry no Retry-After; 2 seconds is what works.
    default_retry = RetryPolicy(rate_limited_wait_seconds=2.0)

    def __init__(self, *, api_key: SecretStr, transport: Transport) -> None:
        key = api_key.get_secret_value()
        if not key:
            raise ConfigurationError("setlistfm", "-", "SETLISTFM_API_KEY is empty")
        self._headers = {"x-api-key": key, "Accept": "application/json", "Accept-Language": "en"}
        super().__init__(transport, secret=key)

    @classmethod
    def settings_credentials(cls, settings: Settings) -> dict[str, Any]:
        if settings.setlistfm_api_key is None:
            raise ConfigurationError("setlistfm", "-", "SETLISTFM_API_KEY is not set")
        return {"api_key": settings.setlistfm_api_key}

    # -- endpoints ---------------------------------------------------------------------------

    def search_artists(
        self,
        *,
        mbid: str | None = None,
        name: str | None = None,
        sort: Literal["sortName", "relevance"] = "relevance",
        max_pages: int = 1,
    ) -> list[Artist]:
        """Artists by MusicBrainz id or by name; no match is an empty list."""
        if not mbid and not name:
            raise ValueError("search_artists needs an mbid or a name")
        params: dict[str, str | int] = {"sort": sort}
        if mbid:
            params["artistMbid"] = mbid
        if name:
            params["artistName"] = name
        pages = self._pages("/search/artists", ArtistsPage, params, max_pages)
        return [artist for page in pages for artist in page.artist]

    def artist_setlists(self, mbid: str, *, max_pages: int = 1) -> list[Setlist]:
        """An artist's setlists, newest first, up to ``max_pages`` pages of 20."""
        pages = self._pages(
            "/artist/{mbid}/setlists", SetlistsPage, {}, max_pages, path={"mbid": mbid}
        )
        return [setlist for page in pages for setlist in page.setlist]

    def search_setlists(self, *, artist_mbid: str, day: date, max_pages: int = 5) -> list[Setlist]:
        """The artist's setlists of one day (usually one; festivals and residencies more)."""
        pages = self._pages(
            "/search/setlists",
            SetlistsPage,
            {"artistMbid": artist_mbid, "date": format_setlistfm_date(day)},
            max_pages,
        )
        return [setlist for page in pages for setlist in page.setlist]

    def get_setlist(self, setlist_id: str) -> Setlist:
        return self._get("/setlist/{id}", Setlist, path={"id": setlist_id})

    # -- plumbing ----------------------------------------------------------------------------

    def _pages(
        self,
        endpoint: str,
        model: type[PageT],
        params: Mapping[str, str | int],
        max_pages: int,
        *,
        path: Mapping[str, str] | None = None,
    ) -> list[PageT]:
        """Pages 1.. until ``total`` is covered or ``max_pages`` read; a 404 ends the list."""
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        pages: list[PageT] = []
        for number in range(1, max_pages + 1):
            try:
                page = self._get(endpoint, model, path=path, params={**params, "p": number})
            except NotFound:
                break
            pages.append(page)
            if number * page.items_per_page >= page.total or not _has_items(page):
                break
        return pages

    def _get(
        self,
        endpoint: str,
        model: type[ModelT],
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> ModelT:
        return self.http.get(endpoint, model, path=path, params=params, headers=self._headers)


def _has_items(page: ArtistsPage | SetlistsPage) -> bool:
    return bool(page.artist if isinstance(page, ArtistsPage) else page.setlist)
