"""Upstream calls per scenario, next to the minimum and to one call per request.

The functions run in this process (functions-framework apps, one client per
thread, as deployed instances would share the database) against a loopback
stub standing in for Ticketmaster and Spotify, answering after a realistic
latency; the stub counts every call. Scenarios:

* search burst: 10 fans type "band of horses" letter by letter at the same
  time, each query sent as typed (debounced clients would send fewer);
* 20 concurrent imports: 20 requests for one new artist by Ticketmaster id;
* one client looping over search: 300 distinct queries from one address;
* request share spent: searches once today's request share is gone
  (answered from our own artists, no call).

Usage: ``python -m benchmarks.bench_upstream_calls [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from werkzeug.test import Client

from devstack.migrate import PROJECT_ROOT
from devstack.scratch import scratch_database
from devstack.server import FUNCTIONS_DIR, build_app
from devstack.stub_server import StubServer, stub_server
from shared import db
from shared.config import get_settings
from shared.sync import clients

# The real-shaped payloads the source tests use (data files, not test code).
PAYLOADS = PROJECT_ROOT / "tests" / "sources" / "payloads"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


TM_ID = "K8vZ9171ob7"
SPOTIFY_ID = "0OdUWJ0sBjDrqHygGUXeCF"
ROUTES = {
    "/discovery/v2/attractions.json": payload("tm_attractions_search.json"),
    f"/discovery/v2/attractions/{TM_ID}.json": payload("tm_attraction.json"),
    f"/v1/artists/{SPOTIFY_ID}": payload("spotify_search_artists.json")["artists"]["items"][0],
    "/api/token": payload("spotify_token.json"),
}


@contextmanager
def environment(url: str, stub: StubServer, **extra: str) -> Iterator[None]:
    values = {
        "DATABASE_URL": url,
        "TICKETMASTER_API_KEY": "bench-ticketmaster-key",
        "TICKETMASTER_BASE_URL": f"{stub.base_url}/discovery/v2",
        "SPOTIFY_CLIENT_ID": "bench-client",
        "SPOTIFY_CLIENT_SECRET": "bench-secret",
        "SPOTIFY_API_BASE_URL": f"{stub.base_url}/v1",
        "SPOTIFY_ACCOUNTS_BASE_URL": stub.base_url,
        "INTERNAL_SECRET": "bench-internal-secret",
        **extra,
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    db.close_pool()
    clients.configure()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        db.close_pool()
        clients.configure()


def calls(stub: StubServer, path: str) -> int:
    with stub.lock:
        return sum(1 for arrived, _ in stub.arrivals if arrived == path)


def all_calls(stub: StubServer) -> int:
    with stub.lock:
        return sum(1 for path, _ in stub.arrivals if path != "/api/token")


def concurrently(app: Any, work: list[Callable[[Client], int]]) -> list[int]:
    barrier = threading.Barrier(len(work))

    def one(job: Callable[[Client], int]) -> int:
        client = Client(app)
        barrier.wait()
        return job(client)

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return list(pool.map(one, work))


def row(name: str, requests: int, upstream: int, minimum: int, note: str = "") -> None:
    print(f"  {name:34s} {requests:9d} {upstream:9d} {minimum:9d}   {note}")


def search_burst(app: Any, stub: StubServer) -> None:
    typed = "band of horses"
    prefixes = [typed[:n] for n in range(1, len(typed) + 1)]

    def fan(address: str) -> Callable[[Client], int]:
        def type_it(client: Client) -> int:
            for prefix in prefixes:
                client.get("/search_artists", query_string={"q": prefix},
                           headers={"X-Forwarded-For": address})
            return len(prefixes)
        return type_it

    before = all_calls(stub)
    sent = sum(concurrently(app, [fan(f"198.51.100.{i}") for i in range(1, 11)]))
    with db.transaction() as conn:
        distinct = conn.execute(
            "select count(distinct private.name_key(q)) as n from unnest(%s::text[]) as q",
            [prefixes]).fetchone()
    minimum = int(distinct["n"]) if distinct else 0
    row("search burst (10 fans typing)", sent, all_calls(stub) - before, minimum,
        "minimum: one call per distinct normalised query")


def concurrent_imports(app: Any, stub: StubServer) -> None:
    def ask(client: Client) -> int:
        return client.post("/sync_artist", json={"ticketmaster_id": TM_ID}).status_code

    tm_path = f"/discovery/v2/attractions/{TM_ID}.json"
    sp_path = f"/v1/artists/{SPOTIFY_ID}"
    tm_before, sp_before = calls(stub, tm_path), calls(stub, sp_path)
    statuses = concurrently(app, [ask] * 20)
    tm, sp = calls(stub, tm_path) - tm_before, calls(stub, sp_path) - sp_before
    row("20 concurrent imports: attraction", 20, tm, 1)
    row("20 concurrent imports: Spotify", 20, sp, 1,
        "answers " + ", ".join(f"{s}×{statuses.count(s)}" for s in sorted(set(statuses))))


def one_client_loops(app: Any, stub: StubServer) -> None:
    client = Client(app)
    before = all_calls(stub)
    started = time.monotonic()
    statuses = [client.get("/search_artists", query_string={"q": f"script query {i}"},
                           headers={"X-Forwarded-For": "203.0.113.66"}).status_code
                for i in range(300)]
    elapsed = time.monotonic() - started
    settings = get_settings()
    allowed = settings.client_search_burst + int(settings.client_search_per_minute * elapsed / 60)
    row("one client, 300 distinct searches", 300, all_calls(stub) - before, allowed,
        f"429 × {statuses.count(429)} in {elapsed:.0f} s; minimum here: the budget"
        f" ({settings.client_search_burst} at once, then {settings.client_search_per_minute:g}"
        "/min)")


def share_spent(app: Any, stub: StubServer) -> None:
    with db.transaction() as conn:
        conn.execute("insert into public.artists (name) values ('Band of Horses')"
                     " on conflict do nothing")
        conn.execute("update private.source_daily_quotas set request_calls = 1000000"
                     " where provider = 'ticketmaster'")
    client = Client(app)
    before = all_calls(stub)
    # Not cached by the burst above: each of these asks Ticketmaster, or would.
    answers = [client.get("/search_artists", query_string={"q": query},
                          headers={"X-Forwarded-For": f"192.0.2.{i}"})
               for i, query in enumerate(["hors", "horse", "horses", "of hor", "of horses"],
                                         start=1)]
    local = sum(1 for a in answers if a.status_code == 200 and a.json
                and a.json["source"] == "local")
    row("request share spent: 5 searches", 5, all_calls(stub) - before, 0,
        f"{local} answered from our own artists")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a migrated database (default: a scratch one)")
    parser.add_argument("--latency", type=float, default=0.15, help="stub answer time, s")
    args = parser.parse_args()
    with scratch_database(args.database_url) as url, stub_server(ROUTES) as stub:
        stub.delay_seconds = args.latency
        with environment(url, stub):
            app = build_app(FUNCTIONS_DIR)
            print(f"upstream calls per scenario (stub latency {args.latency:g} s)")
            print(f"  {'scenario':34s} {'requests':>9s} {'upstream':>9s} {'minimum':>9s}")
            search_burst(app, stub)
            concurrent_imports(app, stub)
            one_client_loops(app, stub)
            share_spent(app, stub)


if __name__ == "__main__":
    main()
