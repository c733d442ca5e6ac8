"""Votes per second on one hot song, through the cast_vote RPC and over HTTP.

1. ``cast_vote`` through the RPC, exactly as PostgREST runs it (one
   pipelined transaction: request claims and role, ``select
   public.cast_vote(...)``, commit), by ``--clients`` concurrent clients (16),
   each a process with its own connection and its own voters (each votes once:
   no voter is used twice, in any round), all on one setlist song; against a
   plain ``UPDATE public.setlist_songs SET vote_count = vote_count + 1`` of one
   row of another setlist song, sent by as many clients as the same request
   (claims and role, here service_role, the API role allowed to update it; the
   statement; the commit), so that both sides do the same client work and the
   same transaction per call. Prints votes/s of both and their ratio.
2. The ``cast_vote`` function over HTTP: a real gunicorn server of
   ``devstack.server:build_app()`` on 127.0.0.1 (as ``./dev up`` runs it:
   gthread, 2 workers × 8 threads), ``--http-clients`` concurrent clients (50)
   for ``--http-seconds``, each request a distinct voter's first vote on one of
   the show's songs. Prints requests/s, p50 and p99 latency.

Throughout, the vote broadcast flush runs as ``./dev up`` runs it
(``devstack.vote_broadcasts``, every ``--broadcast-interval`` s, 1). Under the
RPC load it prints the messages per setlist per second on the hot song's
setlist, and the lag from a vote's commit to the broadcast that carries it
(p50, p99): the n-th vote to commit (by the time its client saw the commit)
is carried by the first message whose count of the song reaches n.

Both end by checking that every exact count equals its rows in ``votes``, and
that the last broadcast of each song carries it.

The database is a throw-away local cluster with the migrations applied
(durable settings: fsync and synchronous_commit on, as in production), or
``--database-url`` / ``DATABASE_URL`` (an already migrated database; the
benchmark leaves its demo rows there). Everything stops by itself.

    .venv/bin/python -m benchmarks.bench_votes [--seconds 5] [--http-seconds 10]
        [--broadcast-interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from devstack.cluster import free_port
from devstack.fixtures import BAND_OF_HORSES_SONGS
from devstack.migrate import PROJECT_ROOT
from devstack.scratch import scratch_database
from devstack.tokens import mint_local_token
from devstack.vote_broadcasts import Flush
from devstack.vote_broadcasts import run as run_broadcasts
from shared.db import Connection

MAX_SECONDS = 60.0
STARTUP_TIMEOUT = 60.0
SUPABASE_URL = "http://127.0.0.1:54321"
JWT_SECRET = "bench-only-jwt-secret-with-at-least-32-characters"  # noqa: S105 (local only)
# Real Band of Horses songs, as the tests use them.
SONGS = BAND_OF_HORSES_SONGS[:8]


@dataclass(frozen=True)
class Stage:
    hot: uuid.UUID  # the RPC's hot setlist song
    hot_setlist: uuid.UUID
    plain: uuid.UUID  # the plain UPDATE's row, another setlist's song
    http_songs: list[uuid.UUID]  # the HTTP phase's show's setlist songs


# -- the database -----------------------------------------------------------------


def _one(conn: Connection, sql: str, params: Sequence[object]) -> Any:
    row = conn.execute(sql, list(params)).fetchone()
    assert row is not None
    return next(iter(row.values()))


def prepare(url: str) -> Stage:
    """Three shows of one artist far ahead, their predicted setlists drawn by the RPC."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        suffix = uuid.uuid4().hex[:8]
        artist = _one(conn, "insert into public.artists (name) values (%s) returning id",
                      [f"Band of Horses (bench {suffix})"])
        for title in SONGS:
            conn.execute("insert into public.songs (artist_id, title) values (%s, %s)",
                         [artist, title])
        setlists = []
        for n, venue_name in enumerate(("Ryman Auditorium", "Red Rocks Amphitheatre",
                                        "The Fillmore"), start=1):
            venue = _one(conn, "insert into public.venues (name, city, country_code)"
                         " values (%s, %s, 'US') returning id", [f"{venue_name} {suffix}", "Bench"])
            show = _one(conn, "insert into public.shows (artist_id, venue_id, local_date)"
                        " values (%s, %s, current_date + %s) returning id",
                        [artist, venue, 100 + n])
            answer = _one(conn, "select public.create_setlist(%s, false)", [show])
            assert isinstance(answer, dict) and answer["status"] == "ready"
            setlists.append([uuid.UUID(s["setlist_song_id"]) for s in answer["songs"]])
            if n == 1:
                hot_setlist = uuid.UUID(answer["setlist_id"])
    return Stage(hot=setlists[0][0], hot_setlist=hot_setlist, plain=setlists[1][0],
                 http_songs=setlists[2])


def create_users(url: str, count: int) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data)"
            " select id, 'authenticated', 'authenticated', id::text || '@bench.example.com',"
            " '{\"provider\": \"email\"}', '{}'"
            " from (select gen_random_uuid() as id from generate_series(1, %s)) g returning id",
            [count]).fetchall()
    return [str(row[0]) for row in rows]


def counts_are_exact(url: str, songs: Sequence[uuid.UUID]) -> bool:
    """Every song's exact count equals its vote rows, and its last broadcast carries it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select bool_and(private.exact_vote_count(ss) = (select count(*) from public.votes v"
            "                                                where v.setlist_song_id = ss.id)"
            "                and private.exact_vote_count(ss) = coalesce(("
            "                  select (c ->> 'vote_count')::int"
            "                    from realtime.messages m,"
            "                         jsonb_array_elements(m.payload -> 'vote_counts') c"
            "                   where m.topic = 'setlist:' || ss.setlist_id::text"
            "                     and c ->> 'setlist_song_id' = ss.id::text"
            "                   order by (m.payload ->> 'version')::bigint desc limit 1), 0))"
            " from public.setlist_songs ss where ss.id = any(%s)", [list(songs)]).fetchone()
    return bool(row and row[0])


def hot_song_broadcasts(url: str, stage: Stage) -> dict[int, int]:
    """The hot song's count in each message of its setlist, by version."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select (m.payload ->> 'version')::bigint, (c ->> 'vote_count')::int"
            "  from realtime.messages m, jsonb_array_elements(m.payload -> 'vote_counts') c"
            " where m.topic = %s and c ->> 'setlist_song_id' = %s",
            [f"setlist:{stage.hot_setlist}", str(stage.hot)]).fetchall()
    return {int(version): int(count) for version, count in rows}


@dataclass
class Broadcasts:
    """The flush loop of the local stack, in a thread, keeping every flush."""

    url: str
    interval: float
    flushes: list[Flush] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(
            target=run_broadcasts, args=(self.url, self.interval, self.stop, self.flushes.append),
            daemon=True)

    def __enter__(self) -> Broadcasts:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # One more window, so that the last votes go out.
        time.sleep(self.interval * 1.5)
        self.stop.set()
        self.thread.join(timeout=STARTUP_TIMEOUT)

    def messages_per_second(self, setlist: uuid.UUID, started: float, ended: float) -> float:
        sent = sum(1 for f in self.flushes if started <= f.committed_at <= ended
                   for m in f.messages if m["setlist_id"] == setlist)
        return sent / (ended - started)

    def lags(self, setlist: uuid.UUID, counts_by_version: dict[int, int],
             commits: list[float]) -> list[float]:
        """Per vote of the hot song (they only add): the first message that counts it."""
        sent = sorted((int(m["version"]), f.committed_at) for f in self.flushes
                      for m in f.messages if m["setlist_id"] == setlist)
        counts = [counts_by_version[version] for version, _ in sent]  # never decreasing
        lags = []
        for n, committed in enumerate(sorted(commits), start=1):
            first = bisect_left(counts, n)
            if first < len(sent):
                lags.append(sent[first][1] - committed)
        return lags


# -- phase 1: the RPC against a plain UPDATE ---------------------------------------------

# A client's figures: its index, votes done, failed, when each commit came back.
Result = tuple[int, int, int, list[float]]


def _request(conn: psycopg.Connection[Any], claims: dict[str, str], sql: str,
             params: Sequence[object]) -> psycopg.Cursor[Any]:
    """One request as PostgREST runs it: a transaction setting the request's
    claims and role, the statement, the commit; in one round trip (``conn`` in
    autocommit mode, BEGIN and COMMIT sent in the pipeline), so that the commit
    follows the statement at once while it holds its row locks. (psycopg's
    ``transaction()`` inside a pipeline waits for the statement's results before
    it sends COMMIT: a round trip, plus the client's turn on a busy CPU, with the
    locks held; on the hot row that halves the plain UPDATE's rate.)"""
    try:
        with conn.pipeline():
            conn.execute("begin")
            conn.execute("select set_config('request.jwt.claims', %s, true),"
                         " set_config('role', %s, true)", [json.dumps(claims), claims["role"]])
            cursor = conn.execute(sql, params)
            conn.execute("commit")
    except psycopg.Error:
        conn.rollback()  # the failed statement left the transaction aborted
        raise
    return cursor


def _rpc_client(index: int, url: str, song: str, voters: list[str], barrier: Barrier,
                seconds: float, results: Queue[Result]) -> None:
    """Each voter's first vote for the song, as that voter (role authenticated)."""
    done = failed = 0
    commits: list[float] = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        barrier.wait()
        deadline = time.perf_counter() + seconds
        for voter in voters:
            if time.perf_counter() >= deadline:
                break
            claims = {"sub": voter, "role": "authenticated", "aud": "authenticated"}
            try:
                _request(conn, claims, "select public.cast_vote(%s, true)", [song])
                commits.append(time.time())
                done += 1
            except psycopg.Error:
                failed += 1
    results.put((index, done, failed, commits))


def _plain_client(index: int, url: str, song: str, voters: list[str], barrier: Barrier,
                  seconds: float, results: Queue[Result]) -> None:
    """The same request with a plain UPDATE +1 of one row in place of the RPC,
    as the backend's API role (service_role: the one allowed to update it)."""
    done = failed = 0
    claims = {"role": "service_role"}
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        barrier.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            cursor = _request(conn, claims, "update public.setlist_songs"
                              " set vote_count = vote_count + 1 where id = %s", [song])
            if cursor.rowcount == 1:
                done += 1
            else:
                failed += 1
    results.put((index, done, failed, []))


@dataclass(frozen=True)
class Round:
    rate: float  # votes per second over the clients' common measured window
    failed: int
    started: float  # time.time()
    ended: float
    commits: list[float]  # time.time() when each vote's commit came back


def run_clients(target: object, url: str, song: uuid.UUID, voters: list[list[str]],
                clients: int, seconds: float) -> Round:
    """``clients`` processes for ``seconds``; client i takes its voters from
    ``voters[i]`` (each voter once), and the voters it used are removed from it."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    results: Queue[Result] = context.Queue()
    processes = [context.Process(target=target,  # type: ignore[arg-type]
                                 args=(i, url, str(song), voters[i] if voters else [], barrier,
                                       seconds, results))
                 for i in range(clients)]
    for process in processes:
        process.start()
    barrier.wait(timeout=STARTUP_TIMEOUT)
    started, wall_started = time.perf_counter(), time.time()
    totals = [results.get(timeout=seconds + STARTUP_TIMEOUT) for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join(timeout=STARTUP_TIMEOUT)
    for index, done, failed, _ in totals:
        if voters:
            del voters[index][:done + failed]
    return Round(sum(d for _, d, _, _ in totals) / elapsed, sum(f for _, _, f, _ in totals),
                 wall_started, wall_started + elapsed, [t for _, _, _, c in totals for t in c])


# -- phase 2: the function over HTTP ---------------------------------------------------------


@contextmanager
def functions_server(url: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SUPABASE_URL": SUPABASE_URL,
           "SUPABASE_JWT_SECRET": JWT_SECRET, "INTERNAL_SECRET": uuid.uuid4().hex,
           "DATABASE_POOL_MAX_SIZE": "8"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "devstack.server:build_app()",
         "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "2",
         "--threads", "8", "--log-level", "warning"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the functions server did not start")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclass
class HttpFigures:
    requests: int
    failures: int
    elapsed: float
    latencies: list[float]


async def _http_load(base: str, work: list[tuple[str, str]], clients: int,
                     seconds: float) -> HttpFigures:
    latencies: list[float] = []
    failures = 0
    queue = iter(work)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal failures
            for token, song in queue:
                if time.perf_counter() >= deadline:
                    return
                sent = time.perf_counter()
                try:
                    response = await client.post(
                        "/cast_vote", json={"setlist_song_id": song},
                        headers={"Authorization": f"Bearer {token}"})
                    ok = response.status_code == 200
                except httpx.TransportError:
                    # A connection the server dropped (a gunicorn worker restarted
                    # under load): a failed request, not the end of the run.
                    ok = False
                latencies.append(time.perf_counter() - sent)
                if not ok:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return HttpFigures(len(latencies), failures, elapsed, latencies)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="each database phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="RPC and UPDATE phases, alternated")
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--http-clients", type=int, default=50)
    parser.add_argument("--voters", type=int, default=40_000,
                        help="distinct voters for the RPC phase (each votes once)")
    parser.add_argument("--broadcast-interval", type=float, default=1.0,
                        help="seconds between vote broadcasts of one setlist")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    seconds = min(args.seconds, MAX_SECONDS)
    http_seconds = min(args.http_seconds, MAX_SECONDS)

    with scratch_database(args.database_url) as url:
        stage = prepare(url)
        voters = create_users(url, args.voters)
        with psycopg.connect(url, autocommit=True) as conn:
            setting = conn.execute("select current_setting('synchronous_commit')").fetchone()
        print(f"cores {os.cpu_count()}, synchronous_commit {setting[0] if setting else '?'}")

        # Alternate the two a few times: a shared machine's noise hits both alike.
        rpc_rounds: list[Round] = []
        plain_rounds: list[Round] = []
        pools = [voters[i::args.clients] for i in range(args.clients)]  # voters left, per client
        with Broadcasts(url, args.broadcast_interval) as broadcasts:
            for _ in range(args.rounds):
                rpc = run_clients(_rpc_client, url, stage.hot, pools, args.clients, seconds)
                rpc_rounds.append(rpc)
                plain_rounds.append(run_clients(_plain_client, url, stage.plain, [],
                                                args.clients, seconds))
        rpc_rates = [r.rate for r in rpc_rounds]
        plain_rates = [r.rate for r in plain_rounds]
        rpc_rate, plain_rate = statistics.fmean(rpc_rates), statistics.fmean(plain_rates)
        per_second = statistics.fmean(
            broadcasts.messages_per_second(stage.hot_setlist, r.started, r.ended)
            for r in rpc_rounds)
        lags = broadcasts.lags(stage.hot_setlist, hot_song_broadcasts(url, stage),
                               [t for r in rpc_rounds for t in r.commits])
        commits = sum(len(r.commits) for r in rpc_rounds)
        exact = counts_are_exact(url, [stage.hot])
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("select count(*) from public.votes where setlist_song_id = %s",
                                [stage.hot]).fetchone()
        print(f"one hot song, {args.clients} clients, {args.rounds} rounds of {seconds:g} s each:")
        print(f"  cast_vote RPC          {rpc_rate:9.0f} votes/s   rounds:"
              f" {', '.join(f'{r:.0f}' for r in rpc_rates)}"
              f"   (failures: {sum(r.failed for r in rpc_rounds)})")
        print(f"  plain UPDATE +1        {plain_rate:9.0f} votes/s   rounds:"
              f" {', '.join(f'{r:.0f}' for r in plain_rates)}"
              f"   (failures: {sum(r.failed for r in plain_rounds)})")
        print(f"  ratio RPC / plain      {rpc_rate / plain_rate:9.2f}")
        print(f"broadcasts under that load (flush every {args.broadcast_interval:g} s):")
        print(f"  messages/setlist/s     {per_second:9.2f}   (hot setlist, RPC rounds)")
        if lags:
            print(f"  commit → broadcast p50 {percentile(lags, 0.50) * 1000:9.0f} ms")
            print(f"  commit → broadcast p99 {percentile(lags, 0.99) * 1000:9.0f} ms"
                  f"   ({len(lags)} of {commits} votes carried)")
        print(f"  exact == rows == last broadcast {exact};"
              f" rows == RPC commits {rows is not None and rows[0] == commits}")
        if min(len(pool) for pool in pools) < 10:
            print("  (warning: the RPC clients ran out of voters; raise --voters)")

        # A voter's first vote on each of the show's songs: 5 distinct votes per voter.
        http_voters = create_users(url, max(2_000, int(http_seconds * 1_000 / 5)))
        work = [(mint_local_token(voter, secret=JWT_SECRET, issuer=f"{SUPABASE_URL}/auth/v1"),
                 str(song)) for voter in http_voters for song in stage.http_songs]
        with Broadcasts(url, args.broadcast_interval), functions_server(url) as base:
            figures = asyncio.run(_http_load(base, work, args.http_clients, http_seconds))
        exact = counts_are_exact(url, stage.http_songs)
        print(f"cast_vote over HTTP (gunicorn gthread 2×8), {args.http_clients} clients,"
              f" {http_seconds:g} s:")
        print(f"  requests/s             {figures.requests / figures.elapsed:9.0f}"
              f"   ({figures.requests} requests, {figures.failures} not 200 or dropped)")
        print(f"  latency p50            {percentile(figures.latencies, 0.50) * 1000:9.1f} ms")
        print(f"  latency p99            {percentile(figures.latencies, 0.99) * 1000:9.1f} ms")
        print(f"  mean                   {statistics.fmean(figures.latencies) * 1000:9.1f} ms")
        print(f"  exact == rows == last broadcast {exact}")
        if figures.requests >= len(work):
            print("  (warning: the HTTP clients ran out of voters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
