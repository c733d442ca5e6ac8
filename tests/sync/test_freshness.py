"""Freshness bookkeeping: the job kinds' one list, failures and their backoff."""

from __future__ import annotations

import typing
import uuid

import psycopg
import pytest

from shared.sync.freshness import JobKind
from tests.support.db import Connection


def test_job_kind_lists_exactly_the_database_kinds(db: Connection) -> None:
    kinds = {r["kind"] for r in db.execute("select kind from private.sync_job_kinds")}
    assert set(typing.get_args(JobKind)) == kinds


def test_sync_state_accepts_only_listed_kinds(db: Connection) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(
            "insert into private.sync_state (job_kind, entity_id) values ('no_such_kind', %s)",
            [uuid.uuid4()],
        )


def _state(db: Connection, entity: uuid.UUID) -> dict[str, typing.Any]:
    row = db.execute(
        "select consecutive_failures as n,"
        " next_due_at - coalesce(last_error_at, last_success_at) as wait,"
        " private.sync_is_fresh('artist_shows', entity_id) as fresh"
        " from private.sync_state where job_kind = 'artist_shows' and entity_id = %s",
        [entity],
    ).fetchone()
    assert row is not None
    return dict(row)


def test_failures_back_off_exponentially_up_to_the_ttl_and_success_resets(
    db: Connection,
) -> None:
    entity = uuid.uuid4()
    waits = []
    for _ in range(12):
        db.execute("select private.sync_record_failure('artist_shows', %s, 'boom')", [entity])
        state = _state(db, entity)
        assert state["fresh"] is False
        waits.append(state["wait"])
    assert _state(db, entity)["n"] == 12
    assert waits[1] == 2 * waits[0] and waits[2] == 2 * waits[1]
    ttl = db.execute("select private.sync_ttl('artist_shows') as t").fetchone()
    assert ttl is not None and max(waits) == ttl["t"]

    db.execute("select private.sync_record_success('artist_shows', %s)", [entity])
    state = _state(db, entity)
    assert (state["n"], state["wait"], state["fresh"]) == (0, ttl["t"], True)


def test_a_failed_refresh_of_a_fresh_entity_leaves_it_fresh(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.sync_record_success('artist_shows', %s)", [entity])
    db.execute("select private.sync_record_failure('artist_shows', %s, 'boom')", [entity])
    state = _state(db, entity)
    assert (state["n"], state["fresh"]) == (0, True)


def test_a_failed_refresh_of_a_stale_entity_is_not_fresh(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.sync_record_success('artist_shows', %s)", [entity])
    db.execute(
        "update private.sync_state set next_due_at = now() - interval '1 minute'"
        " where entity_id = %s",
        [entity],
    )
    db.execute("select private.sync_record_failure('artist_shows', %s, 'boom')", [entity])
    state = _state(db, entity)
    assert (state["n"], state["fresh"]) == (1, False)
    assert state["wait"].total_seconds() > 0
    due = db.execute(
        "select next_due_at > now() as later from private.sync_state where entity_id = %s",
        [entity],
    ).fetchone()
    assert due == {"later": True}
