"""Fixtures for the discovery functions: source credentials and token settings in the
environment, source clients that never sleep, and the two functions served as deployed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from shared.config import get_settings
from shared.sync import clients
from tests.support.functions import functions_app

TM_KEY = "tmKey8a7B6c5D4e3F2g1H0iJkLmNoPqRs"
JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
FUNCTIONS = ("search_artists", "sync_my_artists")


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def discovery_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> Iterator[str]:
    monkeypatch.setenv("TICKETMASTER_API_KEY", TM_KEY)
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "theset-client-id")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "spotifySecret0f1e2d3c4b5a69788")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    get_settings.cache_clear()
    clients.configure(sleep=sleeps.sleep)
    yield database_url
    clients.configure()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return functions_app(tmp_path_factory.mktemp("functions"), FUNCTIONS)


@pytest.fixture
def client(app: Any, discovery_env: str) -> Client:
    return Client(app)
