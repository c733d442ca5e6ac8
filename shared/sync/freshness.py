"""Per-entity freshness in ``private.sync_state``.

The job kinds and their TTLs live in the database (``private.sync_job_kinds``,
read by ``private.sync_ttl``) so pg_cron's stale-entity scans and the workers
agree: artist details 7 days, an artist's shows 24 hours, popularity a day, a
user's Spotify artists an hour, the catalogue until forced. ``JobKind`` lists
the same kinds for the type checker; a test holds it to the table.

A failure (``record_failure``) counts in ``sync_state.consecutive_failures``
and makes the entity due again only after an exponential backoff capped at
its TTL; a success resets the count.
"""

from __future__ import annotations

import uuid
from typing import Literal

from shared import db
from shared.db import Connection
from shared.sync.registry import Job

JobKind = Literal[
    "artist_details",
    "artist_shows",
    "artist_catalogue",
    "artist_popularity",
    "user_artists",
    "artist_live_history",
]


def is_fresh(conn: Connection, kind: JobKind, entity_id: uuid.UUID) -> bool:
    row = conn.execute(
        "select private.sync_is_fresh(%s, %s) as fresh", [kind, entity_id]
    ).fetchone()
    return bool(row and row["fresh"])


def record_success(conn: Connection, kind: JobKind, entity_id: uuid.UUID) -> None:
    conn.execute("select private.sync_record_success(%s, %s)", [kind, entity_id])


def record_failure(
    kind: JobKind, entity_id: uuid.UUID, error: BaseException | str, *, job: Job | None
) -> None:
    """The one way a failed sync of an entity is recorded, whatever the path.

    A queued job's failure is recorded by the worker, in the transaction that
    schedules its retry or dead letter (``shared.sync.queue.fail``), so nothing
    is written for a job here; a request's failure is recorded now, in a
    transaction of its own (its other writes, if any, were rolled back).
    """
    if job is not None:
        return
    text = error if isinstance(error, str) else str(error)
    with db.transaction() as conn:
        conn.execute("select private.sync_record_failure(%s, %s, %s)", [kind, entity_id, text])
