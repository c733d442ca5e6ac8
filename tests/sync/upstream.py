"""The upstream APIs as pytest-httpx responses, built from the real-shaped
payloads of ``tests/sources/payloads``."""

from __future__ import annotations

import copy
import re
import threading
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from tests.sources.conftest import payload

INTERNAL_SECRET = "test-internal-secret"

TM = "https://app.ticketmaster.com/discovery/v2"
SPOTIFY = "https://api.spotify.com/v1"
ACCOUNTS = "https://accounts.spotify.com"
SETLISTFM = "https://api.setlist.fm/rest/1.0"

BOH_TM = "K8vZ9171ob7"
BOH_SPOTIFY = "0OdUWJ0sBjDrqHygGUXeCF"
BOH_MBID = "7cb5a2e9-e3a1-4b9f-9e5d-6b1bab0e6a3a"


def future_events(first_day: date | None = None) -> dict[str, Any]:
    """``tm_events_with_addons.json`` moved in time so its first concert is 30 days ahead."""
    page: dict[str, Any] = payload("tm_events_with_addons.json")
    events = page["_embedded"]["events"]
    earliest = min(date.fromisoformat(e["dates"]["start"]["localDate"]) for e in events)
    shift = (first_day or date.today() + timedelta(days=30)) - earliest
    for event in events:
        start = event["dates"]["start"]
        start["localDate"] = (date.fromisoformat(start["localDate"]) + shift).isoformat()
        if start.get("dateTime"):
            moment = datetime.fromisoformat(start["dateTime"].replace("Z", "+00:00")) + shift
            start["dateTime"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return page


class SleepRecorder:
    """Stands in for ``time.sleep`` in the source clients: records, never sleeps."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)


def _url(base: str, path: str) -> re.Pattern[str]:
    return re.compile(re.escape(base + path) + r"(\?.*)?$")


def attraction(*, links: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = payload("tm_attraction.json")
    if not links:
        data.pop("externalLinks", None)
    return data


def setlistfm_artist() -> dict[str, Any]:
    """setlist.fm's ``/search/artists`` answer for Band of Horses (shape of the real one)."""
    page: dict[str, Any] = payload("setlistfm_search_artists_mbid.json")
    page["artist"] = [
        {
            "mbid": BOH_MBID,
            "tmid": 1013827,
            "name": "Band of Horses",
            "sortName": "Band of Horses",
            "disambiguation": "",
            "url": "https://www.setlist.fm/setlists/band-of-horses-53d6e3b1.html",
        }
    ]
    return page


def _tracks_page(album_id: str, album_name: str) -> dict[str, Any]:
    page: dict[str, Any] = payload("spotify_album_tracks_page1.json")
    track = copy.deepcopy(page["items"][0])
    track_id = (album_id[::-1] + "T")[:22]
    track["id"] = track_id
    track["name"] = album_name
    track["uri"] = f"spotify:track:{track_id}"
    track["href"] = f"{SPOTIFY}/tracks/{track_id}"
    track["external_urls"] = {"spotify": f"https://open.spotify.com/track/{track_id}"}
    page["items"] = [track]
    page["next"] = None
    page["total"] = 1
    page["href"] = f"{SPOTIFY}/albums/{album_id}/tracks?offset=0&limit=10"
    return page


class Upstream:
    """Registers upstream answers; every one may be used any number of times."""

    def __init__(self, mock: HTTPXMock) -> None:
        self.mock = mock
        self.mock.add_response(
            method="POST",
            url=_url(ACCOUNTS, "/api/token"),
            json=payload("spotify_token.json"),
            is_optional=True,
            is_reusable=True,
        )

    def add(self, url: re.Pattern[str], body: Any = None, status: int = 200) -> None:
        self.mock.add_response(
            url=url, json=body, status_code=status, is_optional=True, is_reusable=True
        )

    # -- Ticketmaster ------------------------------------------------------------------------

    def tm_attraction(
        self, body: dict[str, Any] | None = None, attraction_id: str = BOH_TM
    ) -> None:
        self.add(_url(TM, f"/attractions/{attraction_id}.json"), body or attraction())

    def tm_search(self, body: dict[str, Any] | None = None) -> None:
        self.add(_url(TM, "/attractions.json"), body or payload("tm_attractions_search.json"))

    def tm_events(self, body: dict[str, Any] | None = None) -> None:
        self.add(_url(TM, "/events.json"), body or future_events())

    # -- Spotify -----------------------------------------------------------------------------

    def spotify_artist(
        self, body: dict[str, Any] | None = None, artist_id: str = BOH_SPOTIFY
    ) -> None:
        self.add(
            _url(SPOTIFY, f"/artists/{artist_id}"),
            body or payload("spotify_search_artists.json")["artists"]["items"][0],
        )

    def spotify_catalogue(self, artist_id: str = BOH_SPOTIFY) -> None:
        first = payload("spotify_artist_albums_page1.json")
        second = payload("spotify_artist_albums_page2.json")
        names = {a["id"]: a["name"] for a in first["items"] + second["items"]}

        def albums(request: httpx.Request) -> httpx.Response:
            offset = int(request.url.params.get("offset", "0"))
            return httpx.Response(200, json=second if offset >= 10 else first)

        def tracks(request: httpx.Request) -> httpx.Response:
            album_id = request.url.path.split("/")[-2]
            if album_id == "6b4ZaGmGBbMZqD3mO2uuLh":
                offset = int(request.url.params.get("offset", "0"))
                name = (
                    "spotify_album_tracks_page2.json"
                    if offset
                    else "spotify_album_tracks_page1.json"
                )
                return httpx.Response(200, json=payload(name))
            return httpx.Response(200, json=_tracks_page(album_id, names.get(album_id, "Untitled")))

        self.mock.add_callback(
            albums,
            url=_url(SPOTIFY, f"/artists/{artist_id}/albums"),
            is_optional=True,
            is_reusable=True,
        )
        self.mock.add_callback(
            tracks,
            url=re.compile(re.escape(SPOTIFY) + r"/albums/[^/]+/tracks(\?.*)?$"),
            is_optional=True,
            is_reusable=True,
        )

    # -- setlist.fm --------------------------------------------------------------------------

    def setlistfm_search(self, body: dict[str, Any] | None = None) -> None:
        self.add(_url(SETLISTFM, "/search/artists"), body or setlistfm_artist())

    # -- what was called ---------------------------------------------------------------------

    def requests(self, host: str | None = None) -> list[httpx.Request]:
        found = self.mock.get_requests()
        return [r for r in found if host is None or r.url.host == host]

    def api_requests(self) -> list[httpx.Request]:
        """Calls to the APIs themselves (not Spotify's token endpoint)."""
        return [r for r in self.mock.get_requests() if r.url.host != "accounts.spotify.com"]
