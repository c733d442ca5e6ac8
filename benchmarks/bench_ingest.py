"""Ingest throughput: 10,000 shows with their venues and artists through the ingest RPCs,
against COPY of the same rows into a scratch table (and, for reference, plain
INSERT ... SELECT of them into the real tables: the floor); then the same ingest
again, which must write nothing.

Shows go through ``shared.sync.ingest.ingest_show_records`` exactly as the
shows job sends them (artists in fill mode, venues, shows; batches of
``--batch`` shows, one transaction each). "Rows written" is read from the
database: catalogue rows whose xmin is newer than the run's start.

The database is a throw-away local cluster with the migrations applied, or
``--database-url`` / ``DATABASE_URL`` (a migrated database; the benchmark adds
rows to it).

    .venv/bin/python -m benchmarks.bench_ingest [--shows 10000] [--batch 500]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, timedelta

import psycopg

from devstack.scratch import scratch_database
from shared import db
from shared.config import get_settings
from shared.sources.records import ArtistRecord, ShowRecord, VenueRecord
from shared.sync.ingest import ingest_show_records

# Issue 12: the ingest RPCs within 10x of COPY of the same rows.
GOAL_RATIO = 10.0

TABLES = (
    "artists",
    "artist_external_ids",
    "venues",
    "venue_external_ids",
    "shows",
    "show_external_ids",
)


def make_shows(count: int, run: str) -> list[ShowRecord]:
    """``count`` shows of count/20 artists at count/5 venues, over two years."""
    artists = [
        ArtistRecord(
            name=f"Bench Artist {run} {i}",
            ticketmaster_id=f"K8vB{run}{i:06d}",
            image_url=f"https://s1.ticketm.net/dam/a/{i:06d}_16_9.jpg",
            genres=("Rock",),
            ticketmaster_url=f"https://www.ticketmaster.com/artist/{i}",
        )
        for i in range(max(1, count // 20))
    ]
    venues = [
        VenueRecord(
            name=f"Bench Hall {run} {i}",
            city=f"City {i % 97}",
            ticketmaster_id=f"KovB{run}{i:06d}",
            state="State",
            state_code="ST",
            country="United States Of America",
            country_code="US",
            address=f"{i} Main St",
            postal_code=f"{10000 + i}",
            timezone="America/Chicago",
            latitude=36.0 + (i % 100) / 100,
            longitude=-86.0 - (i % 100) / 100,
        )
        for i in range(max(1, count // 5))
    ]
    first = date.today() + timedelta(days=7)
    shows = []
    for i in range(count):
        artist = artists[i % len(artists)]
        venue = venues[(i * 7919) % len(venues)]
        shows.append(
            ShowRecord(
                ticketmaster_id=f"vvB{run}{i:08d}",
                duplicate_ticketmaster_ids=(),
                name=artist.name,
                artist_ticketmaster_ids=(artist.ticketmaster_id or "",),
                artists=(artist,),
                venue=venue,
                local_date=first + timedelta(days=(i // len(artists)) % 730),
                local_time=None,
                starts_at=None,
                timezone="America/Chicago",
                status="scheduled",
                ticket_url=f"https://www.ticketmaster.com/event/vvB{run}{i:08d}",
                image_url=None,
                on_sale_at=None,
            )
        )
    return shows


def xid_marker(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select txid_current() % 4294967296").fetchone()
        assert row is not None
        return int(row[0])


def rows_written_since(url: str, marker: int) -> int:
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            row = conn.execute(
                f"select count(*) from public.{table} where xmin::text::bigint > %s",
                [marker],
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def ingest_all(shows: list[ShowRecord], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(shows), batch):
        with db.transaction() as conn:
            ingest_show_records(conn, shows[start : start + batch])
    return time.perf_counter() - started


def copy_all(url: str, shows: list[ShowRecord]) -> tuple[float, float]:
    """Seconds for COPY of the rows into an unindexed scratch table, then for
    PLAIN_INSERTS of them (rolled back)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "create temporary table scratch_shows (event_id text, artist_tm_id text,"
            " artist_name text, venue_tm_id text, venue_name text, city text, country_code text,"
            " local_date date, status text, ticket_url text)"
        )
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("copy scratch_shows from stdin") as copy:
            for show in shows:
                copy.write_row(
                    (
                        show.ticketmaster_id,
                        show.artists[0].ticketmaster_id,
                        show.artists[0].name,
                        show.venue.ticketmaster_id,
                        show.venue.name,
                        show.venue.city,
                        show.venue.country_code,
                        show.local_date,
                        show.status,
                        show.ticket_url,
                    )
                )
        copy_seconds = time.perf_counter() - started
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            for sql in PLAIN_INSERTS:
                conn.execute(sql)
            plain_seconds = time.perf_counter() - started
        return copy_seconds, plain_seconds


# The same rows with plain INSERT ... SELECT into the real tables (their
# indexes, foreign keys and the new-show trigger that queues create_setlist),
# from the COPY scratch table, under new names and ids, rolled back: no
# identity resolution, no locks, no change detection. The floor a set-based
# ingest writing these tables cannot go below.
PLAIN_INSERTS = (
    "insert into public.artists (id, name, genres)"
    " select gen_random_uuid(), 'Plain ' || artist_name, '{Rock}'"
    " from scratch_shows group by artist_name",
    "insert into public.artist_external_ids (source, external_id, artist_id)"
    " select distinct on (s.artist_tm_id) 'ticketmaster', 'P' || s.artist_tm_id, a.id"
    " from scratch_shows s join public.artists a on a.name = 'Plain ' || s.artist_name",
    "insert into public.venues (id, name, city, country_code)"
    " select gen_random_uuid(), 'Plain ' || venue_name, min(city), min(country_code)"
    " from scratch_shows group by venue_name",
    "insert into public.venue_external_ids (source, external_id, venue_id)"
    " select distinct on (s.venue_tm_id) 'ticketmaster', 'P' || s.venue_tm_id, v.id"
    " from scratch_shows s join public.venues v on v.name = 'Plain ' || s.venue_name",
    "insert into public.shows (id, artist_id, venue_id, local_date, status, ticket_url)"
    " select gen_random_uuid(), a.artist_id, v.venue_id, s.local_date, s.status, s.ticket_url"
    " from scratch_shows s"
    " join public.artist_external_ids a"
    "   on a.source = 'ticketmaster' and a.external_id = 'P' || s.artist_tm_id"
    " join public.venue_external_ids v"
    "   on v.source = 'ticketmaster' and v.external_id = 'P' || s.venue_tm_id",
    "insert into public.show_external_ids (source, external_id, show_id)"
    " select 'ticketmaster', 'P' || s.event_id, h.id"
    " from scratch_shows s"
    " join public.artist_external_ids a"
    "   on a.source = 'ticketmaster' and a.external_id = 'P' || s.artist_tm_id"
    " join public.venue_external_ids v"
    "   on v.source = 'ticketmaster' and v.external_id = 'P' || s.venue_tm_id"
    " join public.shows h on h.artist_id = a.artist_id and h.venue_id = v.venue_id"
    "  and h.local_date = s.local_date",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    with scratch_database(args.database_url, settings={"fsync": "off"}) as url:
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        db.close_pool()
        shows = make_shows(args.shows, run=f"{int(time.time()) % 100000:05d}")
        artists = len({s.artists[0].ticketmaster_id for s in shows})
        venues = len({s.venue.ticketmaster_id for s in shows})
        print(f"{len(shows)} shows, {artists} artists, {venues} venues; batches of {args.batch}")

        marker = xid_marker(url)
        ingest_seconds = ingest_all(shows, args.batch)
        written = rows_written_since(url, marker)
        copy_seconds, plain_seconds = copy_all(url, shows)

        ingest_rate = len(shows) / ingest_seconds
        copy_rate = len(shows) / copy_seconds
        print(f"ingest RPCs : {ingest_rate:10,.0f} shows/s  ({ingest_seconds:.2f} s,"
              f" {written} catalogue rows written)")
        print(f"COPY        : {copy_rate:10,.0f} rows/s   ({copy_seconds:.2f} s)")
        plain_rate = len(shows) / plain_seconds
        print(f"plain INSERT: {plain_rate:10,.0f} shows/s  ({plain_seconds:.2f} s; the same rows"
              f" into the real tables, no resolution: COPY is {copy_rate / plain_rate:.1f}x this)")
        ratio = copy_rate / ingest_rate
        verdict = "met" if ratio <= GOAL_RATIO else "not met"
        print(f"ratio       : COPY is {ratio:.1f}x the ingest rate"
              f" (goal: at most {GOAL_RATIO:.0f}x, {verdict})")

        marker = xid_marker(url)
        again_seconds = ingest_all(shows, args.batch)
        again_written = rows_written_since(url, marker)
        print(f"same ingest again: {len(shows) / again_seconds:,.0f} shows/s,"
              f" rows written: {again_written} (must be 0)")
        db.close_pool()
        if again_written != 0:
            raise SystemExit("unchanged input wrote rows")


if __name__ == "__main__":
    main()
