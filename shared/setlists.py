"""Predicted setlists: the Python side of the ``create_setlist`` RPC.

Everything that must be atomic lives in the database (see
``supabase/migrations/20261122000501_create_setlist.sql``). This module calls
the RPC, imports an artist's catalogue first when a setlist cannot be drawn
without it, and turns the RPC's refusals into JSON API errors (``shared.rpc``).
It also registers the ``create_setlist`` queue job (the worker imports this
module). Votes and additions are in ``shared.votes``.

The catalogue import (source clients, the sync engine's ingest) is imported
when first needed, not with this module: a setlist drawn from a catalogue
already there needs none of it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from shared import db, rpc
from shared.logging import get_logger
from shared.sync.jobs import job_transaction
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.web import Conflict, NotFound

log = get_logger(__name__)

JOB_KIND: Final = "create_setlist"


# -- create_setlist -----------------------------------------------------------


def _create_setlist_rpc(
    show_id: uuid.UUID, *, enqueue_when_pending: bool, conn: db.Connection | None = None
) -> dict[str, Any]:
    """``public.create_setlist`` in its own transaction, or in ``conn``'s (the job's)."""
    return rpc.call(
        "select public.create_setlist(%s, %s) as answer",
        [show_id, enqueue_when_pending],
        conn=conn,
    )


def create_setlist(show_id: uuid.UUID) -> dict[str, Any]:
    """Make sure the show has its predicted setlist (for the function).

    When the artist's catalogue is empty it is imported first, once however
    many requests ask at a time (single flight): a request arriving while
    another one imports it waits for that import, a bounded time, and draws
    from it; past the wait it answers ``pending`` (``catalogue_importing``)
    with the job queued. When the catalogue cannot be had now, the answer is
    ``pending`` with the reason, and the job is queued so the setlist appears
    as soon as the catalogue does.
    """
    answer = _create_setlist_rpc(show_id, enqueue_when_pending=False)
    if answer["status"] != "pending":
        return answer
    from shared.sources.errors import SourceError
    from shared.sync.catalogue import import_artist_catalogue
    from shared.sync.errors import FlightPending, NoSpotifyId, SyncError

    artist_id = uuid.UUID(answer["artist_id"])
    try:
        # Fresh (imported by another request just before): no fetch.
        import_artist_catalogue(artist_id)
    except FlightPending:
        log.info("catalogue_import_in_progress", show_id=str(show_id), artist_id=str(artist_id))
        answer = _create_setlist_rpc(show_id, enqueue_when_pending=True)
        if answer["status"] == "pending":
            answer["pending_reason"] = "catalogue_importing"
        return answer
    except (SourceError, SyncError) as error:
        # The error names the source and endpoint, never a key or token.
        log.warning("catalogue_unavailable", show_id=str(show_id),
                    artist_id=str(artist_id), error_type=type(error).__name__)
        answer = _create_setlist_rpc(show_id, enqueue_when_pending=True)
        if answer["status"] == "pending":
            answer["pending_reason"] = (
                "no_spotify_id" if isinstance(error, NoSpotifyId) else "catalogue_unavailable"
            )
        return answer
    # Imported (possibly empty: an artist without a single track). Queue the
    # job if still nothing to draw from, so a later import is picked up.
    return _create_setlist_rpc(show_id, enqueue_when_pending=True)


@job_handler(JOB_KIND)
def create_setlist_job(job: Job) -> JobOutcome:
    """The queued job: draw the setlist, or have the catalogue fetched first.

    One transaction (``job_transaction``): the draw, or the queueing of the
    ``artist_catalogue`` job (Spotify id known) and the ``artist_live_history``
    job (MusicBrainz id known) when the catalogue is empty, commits together
    with the removal of this job from the queue, or none of it does. Neither
    is fetched here: their own jobs fetch them, and the songs' arrival queues
    this job again for the artist's shows still without a setlist. An artist
    with neither id queues nothing: the artist import queues its catalogue
    once it learns the Spotify id.
    """
    from shared.sync.catalogue import KIND as CATALOGUE_JOB_KIND
    from shared.sync.played import LIVE_HISTORY_KIND as LIVE_HISTORY_JOB_KIND
    from shared.sync.queue import enqueue

    show_id = job.entity_id
    queued_catalogue = False
    queued_live_history = False
    try:
        with job_transaction(job) as conn:
            answer = _create_setlist_rpc(show_id, enqueue_when_pending=False, conn=conn)
            if answer["status"] == "pending":
                artist_id = uuid.UUID(answer["artist_id"])
                ids = _external_id_sources(conn, artist_id)
                if "spotify" in ids:
                    enqueue(conn, CATALOGUE_JOB_KIND, artist_id)
                    queued_catalogue = True
                else:
                    answer["pending_reason"] = "no_spotify_id"
                if "musicbrainz" in ids:
                    # Without a usable Spotify catalogue, the songs of its
                    # setlist.fm setlists are the catalogue (fresh: no call).
                    enqueue(conn, LIVE_HISTORY_JOB_KIND, artist_id)
                    queued_live_history = True
    except NotFound:
        return {"status": "show_not_found"}
    except Conflict as error:
        if error.code != "show_closed":
            raise
        # Cancelled or over since the job was queued: nothing to draw, ever.
        return {"status": "show_closed"}
    return {
        "status": answer["status"],
        "created": answer["created"],
        "setlist_id": answer["setlist_id"],
        "pending_reason": answer["pending_reason"],
        "catalogue_queued": queued_catalogue,
        "live_history_queued": queued_live_history,
    }


def _external_id_sources(conn: db.Connection, artist_id: uuid.UUID) -> set[str]:
    rows = conn.execute(
        "select distinct source from public.artist_external_ids where artist_id = %s",
        [artist_id],
    ).fetchall()
    return {str(r["source"]) for r in rows}
