"""Predicted setlists and votes: the Python side of the setlist RPCs.

Everything that must be atomic lives in the database (see
``supabase/migrations/2026112200050*``): ``create_setlist``, ``cast_vote``
and ``add_song`` are Postgres functions. This module calls them, imports an
artist's catalogue first when a setlist cannot be drawn without it, and turns
their errors into JSON API errors. It also registers the ``create_setlist``
queue job (the worker imports this module).

RPC errors carry a stable machine code in the error's hint and a SQLSTATE
that PostgREST turns into the HTTP status (``PT409`` → 409 and so on); the
functions answer with the same status and code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import psycopg

from shared import db
from shared.auth import Claims
from shared.config import get_settings
from shared.logging import get_logger
from shared.sources.errors import SourceError
from shared.sync.catalogue import KIND as CATALOGUE_JOB_KIND
from shared.sync.catalogue import import_artist_catalogue
from shared.sync.errors import NoSpotifyId, SyncError
from shared.sync.jobs import job_transaction
from shared.sync.queue import enqueue
from shared.sync.registry import Job, JobOutcome, job_handler
from shared.web import ApiError, BadRequest, Conflict, Forbidden, NotFound, Unauthorized

log = get_logger(__name__)

JOB_KIND: Final = "create_setlist"



class UnprocessableEntity(ApiError):
    status, code = 422, "unprocessable"


# SQLSTATEs the setlist RPCs raise on purpose, with the error class they become.
_ERRORS_BY_SQLSTATE: Final[Mapping[str, type[ApiError]]] = {
    "P0002": NotFound,
    "PT401": Unauthorized,
    "PT403": Forbidden,
    "PT409": Conflict,
    "PT422": UnprocessableEntity,
    "22004": BadRequest,
}


def api_error_for(error: psycopg.Error) -> ApiError | None:
    """The API error an RPC's deliberate refusal stands for; None for anything else."""
    diag = error.diag
    sqlstate, hint = diag.sqlstate, diag.message_hint
    if sqlstate == "42501" and hint == "not_signed_in":
        return Unauthorized(diag.message_primary or "sign in first", code=hint)
    kind = _ERRORS_BY_SQLSTATE.get(sqlstate or "")
    if kind is None or not hint:
        return None
    return kind(diag.message_primary or hint, code=hint)


def _call(sql: str, params: list[Any], claims: Claims | None = None) -> dict[str, Any]:
    """Run one RPC returning jsonb in its own transaction, as the caller (``claims``, the
    way PostgREST runs a request) or as the backend.

    Pipelined: begin, the caller's claims, the call and the commit leave in one
    round trip, so a hot row the RPC locks (a popular song's vote count) is
    not held while the commit travels back and forth.
    """
    try:
        with db.get_pool().connection() as conn:
            with conn.pipeline(), conn.transaction():
                if claims is not None:
                    db.act_as(conn, claims.raw)
                cursor = conn.execute(sql, params)
            row = cursor.fetchone()
    except psycopg.Error as error:
        mapped = api_error_for(error)
        if mapped is None:
            raise
        raise mapped from None
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


# -- votes ----------------------------------------------------------------------


def cast_vote(claims: Claims, setlist_song_id: uuid.UUID, vote: bool) -> dict[str, Any]:
    """Vote (or take the vote back) as the token's user; the new count and vote state."""
    answer = _call(
        "select public.cast_vote(%s, %s) as answer", [setlist_song_id, vote], claims
    )
    log.info("vote_cast", setlist_song_id=str(setlist_song_id), vote=vote,
             vote_count=answer["vote_count"])
    return answer


def add_song(claims: Claims, show_id: uuid.UUID, song_id: uuid.UUID) -> dict[str, Any]:
    """Add a song of the show's artist to its predicted setlist, as the token's user."""
    answer = _call("select public.add_song(%s, %s) as answer", [show_id, song_id], claims)
    log.info("song_added", show_id=str(show_id), song_id=str(song_id))
    return answer


# -- create_setlist -----------------------------------------------------------


def _create_setlist_rpc(
    conn: db.Connection, show_id: uuid.UUID, *, enqueue_when_pending: bool
) -> dict[str, Any]:
    row = conn.execute(
        "select public.create_setlist(%s, %s) as answer", [show_id, enqueue_when_pending]
    ).fetchone()
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def _rpc(show_id: uuid.UUID, *, enqueue_when_pending: bool) -> dict[str, Any]:
    return _call(
        "select public.create_setlist(%s, %s) as answer", [show_id, enqueue_when_pending]
    )


def _catalogue_lock_key(artist_id: uuid.UUID) -> str:
    return f"catalogue:{artist_id}"


@contextmanager
def _catalogue_import_slot(artist_id: uuid.UUID) -> Iterator[bool]:
    """Whether this caller may fetch the artist's catalogue now: true for one caller
    at a time per artist (a transaction-scoped advisory lock, held until the block
    ends), false at once for everyone else.

    The lock lives on a connection of its own, not a pooled one: the import
    takes pooled connections itself, and a pool full of lock holders each
    waiting for one more connection would stall. The lock goes with the
    transaction, so a crashed request can never keep it.
    """
    with psycopg.connect(
        get_settings().database_url, prepare_threshold=None, connect_timeout=10
    ) as conn:
        row = conn.execute(
            "select pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
            [_catalogue_lock_key(artist_id)],
        ).fetchone()
        yield bool(row and row[0])


def create_setlist(show_id: uuid.UUID) -> dict[str, Any]:
    """Make sure the show has its predicted setlist (for the function).

    When the artist's catalogue is empty it is imported first, by one request
    per artist at a time: a request arriving while another one imports it does
    not fetch it again but answers ``pending`` (``catalogue_importing``) with the
    job queued. When the catalogue cannot be had now, the answer is ``pending``
    with the reason, and the job is queued so the setlist appears as soon as
    the catalogue does.
    """
    answer = _rpc(show_id, enqueue_when_pending=False)
    if answer["status"] != "pending":
        return answer
    artist_id = uuid.UUID(answer["artist_id"])
    with _catalogue_import_slot(artist_id) as mine:
        if not mine:
            log.info("catalogue_import_in_progress", show_id=str(show_id),
                     artist_id=str(artist_id))
            answer = _rpc(show_id, enqueue_when_pending=True)
            if answer["status"] == "pending":
                answer["pending_reason"] = "catalogue_importing"
            return answer
        try:
            # Fresh (imported by a request that held the slot just before): no fetch.
            import_artist_catalogue(artist_id)
        except (SourceError, SyncError) as error:
            # The error names the source and endpoint, never a key or token.
            log.warning("catalogue_unavailable", show_id=str(show_id),
                        artist_id=str(artist_id), error_type=type(error).__name__)
            answer = _rpc(show_id, enqueue_when_pending=True)
            if answer["status"] == "pending":
                answer["pending_reason"] = (
                    "no_spotify_id" if isinstance(error, NoSpotifyId)
                    else "catalogue_unavailable"
                )
            return answer
        # Imported (possibly empty: an artist without a single track). Queue the
        # job if still nothing to draw from, so a later import is picked up.
        return _rpc(show_id, enqueue_when_pending=True)


@job_handler(JOB_KIND)
def create_setlist_job(job: Job) -> JobOutcome:
    """The queued job: draw the setlist, or have the catalogue fetched first.

    One transaction (``job_transaction``): the draw, or the queueing of the
    ``artist_catalogue`` job when the catalogue is empty, commits together
    with the removal of this job from the queue, or none of it does. The
    catalogue is never fetched here: its own job fetches it, and the songs'
    arrival queues this job again for the artist's shows still without a
    setlist. An artist without a Spotify id queues nothing: the artist import
    queues its catalogue once it learns the id.
    """
    show_id = job.entity_id
    queued_catalogue = False
    try:
        with job_transaction(job) as conn:
            answer = _create_setlist_rpc(conn, show_id, enqueue_when_pending=False)
            if answer["status"] == "pending":
                artist_id = uuid.UUID(answer["artist_id"])
                if _has_spotify_id(conn, artist_id):
                    enqueue(conn, CATALOGUE_JOB_KIND, artist_id)
                    queued_catalogue = True
                else:
                    answer["pending_reason"] = "no_spotify_id"
    except psycopg.errors.NoDataFound:
        return {"status": "show_not_found"}
    except psycopg.Error as error:
        if error.diag.message_hint != "show_closed":
            raise
        # Cancelled or over since the job was queued: nothing to draw, ever.
        return {"status": "show_closed"}
    return {
        "status": answer["status"],
        "created": answer["created"],
        "setlist_id": answer["setlist_id"],
        "pending_reason": answer["pending_reason"],
        "catalogue_queued": queued_catalogue,
    }


def _has_spotify_id(conn: db.Connection, artist_id: uuid.UUID) -> bool:
    row = conn.execute(
        "select exists (select 1 from public.artist_external_ids x"
        " where x.artist_id = %s and x.source = 'spotify') as known",
        [artist_id],
    ).fetchone()
    return bool(row and row["known"])
