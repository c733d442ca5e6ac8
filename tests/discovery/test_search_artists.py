"""search_artists: Ticketmaster replaced at the HTTP boundary with real-shaped payloads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock
from werkzeug.test import Client

from tests.discovery.conftest import TM_KEY
from tests.discovery.helpers import artist
from tests.support.db import Connection

PAYLOADS = Path(__file__).parent / "payloads"
ATTRACTIONS = re.compile(r"^https://app\.ticketmaster\.com/discovery/v2/attractions\.json\?.*$")


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_search_answers_music_artists_with_upcoming_shows_and_our_ids(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    # Band of Horses is already ours, known by the Spotify id Ticketmaster links to.
    ours = artist(db, "Band of Horses")
    db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
               " values ('spotify', '0OdUWJ0sBjDrqHygGUXeCF', %s)", [ours])
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_search.json"))

    response = client.get("/search_artists?q=band%20of%20horses&limit=5")

    assert response.status_code == 200
    assert response.json is not None
    assert response.json == {
        "query": "band of horses",
        "items": [{
            "name": "Band of Horses",
            "ticketmaster_id": "K8vZ9171ob7",
            "spotify_id": "0OdUWJ0sBjDrqHygGUXeCF",
            "musicbrainz_id": "7cb5a2e9-e3a1-4b9f-9e5d-6b1bab0e6a3a",
            "image_url": "https://s1.ticketm.net/dam/a/8cc/0852681b-8de4-4a27-b7c9-8b1b7c6b58cc"
                         "_TABLET_LANDSCAPE_LARGE_16_9.jpg",
            "genres": ["Rock", "Pop"],
            "upcoming_event_count": 14,
            "ticketmaster_url": "https://www.ticketmaster.com/band-of-horses-tickets/artist/1013827",
            "artist_id": str(ours),
        }],
        "source": "ticketmaster",
        "cached": False,
        "fetched_at": response.json["fetched_at"],
        "fallback_reason": None,
    }
    [request] = httpx_mock.get_requests()
    assert request.url.params["keyword"] == "band of horses"
    assert request.url.params["segmentId"] == "KZFzniwnSyZfZ7v7nJ"  # Music only
    assert request.url.params["size"] == "5"
    assert request.url.params["apikey"] == TM_KEY
    assert TM_KEY not in response.get_data(as_text=True)


def test_an_artist_we_do_not_have_yet_has_no_artist_id(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_search.json"))
    response = client.get("/search_artists?q=horses")
    assert response.status_code == 200
    assert response.json is not None
    [item] = response.json["items"]
    assert item["artist_id"] is None
    assert httpx_mock.get_requests()[0].url.params["size"] == "20"


def test_no_match_is_an_empty_list(client: Client, httpx_mock: HTTPXMock) -> None:
    # Ticketmaster: 200, totalElements 0 and no "_embedded" key at all.
    httpx_mock.add_response(url=ATTRACTIONS, json=payload("tm_attractions_empty.json"))
    response = client.get("/search_artists?q=zzzzqqq")
    assert response.status_code == 200
    assert response.json is not None
    assert {k: response.json[k] for k in ("query", "items", "source", "cached")} == {
        "query": "zzzzqqq", "items": [], "source": "ticketmaster", "cached": False}


@pytest.mark.parametrize(
    "query_string",
    ["", "q=", "q=%20%20", "q=" + "x" * 101, "q=phish&limit=0", "q=phish&limit=51",
     "q=phish&limit=many", "q=phish&sort=name"],
)
def test_bad_queries_are_400_without_calling_ticketmaster(
    client: Client, httpx_mock: HTTPXMock, query_string: str
) -> None:
    response = client.get(f"/search_artists?{query_string}")
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"]["code"] == "bad_request"
    assert httpx_mock.get_requests() == []


def test_only_get_is_allowed(client: Client) -> None:
    assert client.post("/search_artists?q=phish").status_code == 405


def test_an_exhausted_quota_is_503_with_retry_after_and_no_key(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    body = json.dumps(payload("tm_429_quota.json")).replace("{API_KEY}", TM_KEY)
    reset_ms = int((time.time() + 3600) * 1000)
    httpx_mock.add_response(
        url=ATTRACTIONS, status_code=429, content=body.encode(),
        headers={"Content-Type": "application/json", "Rate-Limit-Reset": str(reset_ms)})

    response = client.get("/search_artists?q=phish")

    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert TM_KEY not in text and "Traceback" not in text
    assert response.json is not None
    error = response.json["error"]
    assert error["code"] == "upstream_rate_limited"
    assert 3500 <= error["details"]["retry_after_seconds"] <= 3600
    assert 3500 <= int(response.headers["Retry-After"]) <= 3600

    # The pause is shared: the next search answers 503 without calling Ticketmaster.
    again = client.get("/search_artists?q=phish")
    assert again.status_code == 503
    assert len(httpx_mock.get_requests()) == 1


def test_a_burst_limit_with_a_long_wait_is_503(client: Client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, status_code=429, json=payload("tm_429_spike.json"),
                            headers={"Retry-After": "120"})
    response = client.get("/search_artists?q=phish")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"]["details"] == {"retry_after_seconds": 120}
    assert response.headers["Retry-After"] == "120"


def test_an_upstream_failure_is_502_after_retries(
    client: Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, status_code=503, text="<html>Service Unavailable",
                            is_reusable=True)
    response = client.get("/search_artists?q=phish")
    assert response.status_code == 502
    assert response.json is not None
    assert response.json["error"]["code"] == "upstream_error"
    assert len(httpx_mock.get_requests()) > 1  # retried first
    assert TM_KEY not in response.get_data(as_text=True)


def test_a_garbage_answer_is_502(client: Client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ATTRACTIONS, json={"unexpected": True})
    response = client.get("/search_artists?q=phish")
    assert response.status_code == 502
