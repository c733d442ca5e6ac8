"""The source clients the sync engine uses, one of each per process.

Created on first use from the environment (``Settings``); ``configure`` lets
tests and scripts inject a sleep function (so retries and rate-limit waits
never sleep for real) or replace a client outright.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from shared.sources.http import Sleep
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient


@dataclass
class _Sources:
    sleep: Sleep = time.sleep
    ticketmaster: TicketmasterClient | None = None
    spotify: SpotifyClient | None = None
    setlistfm: SetlistFmClient | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_sources = _Sources()


def configure(*, sleep: Sleep = time.sleep) -> None:
    """Forget every client; the next ones are built with ``sleep`` (tests, after env changes)."""
    global _sources
    old = _sources
    _sources = _Sources(sleep=sleep)
    for client in (old.ticketmaster, old.spotify, old.setlistfm):
        if client is not None:
            client.close()


def ticketmaster() -> TicketmasterClient:
    with _sources.lock:
        if _sources.ticketmaster is None:
            _sources.ticketmaster = TicketmasterClient.from_settings(sleep=_sources.sleep)
        return _sources.ticketmaster


def spotify() -> SpotifyClient:
    with _sources.lock:
        if _sources.spotify is None:
            _sources.spotify = SpotifyClient.from_settings(sleep=_sources.sleep)
        return _sources.spotify


def setlistfm() -> SetlistFmClient:
    with _sources.lock:
        if _sources.setlistfm is None:
            _sources.setlistfm = SetlistFmClient.from_settings(sleep=_sources.sleep)
        return _sources.setlistfm
