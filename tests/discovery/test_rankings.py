"""trending_shows, popular_artists and my_artists, called as PostgREST would."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg
import pytest

from tests.discovery.helpers import (
    TODAY,
    artist,
    predicted_setlist,
    rows,
    show,
    venue,
    vote,
)
from tests.support.db import Connection, create_user, request_as

# -- trending ------------------------------------------------------------------------------------


def test_trending_ranks_by_votes_of_the_last_week_then_all_votes_then_date(
    database_url: str, db: Connection
) -> None:
    fans = [create_user(db) for _ in range(8)]
    place = venue(db, "Madison Square Garden", "New York")
    band = artist(db, "Phish")

    def show_with_votes(days_ahead: int, recent: int, old: int) -> uuid.UUID:
        show_id = show(db, band, place, days_ahead)
        entries = predicted_setlist(db, show_id, band, songs=2)
        for n in range(recent):
            vote(db, fans[n], entries[0], days_ago=1)
        for n in range(old):
            vote(db, fans[n], entries[1], days_ago=10)
        return show_id

    old_favourite = show_with_votes(30, recent=1, old=6)   # 1 recent, 7 in all
    hot = show_with_votes(40, recent=3, old=0)             # 3 recent
    warm_late = show_with_votes(50, recent=1, old=1)       # 1 recent, 2 in all
    warm_early = show_with_votes(20, recent=1, old=1)      # same, earlier
    only_old = show_with_votes(10, recent=0, old=5)        # 0 recent
    show_with_votes(60, recent=0, old=0)                   # no votes: not trending
    past = show_with_votes(-2, recent=5, old=0)            # over
    cancelled = show_with_votes(15, recent=5, old=0)
    db.execute("update public.shows set status = 'cancelled' where id = %s", [cancelled])

    listed = [row["result"] for row in rows(database_url, "trending_shows", role="anon")]
    order = [uuid.UUID(item["show"]["id"]) for item in listed]
    assert order == [hot, old_favourite, warm_early, warm_late, only_old]
    assert past not in order
    first = listed[0]
    assert first["recent_votes"] == 3
    assert first["predicted_setlist"]["vote_total"] == 3
    assert first["artist"]["name"] == "Phish"
    # Aggregates only: nobody's user id leaks.
    text = json.dumps(listed)
    assert not any(str(fan) in text for fan in fans)

    limited = rows(database_url, "trending_shows", role="anon", limit=2)
    assert [uuid.UUID(row["result"]["show"]["id"]) for row in limited] == [hot, old_favourite]


@pytest.mark.parametrize("limit", [0, 51])
def test_trending_rejects_bad_limits(database_url: str, limit: int) -> None:
    with pytest.raises(psycopg.Error) as raised:
        rows(database_url, "trending_shows", limit=limit)
    assert raised.value.diag.message_hint == "invalid_limit"


def test_trending_runs_as_definer_without_exposing_votes_to_anon(
    database_url: str, db: Connection
) -> None:
    fan = create_user(db)
    band = artist(db, "Phish")
    show_id = show(db, band, venue(db, "Sphere", "Las Vegas"), 5)
    vote(db, fan, predicted_setlist(db, show_id, band)[0])
    # anon still cannot read votes directly...
    with request_as(database_url, "anon") as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("select * from public.votes")
    # ...but sees the show trend.
    assert len(rows(database_url, "trending_shows", role="anon")) == 1
    config = db.execute(
        "select prosecdef, proconfig from pg_proc where oid = 'public.trending_shows'::regproc"
    ).fetchone()
    assert config is not None
    assert config["prosecdef"] is True
    assert config["proconfig"] == ['search_path=""']


# -- popular artists -----------------------------------------------------------------------------


def test_popular_artists_put_unknown_popularity_last_then_show_count_then_votes(
    database_url: str, db: Connection
) -> None:
    place = venue(db, "The Fillmore", "San Francisco")
    fan = create_user(db)
    star = artist(db, "Band of Horses", popularity=80)
    known = artist(db, "Phish", popularity=50)
    busy = artist(db, "Touring Band A")        # no popularity, 3 shows
    voted = artist(db, "Touring Band B")       # no popularity, 1 show with votes
    quiet = artist(db, "Touring Band C")       # no popularity, 1 show, no votes
    gone = artist(db, "Retired Band", popularity=99)  # only past and cancelled shows
    for band, days in [(star, [5]), (known, [6]), (busy, [7, 8, 9]), (voted, [10]),
                       (quiet, [11])]:
        for day in days:
            show(db, band, place, day)
    voted_show = db.execute("select id from public.shows where artist_id = %s", [voted]).fetchone()
    assert voted_show is not None
    vote(db, fan, predicted_setlist(db, voted_show["id"], voted)[0])
    show(db, gone, place, -5)
    show(db, gone, place, 5, status="cancelled")

    listed = rows(database_url, "popular_artists", role="anon")
    assert [row["id"] for row in listed] == [star, known, busy, voted, quiet]
    assert listed[0]["popularity"] == 80
    assert listed[2]["popularity"] is None
    assert listed[2]["upcoming_show_count"] == 3
    assert listed[2]["next_show_date"] == TODAY + dt.timedelta(days=7)
    assert listed[3]["vote_total"] == 1
    assert [row["id"] for row in rows(database_url, "popular_artists", limit=1)] == [star]


# -- my artists ----------------------------------------------------------------------------------


def test_my_artists_are_the_callers_own_with_their_next_show(
    database_url: str, db: Connection
) -> None:
    user_a = create_user(db)
    user_b = create_user(db)
    place = venue(db, "Crypto.com Arena", "Los Angeles")
    boh = artist(db, "Band of Horses")
    phish = artist(db, "Phish")
    shins = artist(db, "The Shins")
    show(db, boh, place, 30)
    next_boh = show(db, boh, place, 12)
    show(db, boh, place, -3)
    for artist_id, relation, rank in [(phish, "top", 1), (boh, "top", 2), (boh, "followed", None),
                                      (shins, "followed", None)]:
        db.execute("insert into public.user_artists (user_id, artist_id, relation, rank)"
                   " values (%s, %s, %s, %s)", [user_a, artist_id, relation, rank])

    mine = rows(database_url, "my_artists", role="authenticated", user_id=user_a)
    assert [row["artist_id"] for row in mine] == [phish, boh, shins]
    phish_row, boh_row, shins_row = mine
    assert (phish_row["is_top"], phish_row["top_rank"], phish_row["is_followed"]) == (
        True, 1, False)
    assert (boh_row["is_top"], boh_row["top_rank"], boh_row["is_followed"]) == (True, 2, True)
    assert (shins_row["is_top"], shins_row["top_rank"], shins_row["is_followed"]) == (
        False, None, True)
    assert boh_row["upcoming_show_count"] == 2
    assert boh_row["next_show"]["show"]["id"] == str(next_boh)
    assert phish_row["next_show"] is None
    assert phish_row["upcoming_show_count"] == 0

    # User B sees nothing of A's.
    assert rows(database_url, "my_artists", role="authenticated", user_id=user_b) == []


def test_my_artists_without_a_signed_in_user_is_an_error(database_url: str) -> None:
    with pytest.raises(psycopg.Error) as raised:
        rows(database_url, "my_artists", role="anon")
    assert raised.value.sqlstate == "42501"
    assert raised.value.diag.message_hint == "not_signed_in"


def test_every_discovery_rpc_is_stable_and_granted_to_the_api_roles(db: Connection) -> None:
    functions = ["private.show_summary", "public.upcoming_shows", "public.trending_shows",
                 "public.popular_artists", "public.my_artists"]
    for name in functions:
        row = db.execute(
            "select p.provolatile, p.proconfig,"
            " has_function_privilege('anon', p.oid, 'execute') as anon,"
            " has_function_privilege('authenticated', p.oid, 'execute') as authenticated,"
            " has_function_privilege('service_role', p.oid, 'execute') as service,"
            " exists (select 1 from aclexplode(p.proacl) acl where acl.grantee = 0) as public"
            " from pg_proc p where p.oid = %s::regproc", [name]).fetchone()
        assert row is not None, name
        assert row["provolatile"] == "s", name
        assert row["proconfig"] == ['search_path=""'], name
        assert (row["anon"], row["authenticated"], row["service"], row["public"]) == (
            True, True, True, False), name


def test_replacing_user_artists_is_backend_only_and_keeps_the_best_rank(
    database_url: str, db: Connection
) -> None:
    user = create_user(db)
    first, second = artist(db, "Phish"), artist(db, "Band of Horses")
    for role, user_id in [("anon", None), ("authenticated", user)]:
        with request_as(database_url, role, user_id) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege
        ):
            conn.execute("select private.replace_user_artists(%s, %s, %s)",
                         [user, [first], []])
    with request_as(database_url, "service_role", commit=True) as conn:
        row = conn.execute(
            "select private.replace_user_artists(%s, %s::uuid[], %s::uuid[]) as counts",
            [user, [second, first, second], [first, first]]).fetchone()
    assert row is not None
    assert row["counts"] == {"top": 2, "followed": 1, "removed": 0}
    ranks = {(r["artist_id"], r["relation"]): r["rank"] for r in db.execute(
        "select artist_id, relation, rank from public.user_artists where user_id = %s", [user])}
    assert ranks == {(second, "top"): 1, (first, "top"): 2, (first, "followed"): None}
    with pytest.raises(psycopg.Error) as raised:
        db.execute("select private.replace_user_artists(%s, %s::uuid[], '{}')",
                   [uuid.uuid4(), [first]])
    assert raised.value.diag.message_hint == "unknown_user"
