"""The daily popularity refresh: Spotify popularity and followers of stale artists.

One queued job (entity ``GLOBAL``, enqueued by pg_cron once a day) refreshes
up to ``limit`` artists whose ``artist_popularity`` state is stale, oldest
first, in Spotify batches; a job for one artist id refreshes that artist.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from shared import db
from shared.logging import get_logger
from shared.sources.records import artist_from_spotify
from shared.sync import clients
from shared.sync.ingest import IngestCounts, ingest_artists
from shared.sync.jobs import job_transaction
from shared.sync.registry import Job, JobOutcome, job_handler

log = get_logger(__name__)

KIND: Final = "artist_popularity"
GLOBAL: Final = uuid.UUID(int=0)
DEFAULT_LIMIT: Final = 500


def refresh_popularity(
    *,
    artist_id: uuid.UUID | None = None,
    limit: int = DEFAULT_LIMIT,
    force: bool = False,
    job: Job | None = None,
) -> dict[str, Any]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select a.id, (select x.external_id from public.artist_external_ids x"
            "   where x.artist_id = a.id and x.source = 'spotify'"
            "   order by x.created_at, x.external_id limit 1) as spotify_id"
            " from public.artists a"
            " left join private.sync_state s on s.job_kind = 'artist_popularity'"
            "  and s.entity_id = a.id"
            " where (%(one)s::uuid is null or a.id = %(one)s::uuid)"
            "   and (%(force)s or not private.sync_is_fresh('artist_popularity', a.id))"
            "   and exists (select 1 from public.artist_external_ids x"
            "               where x.artist_id = a.id and x.source = 'spotify')"
            " order by s.next_due_at nulls first, a.id limit %(limit)s",
            {"one": artist_id, "force": force, "limit": limit},
        ).fetchall()
    by_spotify = {r["spotify_id"]: r["id"] for r in rows}
    if not by_spotify:
        return {"artists": 0}
    found = clients.spotify().get_artists(list(by_spotify))
    records = [artist_from_spotify(a) for a in found if a.id in by_spotify]
    with job_transaction(job) as conn:
        resolved = ingest_artists(conn, records)
        conn.execute(
            "select private.sync_record_success('artist_popularity', id)"
            " from unnest(%s::uuid[]) as id",
            [list(by_spotify.values())],
        )
    counts = IngestCounts.of(resolved)
    log.info("popularity_refreshed", artists=len(by_spotify), **counts.as_dict())
    return {"artists": len(by_spotify), **counts.as_dict()}


@job_handler(KIND)
def popularity_job(job: Job) -> JobOutcome:
    one = None if job.entity_id == GLOBAL else job.entity_id
    return refresh_popularity(artist_id=one, force=job.force, job=job)
