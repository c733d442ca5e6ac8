"""Database helpers for tests: act as PostgREST would for anon, a user or service_role."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

Connection = psycopg.Connection[DictRow]


def claims_for(role: str, user_id: uuid.UUID | str | None = None) -> dict[str, Any]:
    """The JWT claims PostgREST would expose for ``role`` (a user's when ``user_id``)."""
    claims: dict[str, Any] = {"role": role}
    if user_id is not None:
        claims.update(
            sub=str(user_id), aud="authenticated", email=f"{user_id}@example.com",
            aal="aal1", is_anonymous=False,
        )
    return claims


@contextmanager
def request_as(
    url: str, role: str, user_id: uuid.UUID | str | None = None, *, commit: bool = False
) -> Iterator[Connection]:
    """One transaction run exactly as PostgREST runs a request for that role and user.

    Rolled back at the end unless ``commit``: most tests only look.
    """
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, true), set_config('role', %s, true),"
            " set_config('request.method', 'POST', true)",
            [json.dumps(claims_for(role, user_id)), role],
        )
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        if commit:
            conn.commit()
        else:
            conn.rollback()


def create_user(
    db: Connection,
    *,
    email: str | None = None,
    meta: dict[str, Any] | None = None,
    app_meta: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Insert an ``auth.users`` row as Supabase Auth would on sign-up."""
    user_id = uuid.uuid4()
    db.execute(
        "insert into auth.users (id, aud, role, email, email_confirmed_at,"
        " raw_app_meta_data, raw_user_meta_data)"
        " values (%s, 'authenticated', 'authenticated', %s, now(), %s, %s)",
        [
            user_id,
            email or f"{user_id}@example.com",
            json.dumps(app_meta or {"provider": "email", "providers": ["email"]}),
            json.dumps(meta or {}),
        ],
    )
    return user_id
