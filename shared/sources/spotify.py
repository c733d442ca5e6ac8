"""Spotify Web API client.

Catalogue calls use an app token from the client-credentials flow, cached
until shortly before it expires and fetched again once if the API answers
401. ``/me/*`` calls use the signed-in user's own Spotify token (Supabase
Auth's provider token), passed per call and never stored. Every token, the
app's and the user's, is redacted like the client secret from anything a call
reports (exceptions, log lines, ``api_calls`` rows).

Works for development-mode apps (February-March 2026 restrictions): page
sizes of 10 for search and artist albums, ``/artists?ids=`` answered 403 and
replaced by single gets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import httpx
from pydantic import SecretStr

from shared.config import Settings
from shared.sources.errors import (
    BadCredentials,
    ConfigurationError,
    Forbidden,
    SourceError,
)
from shared.sources.http import (
    ModelT,
    SourceClient,
    Transport,
    json_field,
    parse_retry_after,
)
from shared.sources.spotify_models import (
    AccessToken,
    AlbumsPaging,
    Artist,
    ArtistSearchResponse,
    ArtistsPaging,
    FollowedArtistsResponse,
    SeveralArtistsResponse,
    SimplifiedAlbum,
    SimplifiedTrack,
    Track,
    TracksPaging,
)

# Page sizes that every app accepts, development mode included: search and
# artist albums were cut to 10 for development-mode apps in 2026; album tracks
# use 10 too rather than rely on a limit Spotify has been lowering.
SEARCH_LIMIT_MAX = 10
ARTIST_ALBUMS_LIMIT = 10
ALBUM_TRACKS_LIMIT = 10
ME_LIMIT_MAX = 50
SEVERAL_ARTISTS_MAX = 50

# Fetch a new app token this long before the current one expires, so that a
# token never expires between being read and being used.
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
TOKEN_ENDPOINT = "/api/token"  # noqa: S105 - a path, not a secret

ItemT = TypeVar("ItemT")
ItemT_co = TypeVar("ItemT_co", covariant=True)

TimeRange = Literal["short_term", "medium_term", "long_term"]


@dataclass(frozen=True, slots=True)
class _CachedToken:
    value: str
    refresh_at: float


class SpotifyClient(SourceClient):
    """Synchronous client; one instance per process shares its token and connections."""

    provider = "spotify"
    base_url_setting = "spotify_api_base_url"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: SecretStr,
        accounts_base_url: str,
        transport: Transport,
    ) -> None:
        secret = client_secret.get_secret_value()
        if not client_id or not secret:
            raise ConfigurationError("spotify", "-", "Spotify client id or secret is empty")
        self._credentials = httpx.BasicAuth(client_id, secret)
        self._accounts_base_url = accounts_base_url
        self._token: _CachedToken | None = None
        self._token_lock = threading.Lock()
        # Flipped after the first 403: development-mode apps lost /artists?ids=.
        self._several_artists_allowed = True
        super().__init__(transport, secret=secret, classify=self._classify)

    @classmethod
    def settings_credentials(cls, settings: Settings) -> dict[str, Any]:
        if not settings.spotify_client_id or settings.spotify_client_secret is None:
            raise ConfigurationError(
                "spotify", "-", "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET must be set"
            )
        return {
            "client_id": settings.spotify_client_id,
            "client_secret": settings.spotify_client_secret,
            "accounts_base_url": settings.spotify_accounts_base_url,
        }

    # -- catalogue (app token) ---------------------------------------------------------------

    def search_artists(self, query: str, *, limit: int = SEARCH_LIMIT_MAX) -> list[Artist]:
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {SEARCH_LIMIT_MAX}")
        result = self._app_get(
            "/search",
            ArtistSearchResponse,
            params={"q": query, "type": "artist", "limit": limit},
        )
        return result.artists.items

    def get_artist(self, artist_id: str) -> Artist:
        return self._app_get("/artists/{id}", Artist, path={"id": artist_id})

    def get_artists(self, artist_ids: Sequence[str]) -> list[Artist]:
        """Several artists: ``/artists?ids=`` by 50 where allowed, single gets after a 403.

        Unknown ids are left out of the result.
        """
        found: list[Artist] = []
        for start in range(0, len(artist_ids), SEVERAL_ARTISTS_MAX):
            chunk = artist_ids[start : start + SEVERAL_ARTISTS_MAX]
            if self._several_artists_allowed:
                try:
                    several = self._app_get(
                        "/artists", SeveralArtistsResponse, params={"ids": ",".join(chunk)}
                    )
                except Forbidden:
                    self._several_artists_allowed = False
                else:
                    found.extend(a for a in several.artists if a is not None)
                    continue
            found.extend(self._single_artists(chunk))
        return found

    def artist_albums(
        self,
        artist_id: str,
        *,
        include_groups: Iterable[str] = ("album", "single"),
        market: str | None = None,
    ) -> list[SimplifiedAlbum]:
        """Every album of an artist in the given groups, following ``next`` page by page."""
        params: dict[str, str | int] = {
            "include_groups": ",".join(include_groups),
            "limit": ARTIST_ALBUMS_LIMIT,
        }
        if market:
            params["market"] = market
        return self._all_pages(
            lambda page_params: self._app_get(
                "/artists/{id}/albums", AlbumsPaging, path={"id": artist_id}, params=page_params
            ),
            params,
        )

    def album_tracks(self, album_id: str) -> list[SimplifiedTrack]:
        return self._all_pages(
            lambda page_params: self._app_get(
                "/albums/{id}/tracks", TracksPaging, path={"id": album_id}, params=page_params
            ),
            {"limit": ALBUM_TRACKS_LIMIT},
        )

    def get_track(self, track_id: str) -> Track:
        return self._app_get("/tracks/{id}", Track, path={"id": track_id})

    # -- the signed-in user (user token) -----------------------------------------------------

    def me_top_artists(
        self,
        user_token: SecretStr,
        *,
        time_range: TimeRange = "medium_term",
        limit: int = ME_LIMIT_MAX,
    ) -> list[Artist]:
        """The user's top artists (scope ``user-top-read``), every page of ``limit``."""
        _check_me_limit(limit)
        return self._all_pages(
            lambda page_params: self._user_get(
                "/me/top/artists", ArtistsPaging, user_token, params=page_params
            ),
            {"time_range": time_range, "limit": limit},
        )

    def me_followed_artists(
        self, user_token: SecretStr, *, limit: int = ME_LIMIT_MAX
    ) -> list[Artist]:
        """Artists the user follows (scope ``user-follow-read``), following the ``after`` cursor."""
        _check_me_limit(limit)
        artists: list[Artist] = []
        params: dict[str, str | int] = {"type": "artist", "limit": limit}
        while True:
            page = self._user_get(
                "/me/following", FollowedArtistsResponse, user_token, params=params
            ).artists
            artists.extend(page.items)
            if page.next is None or page.cursors.after is None or not page.items:
                return artists
            params = {**params, "after": page.cursors.after}

    # -- plumbing ----------------------------------------------------------------------------

    def _single_artists(self, artist_ids: Iterable[str]) -> list[Artist]:
        found: list[Artist] = []
        for artist_id in artist_ids:
            try:
                found.append(self.get_artist(artist_id))
            except SourceError as exc:
                if exc.status_code not in (400, 404):
                    raise
        return found

    def _all_pages(
        self,
        fetch: Callable[[dict[str, str | int]], _Paging[ItemT]],
        params: dict[str, str | int],
    ) -> list[ItemT]:
        """Items of every page, following ``next``.

        Only the query of ``next`` is used: the request goes to the configured
        base URL and is observed under the same endpoint template.
        """
        items: list[ItemT] = []
        while True:
            page = fetch(params)
            items.extend(page.items)
            if page.next is None or not page.items:
                return items
            params = {key: value for key, value in httpx.URL(page.next).params.items()}

    def _app_get(
        self,
        endpoint: str,
        model: type[ModelT],
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> ModelT:
        token = self._app_token()
        try:
            return self.http.get(
                endpoint, model, path=path, params=params, headers=_bearer(token), secrets=[token]
            )
        except BadCredentials as exc:
            if isinstance(exc, Forbidden):
                raise
            # The token was revoked or expired early: fetch a new one, once.
            self._forget_token(token)
            fresh = self._app_token()
            return self.http.get(
                endpoint, model, path=path, params=params, headers=_bearer(fresh), secrets=[fresh]
            )

    def _user_get(
        self,
        endpoint: str,
        model: type[ModelT],
        user_token: SecretStr,
        *,
        params: Mapping[str, str | int] | None = None,
    ) -> ModelT:
        """A ``/me/*`` call with the user's own token, redacted from whatever the call reports."""
        token = user_token.get_secret_value()
        return self.http.get(
            endpoint, model, params=params, headers=_bearer(token), secrets=[token]
        )

    def _app_token(self) -> str:
        with self._token_lock:
            now = self.clock()
            if self._token is None or now >= self._token.refresh_at:
                answer = self.http.call(
                    "POST",
                    TOKEN_ENDPOINT,
                    AccessToken,
                    data={"grant_type": "client_credentials"},
                    auth=self._credentials,
                    base_url=self._accounts_base_url,
                )
                refresh_in = max(
                    answer.expires_in - TOKEN_REFRESH_MARGIN.total_seconds(),
                    answer.expires_in / 2,
                )
                self._token = _CachedToken(answer.access_token, now + refresh_in)
            return self._token.value

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == token:
                self._token = None

    def _classify(self, response: httpx.Response, endpoint: str, body: str) -> SourceError | None:
        status = response.status_code
        if endpoint == TOKEN_ENDPOINT and status in (400, 401):
            # {"error":"invalid_client"}: wrong client id or secret.
            return BadCredentials("spotify", endpoint, body, status_code=status)
        if status == 429:
            try:
                reason = json_field(response.json(), "error", "reason")
            except ValueError:
                reason = None
            if reason == "QUOTA_EXCEEDED":
                wait = parse_retry_after(response.headers.get("Retry-After"), self.clock())
                reset_at = (
                    datetime.fromtimestamp(self.clock() + wait, UTC) if wait is not None else None
                )
                return self.http.quota_exhausted(response, endpoint, body, reset_at)
        return None


class _Paging(Protocol[ItemT_co]):
    @property
    def items(self) -> Sequence[ItemT_co]: ...

    @property
    def next(self) -> str | None: ...


def _check_me_limit(limit: int) -> None:
    if not 1 <= limit <= ME_LIMIT_MAX:
        raise ValueError(f"limit must be between 1 and {ME_LIMIT_MAX}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
