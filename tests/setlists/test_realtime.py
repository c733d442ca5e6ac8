"""Vote broadcasts: one realtime.messages row per count change, on the
setlist's private topic, readable by anyone, sendable by no client."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from tests.setlists.helpers import build_stage, cast_vote, create_users, run_concurrently, scalar
from tests.support.db import Connection, create_user, request_as


def broadcasts(db: Connection) -> list[dict[str, object]]:
    return db.execute(
        "select topic, event, private, extension, payload from realtime.messages"
        " order by (payload ->> 'vote_count')::int, inserted_at").fetchall()


def test_one_message_per_count_change_with_topic_and_payload(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    fan, other = create_user(db), create_user(db)
    entry = stage.entries[1]
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, entry)
        cast_vote(conn, fan, entry)  # no change: no message
        cast_vote(conn, other, entry)
        cast_vote(conn, fan, entry, vote=False)
        cast_vote(conn, fan, entry, vote=False)  # no change: no message
    messages = db.execute(
        "select topic, event, private, extension, payload from realtime.messages"
        " order by inserted_at, id").fetchall()
    assert len(messages) == 3
    topic = f"setlist:{stage.setlist_id}"
    for message in messages:
        assert (message["topic"], message["event"], message["private"], message["extension"]) == (
            topic, "vote", True, "broadcast")
        payload = message["payload"]
        assert set(payload) == {"setlist_song_id", "vote_count", "id"}
        assert payload["setlist_song_id"] == str(entry)
        uuid.UUID(payload["id"])
    assert sorted(m["payload"]["vote_count"] for m in messages) == [1, 1, 2]


def test_concurrent_votes_announce_every_count_once(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    users = create_users(db, 200)
    entry = stage.entries[0]
    run_concurrently(database_url, users, lambda conn, user: cast_vote(conn, user, entry))
    counts = [m["payload"]["vote_count"] for m in broadcasts(db)]  # type: ignore[index]
    assert counts == list(range(1, 201))


def test_a_refused_or_rolled_back_vote_announces_nothing(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with request_as(database_url, "authenticated", fan) as conn:  # rolled back at the end
        conn.execute("select public.cast_vote(%s)", [stage.entries[0]])
    assert scalar(db, "select count(*) from realtime.messages") == 0


def test_anyone_may_receive_a_setlist_topic(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[0])
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
                " values (%s, 'broadcast', 'vote', '{\"vote_count\": 9999}', true)", [topic])
