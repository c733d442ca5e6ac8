"""supabase/seed.sql: fictional demo data that applies cleanly and is self-consistent."""

from __future__ import annotations

import pytest

from devstack.migrate import SEED_FILE, apply_seed
from tests.support.db import Connection

FAN_ONE = "00000000-0000-4000-8000-000000000001"
FAN_TWO = "00000000-0000-4000-8000-000000000002"


@pytest.fixture
def seeded(database_url: str, db: Connection) -> Connection:
    apply_seed(database_url)
    return db


def scalar(db: Connection, query: str) -> int:
    row = db.execute(query).fetchone()
    assert row is not None
    value = next(iter(row.values()))
    assert isinstance(value, int)
    return value


def test_seed_says_it_is_fictional() -> None:
    header = SEED_FILE.read_text(encoding="utf-8")[:600].lower()
    assert "fictional" in header
    assert "local development only" in header
    code = [
        line
        for line in SEED_FILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("--")
    ]
    assert not any("random(" in line for line in code), "the seed must be deterministic"


def test_catalogue_counts(seeded: Connection) -> None:
    assert scalar(seeded, "select count(*) from public.artists") == 10
    assert scalar(seeded, "select count(*) from public.artists where name not like '% (Demo)'") == 0
    assert scalar(seeded, "select count(*) from public.venues") == 15
    assert scalar(seeded, "select count(*) from public.venues where name not like 'Demo %'") == 0
    upcoming = scalar(seeded, "select count(*) from public.shows where local_date >= current_date")
    past = scalar(seeded, "select count(*) from public.shows where local_date < current_date")
    assert (upcoming, past) == (60, 5)
    assert (
        scalar(
            seeded,
            "select max(local_date - current_date) from public.shows",
        )
        == 120
    )
    statuses = {
        row["status"]: row["n"]
        for row in seeded.execute("select status, count(*) as n from public.shows group by status")
    }
    assert statuses == {"scheduled": 63, "postponed": 1, "cancelled": 1}
    per_artist = [
        row["n"]
        for row in seeded.execute("select count(*) as n from public.songs group by artist_id")
    ]
    assert len(per_artist) == 10
    assert all(8 <= n <= 15 for n in per_artist)


def test_external_ids_are_obviously_fake(seeded: Connection) -> None:
    fake = scalar(
        seeded,
        """
        select count(*) from (
          select external_id from public.artist_external_ids
          union all select external_id from public.venue_external_ids
          union all select external_id from public.show_external_ids
        ) ids where external_id not ilike 'demo-%'
        """,
    )
    assert fake == 0
    assert (
        scalar(
            seeded,
            "select count(*) from public.songs where spotify_id is not null or isrc is not null",
        )
        == 0
    )


def test_starts_at_matches_local_date_and_time_in_the_venue_timezone(seeded: Connection) -> None:
    assert (
        scalar(
            seeded,
            """
        select count(*) from public.shows s join public.venues v on v.id = s.venue_id
        where s.starts_at is null
           or (s.starts_at at time zone v.timezone) <> s.local_date + s.local_time
        """,
        )
        == 0
    )


def test_every_upcoming_show_has_a_predicted_setlist_of_five_of_its_artists_songs(
    seeded: Connection,
) -> None:
    rows = seeded.execute(
        """
        select s.id,
               count(distinct sl.id) as setlists,
               array_agg(ss.position order by ss.position) as positions,
               count(distinct ss.song_id) as songs,
               bool_and(so.artist_id = s.artist_id) as own_songs
        from public.shows s
        left join public.setlists sl on sl.show_id = s.id and sl.kind = 'predicted'
        left join public.setlist_songs ss on ss.setlist_id = sl.id
        left join public.songs so on so.id = ss.song_id
        where s.local_date >= current_date
        group by s.id
        """
    ).fetchall()
    assert len(rows) == 60
    for row in rows:
        assert row["setlists"] == 1
        assert row["positions"] == [1, 2, 3, 4, 5]
        assert row["songs"] == 5
        assert row["own_songs"] is True


def test_some_past_shows_have_an_actual_setlist(seeded: Connection) -> None:
    rows = seeded.execute(
        """
        select sl.source_url, s.local_date < current_date as past,
               bool_and(so.artist_id = s.artist_id) as own_songs, count(*) as n
        from public.setlists sl
        join public.shows s on s.id = sl.show_id
        join public.setlist_songs ss on ss.setlist_id = sl.id
        join public.songs so on so.id = ss.song_id
        where sl.kind = 'actual'
        group by sl.id, s.id
        """
    ).fetchall()
    assert len(rows) >= 2
    for row in rows:
        assert row["past"] is True
        assert row["source_url"] is None
        assert row["own_songs"] is True


def test_vote_counts_equal_the_votes(seeded: Connection) -> None:
    assert scalar(seeded, "select count(*) from public.votes") > 0
    assert (
        scalar(
            seeded,
            """
        select count(*) from public.setlist_songs ss
        where ss.vote_count <> (select count(*) from public.votes v where v.setlist_song_id = ss.id)
        """,
        )
        == 0
    )
    voters = {
        str(row["user_id"]) for row in seeded.execute("select distinct user_id from public.votes")
    }
    assert voters == {FAN_ONE, FAN_TWO}


def test_demo_users_get_profiles_from_the_trigger(seeded: Connection) -> None:
    rows = seeded.execute(
        "select p.id, p.display_name, p.avatar_url, p.spotify_id, u.email"
        " from public.profiles p join auth.users u using (id) order by p.id"
    ).fetchall()
    assert [(str(r["id"]), r["email"]) for r in rows] == [
        (FAN_ONE, "fan.one@example.com"),
        (FAN_TWO, "fan.two@example.com"),
    ]
    for row in rows:
        assert row["display_name"]
        assert row["avatar_url"]
        assert row["spotify_id"].startswith("demo-")


def test_demo_users_have_top_and_followed_artists(seeded: Connection) -> None:
    rows = seeded.execute(
        "select user_id, relation, array_agg(rank order by rank) as ranks"
        " from public.user_artists group by user_id, relation"
    ).fetchall()
    by_key = {(str(r["user_id"]), r["relation"]): r["ranks"] for r in rows}
    for user in (FAN_ONE, FAN_TWO):
        assert by_key[(user, "top")] == [1, 2, 3, 4, 5]
        assert by_key[(user, "followed")]
        assert all(rank is None for rank in by_key[(user, "followed")])


def test_demo_artists_are_never_sent_to_the_sources(seeded: Connection) -> None:
    queued = seeded.execute(
        "select private.enqueue_stale_artist_jobs('artist_details', 100)"
        " + private.enqueue_stale_artist_jobs('artist_shows', 100) as n"
    ).fetchone()
    assert queued == {"n": 0}
