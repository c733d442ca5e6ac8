"""public.upcoming_shows: filters, keyset pages, the per-artist cap, errors, index use."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest

from tests.discovery.helpers import (
    TODAY,
    artist,
    call,
    predicted_setlist,
    show,
    venue,
    vote,
    walk_feed,
)
from tests.support.db import Connection, create_user, request_as


def ids(items: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [uuid.UUID(item["show"]["id"]) for item in items]


def per_artist(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(item["artist"]["id"] for item in items)


# -- filters -------------------------------------------------------------------------------------


def test_filters_select_exactly_the_matching_upcoming_shows(
    database_url: str, db: Connection
) -> None:
    boh = artist(db, "Band of Horses", image_url="https://i.scdn.co/image/boh")
    phish = artist(db, "Phish")
    beyonce = artist(db, "Beyoncé")
    la = venue(db, "Crypto.com Arena", "Los Angeles")
    msg = venue(db, "Madison Square Garden", "New York")
    paris = venue(db, "Accor Arena", "Paris", "FR")
    zurich = venue(db, "Hallenstadion", "Zürich", "CH")

    boh_la = show(db, boh, la, 10)
    boh_msg = show(db, boh, msg, 20)
    phish_msg = show(db, phish, msg, 5)
    phish_paris = show(db, phish, paris, 40)
    beyonce_zurich = show(db, beyonce, zurich, 3)
    postponed = show(db, phish, la, 60, status="postponed")
    rescheduled = show(db, boh, paris, 61, status="rescheduled")
    today = show(db, beyonce, la, 0)
    # Never in the feed: past, cancelled, removed.
    show(db, boh, zurich, -1)
    show(db, phish, zurich, 7, status="cancelled")
    show(db, beyonce, msg, 8, status="removed")

    def feed(**filters: Any) -> list[uuid.UUID]:
        pages = walk_feed(database_url, page_size=50, per_artist=10, **filters)
        return [show_id for page in pages for show_id in ids(page)]

    assert feed() == [today, beyonce_zurich, phish_msg, boh_la, boh_msg, phish_paris,
                      postponed, rescheduled]
    assert feed(country_code="us") == [today, phish_msg, boh_la, boh_msg, postponed]
    assert feed(country_code="US", city="new york") == [phish_msg, boh_msg]
    # Cities compare by name key: case, accents and punctuation do not matter.
    assert feed(city="ZURICH") == [beyonce_zurich]
    assert feed(city="Los-Angeles") == [today, boh_la, postponed]
    assert feed(artist_id=phish) == [phish_msg, phish_paris, postponed]
    assert feed(q="horses") == [boh_la, boh_msg, rescheduled]
    assert feed(q="beyonce") == [today, beyonce_zurich]
    assert feed(q="  ") == feed()
    assert feed(date_from=TODAY + dt.timedelta(days=5),
                date_to=TODAY + dt.timedelta(days=20)) == [phish_msg, boh_la, boh_msg]
    # A date_from in the past still starts today.
    assert feed(date_from=TODAY - dt.timedelta(days=30), date_to=TODAY) == [today]
    assert feed(country_code="FR", q="phish") == [phish_paris]
    assert feed(country_code="DE") == []


def test_items_carry_show_artist_venue_and_the_vote_total(
    database_url: str, db: Connection
) -> None:
    boh = artist(db, "Band of Horses", image_url="https://i.scdn.co/image/boh")
    la = venue(db, "Crypto.com Arena", "Los Angeles")
    with_setlist = show(db, boh, la, 10)
    without_setlist = show(db, boh, la, 11)
    entries = predicted_setlist(db, with_setlist, boh, songs=2)
    fans = [create_user(db) for _ in range(3)]
    for fan in fans:
        vote(db, fan, entries[0])
    vote(db, fans[0], entries[1])

    answer = call(database_url, "upcoming_shows")
    assert answer["next_cursor"] is None
    first, second = answer["items"]
    assert first["show"]["id"] == str(with_setlist)
    assert first["show"]["local_date"] == (TODAY + dt.timedelta(days=10)).isoformat()
    assert first["show"]["status"] == "scheduled"
    assert first["artist"] == {"id": str(boh), "name": "Band of Horses",
                               "image_url": "https://i.scdn.co/image/boh"}
    assert first["venue"]["name"] == "Crypto.com Arena"
    assert first["venue"]["city"] == "Los Angeles"
    assert first["venue"]["country_code"] == "US"
    assert first["predicted_setlist"]["vote_total"] == 4
    assert second["show"]["id"] == str(without_setlist)
    assert second["predicted_setlist"] is None


# -- pagination and the per-artist cap -------------------------------------------------------------


def test_an_artist_with_30_shows_does_not_fill_a_page(database_url: str, db: Connection) -> None:
    residency = artist(db, "Phish")
    sphere = venue(db, "Sphere", "Las Vegas")
    others = [artist(db, f"Touring Band {n}") for n in range(12)]
    hall = venue(db, "The Fillmore", "San Francisco")
    residency_shows = [show(db, residency, sphere, day) for day in range(1, 31)]
    other_shows = [show(db, band, hall, 5 + n * 3) for n, band in enumerate(others)]

    pages = walk_feed(database_url, page_size=10)

    first = pages[0]
    assert len(first) == 10
    assert per_artist(first)[str(residency)] == 2
    for page in pages:
        assert 0 < len(page) <= 10
        assert max(per_artist(page).values()) <= 2
    walked = [show_id for page in pages for show_id in ids(page)]
    assert len(walked) == len(set(walked))
    assert set(walked) == set(residency_shows) | set(other_shows)
    # The residency is spread over the pages in date order, two at a time.
    assert [s for s in walked if s in set(residency_shows)] == residency_shows


def test_the_default_cap_is_two_per_artist_and_page_size_twenty(
    database_url: str, db: Connection
) -> None:
    residency = artist(db, "Phish")
    sphere = venue(db, "Sphere", "Las Vegas")
    for day in range(1, 31):
        show(db, residency, sphere, day)
    answer = call(database_url, "upcoming_shows")
    assert len(answer["items"]) == 2
    assert answer["next_cursor"] is not None
    answer = call(database_url, "upcoming_shows", per_artist=10)
    assert len(answer["items"]) == 10


@pytest.mark.parametrize("seed", [1, 2])
def test_walking_the_feed_returns_every_show_exactly_once(
    database_url: str, db: Connection, seed: int
) -> None:
    rng = random.Random(seed)
    artists = [artist(db, f"Artist {seed}-{n}") for n in range(15)]
    venues = [venue(db, f"Venue {n}", city, country)
              for n, (city, country) in enumerate(
                  [("Los Angeles", "US"), ("New York", "US"), ("Paris", "FR"), ("Berlin", "DE")])]
    expected: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
    for index, band in enumerate(artists):
        # Skewed: a few artists with many shows, many with one or two.
        count = 40 if index == 0 else 15 if index < 3 else rng.randint(0, 3)
        days = rng.sample(range(0, 120), count)
        for day in days:
            place = rng.choice(venues)
            expected[show(db, band, place, day)] = (band, place)
    show(db, artists[1], venues[0], -3)

    for page_size, cap in [(1, 1), (5, 2), (7, 3), (20, 2), (50, 10)]:
        pages = walk_feed(database_url, page_size=page_size, per_artist=cap)
        walked = [show_id for page in pages for show_id in ids(page)]
        assert len(walked) == len(set(walked)), (page_size, cap)
        assert set(walked) == set(expected), (page_size, cap)
        for page in pages:
            assert 0 < len(page) <= page_size
            assert max(per_artist(page).values()) <= cap
            dates = [item["show"]["local_date"] for item in page]
            assert dates == sorted(dates)

    # With filters the walk is as complete.
    us = {s for s, (_, place) in expected.items() if place in venues[:2]}
    pages = walk_feed(database_url, page_size=6, per_artist=2, country_code="US")
    walked = [show_id for page in pages for show_id in ids(page)]
    assert sorted(walked) == sorted(us)


def test_page_size_and_cap_may_change_from_page_to_page(
    database_url: str, db: Connection
) -> None:
    # Three residencies back to back, then one more band: a big first page
    # defers two of them, smaller pages then fill up among deferred shows.
    place = venue(db, "Sphere", "Las Vegas")
    residencies = [artist(db, f"Residency {n}") for n in range(3)]
    expected = [show(db, band, place, 1 + 6 * n + day)
                for n, band in enumerate(residencies) for day in range(6)]
    expected.append(show(db, artist(db, "Touring Band"), place, 30))
    rng = random.Random(11)

    answer = call(database_url, "upcoming_shows", page_size=6, per_artist=2)
    pages = [answer["items"]]
    while answer["next_cursor"] is not None:
        page_size, cap = rng.choice([1, 2, 3]), rng.choice([1, 2, 3])
        answer = call(database_url, "upcoming_shows", page_size=page_size, per_artist=cap,
                      cursor=answer["next_cursor"])
        assert 0 < len(answer["items"]) <= page_size
        assert max(per_artist(answer["items"]).values()) <= cap
        pages.append(answer["items"])
        assert len(pages) < 100
    walked = [show_id for page in pages for show_id in ids(page)]
    assert sorted(walked) == sorted(expected)


def test_pages_are_full_while_other_artists_have_shows(database_url: str, db: Connection) -> None:
    big = artist(db, "Phish")
    sphere = venue(db, "Sphere", "Las Vegas")
    hall = venue(db, "The Fillmore", "San Francisco")
    for day in range(0, 20):
        show(db, big, sphere, day)
    for n in range(40):
        show(db, artist(db, f"Band {n}"), hall, n)
    pages = walk_feed(database_url, page_size=10, per_artist=2)
    # 60 shows: six full pages while 40 single-show artists remain to mix in,
    # then Phish's leftovers two a page.
    sizes = [len(page) for page in pages]
    assert sizes[:5] == [10] * 5
    assert sum(sizes) == 60


def test_the_walk_survives_inserts_without_repeats_or_skips(
    database_url: str, db: Connection
) -> None:
    big = artist(db, "Phish")
    sphere = venue(db, "Sphere", "Las Vegas")
    hall = venue(db, "The Fillmore", "San Francisco")
    bands = [artist(db, f"Band {n}") for n in range(10)]
    before = [show(db, big, sphere, day) for day in range(1, 11)]
    before += [show(db, band, hall, 2 * n + 1) for n, band in enumerate(bands)]

    first = call(database_url, "upcoming_shows", page_size=6)
    seen = ids(first["items"])
    # Phish took days 1 and 2 and is deferring; the walk has reached day 7.
    assert per_artist(first["items"])[str(big)] == 2
    assert first["items"][-1]["show"]["local_date"] == (TODAY + dt.timedelta(days=7)).isoformat()
    # New shows: one far ahead (must appear), one for a deferring artist within
    # its pending range (must appear), one already passed by the walk (must not).
    far_ahead = show(db, bands[0], sphere, 90)
    deferred_range = show(db, big, hall, 4)
    passed = show(db, artist(db, "Latecomer"), hall, 0)

    cursor = first["next_cursor"]
    while cursor is not None:
        answer = call(database_url, "upcoming_shows", page_size=6, cursor=cursor)
        seen += ids(answer["items"])
        cursor = answer["next_cursor"]

    assert len(seen) == len(set(seen))
    assert set(before) <= set(seen)
    assert far_ahead in seen
    assert deferred_range in seen
    assert passed not in seen


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, hint",
    [
        ({"page_size": 0}, "invalid_page_size"),
        ({"page_size": 51}, "invalid_page_size"),
        ({"per_artist": 0}, "invalid_per_artist"),
        ({"per_artist": 11}, "invalid_per_artist"),
        ({"country_code": "USA"}, "invalid_country_code"),
        ({"date_from": TODAY.replace(year=TODAY.year + 1), "date_to": TODAY},
         "invalid_date_range"),
        ({"q": "x" * 101}, "invalid_query"),
        ({"cursor": "not a cursor"}, "invalid_cursor"),
        ({"cursor": "eyJ2IjogMX0"}, "invalid_cursor"),  # {"v": 1}
    ],
)
def test_bad_arguments_are_clear_400s(
    database_url: str, arguments: dict[str, Any], hint: str
) -> None:
    with pytest.raises(psycopg.Error) as raised:
        call(database_url, "upcoming_shows", **arguments)
    assert raised.value.sqlstate == "22023"  # PostgREST answers 400
    assert raised.value.diag.message_hint == hint


def test_a_cursor_only_fits_the_filters_it_was_issued_for(
    database_url: str, db: Connection
) -> None:
    band = artist(db, "Phish")
    place = venue(db, "Sphere", "Las Vegas")
    for day in range(5):
        show(db, band, place, day)
    cursor = call(database_url, "upcoming_shows", page_size=1, country_code="US")["next_cursor"]
    assert cursor is not None
    # Page size and cap may change between pages; filters may not.
    assert call(database_url, "upcoming_shows", page_size=3, per_artist=5,
                country_code="US", cursor=cursor)["items"]
    with pytest.raises(psycopg.Error) as raised:
        call(database_url, "upcoming_shows", country_code="FR", cursor=cursor)
    assert raised.value.diag.message_hint == "cursor_mismatch"


def test_anon_and_users_may_call_it_through_postgrest(database_url: str, db: Connection) -> None:
    user = create_user(db)
    show(db, artist(db, "Phish"), venue(db, "Sphere", "Las Vegas"), 3)
    assert len(call(database_url, "upcoming_shows", role="anon")["items"]) == 1
    assert len(call(database_url, "upcoming_shows", role="authenticated",
                    user_id=user)["items"]) == 1


# -- plans -----------------------------------------------------------------------------------------


def _stream_plan(database_url: str, **arguments: Any) -> str:
    """The plan of the walk's main statement (shows after the frontier), via auto_explain
    (loading it and its settings need the superuser: pass ``superuser_database_url``)."""
    notices: list[str] = []
    with request_as(database_url, "anon") as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("reset role")
        conn.execute("load 'auto_explain'")
        conn.execute("set local auto_explain.log_min_duration = 0")
        conn.execute("set local auto_explain.log_nested_statements = on")
        conn.execute("set local auto_explain.log_level = notice")
        conn.execute("set local client_min_messages = notice")
        conn.execute("set local role anon")
        named = ", ".join(f"{name} => %({name})s" for name in arguments)
        conn.execute(f"select public.upcoming_shows({named})", arguments)
    plans = [n for n in notices if "(s.local_date, s.id) > ($4::date, $5::uuid)" in n]
    assert len(plans) == 1, notices
    return plans[0].split("limit $9", 1)[1]


def test_the_feed_uses_the_feed_and_location_indexes(
    database_url: str, superuser_database_url: str, db: Connection
) -> None:
    # A few thousand shows over 100 cities of 8 countries.
    venue_ids = [venue(db, f"Venue {n}", f"City {n % 100}", ["US", "FR", "DE", "GB", "ES", "IT",
                                                             "NL", "SE"][n % 8])
                 for n in range(400)]
    artist_ids = [artist(db, f"Artist {n}") for n in range(300)]
    db.execute(
        "insert into public.shows (artist_id, venue_id, local_date, status)"
        " select (%(artists)s::uuid[])[1 + (g * 7) %% 300],"
        "        (%(venues)s::uuid[])[1 + (g * 13) %% 400],"
        "        current_date - 60 + g %% 420,"
        "        case when g %% 10 = 0 then 'cancelled' else 'scheduled' end"
        "   from generate_series(1, 6000) g on conflict do nothing",
        {"artists": artist_ids, "venues": venue_ids})
    for table in ("shows", "venues", "artists"):
        db.execute(f"analyze public.{table}")

    # The unfiltered feed reads the feed index in order from the frontier on
    # and stops with the page: no sort of the whole feed.
    plain = _stream_plan(superuser_database_url, page_size=20)
    assert "Index Scan using shows_upcoming_feed_idx" in plain
    assert "Sort" not in plain.split("Nested Loop")[0]
    # A city filter starts from the venues of that city.
    located = _stream_plan(superuser_database_url, country_code="FR", city="City 9", page_size=20)
    assert "venues_location_idx" in located
    # The second page starts at the cursor, still by index.
    cursor = call(database_url, "upcoming_shows", page_size=20)["next_cursor"]
    assert "Index Scan using shows_upcoming_feed_idx" in _stream_plan(
        superuser_database_url, page_size=20, cursor=cursor)
