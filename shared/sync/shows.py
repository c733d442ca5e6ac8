"""An artist's upcoming shows from Ticketmaster, with their venues (fresh for 24 hours).

Add-on events are dropped and duplicate listings of one concert collapsed
(``shows_from_ticketmaster``); the ingest RPC makes one show per (artist,
venue, local date) whatever arrives. A show that disappears upstream becomes
``removed`` and a cancelled one ``cancelled``: shows are never deleted, they
may carry votes. The whole refresh — venues, artists, shows, retirements,
freshness and the queue message — is one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from shared import db
from shared.logging import get_logger
from shared.sources.errors import SourceError
from shared.sources.records import shows_from_ticketmaster
from shared.sources.ticketmaster_models import Event
from shared.sync import clients
from shared.sync.errors import ArtistNotFound, FlightPending
from shared.sync.freshness import is_fresh, record_failure, record_success
from shared.sync.ingest import IngestCounts, ingest_show_records, retire_missing_shows
from shared.sync.jobs import job_transaction
from shared.sync.queue import enqueue
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.sync.singleflight import Flight, single_flight

log = get_logger(__name__)

KIND: Final = "artist_shows"


@dataclass(frozen=True, slots=True)
class ShowsRefresh:
    artist_id: uuid.UUID
    refreshed: bool
    counts: IngestCounts = field(default_factory=IngestCounts)
    removed: list[uuid.UUID] = field(default_factory=list)
    show_ids: list[uuid.UUID] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "artist_id": str(self.artist_id),
            "refreshed": self.refreshed,
            **self.counts.as_dict(),
            "removed": len(self.removed),
            "shows": [str(i) for i in self.show_ids],
            "skipped": self.skipped,
        }


def _upcoming_show_ids(artist_id: uuid.UUID) -> list[uuid.UUID]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select id from public.shows where artist_id = %s and local_date >= current_date"
            " order by local_date, id",
            [artist_id],
        ).fetchall()
    return [r["id"] for r in rows]


def refresh_artist_shows(
    artist_id: uuid.UUID, *, force: bool = False, job: Job | None = None, today: date | None = None
) -> ShowsRefresh:
    """Refresh the artist's upcoming shows now when stale (or forced).

    Concurrent refreshes of one artist share one fetch (single flight).
    """
    attraction_ids: list[str] = []

    def done(after_flight: bool) -> ShowsRefresh | None:
        with db.transaction() as conn:
            exists = conn.execute(
                "select 1 from public.artists where id = %s", [artist_id]
            ).fetchone()
            if exists is None:
                raise ArtistNotFound(artist_id)
            attraction_ids[:] = [
                r["external_id"]
                for r in conn.execute(
                    "select external_id from public.artist_external_ids"
                    " where artist_id = %s and source = 'ticketmaster' order by external_id",
                    [artist_id],
                )
            ]
            fresh = is_fresh(conn, KIND, artist_id)
        if not attraction_ids:
            return ShowsRefresh(artist_id, False, skipped="no_ticketmaster_id")
        if fresh and (after_flight or not force):
            return ShowsRefresh(artist_id, False, show_ids=_upcoming_show_ids(artist_id))
        return None

    def lead(flight: Flight) -> ShowsRefresh:
        try:
            events: list[Event] = []
            for attraction_id in attraction_ids:
                events.extend(clients.ticketmaster().upcoming_events(attraction_id))
        except SourceError as error:
            record_failure(KIND, artist_id, error, job=job)
            raise
        shows = shows_from_ticketmaster(events)

        # A show that started today may no longer be listed: retire from tomorrow on.
        retire_from = (today or date.today()) + timedelta(days=1)
        with job_transaction(job) as conn:
            ingested = ingest_show_records(conn, shows, fallback_artist_id=artist_id)
            own = [sid for sid, aid in ingested.artist_of_show.items() if aid == artist_id]
            removed = retire_missing_shows(conn, artist_id, own, retire_from)
            record_success(conn, KIND, artist_id)
            flight.finish(conn)
        log.info("shows_refreshed", **ingested.shows.as_dict(), removed=len(removed))
        return ShowsRefresh(artist_id, True, ingested.shows, removed, ingested.show_ids)

    try:
        return single_flight(f"{KIND}:{artist_id}", lead, done)
    except FlightPending as pending:
        if job is None:
            with db.transaction() as conn:
                pending.queued.append(enqueue(conn, KIND, artist_id))
        raise


@job_handler(KIND)
def artist_shows_job(job: Job) -> JobOutcome:
    result = refresh_artist_shows(job.entity_id, force=job.force, job=job)
    summary = result.as_dict()
    summary.pop("shows")
    return summary
