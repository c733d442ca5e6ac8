"""Vote broadcasts: coalesced per setlist per interval by the flush, absolute
counts of every changed song, versions that only grow, nothing missed whatever
the commit order; on the setlist's private topic, readable by anyone, sendable
by no client."""

from __future__ import annotations

import random
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from tests.setlists.helpers import (
    act_as_user,
    build_stage,
    cast_vote,
    create_users,
    exact_count,
    flush,
    last_broadcast_counts,
    run_concurrently,
    scalar,
    vote_messages,
)
from tests.support.db import Connection, create_user, request_as


def test_votes_of_one_interval_make_one_message_with_the_final_counts(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    users = create_users(db, 30)
    entries = stage.entries
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        for n, user in enumerate(users):
            cast_vote(conn, user, entries[n % 3])
        cast_vote(conn, users[0], entries[0], vote=False)
    # Votes send nothing themselves; the page has exact counts before any message.
    assert scalar(db, "select count(*) from realtime.messages") == 0
    page = scalar(db, "select public.get_show_page(%s)", [stage.show_id])["predicted_setlist"]
    assert page["broadcast_version"] == 0
    assert [s["vote_count"] for s in page["songs"]] == [10, 10, 9, 0, 0]

    sent = flush(db)
    assert sent == [{"setlist_id": stage.setlist_id, "version": 1, "songs": 3}]
    messages = db.execute(
        "select topic, event, private, extension, payload from realtime.messages").fetchall()
    assert len(messages) == 1
    message = messages[0]
    assert (message["topic"], message["event"], message["private"], message["extension"]) == (
        f"setlist:{stage.setlist_id}", "vote_counts", True, "broadcast")
    payload = message["payload"]
    assert set(payload) == {"setlist_id", "version", "vote_counts", "id"}
    assert (payload["setlist_id"], payload["version"]) == (str(stage.setlist_id), 1)
    # Absolute counts of the changed songs only; untouched songs are not sent.
    assert {c["setlist_song_id"]: c["vote_count"] for c in payload["vote_counts"]} == {
        str(entries[0]): 9, str(entries[1]): 10, str(entries[2]): 10}
    # The broadcast count is also what setlist_songs.vote_count now holds.
    assert [r["vote_count"] for r in db.execute(
        "select vote_count from public.setlist_songs where setlist_id = %s order by position",
        [stage.setlist_id]).fetchall()] == [9, 10, 10, 0, 0]
    page = scalar(db, "select public.get_show_page(%s)", [stage.show_id])["predicted_setlist"]
    assert page["broadcast_version"] == 1
    # Nothing changed since: nothing to send.
    assert flush(db) == []


def test_at_most_one_message_per_setlist_per_interval(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    other = build_stage(db, artist_name="Band of Horses", venue_name="Ryman Auditorium")
    fans = create_users(db, 4)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fans[0], stage.entries[0])
        cast_vote(conn, fans[0], other.entries[0])
        with db.transaction():  # one transaction: one moment, one interval window
            assert {r["setlist_id"] for r in flush(db, "1 hour")} == {
                stage.setlist_id, other.setlist_id}
            # Commits during the window (on another song: the slot the flush
            # cleared stays locked until the flush commits).
            cast_vote(conn, fans[1], stage.entries[1])
            assert flush(db, "1 hour") == []
            assert flush(db, "1 hour") == []
    assert [m["version"] for m in vote_messages(db, stage.setlist_id)] == [1]
    assert [m["version"] for m in vote_messages(db, other.setlist_id)] == [1]
    # The next window sends the change that waited, as version 2.
    time.sleep(0.25)
    assert flush(db, "200 milliseconds") == [
        {"setlist_id": stage.setlist_id, "version": 2, "songs": 1}]
    assert vote_messages(db, stage.setlist_id)[-1]["vote_counts"] == [
        {"setlist_song_id": str(stage.entries[1]), "vote_count": 1}]


def test_a_vote_committing_after_a_later_one_goes_out_with_the_next_message(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    early, late, first = create_users(db, 3)
    x, y = stage.entries[0], stage.entries[1]
    with psycopg.connect(database_url, row_factory=dict_row) as slow, psycopg.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as fast:
        # A committed vote on x through the slow connection's backend (its slot).
        with slow.transaction():
            act_as_user(slow, first)
            slow.execute("select public.cast_vote(%s)", [x])
        assert flush(db, "100 milliseconds")[0]["version"] == 1
        time.sleep(0.15)
        # The slow vote starts first and holds x's slot; the fast one commits first.
        with slow.transaction():
            act_as_user(slow, early)
            slow.execute("select public.cast_vote(%s)", [x])
            cast_vote(fast, late, y)
            assert flush(db, "100 milliseconds")[0]["version"] == 2
            assert vote_messages(db, stage.setlist_id)[-1]["vote_counts"] == [
                {"setlist_song_id": str(y), "vote_count": 1}]
        time.sleep(0.15)
        assert flush(db, "100 milliseconds")[0]["version"] == 3
    assert vote_messages(db, stage.setlist_id)[-1]["vote_counts"] == [
        {"setlist_song_id": str(x), "vote_count": 2}]


def test_a_slot_held_by_a_vote_in_flight_is_sent_once_that_vote_commits(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    first, second = create_users(db, 2)
    x = stage.entries[0]
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        with conn.transaction():
            act_as_user(conn, first)
            conn.execute("select public.cast_vote(%s)", [x])
        # x's slot is dirty and committed, but this backend holds it for a second vote.
        with conn.transaction():
            act_as_user(conn, second)
            conn.execute("select public.cast_vote(%s)", [x])
            assert flush(db, "100 milliseconds") == []
        assert flush(db, "100 milliseconds")[0]["version"] == 1
    assert last_broadcast_counts(db, stage.setlist_id) == {str(x): 2}


def test_a_flush_running_while_votes_commit_misses_no_change(
    database_url: str, db: Connection
) -> None:
    stages = [build_stage(db), build_stage(db, venue_name="Ryman Auditorium")]
    users = create_users(db, 150)
    rng = random.Random(10)
    entries = [entry for stage in stages for entry in stage.entries[:4]]
    tasks = [(rng.choice(users), rng.choice(entries), rng.random() < 0.75) for _ in range(1500)]
    every = "50 milliseconds"
    voting = threading.Event()
    voting.set()
    flushes: list[int] = []

    def flusher() -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            while voting.is_set():
                flushes.append(len(flush(conn, every)))

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        results = run_concurrently(
            database_url, tasks, lambda conn, task: cast_vote(conn, task[0], task[1], task[2]),
            connections=24)
    finally:
        voting.clear()
        thread.join()
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(flushes) > 2  # messages went out while votes committed
    time.sleep(0.06)
    flush(db, every)  # the one after the last vote

    for stage in stages:
        messages = vote_messages(db, stage.setlist_id)
        assert [m["version"] for m in messages] == list(range(1, len(messages) + 1))
        # Every song that got a vote is in the last message that carried it, with its
        # exact count, which is also its number of vote rows.
        last = last_broadcast_counts(db, stage.setlist_id)
        voted = {str(e) for e in stage.entries[:4] if any(t[1] == e for t in tasks)}
        assert set(last) == voted
        for entry in stage.entries[:4]:
            rows = scalar(db, "select count(*) from public.votes where setlist_song_id = %s",
                          [entry])
            assert last[str(entry)] == exact_count(db, entry) == rows
        # At most one message per interval window on each topic.
        windows = db.execute(
            "select date_bin(%s::interval, inserted_at, timestamp '2000-01-01') as w, count(*)"
            " from realtime.messages where topic = %s group by 1 having count(*) > 1",
            [every, f"setlist:{stage.setlist_id}"]).fetchall()
        assert windows == []
    assert scalar(db, "select count(*) from private.vote_tallies where dirty") == 0


def test_a_rolled_back_vote_announces_nothing(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with request_as(database_url, "authenticated", fan) as conn:  # rolled back at the end
        conn.execute("select public.cast_vote(%s)", [stage.entries[0]])
    assert flush(db) == []
    assert scalar(db, "select count(*) from realtime.messages") == 0


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_cannot_flush(database_url: str, db: Connection, role: str) -> None:
    user = create_user(db) if role == "authenticated" else None
    with request_as(database_url, role, user) as conn, pytest.raises(
        errors.InsufficientPrivilege
    ):
        conn.execute("select * from private.flush_vote_broadcasts()")


def test_anyone_may_receive_a_setlist_topic(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[0])
    flush(db)
    topic = f"setlist:{stage.setlist_id}"
    # Realtime authorises a join by reading realtime.messages as the client,
    # with realtime.topic set to the channel's topic.
    for role, user in (("anon", None), ("authenticated", create_user(db))):
        with request_as(database_url, role, user) as conn:
            conn.execute("select set_config('realtime.topic', %s, true)", [topic])
            assert len(conn.execute("select * from realtime.messages").fetchall()) == 1
            for other in (f"setlist:{uuid.uuid4()}", "setlist:not-a-uuid", "admin"):
                conn.execute("select set_config('realtime.topic', %s, true)", [other])
                assert conn.execute("select * from realtime.messages").fetchall() == []


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_no_client_may_send_on_a_setlist_topic(
    database_url: str, db: Connection, role: str
) -> None:
    stage = build_stage(db)
    user = create_user(db) if role == "authenticated" else None
    topic = f"setlist:{stage.setlist_id}"
    with request_as(database_url, role, user) as conn:
        conn.execute("select set_config('realtime.topic', %s, true)", [topic])
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "insert into realtime.messages (topic, extension, event, payload, private)"
                " values (%s, 'broadcast', 'vote_counts', '{\"version\": 9999}', true)", [topic])


def test_the_production_schedule_runs_the_flush_at_the_interval(db: Connection) -> None:
    # A whole-minute interval is a classic cron schedule, which pg_cron 1.4 here runs.
    job = scalar(db, "select private.schedule_vote_broadcasts('2 minutes')")
    row = db.execute("select schedule, command from cron.job where jobid = %s", [job]).fetchone()
    assert row == {"schedule": "*/2 * * * *",
                   "command": "select private.flush_vote_broadcasts('00:02:00'::interval)"}
    assert scalar(db, "select private.unschedule_vote_broadcasts()") is True
    assert scalar(db, "select private.unschedule_vote_broadcasts()") is False
    # Seconds go to pg_cron as '<n> seconds', which Supabase Cron (pg_cron >= 1.5)
    # accepts and the pg_cron 1.4 here refuses.
    with pytest.raises(psycopg.Error, match="1 seconds"):
        db.execute("select private.schedule_vote_broadcasts()")
    for bad in ("1.5 seconds", "90 seconds", "2 hours"):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute("select private.schedule_vote_broadcasts(%s::interval)", [bad])
