"""Spotify client: app token lifecycle, user-token calls, paging, development-mode fallbacks."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.sources.errors import BadCredentials, ClientError, QuotaExhausted, UpstreamError
from shared.sources.spotify import SpotifyClient
from tests.sources.conftest import (
    NOW,
    SPOTIFY_ACCOUNTS,
    SPOTIFY_API,
    SPOTIFY_SECRET,
    CollectingObserver,
    FakeClock,
    NoWaitLimiter,
    payload,
)

TOKEN_URL = f"{SPOTIFY_ACCOUNTS}/api/token"
BOH = "0OdUWJ0sBjDrqHygGUXeCF"
PHISH = "5wbIWUzTPuTxTyG6ouQKqz"
APP_TOKEN = payload("spotify_token.json")["access_token"]
USER_TOKEN = SecretStr("BQUserProviderToken-from-supabase")


def api(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"{SPOTIFY_API}{path}") + r"(\?.*)?$")


def add_token(httpx_mock: HTTPXMock, token: str = APP_TOKEN, expires_in: int = 3600) -> None:
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
    )


def test_app_token_is_fetched_once_with_client_credentials_and_reused(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))

    spotify.get_artist(BOH)
    spotify.get_artist(BOH)

    token_request, *calls = httpx_mock.get_requests()
    expected_basic = base64.b64encode(f"theset-client-id:{SPOTIFY_SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected_basic}"
    assert token_request.content == b"grant_type=client_credentials"
    assert [c.headers["Authorization"] for c in calls] == [f"Bearer {APP_TOKEN}"] * 2


def test_app_token_is_renewed_shortly_before_it_expires(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    add_token(httpx_mock, "first-token")
    add_token(httpx_mock, "second-token")
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"), is_reusable=True
    )

    spotify.get_artist(BOH)
    clock.now += 3600 - 61  # still comfortably valid
    spotify.get_artist(BOH)
    clock.now += 2  # within the last minute: renewed before use
    spotify.get_artist(BOH)

    auth = [r.headers.get("Authorization") for r in httpx_mock.get_requests() if r.method == "GET"]
    assert auth == ["Bearer first-token", "Bearer first-token", "Bearer second-token"]


def test_a_401_fetches_a_new_token_once_and_retries(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock, "revoked-token")
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"), status_code=401, json=payload("spotify_401.json")
    )
    add_token(httpx_mock, "fresh-token")
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))

    assert spotify.get_artist(BOH).name == "Band of Horses"

    gets = [r for r in httpx_mock.get_requests() if r.method == "GET"]
    assert [r.headers["Authorization"] for r in gets] == [
        "Bearer revoked-token",
        "Bearer fresh-token",
    ]


def test_a_second_401_is_bad_credentials(spotify: SpotifyClient, httpx_mock: HTTPXMock) -> None:
    add_token(httpx_mock, "one")
    add_token(httpx_mock, "two")
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"),
        status_code=401,
        json=payload("spotify_401.json"),
        is_reusable=True,
    )

    with pytest.raises(BadCredentials):
        spotify.get_artist(BOH)

    methods = [r.method for r in httpx_mock.get_requests()]
    assert methods == ["POST", "GET", "POST", "GET"]


def test_wrong_client_secret_is_bad_credentials_without_the_secret(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=TOKEN_URL,
        status_code=400,
        json=payload("spotify_token_invalid_client.json"),
    )

    with pytest.raises(BadCredentials) as raised:
        spotify.get_artist(BOH)

    assert "invalid_client" in str(raised.value)
    assert SPOTIFY_SECRET not in str(raised.value)
    assert len(httpx_mock.get_requests()) == 1


def test_search_artists_uses_a_limit_every_app_accepts(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=api("/search"), json=payload("spotify_search_artists.json"))

    (artist,) = spotify.search_artists("band of horses")

    assert (artist.popularity, artist.followers and artist.followers.total) == (59, 306565)
    request = httpx_mock.get_requests()[-1]
    assert dict(request.url.params) == {"q": "band of horses", "type": "artist", "limit": "10"}
    with pytest.raises(ValueError, match="limit"):
        spotify.search_artists("phish", limit=50)


def test_development_mode_artist_has_no_popularity_or_followers(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))

    artist = spotify.get_artist(BOH)

    assert artist.popularity is None
    assert artist.followers is None
    assert artist.genres == []


def test_several_artists_in_one_call_where_allowed(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=api("/artists"), json=payload("spotify_several_artists.json"))

    artists = spotify.get_artists([BOH, PHISH, "0000000000000000000000"])

    assert [a.name for a in artists] == ["Band of Horses", "Phish"]
    assert (
        httpx_mock.get_requests()[-1].url.params["ids"] == f"{BOH},{PHISH},0000000000000000000000"
    )


def test_several_artists_fall_back_to_single_gets_after_a_403(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(url=api("/artists"), status_code=403, json=payload("spotify_403.json"))
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))
    httpx_mock.add_response(
        url=api(f"/artists/{PHISH}"), json=payload("spotify_artist_phish_devmode.json")
    )
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), json=payload("spotify_artist_devmode.json"))

    first = spotify.get_artists([BOH, PHISH])
    # The app is known not to have the endpoint now: straight to single gets.
    second = spotify.get_artists([BOH])

    assert [a.name for a in first] == ["Band of Horses", "Phish"]
    assert [a.name for a in second] == ["Band of Horses"]
    paths = [r.url.path for r in httpx_mock.get_requests() if r.method == "GET"]
    assert paths == [
        "/v1/artists",
        f"/v1/artists/{BOH}",
        f"/v1/artists/{PHISH}",
        f"/v1/artists/{BOH}",
    ]


def test_artist_albums_follow_next_with_pages_of_ten(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}/albums"), json=payload("spotify_artist_albums_page1.json")
    )
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}/albums"), json=payload("spotify_artist_albums_page2.json")
    )

    albums = spotify.artist_albums(BOH)

    assert len(albums) == 13
    assert albums[-1].name == "The Funeral"
    first, second = (r for r in httpx_mock.get_requests() if r.method == "GET")
    assert dict(first.url.params) == {"include_groups": "album,single", "limit": "10"}
    assert dict(second.url.params) == {
        "offset": "10",
        "limit": "10",
        "include_groups": "album,single",
    }
    # Observed under the template, whatever the page.
    assert {c.endpoint for c in observer.calls if c.method == "GET"} == {"/artists/{id}/albums"}


def test_album_tracks_follow_next(spotify: SpotifyClient, httpx_mock: HTTPXMock) -> None:
    add_token(httpx_mock)
    album = "6b4ZaGmGBbMZqD3mO2uuLh"
    httpx_mock.add_response(
        url=api(f"/albums/{album}/tracks"), json=payload("spotify_album_tracks_page1.json")
    )
    httpx_mock.add_response(
        url=api(f"/albums/{album}/tracks"), json=payload("spotify_album_tracks_page2.json")
    )

    tracks = spotify.album_tracks(album)

    assert [t.track_number for t in tracks] == list(range(1, 12))
    assert tracks[2].name == "Laredo"
    assert httpx_mock.get_requests()[-1].url.params["offset"] == "10"


def test_get_track_carries_the_isrc(spotify: SpotifyClient, httpx_mock: HTTPXMock) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(
        url=api("/tracks/3Ez1mWZPSxVbsJW4mfuKSn"), json=payload("spotify_track_devmode.json")
    )

    track = spotify.get_track("3Ez1mWZPSxVbsJW4mfuKSn")

    assert track.external_ids.isrc == "USSM11000891"
    assert track.album is not None and track.album.name == "Infinite Arms"
    assert track.popularity is None


def test_me_top_artists_uses_the_user_token_and_reads_every_page(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=api("/me/top/artists"), json=payload("spotify_me_top_artists_page1.json")
    )
    httpx_mock.add_response(
        url=api("/me/top/artists"), json=payload("spotify_me_top_artists_page2.json")
    )

    artists = spotify.me_top_artists(USER_TOKEN, time_range="medium_term", limit=2)

    assert [a.name for a in artists] == ["Band of Horses", "Phish", "Fleet Foxes"]
    requests = httpx_mock.get_requests()
    # No app token is involved in /me calls.
    assert all(r.url.host == "api.spotify.com" for r in requests)
    assert {r.headers["Authorization"] for r in requests} == {
        f"Bearer {USER_TOKEN.get_secret_value()}"
    }
    assert requests[1].url.params["offset"] == "2"


def test_me_following_follows_the_after_cursor(
    spotify: SpotifyClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=api("/me/following"), json=payload("spotify_me_following_page1.json")
    )
    httpx_mock.add_response(
        url=api("/me/following"), json=payload("spotify_me_following_page2.json")
    )

    artists = spotify.me_followed_artists(USER_TOKEN, limit=2)

    assert [a.name for a in artists] == ["Band of Horses", "The Shins", "My Morning Jacket"]
    first, second = httpx_mock.get_requests()
    assert dict(first.url.params) == {"type": "artist", "limit": "2"}
    assert dict(second.url.params) == {
        "type": "artist",
        "limit": "2",
        "after": "4LG4Bs1Gadh0gMq2ecA8F4",
    }


def test_development_mode_quota_overrun_is_quota_exhausted(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, limiter: NoWaitLimiter
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"),
        status_code=429,
        json=payload("spotify_429_quota.json"),
        headers={"Retry-After": "7200"},
    )

    with pytest.raises(QuotaExhausted) as raised:
        spotify.get_artist(BOH)

    assert raised.value.reset_at == datetime.fromtimestamp(NOW + 7200, UTC)
    assert limiter.paused["spotify"] == raised.value.reset_at
    assert len([r for r in httpx_mock.get_requests() if r.method == "GET"]) == 1


def _echoing(status: int, token: str) -> dict[str, object]:
    """An error body quoting the token it was sent, as a gateway or proxy might."""
    return {"error": {"status": status, "message": f"Bad token: Bearer {token}"}}


def test_the_app_token_never_leaves_the_client(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    add_token(httpx_mock)
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"), status_code=400, json=_echoing(400, APP_TOKEN)
    )

    with pytest.raises(ClientError) as raised:
        spotify.get_artist(BOH)

    assert "Bad token: Bearer [REDACTED]" in str(raised.value)
    reported = str(raised.value) + repr([call.error for call in observer.calls])
    assert APP_TOKEN not in reported


def test_a_refreshed_app_token_is_redacted_too(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    fresh = "BQFreshAppToken0123456789abcdefABCDEF"
    add_token(httpx_mock)
    httpx_mock.add_response(
        url=api(f"/artists/{BOH}"), status_code=401, json=_echoing(401, APP_TOKEN)
    )
    add_token(httpx_mock, token=fresh)
    httpx_mock.add_response(url=api(f"/artists/{BOH}"), status_code=401, json=_echoing(401, fresh))

    with pytest.raises(BadCredentials) as raised:
        spotify.get_artist(BOH)

    reported = str(raised.value) + repr([call.error for call in observer.calls])
    assert "[REDACTED]" in reported
    assert APP_TOKEN not in reported
    assert fresh not in reported


@pytest.mark.parametrize("endpoint", ["/me/top/artists", "/me/following"])
def test_the_user_token_never_leaves_the_client(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, observer: CollectingObserver, endpoint: str
) -> None:
    user_token = USER_TOKEN.get_secret_value()
    httpx_mock.add_response(url=api(endpoint), status_code=401, json=_echoing(401, user_token))

    call = spotify.me_top_artists if endpoint == "/me/top/artists" else spotify.me_followed_artists
    with pytest.raises(BadCredentials) as raised:
        call(USER_TOKEN)

    assert "Bad token: Bearer [REDACTED]" in str(raised.value)
    reported = str(raised.value) + repr([call.error for call in observer.calls])
    assert user_token not in reported


def test_a_network_error_quoting_the_user_token_is_redacted(
    spotify: SpotifyClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    user_token = USER_TOKEN.get_secret_value()
    for _ in range(4):  # every attempt of the retry policy
        httpx_mock.add_exception(
            httpx.LocalProtocolError(f"Illegal header value b'Bearer {user_token}'"),
            url=api("/me/top/artists"),
        )

    with pytest.raises(UpstreamError) as raised:
        spotify.me_top_artists(USER_TOKEN)

    assert "Bearer [REDACTED]" in str(raised.value)
    reported = str(raised.value) + repr([call.error for call in observer.calls])
    assert user_token not in reported
    assert len(observer.calls) == 4
