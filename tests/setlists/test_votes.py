"""cast_vote and the vote count: one vote per user per song, exact counts under
concurrency and cascades, limits, and no way around the RPC."""

from __future__ import annotations

import random
import uuid

import psycopg
import pytest
from psycopg import errors

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
)
from tests.support.db import Connection, create_user, request_as


def count_of(db: Connection, entry: uuid.UUID) -> int:
    return exact_count(db, entry)


def rows_of(db: Connection, entry: uuid.UUID) -> int:
    value: int = scalar(db, "select count(*) from public.votes where setlist_song_id = %s", [entry])
    return value


def test_vote_then_vote_again_is_a_no_op(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    user = create_user(db)
    entry = stage.entries[0]
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        first = cast_vote(conn, user, entry)
        second = cast_vote(conn, user, entry)
    expected = {
        "setlist_song_id": str(entry), "setlist_id": str(stage.setlist_id),
        "show_id": str(stage.show_id), "vote_count": 1, "voted": True, "votes_used": 1,
        "votes_limit": 10,
    }
    assert first == expected
    assert second == expected
    assert count_of(db, entry) == 1 == rows_of(db, entry)


def test_unvote_removes_the_vote_and_twice_is_a_no_op(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan, other = create_user(db), create_user(db)
    entry = stage.entries[2]
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        cast_vote(conn, fan, entry)
        assert cast_vote(conn, other, entry)["vote_count"] == 2
        first = cast_vote(conn, fan, entry, vote=False)
        second = cast_vote(conn, fan, entry, vote=False)
    assert first == second
    assert (first["vote_count"], first["voted"], first["votes_used"]) == (1, False, 0)
    assert count_of(db, entry) == 1 == rows_of(db, entry)
    voters = db.execute("select user_id from public.votes").fetchall()
    assert voters == [{"user_id": other}]


def test_the_voter_is_the_token_holder_never_an_argument(database_url: str, db: Connection) -> None:
    # There is no parameter to name another user: the only way to vote is as auth.uid().
    signature = scalar(db, "select pg_get_function_identity_arguments('public.cast_vote'::regproc)")
    assert signature == "setlist_song_id uuid, vote boolean"
    stage = build_stage(db)
    fan = create_user(db)
    with request_as(database_url, "authenticated", fan, commit=True) as conn:
        conn.execute("select public.cast_vote(%s)", [stage.entries[0]])
    assert db.execute("select user_id from public.votes").fetchall() == [{"user_id": fan}]


def test_anon_and_service_role_cannot_vote(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    with request_as(database_url, "anon") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("select public.cast_vote(%s)", [stage.entries[0]])
    # service_role may call it but has no auth.uid(): not signed in.
    with request_as(database_url, "service_role") as conn, pytest.raises(
        errors.InsufficientPrivilege, match="sign in to vote"
    ):
        conn.execute("select public.cast_vote(%s)", [stage.entries[0]])
    assert rows_of(db, stage.entries[0]) == 0


def test_direct_writes_to_votes_are_refused(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with request_as(database_url, "authenticated", fan) as conn, pytest.raises(
        errors.InsufficientPrivilege
    ):
        conn.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)",
                     [fan, stage.entries[0]])
    with request_as(database_url, "authenticated", fan) as conn, pytest.raises(
        errors.InsufficientPrivilege
    ):
        conn.execute("update public.setlist_songs set vote_count = 1000")
    with request_as(database_url, "authenticated", fan) as conn, pytest.raises(
        errors.InsufficientPrivilege
    ):
        conn.execute("insert into private.vote_tallies (setlist_song_id, slot, votes)"
                     " values (%s, 0, 1000)", [stage.entries[0]])
    assert count_of(db, stage.entries[0]) == 0


@pytest.mark.parametrize(
    ("setup", "hint"),
    [
        ("unknown", "setlist_song_not_found"),
        ("actual", "setlist_not_votable"),
        ("started", "voting_closed"),
        ("cancelled", "voting_closed"),
        ("anonymous", "anonymous_user"),
        ("deleted_user", "unknown_user"),
    ],
)
def test_refusals_write_nothing(database_url: str, db: Connection, setup: str, hint: str) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    entry = stage.entries[0]
    extra: dict[str, object] = {}
    if setup == "unknown":
        entry = uuid.uuid4()
    elif setup == "actual":
        db.execute("update public.setlists set kind = 'actual' where id = %s", [stage.setlist_id])
    elif setup == "started":
        db.execute("update public.shows set starts_at = now() - interval '1 minute' where id = %s",
                   [stage.show_id])
    elif setup == "cancelled":
        db.execute("update public.shows set status = 'cancelled' where id = %s", [stage.show_id])
    elif setup == "anonymous":
        extra = {"is_anonymous": True}
    elif setup == "deleted_user":
        db.execute("delete from auth.users where id = %s", [fan])
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        act_as_user(conn, fan, **extra)
        with pytest.raises(psycopg.Error) as raised:
            conn.execute("select public.cast_vote(%s)", [entry])
    assert raised.value.diag.message_hint == hint
    assert scalar(db, "select count(*) from public.votes") == 0
    assert scalar(db, "select count(*) from private.vote_tallies") == 0
    assert flush(db) == []
    assert scalar(db, "select count(*) from realtime.messages") == 0


def test_voting_closes_at_the_start_or_the_local_date_in_the_venue_timezone(db: Connection) -> None:
    def closes(starts_at: str | None, day: str, time: str | None, zone: str | None) -> str:
        value: str = scalar(db, "select private.voting_closes_at(%s, %s, %s, %s)::text",
                            [starts_at, day, time, zone])
        return value

    assert closes("2026-12-01 03:30+00", "2026-11-30", "19:30", "America/Los_Angeles") == (
        "2026-12-01 03:30:00+00")
    assert closes(None, "2026-11-30", "19:30", "America/Los_Angeles") == "2026-12-01 03:30:00+00"
    assert closes(None, "2026-11-30", None, "Europe/Paris") == "2026-11-29 23:00:00+00"
    assert closes(None, "2026-11-30", None, None) == "2026-11-30 00:00:00+00"
    assert closes(None, "2026-11-30", None, "Not/AZone") == "2026-11-30 00:00:00+00"


def test_one_user_has_at_most_ten_votes_per_show(database_url: str, db: Connection) -> None:
    stage = build_stage(db, on_setlist=12)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        answers = [cast_vote(conn, fan, entry) for entry in stage.entries[:10]]
        assert [a["votes_used"] for a in answers] == list(range(1, 11))
        with conn.transaction():
            act_as_user(conn, fan)
            with pytest.raises(psycopg.Error) as raised:
                conn.execute("select public.cast_vote(%s)", [stage.entries[10]])
        assert raised.value.diag.sqlstate == "PT409"
        assert raised.value.diag.message_hint == "vote_limit_reached"
        # Voting again for a song already voted for is still fine, and so is
        # freeing a vote and using it elsewhere.
        assert cast_vote(conn, fan, stage.entries[0])["votes_used"] == 10
        cast_vote(conn, fan, stage.entries[0], vote=False)
        assert cast_vote(conn, fan, stage.entries[11])["votes_used"] == 10
    assert scalar(db, "select count(*) from public.votes where user_id = %s", [fan]) == 10


def test_the_limit_holds_under_thirty_concurrent_votes_of_one_user(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db, on_setlist=16)
    fan = create_user(db)
    # 30 requests at once: every one of the 16 songs, 14 of them twice.
    tasks = (stage.entries * 2)[:30]
    results = run_concurrently(
        database_url, tasks, lambda conn, entry: cast_vote(conn, fan, entry), connections=30)
    refused = [r for r in results if isinstance(r, psycopg.Error)]
    accepted = [r for r in results if not isinstance(r, Exception)]
    assert len(refused) + len(accepted) == 30
    assert all(r.diag.message_hint == "vote_limit_reached" for r in refused)
    assert all(a["voted"] and a["votes_used"] <= 10 for a in accepted)
    voted = {row["setlist_song_id"] for row in db.execute(
        "select setlist_song_id from public.votes where user_id = %s", [fan]).fetchall()}
    assert len(voted) == 10
    # Every refusal was for a song not voted for; every acceptance for one voted for.
    assert {uuid.UUID(a["setlist_song_id"]) for a in accepted} == voted
    assert sum(count_of(db, entry) for entry in stage.entries) == 10


def test_a_thousand_users_voting_at_once_make_a_thousand(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    users = create_users(db, 1000)
    entry = stage.entries[0]
    results = run_concurrently(database_url, users, lambda conn, user: cast_vote(conn, user, entry))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert count_of(db, entry) == 1000 == rows_of(db, entry)
    # Every answer counts its own vote and at most every other one.
    assert all(1 <= r["vote_count"] <= 1000 and r["voted"] for r in results)
    assert max(r["vote_count"] for r in results) > 1
    page = scalar(db, "select public.get_show_page(%s)", [stage.show_id])
    songs = {s["setlist_song_id"]: s["vote_count"] for s in page["predicted_setlist"]["songs"]}
    assert songs[str(entry)] == 1000
    assert len(flush(db)) == 1
    assert last_broadcast_counts(db, stage.setlist_id) == {str(entry): 1000}


def test_one_user_voting_fifty_times_at_once_counts_once(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    entry = stage.entries[0]
    results = run_concurrently(
        database_url, list(range(50)), lambda conn, _: cast_vote(conn, fan, entry))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert {(r["vote_count"], r["voted"]) for r in results} == {(1, True)}
    assert count_of(db, entry) == 1 == rows_of(db, entry)


def test_racing_votes_and_unvotes_leave_the_count_equal_to_the_rows(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    users = create_users(db, 60)
    rng = random.Random(5)
    tasks = [(rng.choice(users), rng.choice(stage.entries[:3]), rng.random() < 0.6)
             for _ in range(1500)]
    results = run_concurrently(
        database_url, tasks, lambda conn, task: cast_vote(conn, task[0], task[1], task[2]))
    assert [r for r in results if isinstance(r, Exception)] == []
    for entry in stage.entries:
        assert count_of(db, entry) == rows_of(db, entry)
    assert scalar(db, "select count(*) from public.votes") > 0


def test_deleting_an_account_takes_its_votes_off_the_counts(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    leaving, staying = create_user(db), create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        for entry in stage.entries[:3]:
            cast_vote(conn, leaving, entry)
        cast_vote(conn, staying, stage.entries[0])
    db.execute("delete from auth.users where id = %s", [leaving])
    assert [count_of(db, e) for e in stage.entries] == [1, 0, 0, 0, 0]
    for entry in stage.entries:
        assert count_of(db, entry) == rows_of(db, entry)
    # The next broadcast carries the counts without them.
    assert len(flush(db)) == 1
    assert last_broadcast_counts(db, stage.setlist_id) == {
        str(stage.entries[0]): 1, str(stage.entries[1]): 0, str(stage.entries[2]): 0}


def test_deleting_accounts_while_others_vote_keeps_counts_exact(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    users = create_users(db, 120)
    entry = stage.entries[0]
    run_concurrently(database_url, users, lambda conn, user: cast_vote(conn, user, entry))
    leaving, voting_again = users[:60], users[60:]

    def act(conn: Connection, task: tuple[str, uuid.UUID]) -> object:
        kind, user = task
        if kind == "delete":
            return conn.execute("delete from auth.users where id = %s", [user]).rowcount
        return cast_vote(conn, user, entry, vote=False)

    tasks = [("delete", u) for u in leaving] + [("unvote", u) for u in voting_again[:30]]
    results = run_concurrently(database_url, tasks, act, connections=32)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert count_of(db, entry) == 30 == rows_of(db, entry)


def test_removing_a_setlist_song_with_votes_works(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        cast_vote(conn, fan, stage.entries[0])
    db.execute("delete from public.setlist_songs where id = %s", [stage.entries[0]])
    assert scalar(db, "select count(*) from public.votes") == 0
    assert scalar(db, "select count(*) from private.vote_tallies") == 0
    assert flush(db) == []


def test_every_writer_of_votes_keeps_the_slots_exact(db: Connection) -> None:
    # Not only cast_vote: the seed and backend jobs insert votes directly. The
    # first vote of a song creates its slot before the foreign-key check looks
    # for it; an insert that ON CONFLICT skips counts nothing.
    stage = build_stage(db)
    fan, other = create_user(db), create_user(db)
    x, y = stage.entries[0], stage.entries[1]
    assert scalar(db, "select count(*) from private.vote_tallies") == 0
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)", [fan, x])
    skipped = db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)"
                         " on conflict do nothing", [fan, x])
    assert skipped.rowcount == 0
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)", [other, x])
    assert (count_of(db, x), rows_of(db, x)) == (2, 2)
    # A vote moved to another song (or slot) moves its count.
    db.execute("update public.votes set setlist_song_id = %s where user_id = %s", [y, fan])
    db.execute("update public.votes set slot = (slot + 1) %% 16 where user_id = %s", [other])
    assert [(count_of(db, e), rows_of(db, e)) for e in (x, y)] == [(1, 1), (1, 1)]
    slots = db.execute(
        "select t.setlist_song_id, t.slot, t.votes,"
        "       (select count(*) from public.votes v"
        "         where v.setlist_song_id = t.setlist_song_id and v.slot = t.slot) as rows"
        "  from private.vote_tallies t").fetchall()
    assert all(s["votes"] == s["rows"] for s in slots)
    db.execute("delete from public.votes")
    assert [count_of(db, e) for e in (x, y)] == [0, 0]
