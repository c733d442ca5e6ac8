"""Calling the backend's write RPCs from Python, and their errors as API errors.

The RPCs (``create_setlist``, ``cast_vote``, ``add_song``, ...) refuse on
purpose with a SQLSTATE that PostgREST turns into the HTTP status (``PT409``
→ 409 and so on) and a stable machine code in the error's hint; the
functions answer with the same status and code.

Deliberately light (no source client, no sync engine): the vote functions
import it on their cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from shared import db
from shared.web import api_error_for_database_error

if TYPE_CHECKING:
    from shared.auth import Claims


def call(
    sql: str,
    params: list[Any],
    claims: Claims | None = None,
    *,
    conn: db.Connection | None = None,
) -> dict[str, Any]:
    """Run one RPC returning jsonb (as ``answer``), as the caller (``claims``, the
    way PostgREST runs a request) or as the backend; a deliberate refusal is
    raised as its ``ApiError``.

    In its own transaction, or inside ``conn``'s when given (a job's). Its own
    transaction is pipelined: begin, the caller's claims, the call and the
    commit leave in one round trip, so a hot row the RPC locks (a popular
    song's vote count) is not held while the commit travels back and forth.
    """
    try:
        if conn is not None:
            if claims is not None:
                db.act_as(conn, claims.raw)
            row = conn.execute(sql, params).fetchone()
        else:
            with db.get_pool().connection() as own:
                with own.pipeline(), own.transaction():
                    if claims is not None:
                        db.act_as(own, claims.raw)
                    cursor = own.execute(sql, params)
                row = cursor.fetchone()
    except psycopg.Error as error:
        mapped = api_error_for_database_error(error)
        if mapped is None:
            raise
        raise mapped from None
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer
