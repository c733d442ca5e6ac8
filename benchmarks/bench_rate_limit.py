"""Request rate achieved per source by concurrent worker processes sharing the database limiter.

Starts a loopback stub server standing in for Ticketmaster, Spotify and
setlist.fm, then ``--workers`` processes (4 by default) that each call every
provider as fast as the shared limiter lets them for ``--seconds``. Reports,
per provider, the rate the stub server saw against the configured limit: the
most requests in any one-second window must not exceed the limit, and the
average rate must be within 10% of it.

The database is a throw-away local cluster with the migrations applied, or
``--database-url`` (an already migrated database). Everything stops by itself.

    .venv/bin/python -m benchmarks.bench_rate_limit [--seconds 10] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

from devstack.scratch import scratch_database
from devstack.stub_server import most_in_any_window, stamp_send_time, stub_server
from shared.config import get_settings
from shared.sources.calllog import ApiCall
from shared.sources.errors import Provider
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient

MAX_SECONDS = 120.0
STARTUP_TIMEOUT = 60.0
PREFIXES: dict[Provider, str] = {
    "ticketmaster": "/tm/",
    "spotify": "/spotify/",
    "setlistfm": "/setlistfm/",
}
PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "sources" / "payloads"


class QuietObserver:
    """The benchmark measures the limiter; the call log would only add noise to stdout."""

    def record(self, call: ApiCall) -> None:
        del call


def routes() -> dict[str, object]:
    def load(name: str) -> object:
        return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))

    return {
        "/tm/venues/KovZpZAEvAJA.json": load("tm_venue.json"),
        "/spotify-accounts/api/token": load("spotify_token.json"),
        "/spotify/artists/0OdUWJ0sBjDrqHygGUXeCF": load("spotify_artist_devmode.json"),
        "/setlistfm/setlist/4b943b7a": load("setlistfm_setlist_nested.json"),
    }


def worker(barrier: Barrier, seconds: float) -> None:
    """One worker process: a thread per provider, calling for ``seconds`` once all are ready."""
    observer = QuietObserver()
    tm = TicketmasterClient.from_settings(observer=observer)
    spotify = SpotifyClient.from_settings(observer=observer)
    setlistfm = SetlistFmClient.from_settings(observer=observer)
    for client in (tm.http.client, spotify.http.client, setlistfm.http.client):
        stamp_send_time(client)
    calls: list[Callable[[], object]] = [
        lambda: tm.get_venue("KovZpZAEvAJA"),
        lambda: spotify.get_artist("0OdUWJ0sBjDrqHygGUXeCF"),
        lambda: setlistfm.get_setlist("4b943b7a"),
    ]
    barrier.wait(timeout=STARTUP_TIMEOUT)
    deadline = time.monotonic() + seconds

    def loop(call: Callable[[], object]) -> None:
        while time.monotonic() < deadline:
            call()

    threads = [threading.Thread(target=loop, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass(frozen=True)
class Figure:
    provider: Provider
    limit: float
    requests: int
    rate: float
    # Most requests in any one second, by the clients' send times (what the
    # limiter controls) and by the stub's arrival times (adds the stub's own
    # scheduling delays, large on a loaded machine).
    busiest_second_sent: int
    busiest_second_arrived: int

    @property
    def ok(self) -> bool:
        return (
            self.busiest_second_sent <= self.limit and 0.9 * self.limit <= self.rate <= self.limit
        )


def figure(provider: Provider, limit: float, sent: list[float], arrived: list[float]) -> Figure:
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    rate = (len(sent) - 1) / span if span > 0 else 0.0
    return Figure(
        provider, limit, len(sent), rate, most_in_any_window(sent), most_in_any_window(arrived)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), MAX_SECONDS)

    with (
        scratch_database(args.database_url, settings={"fsync": "off"}) as database_url,
        stub_server(routes()) as server,
    ):
        os.environ.update(
            DATABASE_URL=database_url,
            TICKETMASTER_API_KEY="bench-ticketmaster-key",
            TICKETMASTER_BASE_URL=f"{server.base_url}/tm",
            SPOTIFY_CLIENT_ID="bench-client",
            SPOTIFY_CLIENT_SECRET="bench-secret",  # noqa: S106 - the stub accepts anything
            SPOTIFY_API_BASE_URL=f"{server.base_url}/spotify",
            SPOTIFY_ACCOUNTS_BASE_URL=f"{server.base_url}/spotify-accounts",
            SETLISTFM_API_KEY="bench-setlistfm-key",
            SETLISTFM_BASE_URL=f"{server.base_url}/setlistfm",
        )
        get_settings.cache_clear()
        settings = get_settings()
        limits: dict[Provider, float] = {
            "ticketmaster": settings.ticketmaster_requests_per_second,
            "spotify": settings.spotify_requests_per_second,
            "setlistfm": settings.setlistfm_requests_per_second,
        }
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(args.workers + 1)
        processes = [
            context.Process(target=worker, args=(barrier, seconds)) for _ in range(args.workers)
        ]
        for process in processes:
            process.start()
        try:
            barrier.wait(timeout=STARTUP_TIMEOUT)
            for process in processes:
                # A call in flight at the deadline may still wait for its slot and retry.
                process.join(timeout=seconds + 60)
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        figures = [
            figure(
                provider,
                limits[provider],
                server.sent_times(PREFIXES[provider]),
                server.arrival_times(PREFIXES[provider]),
            )
            for provider in limits
        ]

    print(f"{args.workers} worker processes, {seconds:.0f} s, limiter: Postgres reserve_rate_slot")
    print(
        f"{'provider':<13}{'limit/s':>8}{'requests':>10}{'rate/s':>9}{'of limit':>10}"
        f"{'max/1s sent':>13}{'max/1s arrived':>16}  verdict"
    )
    for f in figures:
        print(
            f"{f.provider:<13}{f.limit:>8.2f}{f.requests:>10}{f.rate:>9.2f}"
            f"{f.rate / f.limit:>10.1%}{f.busiest_second_sent:>13}{f.busiest_second_arrived:>16}"
            f"  {'ok' if f.ok else 'FAIL'}"
        )
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
