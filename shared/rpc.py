"""Calling the backend's write RPCs from Python, and their errors as API errors.

The RPCs (``create_setlist``, ``cast_vote``, ``add_song``, ...) refuse on
purpose with a SQLSTATE that PostgREST turns into the HTTP status (``PT409``
→ 409 and so on) and a stable machine code in the error's hint; the
functions answer with the same status and code.

Deliberately light (no source client, no sync engine): the vote functions
import it on their cold start.
"""

from __future__ import annotations

import contextlib
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
    transaction leaves in one round trip: BEGIN, the caller's claims, the call
    and COMMIT, pipelined, so the rows the RPC locks (a song's vote tally) are
    not held while a commit travels back and forth. (psycopg's
    ``transaction()`` in a pipeline would wait for the call's result before
    sending COMMIT: measured on a hot row, half the rate.)
    """
    try:
        if conn is not None:
            if claims is not None:
                db.act_as(conn, claims.raw)
            row = conn.execute(sql, params).fetchone()
        else:
            with db.get_pool().connection() as own:
                row = _one_round_trip(own, sql, params, claims)
    except psycopg.Error as error:
        mapped = api_error_for_database_error(error)
        if mapped is None:
            raise
        raise mapped from None
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def _one_round_trip(
    conn: db.Connection, sql: str, params: list[Any], claims: Claims | None
) -> Any:
    """BEGIN, the claims, the statement and COMMIT sent at once; the statement's row."""
    conn.autocommit = True  # BEGIN and COMMIT are ours, in the pipeline
    try:
        with conn.pipeline():
            conn.execute("begin")
            if claims is not None:
                db.act_as(conn, claims.raw)
            cursor = conn.execute(sql, params)
            conn.execute("commit")
        return cursor.fetchone()
    except BaseException:
        # A failed statement leaves the transaction open and aborted: end it. A
        # broken connection needs nothing: the pool discards it.
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
        raise
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.autocommit = False
