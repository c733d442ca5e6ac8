"""Database access: one connection pool per process, one transaction per unit of work.

Production goes through Supavisor in transaction mode, so nothing here relies
on session state: no server-side prepared statements, and every setting is
transaction-local (``set local`` / ``set_config(..., true)``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from shared.config import get_settings

Connection = psycopg.Connection[DictRow]

# The roles PostgREST would switch to for a request, with the statement
# timeouts Supabase gives them (PostgREST applies a role's settings per
# request; ``set role`` alone would not). Any other role in a token is refused.
_REQUEST_ROLE_TIMEOUTS = {"anon": "3s", "authenticated": "8s"}

_pool: ConnectionPool[Connection] | None = None
_pool_lock = threading.Lock()


def get_pool() -> ConnectionPool[Connection]:
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            _pool = ConnectionPool(
                settings.database_url,
                connection_class=Connection,
                kwargs={"row_factory": dict_row, "prepare_threshold": None},
                min_size=1,
                max_size=settings.database_pool_max_size,
                open=True,
                timeout=settings.database_pool_timeout_seconds,
                name="theset",
            )
        return _pool


def close_pool() -> None:
    """Close the process pool; the next ``get_pool`` opens a new one (tests, shutdown)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def transaction(claims: Mapping[str, Any] | None = None) -> Iterator[Connection]:
    """One transaction on a pooled connection, committed on success, rolled back on error.

    With ``claims`` the transaction runs the way PostgREST runs a request for
    that token: ``role`` switched to the claim's role and the claims readable
    by ``auth.uid()`` / ``auth.jwt()``, so RLS and grants apply exactly as they
    do for supabase-js. Without claims it runs as the backend's own role.
    """
    with get_pool().connection() as conn, conn.transaction():
        if claims is not None:
            act_as(conn, claims)
        yield conn


def act_as(conn: Connection, claims: Mapping[str, Any]) -> None:
    """Switch the current transaction to the request role described by ``claims``."""
    role = claims.get("role", "anon")
    if role not in _REQUEST_ROLE_TIMEOUTS:
        raise ValueError("unsupported request role")
    # PostgREST's own statement: setting ``role`` with set_config is ``set local role``.
    conn.execute(
        "select set_config('request.jwt.claims', %s, true), set_config('role', %s, true),"
        " set_config('statement_timeout', %s, true)",
        [json.dumps(dict(claims)), role, _REQUEST_ROLE_TIMEOUTS[role]],
    )
