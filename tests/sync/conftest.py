"""Fixtures for the sync engine: a migrated database, source credentials in the
environment, every source client sleeping on a fake clock, and the upstream
APIs served by pytest-httpx with real-shaped payloads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpx import HTTPXMock

from shared.config import get_settings
from shared.sync import clients
from tests.sync.upstream import INTERNAL_SECRET, SleepRecorder, Upstream


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def sync_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, sleeps: SleepRecorder
) -> Iterator[str]:
    monkeypatch.setenv("TICKETMASTER_API_KEY", "tmKey8a7B6c5D4e3F2g1H0iJkLmNoPqRs")
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "theset-client-id")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "spotifySecret0f1e2d3c4b5a69788")
    monkeypatch.setenv("SETLISTFM_API_KEY", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
    monkeypatch.setenv("INTERNAL_SECRET", INTERNAL_SECRET)
    get_settings.cache_clear()
    clients.configure(sleep=sleeps.sleep)
    yield database_url
    clients.configure()
    get_settings.cache_clear()


@pytest.fixture
def upstream(httpx_mock: HTTPXMock, sync_env: str) -> Upstream:
    return Upstream(httpx_mock)
