"""Calling the backend's write RPCs from Python, and their errors as API errors.

The RPCs (``create_setlist``, ``cast_vote``, ``add_song``, ...) refuse on
purpose with a SQLSTATE that PostgREST turns into the HTTP status (``PT409``
→ 409 and so on) and a stable machine code in the error's hint; the
functions answer with the same status and code.

Deliberately light (no source client, no sync engine): the vote functions
import it on their cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import psycopg

from shared import db
from shared.web import ApiError, BadRequest, Conflict, Forbidden, NotFound, Unauthorized

if TYPE_CHECKING:
    from shared.auth import Claims


class UnprocessableEntity(ApiError):
    status, code = 422, "unprocessable"


# SQLSTATEs the RPCs raise on purpose, with the error class they become.
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


def call(sql: str, params: list[Any], claims: Claims | None = None) -> dict[str, Any]:
    """Run one RPC returning jsonb (as ``answer``) in its own transaction, as the
    caller (``claims``, the way PostgREST runs a request) or as the backend.

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
