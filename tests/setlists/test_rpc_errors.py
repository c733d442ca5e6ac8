"""The RPCs' deliberate refusals (SQLSTATE + hint) become API errors in one place,
``shared.web.api_error_for_database_error``, used by the setlist, vote and
discovery code alike; anything else is left to propagate."""

from __future__ import annotations

import psycopg
import pytest

from shared.web import Conflict, NotFound, Unauthorized, api_error_for_database_error
from tests.support.db import Connection


def refusal(db: Connection, sqlstate: str, hint: str | None) -> psycopg.Error:
    """The error PL/pgSQL raises for ``raise exception ... using errcode, hint``."""
    using = f"errcode = '{sqlstate}'" + (f", hint = '{hint}'" if hint else "")
    with pytest.raises(psycopg.Error) as raised:
        db.execute(f"do $$ begin raise exception 'refused on purpose' using {using}; end $$")
    return raised.value


@pytest.mark.parametrize(
    ("sqlstate", "hint", "kind", "status"),
    [
        ("PT401", "unknown_user", Unauthorized, 401),
        ("42501", "not_signed_in", Unauthorized, 401),
        ("P0002", "show_not_found", NotFound, 404),
        ("PT409", "show_closed", Conflict, 409),
        ("PT422", "song_of_another_artist", None, 422),
    ],
)
def test_deliberate_refusals_map_to_their_status_and_code(
    db: Connection, sqlstate: str, hint: str, kind: type | None, status: int
) -> None:
    mapped = api_error_for_database_error(refusal(db, sqlstate, hint))
    assert mapped is not None
    assert (mapped.status, mapped.code, mapped.message) == (status, hint, "refused on purpose")
    if kind is not None:
        assert isinstance(mapped, kind)


def test_anything_else_is_not_mapped(db: Connection) -> None:
    assert api_error_for_database_error(refusal(db, "PT409", None)) is None  # no code
    assert api_error_for_database_error(refusal(db, "P0001", "custom")) is None
    with pytest.raises(psycopg.Error) as raised:
        db.execute("select 1 / 0")
    assert api_error_for_database_error(raised.value) is None
