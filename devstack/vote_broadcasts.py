"""The local stand-in for the production Supabase Cron job ``vote-broadcasts``.

In production pg_cron runs ``private.flush_vote_broadcasts`` every second
(``private.schedule_vote_broadcasts()``); the pg_cron 1.4 of the local cluster
only has minute schedules, so ``./dev up`` runs this loop instead: one flush at
the start of every interval window, each in its own transaction.

    python -m devstack.vote_broadcasts [--interval SECONDS]

The interval defaults to ``VOTE_BROADCAST_INTERVAL_SECONDS`` (1).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psycopg
from psycopg.rows import dict_row

from shared.config import get_settings
from shared.db import Connection
from shared.logging import configure_logging, get_logger

log = get_logger(__name__)

DEFAULT_INTERVAL_SECONDS = float(os.environ.get("VOTE_BROADCAST_INTERVAL_SECONDS", "1"))
RECONNECT_SECONDS = 2.0


@dataclass(frozen=True)
class Flush:
    """One flush: when it committed (``time.time()``) and the messages it sent
    (``{setlist_id, version, songs}`` each)."""

    committed_at: float
    messages: list[dict[str, Any]]


def flush_once(conn: Connection, interval_seconds: float) -> Flush:
    """Run one flush in its own transaction (``conn`` in autocommit mode)."""
    messages = conn.execute(
        "select * from private.flush_vote_broadcasts(make_interval(secs => %s))",
        [interval_seconds]).fetchall()
    return Flush(time.time(), messages)


def run(url: str, interval_seconds: float, stop: threading.Event,
        on_flush: Callable[[Flush], None] | None = None) -> None:
    """Flush at the start of every interval window until ``stop`` is set; a lost
    connection is logged and reopened."""
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                 prepare_threshold=None) as conn:
                while not stop.is_set():
                    flush = flush_once(conn, interval_seconds)
                    if on_flush is not None:
                        on_flush(flush)
                    # Sleep to the next window: the flush's windows are aligned on the epoch.
                    stop.wait(interval_seconds - time.time() % interval_seconds)
        except psycopg.OperationalError as error:
            log.warning("vote_broadcasts_connection_lost", error=type(error).__name__)
            stop.wait(RECONNECT_SECONDS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS,
                        help="seconds between broadcasts of one setlist")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    configure_logging()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("vote_broadcasts_started", interval_seconds=args.interval)
    run(get_settings().database_url, args.interval, stop)


if __name__ == "__main__":
    main()
