"""The local flush loop (what Supabase Cron runs in production): votes reach the
setlist's topic within an interval, one message per setlist per window."""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg.rows import dict_row

from devstack.vote_broadcasts import Flush, run
from tests.setlists.helpers import build_stage, cast_vote, create_users, vote_messages
from tests.support.db import Connection


def test_the_loop_broadcasts_votes_within_an_interval(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    users = create_users(db, 12)
    stop = threading.Event()
    flushes: list[Flush] = []
    loop = threading.Thread(target=run, args=(database_url, 0.2, stop, flushes.append))
    loop.start()
    try:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            for user in users:
                cast_vote(conn, user, stage.entries[0])
                time.sleep(0.05)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            messages = vote_messages(db, stage.setlist_id)
            if messages and messages[-1]["vote_counts"][0]["vote_count"] == 12:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert messages[-1]["vote_counts"] == [
        {"setlist_song_id": str(stage.entries[0]), "vote_count": 12}]
    # 12 votes over about 0.6 s: a few messages, not one per vote.
    assert 1 <= len(messages) < 12
    sent = [m for f in flushes for m in f.messages]
    assert [m["version"] for m in sent] == list(range(1, len(messages) + 1))
