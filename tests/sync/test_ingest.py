"""The ingest RPCs: identity across sources, one show per concert, concurrency,
and unchanged input writing nothing."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared import db as shared_db
from shared.sources import setlistfm_models as sfm
from shared.sources import spotify_models as sp
from shared.sources import ticketmaster_models as tm
from shared.sources.records import (
    ArtistRecord,
    ShowRecord,
    VenueRecord,
    artist_from_setlistfm,
    artist_from_spotify,
    artist_from_ticketmaster,
    shows_from_ticketmaster,
)
from shared.sync import ingest as ingest_module
from shared.sync.ingest import ingest_artists, ingest_show_records
from tests.sources.conftest import payload
from tests.support.catalogue import insert_artist, insert_show, insert_venue
from tests.support.db import Connection
from tests.sync.snapshots import count, row_versions
from tests.sync.upstream import BOH_MBID, BOH_SPOTIFY, BOH_TM, attraction, setlistfm_artist


def _from_ticketmaster(links: bool) -> ArtistRecord:
    return artist_from_ticketmaster(tm.Attraction.model_validate(attraction(links=links)))


def _from_spotify() -> ArtistRecord:
    body = payload("spotify_search_artists.json")["artists"]["items"][0]
    return artist_from_spotify(sp.Artist.model_validate(body))


def _from_setlistfm() -> ArtistRecord:
    return artist_from_setlistfm(sfm.Artist.model_validate(setlistfm_artist()["artist"][0]))


SOURCES: dict[str, Callable[[bool], ArtistRecord]] = {
    "ticketmaster": _from_ticketmaster,
    "spotify": lambda _: _from_spotify(),
    "setlistfm": lambda _: _from_setlistfm(),
}


def _events() -> list[tm.Event]:
    return tm.EventsPage.model_validate(payload("tm_events_with_addons.json")).events


@pytest.mark.parametrize("links", [True, False], ids=["tm-with-links", "tm-bare"])
@pytest.mark.parametrize("order", list(itertools.permutations(SOURCES)), ids="-".join)
def test_one_artist_from_three_sources_in_any_order(
    order: tuple[str, ...], links: bool, database_url: str, db: Connection
) -> None:
    for source in order:
        with shared_db.transaction() as conn:
            ingest_artists(conn, [SOURCES[source](links)])

    artists = db.execute("select id, name from public.artists").fetchall()
    assert len(artists) == 1
    ids = db.execute(
        "select source, external_id from public.artist_external_ids where artist_id = %s"
        " order by source",
        [artists[0]["id"]],
    ).fetchall()
    assert [(r["source"], r["external_id"]) for r in ids] == [
        ("musicbrainz", BOH_MBID),
        ("spotify", BOH_SPOTIFY),
        ("ticketmaster", BOH_TM),
    ]


def test_artists_sharing_a_name_stay_apart_when_their_ids_conflict(
    database_url: str, db: Connection
) -> None:
    with shared_db.transaction() as conn:
        ingest_artists(conn, [ArtistRecord(name="Nirvana", spotify_id="6olE6TJLqED3rqDCT0FyPh")])
        ingest_artists(conn, [ArtistRecord(name="Nirvana", spotify_id="0lLY20XpZ9yDobkbHI7u1y")])
    assert count(db, "public.artists") == 2


def test_add_on_events_and_duplicate_listings_make_one_show(
    database_url: str, db: Connection
) -> None:
    shows = shows_from_ticketmaster(_events())
    with shared_db.transaction() as conn:
        result = ingest_show_records(conn, shows)
    assert result.shows.created == 3
    rows = db.execute(
        "select s.local_date, s.status, array_agg(x.external_id order by x.external_id) as ids"
        " from public.shows s join public.show_external_ids x on x.show_id = s.id"
        " group by s.id order by s.local_date"
    ).fetchall()
    assert [(r["local_date"], r["status"]) for r in rows] == [
        (date(2026, 10, 16), "scheduled"),
        (date(2026, 10, 24), "cancelled"),
        (date(2026, 11, 7), "rescheduled"),
    ]
    assert rows[0]["ids"] == ["Z7r9jZ1A7j-_4", "vvG1IZ9pKbvS7J"]
    # Every show has its artist, and the artist is the attraction.
    assert count(db, "public.artists") == 1
    assert (
        count(
            db,
            "shows",
            "artist_id = (select artist_id from public.artist_external_ids where external_id = %s)",
            [BOH_TM],
        )
        == 3
    )


def test_two_event_ids_of_one_concert_ingested_apart_make_one_show(
    database_url: str, db: Connection
) -> None:
    """Even when the caller does not collapse them, the database does."""
    events = [e for e in _events() if e.id in ("vvG1IZ9pKbvS7J", "Z7r9jZ1A7j-_4")]
    for event in events:
        with shared_db.transaction() as conn:
            ingest_show_records(conn, shows_from_ticketmaster([event]))
    assert count(db, "public.shows") == 1
    assert count(db, "public.show_external_ids") == 2


def _synthetic_shows(n: int, artists: int, venues: int) -> list[ShowRecord]:
    shows = []
    for i in range(n):
        a = i % artists
        v = (i * 7) % venues
        artist = ArtistRecord(name=f"Artist {a}", ticketmaster_id=f"K8vZ917{a:04d}")
        venue = VenueRecord(
            name=f"Hall {v}",
            city=f"City {v % 13}",
            ticketmaster_id=f"KovZpZ{v:05d}",
            country_code="US",
        )
        shows.append(
            ShowRecord(
                ticketmaster_id=f"vvG1{i:08d}",
                duplicate_ticketmaster_ids=(),
                name=f"Artist {a}",
                artist_ticketmaster_ids=(artist.ticketmaster_id or "",),
                artists=(artist,),
                venue=venue,
                local_date=date(2027, 1, 1) + timedelta(days=i % 90),
                local_time=None,
                starts_at=None,
                timezone=None,
                status="scheduled",
                ticket_url=None,
                image_url=None,
                on_sale_at=None,
            )
        )
    return shows


def test_twenty_overlapping_batches_at_once_make_no_duplicate(
    database_url: str, db: Connection
) -> None:
    shows = _synthetic_shows(120, artists=6, venues=15)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        rng = random.Random(seed)
        batch = rng.sample(shows, 60)  # overlapping subsets in different orders
        barrier.wait()
        try:
            with shared_db.transaction() as conn:
                ingest_show_records(conn, batch)
        except BaseException as error:  # collected: every failure must surface
            errors.append(error)

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(run, range(20)))
    assert errors == []
    ingested = {s.ticketmaster_id for s in shows}
    seen = {
        r["external_id"] for r in db.execute("select external_id from public.show_external_ids")
    }
    assert seen <= ingested
    assert count(db, "public.artists") == 6
    assert count(db, "public.venues") == 15
    assert count(db, "public.shows") == len(
        {
            (s.artists[0].ticketmaster_id, s.venue.ticketmaster_id, s.local_date)
            for s in shows
            if s.ticketmaster_id in seen
        }
    )
    duplicates = db.execute(
        "select artist_id, venue_id, local_date from public.shows"
        " group by 1, 2, 3 having count(*) > 1"
    ).fetchall()
    assert duplicates == []


def test_ingesting_unchanged_data_again_writes_nothing(database_url: str, db: Connection) -> None:
    shows = shows_from_ticketmaster(_events())
    artists = [_from_ticketmaster(True)]

    def ingest() -> dict[str, Any]:
        with shared_db.transaction() as conn:
            ingest_artists(conn, artists)
            result = ingest_show_records(conn, shows)
        return result.shows.as_dict()

    ingest()
    before = row_versions(db)
    assert ingest() == {"created": 0, "updated": 0, "unchanged": 3}
    assert row_versions(db) == before


def test_two_bands_of_one_name_on_ticketmaster_stay_two_artists(
    database_url: str, db: Connection
) -> None:
    with shared_db.transaction() as conn:
        [first] = ingest_artists(
            conn, [ArtistRecord(name="Nirvana", ticketmaster_id="K8vZ917NIR1")]
        )
    with shared_db.transaction() as conn:
        [second] = ingest_artists(
            conn, [ArtistRecord(name="Nirvana", ticketmaster_id="K8vZ917NIR2")]
        )
        # The same band again, by either id: the artist it already is.
        again = ingest_artists(
            conn,
            [
                ArtistRecord(name="Nirvana", ticketmaster_id="K8vZ917NIR1"),
                ArtistRecord(name="Nirvana", ticketmaster_id="K8vZ917NIR2"),
            ],
        )
    assert first.id != second.id
    assert [r.id for r in again] == [first.id, second.id]
    assert count(db, "public.artists") == 2
    owners = {
        r["external_id"]: r["artist_id"]
        for r in db.execute("select external_id, artist_id from public.artist_external_ids")
    }
    assert owners == {"K8vZ917NIR1": first.id, "K8vZ917NIR2": second.id}


def test_a_name_match_still_merges_ids_from_a_new_source(
    database_url: str, db: Connection
) -> None:
    with shared_db.transaction() as conn:
        [tm_only] = ingest_artists(
            conn, [ArtistRecord(name="Nirvana", ticketmaster_id="K8vZ917NIR1")]
        )
        [spotify_only] = ingest_artists(
            conn, [ArtistRecord(name="Nirvana", spotify_id="6olE6TJLqED3rqDCT0FyPh")]
        )
    assert tm_only.id == spotify_only.id
    assert count(db, "public.artists") == 1


# -- songs -----------------------------------------------------------------------------------


def _songs(titles: list[str], spotify: bool = True) -> str:
    return json.dumps(
        [
            {"title": t, "spotify_id": "sp_" + t.replace(" ", "_") if spotify else None}
            for t in titles
        ]
    )


def test_new_songs_queue_create_setlist_once_per_import_not_per_song(
    superuser_database_url: str, db: Connection
) -> None:
    artist = insert_artist(db)
    waiting = [insert_show(db, artist, insert_venue(db, f"Hall {d}"), d) for d in range(1, 6)]
    cancelled = insert_show(db, artist, insert_venue(db, "Closed Hall"), 40)
    db.execute("update public.shows set status = 'cancelled' where id = %s", [cancelled])
    db.execute("delete from pgmq.q_sync")  # the new shows' own jobs
    db.execute("delete from private.sync_pending_jobs")
    titles = [f"Song {i}" for i in range(40)]

    def import_counting_enqueues(batch: str) -> int:
        # track_functions is the superuser's to set.
        with psycopg.connect(superuser_database_url, row_factory=dict_row) as conn:
            conn.execute("set local track_functions = 'all'")
            conn.execute("select * from private.ingest_songs(%s, %s::jsonb)", [artist, batch])
            row = conn.execute(
                "select coalesce(sum(calls), 0) as n from pg_stat_xact_user_functions"
                " where schemaname = 'private' and funcname = 'enqueue_sync_job'"
            ).fetchone()
            conn.commit()
        assert row is not None
        return int(row["n"])

    assert import_counting_enqueues(_songs(titles)) == len(waiting)
    queued = {
        r["entity"]
        for r in db.execute(
            "select (message ->> 'entity_id')::uuid as entity from pgmq.q_sync"
            " where message ->> 'kind' = 'create_setlist'"
        )
    }
    assert queued == set(waiting)
    # Nothing new in the catalogue: nothing queued.
    assert import_counting_enqueues(_songs(titles)) == 0
    assert import_counting_enqueues(_songs([*titles, "Song 40"])) == len(waiting)


def test_a_track_renamed_to_another_songs_title_keeps_its_own(db: Connection) -> None:
    artist = insert_artist(db)
    db.execute("select * from private.ingest_songs(%s, %s::jsonb)",
                [artist, _songs(["Laredo", "Factory"])])
    # Spotify now calls Laredo's track "Factory": the title of the other song.
    renamed = json.dumps([{"title": "Factory", "spotify_id": "sp_Laredo", "album": "Mirage"}])

    [row] = db.execute("select action from private.ingest_songs(%s, %s::jsonb)",
                       [artist, renamed]).fetchall()

    assert row == {"action": "updated"}
    songs = db.execute("select title, title_key, album from public.songs"
                       " where spotify_id = 'sp_Laredo'").fetchall()
    assert songs == [{"title": "Laredo", "title_key": "laredo", "album": "Mirage"}]


def test_two_artists_importing_one_spotify_track_at_once_both_get_a_song(
    database_url: str, db: Connection
) -> None:
    first, second = insert_artist(db, "Original Band"), insert_artist(db, "Cover Band")
    track = json.dumps([{"title": "Shared Track", "spotify_id": "4uLU6hMCjMI75M1A2tKUQC"}])
    with psycopg.connect(database_url, row_factory=dict_row) as holder:
        [mine] = holder.execute(
            "select song_id from private.ingest_songs(%s, %s::jsonb)", [first, track]
        ).fetchall()
        results: list[dict[str, Any]] = []

        def other() -> None:
            with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
                results.extend(
                    conn.execute(
                        "select song_id, action from private.ingest_songs(%s, %s::jsonb)",
                        [second, track],
                    ).fetchall()
                )

        thread = threading.Thread(target=other)
        thread.start()
        # The second import waits for the first (the track id's lock or its row).
        while (
            db.execute(
                "select count(*) as n from pg_stat_activity"
                " where wait_event_type = 'Lock' and datname = current_database()"
            ).fetchone()
            != {"n": 1}
        ):
            assert thread.is_alive(), "the second import did not wait for the first"
            time.sleep(0.01)
        holder.commit()
        thread.join()

    [theirs] = results
    assert theirs["song_id"] is not None and theirs["action"] == "created"
    songs = {
        r["artist_id"]: r["spotify_id"]
        for r in db.execute("select artist_id, spotify_id from public.songs")
    }
    # The track id stays with the song that had it first.
    assert songs == {first: "4uLU6hMCjMI75M1A2tKUQC", second: None}
    assert mine["song_id"] != theirs["song_id"]


def test_two_large_overlapping_ingests_in_opposite_orders_do_not_deadlock(
    database_url: str, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each input spans several RPC calls: the second chunk of one needs keys the
    first chunk of the other holds, unless every key was locked up front."""
    monkeypatch.setattr(ingest_module, "BATCH_SIZE", 4)
    records = [
        ArtistRecord(name=f"Artist {i}", ticketmaster_id=f"K8vZ917D{i:03d}") for i in range(12)
    ]
    orders = [records, records[::-1]]
    first_chunk_done = [threading.Event(), threading.Event()]
    pids: list[int | None] = [None, None]
    errors: list[BaseException] = []
    real_call = ingest_module._call

    def other_is_blocked_or_done(me: int) -> bool:
        other = 1 - me
        if first_chunk_done[other].is_set():
            return True
        row = db.execute(
            "select wait_event_type = 'Lock' as waiting from pg_stat_activity where pid = %s",
            [pids[other]],
        ).fetchone()
        return row == {"waiting": True}

    local = threading.local()

    def call(conn: Any, sql: str, params: Any) -> Any:
        result = real_call(conn, sql, params)
        local.calls += 1
        if local.calls == 1:  # between this ingest's first and second chunk
            first_chunk_done[local.me].set()
            while not other_is_blocked_or_done(local.me):
                time.sleep(0.01)
        return result

    monkeypatch.setattr(ingest_module, "_call", call)

    def run(me: int) -> None:
        local.me, local.calls = me, 0
        try:
            with shared_db.transaction() as conn:
                # The server's pid: behind PgBouncer, conn.info.backend_pid is the
                # pooler's own key, which pg_stat_activity never shows.
                row = conn.execute("select pg_backend_pid() as pid").fetchone()
                assert row is not None
                pids[me] = int(row["pid"])
                ingest_artists(conn, orders[me])
        except BaseException as error:  # collected: every failure must surface
            errors.append(error)
        finally:
            first_chunk_done[me].set()

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(db, "public.artists") == 12


# -- a batch means what its items mean one by one ----------------------------------------------

FLEET_FOXES_TM = "K8vZ9171C-f"


def _artist(name: str, **ids: str) -> dict[str, Any]:
    return {"name": name, "external_ids": [{"source": s, "id": i} for s, i in ids.items()]}


def _venue(name: str, city: str, **fields: Any) -> dict[str, Any]:
    ids = fields.pop("ids", {})
    return {
        "name": name,
        "city": city,
        "country_code": "US",
        "external_ids": [{"source": s, "id": i} for s, i in ids.items()],
        **fields,
    }


SEED_ARTISTS = [
    {**_artist("Band of Horses", ticketmaster=BOH_TM), "image_url": "https://i.scdn.co/old.jpg"},
    _artist("Nirvana", ticketmaster="K8vZ917NIR1"),
]
MIXED_ARTISTS = [
    _artist("Nirvana", ticketmaster="K8vZ917NIR1"),  # unchanged
    {**_artist("Band of Horses", ticketmaster=BOH_TM), "image_url": "https://i.scdn.co/new.jpg",
     "popularity": 61},  # changed
    _artist("Nirvana", ticketmaster="K8vZ917NIR2"),  # a homonym: a second artist
    _artist("Band of Horses", spotify=BOH_SPOTIFY),  # by name: merges its Spotify id
    _artist("Fleet Foxes", ticketmaster=FLEET_FOXES_TM),  # new
    {**_artist("Fleet Foxes", spotify="4EVpmkEwrLYEg6jIsiPMIb"),
     "genres": ["indie folk"]},  # the artist the item before created
    {**_artist("Band of Horses", ticketmaster=BOH_TM), "image_url": "https://i.scdn.co/new.jpg",
     "popularity": 61},  # the change again: unchanged
]
SEED_VENUES = [_venue("Ryman Auditorium", "Nashville", ids={"ticketmaster": "KovZpZAEdFtJ"})]
MIXED_VENUES = [
    _venue("Ryman Auditorium", "Nashville", ids={"ticketmaster": "KovZpZAEdFtJ"}),
    _venue("Ryman Auditorium", "Nashville", address="116 5th Ave N",
           ids={"ticketmaster": "KovZpZAEdFtJ"}),
    _venue("The Caverns", "Pelham", ids={"ticketmaster": "KovZ917ACc7"}),
    _venue("The Caverns", "Pelham", ids={"setlistfm": "3bd6bc5c"}),  # by natural key
]


def _show(artist: Any, venue: Any, day: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "artist_id": str(artist),
        "venue_id": str(venue),
        "local_date": day,
        "status": "scheduled",
        "external_ids": [{"source": "ticketmaster", "id": event}],
        **fields,
    }


def _ingest_mixed(conn: Any, batched: bool) -> list[list[tuple[int, str]]]:
    """Seed, then the mixed batches, whole or one item per call; per call kind, the
    (group, action) of each item, where items resolved to one row share a group."""
    seeded_artists = ingest_module.ingest_artist_items(conn, SEED_ARTISTS)
    [ryman] = ingest_module.ingest_venue_items(conn, SEED_VENUES)
    ingest_module.ingest_show_items(
        conn, [_show(seeded_artists[0].id, ryman.id, "2026-10-16", "vvG1IZ9pKbvS7J")]
    )

    def ingest(
        call: Callable[[Any, list[dict[str, Any]]], list[ingest_module.Resolved]],
        items: list[dict[str, Any]],
    ) -> list[ingest_module.Resolved]:
        if batched:
            return call(conn, items)
        return [r for item in items for r in call(conn, [item])]

    artists = ingest(ingest_module.ingest_artist_items, MIXED_ARTISTS)
    venues = ingest(ingest_module.ingest_venue_items, MIXED_VENUES)
    boh, foxes, caverns = artists[1].id, artists[4].id, venues[2].id
    shows = ingest(
        ingest_module.ingest_show_items,
        [
            _show(boh, ryman.id, "2026-10-16", "vvG1IZ9pKbvS7J"),  # unchanged
            _show(boh, ryman.id, "2026-10-16", "vvG1IZ9pKbvS7J", status="cancelled"),  # changed
            _show(foxes, caverns, "2026-11-07", "vvG1fZ9K0Fh9ab", name="Fleet Foxes"),  # new
            _show(foxes, caverns, "2026-11-07", "Z7r9jZ1A7jFox"),  # a second event id of it
            # The first event moved to another date: the show moves with it.
            _show(boh, ryman.id, "2026-10-24", "vvG1IZ9pKbvS7J", status="rescheduled"),
        ],
    )

    def shape(resolved: list[ingest_module.Resolved]) -> list[tuple[int, str]]:
        first: dict[Any, int] = {}
        return [(first.setdefault(r.id, i), r.action) for i, r in enumerate(resolved)]

    return [shape(artists), shape(venues), shape(shows)]


def _catalogue_state(conn: Any) -> dict[str, list[Any]]:
    """The catalogue with every row named by its content, not its generated id."""
    ids = (
        "(select coalesce(array_agg(x.source || ':' || x.external_id"
        " order by x.source, x.external_id), '{{}}')"
        " from public.{table}_external_ids x where x.{table}_id = t.id)"
    )
    artist = f"t.name || ' ' || {ids.format(table='artist')}::text"
    venue = f"t.name || ', ' || t.city || ' ' || {ids.format(table='venue')}::text"
    queries = {
        "artists": f"select {artist} as key, t.image_url, t.genres, t.popularity"
        " from public.artists t",
        "venues": f"select {venue} as key, t.address, t.country_code from public.venues t",
        "shows": "select (select {a} from public.artists t where t.id = s.artist_id) as artist,"
        " (select {v} from public.venues t where t.id = s.venue_id) as venue,"
        " s.local_date, s.status, s.name, {ids} as ids from public.shows s".format(
            a=artist, v=venue, ids=ids.format(table="show").replace("t.id", "s.id")
        ),
    }
    state = {}
    for table, sql in queries.items():
        rows = conn.execute(sql).fetchall()
        state[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
    return state


def test_a_mixed_batch_ends_as_its_items_ingested_one_by_one(database_url: str) -> None:
    outcomes = {}
    for batched in (True, False):
        with psycopg.connect(database_url, row_factory=dict_row) as conn:
            actions = _ingest_mixed(conn, batched)
            outcomes[batched] = (actions, _catalogue_state(conn))
            conn.rollback()

    (batch_actions, batch_state), (single_actions, single_state) = outcomes[True], outcomes[False]
    assert batch_state == single_state
    assert batch_actions == single_actions
    artists, venues, shows = batch_actions
    assert artists == [
        (0, "unchanged"), (1, "updated"), (2, "created"), (1, "updated"),
        (4, "created"), (4, "updated"), (1, "unchanged"),
    ]
    assert venues == [(0, "unchanged"), (0, "updated"), (2, "created"), (2, "updated")]
    assert shows == [
        (0, "unchanged"), (0, "updated"), (2, "created"), (2, "updated"), (0, "updated"),
    ]
    assert [row[0] for row in batch_state["artists"]] == [
        "Band of Horses {spotify:0OdUWJ0sBjDrqHygGUXeCF,ticketmaster:K8vZ9171ob7}",
        "Fleet Foxes {spotify:4EVpmkEwrLYEg6jIsiPMIb,ticketmaster:K8vZ9171C-f}",
        "Nirvana {ticketmaster:K8vZ917NIR1}",
        "Nirvana {ticketmaster:K8vZ917NIR2}",
    ]
