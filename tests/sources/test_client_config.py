"""Clients built from the settings: base URLs, rates, timeouts, kept-alive connections."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from devstack.stub_server import stub_server
from shared.config import Settings
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.conftest import (
    SETLISTFM_KEY,
    SPOTIFY_SECRET,
    TM_KEY,
    CollectingObserver,
    NoWaitLimiter,
    payload,
)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ticketmaster_api_key": SecretStr(TM_KEY),
        "spotify_client_id": "theset-client-id",
        "spotify_client_secret": SecretStr(SPOTIFY_SECRET),
        "setlistfm_api_key": SecretStr(SETLISTFM_KEY),
        **overrides,
    }
    return Settings.model_validate(values)


def test_defaults_are_the_real_services() -> None:
    configured = settings()
    with (
        TicketmasterClient.from_settings(configured, limiter=NoWaitLimiter()) as tm,
        SpotifyClient.from_settings(configured, limiter=NoWaitLimiter()) as spotify,
        SetlistFmClient.from_settings(configured, limiter=NoWaitLimiter()) as setlistfm,
    ):
        assert tm.http.base_url == "https://app.ticketmaster.com/discovery/v2"
        assert spotify.http.base_url == "https://api.spotify.com/v1"
        assert setlistfm.http.base_url == "https://api.setlist.fm/rest/1.0"
        assert (tm.http.requests_per_second, setlistfm.http.requests_per_second) == (5.0, 2.0)


def test_rates_and_timeouts_come_from_the_settings() -> None:
    configured = settings(
        spotify_requests_per_second=3.5, http_timeout_seconds=4.0, setlistfm_requests_per_second=1
    )
    with (
        SpotifyClient.from_settings(configured, limiter=NoWaitLimiter()) as spotify,
        SetlistFmClient.from_settings(configured, limiter=NoWaitLimiter()) as setlistfm,
    ):
        assert spotify.http.requests_per_second == 3.5
        assert setlistfm.http.requests_per_second == 1.0
        timeout = spotify.http.client.timeout
        assert (timeout.read, timeout.write, timeout.pool) == (4.0, 4.0, 4.0)
        assert timeout.connect == 4.0


def test_every_phase_of_a_request_has_a_timeout() -> None:
    with TicketmasterClient.from_settings(settings(), limiter=NoWaitLimiter()) as tm:
        timeout = tm.http.client.timeout
    assert isinstance(timeout, httpx.Timeout)
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)


def test_connections_are_kept_alive_between_calls() -> None:
    routes = {
        "/tm/venues/KovZpZAEvAJA.json": payload("tm_venue.json"),
        "/setlistfm/setlist/4b943b7a": payload("setlistfm_setlist_nested.json"),
    }
    with stub_server(routes) as server:
        configured = settings(
            ticketmaster_base_url=f"{server.base_url}/tm",
            setlistfm_base_url=f"{server.base_url}/setlistfm",
        )
        observer = CollectingObserver()
        with (
            TicketmasterClient.from_settings(
                configured, limiter=NoWaitLimiter(), observer=observer
            ) as tm,
            SetlistFmClient.from_settings(
                configured, limiter=NoWaitLimiter(), observer=observer
            ) as setlistfm,
        ):
            for _ in range(3):
                tm.get_venue("KovZpZAEvAJA")
                setlistfm.get_setlist("4b943b7a")
        ports = list(server.client_ports)

    # Two clients, two connections, six requests.
    assert len(ports) == 6
    assert len(set(ports)) == 2
    assert [c.outcome for c in observer.calls] == ["ok"] * 6


def test_the_max_slot_wait_comes_from_the_settings_or_the_caller() -> None:
    assert settings().source_max_slot_wait_seconds == 10.0
    configured = settings(source_max_slot_wait_seconds=3.5)
    with (
        TicketmasterClient.from_settings(configured, limiter=NoWaitLimiter()) as tm,
        SpotifyClient.from_settings(configured, limiter=NoWaitLimiter()) as spotify,
        SetlistFmClient.from_settings(
            configured, limiter=NoWaitLimiter(), max_slot_wait_seconds=120
        ) as setlistfm,
    ):
        assert tm.http.retry.max_slot_wait_seconds == 3.5
        assert spotify.http.retry.max_slot_wait_seconds == 3.5
        # A queue worker's longer wait, passed by the caller.
        assert setlistfm.http.retry.max_slot_wait_seconds == 120


def test_setlistfm_keeps_its_two_second_429_wait_when_built_from_the_settings() -> None:
    # setlist.fm's gateway sends no Retry-After; the settings only bound the slot wait.
    with (
        SetlistFmClient.from_settings(settings(), limiter=NoWaitLimiter()) as setlistfm,
        TicketmasterClient.from_settings(settings(), limiter=NoWaitLimiter()) as tm,
    ):
        assert setlistfm.http.retry.rate_limited_wait_seconds == 2.0
        assert setlistfm.http.retry.max_slot_wait_seconds == 10.0
        assert tm.http.retry.rate_limited_wait_seconds == 1.0
