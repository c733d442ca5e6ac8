"""Fixtures for the setlist function tests: the deployed app, token settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpx import HTTPXMock
from werkzeug.test import Client

from shared.auth import reset_jwks_cache
from shared.config import get_settings
from shared.sync import clients
from tests.support.functions import functions_app
from tests.sync.upstream import Upstream

SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
ISSUER = f"{SUPABASE_URL}/auth/v1"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
INTERNAL_SECRET = "internal-secret-for-database-webhooks-0123456789"


# The functions these tests call; mounted alone so that another function's
# work in progress cannot break them (tests/test_openapi.py mounts them all).
FUNCTIONS = ("health", "create_setlist", "cast_vote", "add_song")


@pytest.fixture(scope="session")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Client:
    """The setlist functions mounted at /<name>, as the local server serves them."""
    return Client(functions_app(tmp_path_factory.mktemp("functions"), FUNCTIONS))


@pytest.fixture
def client(app_client: Client, database_url: str, token_settings: None) -> Client:
    return app_client


@pytest.fixture
def token_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A project with the legacy HS256 secret (and JWKS) and an internal secret."""
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", HS_SECRET)
    monkeypatch.setenv("INTERNAL_SECRET", INTERNAL_SECRET)
    monkeypatch.delenv("SUPABASE_JWKS_URL", raising=False)
    get_settings.cache_clear()
    reset_jwks_cache()
    yield
    get_settings.cache_clear()
    reset_jwks_cache()


@pytest.fixture
def spotify(
    database_url: str, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Upstream]:
    """Spotify served by pytest-httpx with the real-shaped Band of Horses payloads."""
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "theset-client-id")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "spotifySecret0f1e2d3c4b5a69788")
    get_settings.cache_clear()
    clients.configure(sleep=lambda _seconds: None)
    yield Upstream(httpx_mock)
    clients.configure()
    get_settings.cache_clear()
