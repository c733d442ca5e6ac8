"""Predicted setlists and votes: the Python side of the setlist RPCs.

Everything that must be atomic lives in the database (see
``supabase/migrations/2026112200050*``): ``create_setlist``, ``cast_vote``
and ``add_song`` are Postgres functions. This module calls them, imports an
artist's catalogue first when a setlist cannot be drawn without it, and turns
their errors into JSON API errors.

RPC errors carry a stable machine code in the error's hint and a SQLSTATE
that PostgREST turns into the HTTP status (``PT409`` → 409 and so on); the
functions answer with the same status and code.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import psycopg

from shared import db
from shared.auth import Claims
from shared.logging import get_logger
from shared.web import ApiError, BadRequest, Conflict, Forbidden, NotFound, Unauthorized

log = get_logger(__name__)



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
    """Run one RPC returning jsonb, as the caller (``claims``) or as the backend."""
    try:
        with db.transaction(None if claims is None else claims.raw) as conn:
            row = conn.execute(sql, params).fetchone()
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
