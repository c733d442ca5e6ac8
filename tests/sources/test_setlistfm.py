"""setlist.fm client: headers, 404-as-empty searches, paging, both set layouts."""

from __future__ import annotations

import re
from datetime import date

import pytest
from pytest_httpx import HTTPXMock

from shared.sources.errors import NotFound
from shared.sources.setlistfm import SetlistFmClient
from tests.sources.conftest import (
    SETLISTFM_BASE,
    SETLISTFM_KEY,
    CollectingObserver,
    payload,
    setlistfm_setlists_page,
)

PHISH_MBID = "e01646f2-2a04-450d-8bf2-0d993082e058"


def url(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"{SETLISTFM_BASE}{path}") + r"(\?.*)?$")


def test_requests_carry_the_key_header_and_ask_for_json(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=url("/setlist/4b943b7a"), json=payload("setlistfm_setlist_nested.json")
    )

    setlistfm.get_setlist("4b943b7a")

    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["x-api-key"] == SETLISTFM_KEY
    assert request.headers["Accept"] == "application/json"
    assert SETLISTFM_KEY not in str(request.url)


def test_search_artists_by_mbid(setlistfm: SetlistFmClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=url("/search/artists"), json=payload("setlistfm_search_artists_mbid.json")
    )

    (artist,) = setlistfm.search_artists(mbid=PHISH_MBID)

    assert (artist.name, artist.tmid) == ("Phish", 748766)
    assert dict(httpx_mock.get_requests()[0].url.params) == {
        "sort": "relevance",
        "artistMbid": PHISH_MBID,
        "p": "1",
    }


def test_search_without_match_is_a_404_and_an_empty_result(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    httpx_mock.add_response(
        url=url("/search/artists"), status_code=404, json=payload("setlistfm_404.json")
    )
    httpx_mock.add_response(
        url=url("/search/setlists"), status_code=404, json=payload("setlistfm_404.json")
    )

    assert setlistfm.search_artists(name="Band of Horses") == []
    assert setlistfm.search_setlists(artist_mbid=PHISH_MBID, day=date(2026, 12, 31)) == []
    assert [c.outcome for c in observer.calls] == ["not_found", "not_found"]


def test_search_needs_an_mbid_or_a_name(setlistfm: SetlistFmClient) -> None:
    with pytest.raises(ValueError, match="mbid or a name"):
        setlistfm.search_artists()


def test_artist_setlists_read_pages_until_the_total(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock
) -> None:
    for page in (1, 2, 3):
        httpx_mock.add_response(
            url=url(f"/artist/{PHISH_MBID}/setlists"), json=setlistfm_setlists_page(page, total=45)
        )

    setlists = setlistfm.artist_setlists(PHISH_MBID, max_pages=10)

    assert len(setlists) == 45
    assert len({s.id for s in setlists}) == 45
    assert [r.url.params["p"] for r in httpx_mock.get_requests()] == ["1", "2", "3"]
    # Newest first, dates parsed from dd-MM-yyyy.
    assert setlists[0].event_date == date(2018, 12, 31)
    assert setlists[-1].event_date == date(2018, 11, 17)


def test_artist_setlists_stop_at_max_pages(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=url(f"/artist/{PHISH_MBID}/setlists"), json=setlistfm_setlists_page(1, total=2071)
    )

    assert len(setlistfm.artist_setlists(PHISH_MBID)) == 20
    assert len(httpx_mock.get_requests()) == 1


def test_search_setlists_by_artist_and_date(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=url("/search/setlists"), json=payload("setlistfm_search_setlists.json")
    )

    (setlist,) = setlistfm.search_setlists(artist_mbid=PHISH_MBID, day=date(2018, 12, 31))

    assert setlist.id == "4b943b7a"
    assert dict(httpx_mock.get_requests()[0].url.params) == {
        "artistMbid": PHISH_MBID,
        "date": "31-12-2018",
        "p": "1",
    }


@pytest.mark.parametrize(
    ("name", "songs_per_set"),
    [
        ("setlistfm_setlist_nested.json", [4, 2]),  # "sets": {"set": [...]}
        ("setlistfm_setlist_flat.json", [2, 1]),  # "set": [...]
        ("setlistfm_setlist_empty.json", []),  # announced line-up, no songs yet
    ],
)
def test_get_setlist_accepts_both_set_layouts(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock, name: str, songs_per_set: list[int]
) -> None:
    body = payload(name)
    httpx_mock.add_response(url=url(f"/setlist/{body['id']}"), json=body)

    setlist = setlistfm.get_setlist(body["id"])

    assert [len(s.song) for s in setlist.sets] == songs_per_set


def test_unknown_setlist_is_not_found(setlistfm: SetlistFmClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=url("/setlist/0000000"), status_code=404, json=payload("setlistfm_404.json")
    )

    with pytest.raises(NotFound):
        setlistfm.get_setlist("0000000")
