from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.support.db import Connection


def test_enqueueing_a_pending_job_again_yields_one_message(db: Connection) -> None:
    entity = uuid.uuid4()
    first = db.execute("select public.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    again = db.execute("select public.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    other = db.execute("select public.enqueue_sync_job('artist_catalogue', %s) as id",
                       [entity]).fetchone()
    assert first is not None and first["id"] is not None
    assert again == {"id": None}
    assert other is not None and other["id"] is not None
    messages = db.execute("select message from pgmq.q_sync order by msg_id").fetchall()
    assert [m["message"]["kind"] for m in messages] == ["artist_shows", "artist_catalogue"]
    assert messages[0]["message"]["entity_id"] == str(entity)


def test_concurrent_enqueues_of_one_job_yield_one_message(
    database_url: str, db: Connection
) -> None:
    entity = uuid.uuid4()

    def enqueue(_: int) -> int | None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("select public.enqueue_sync_job('artist_details', %s)",
                               [entity]).fetchone()
            return None if row is None else row[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(enqueue, range(32)))
    assert sum(result is not None for result in results) == 1
    count = db.execute("select count(*) as n from pgmq.q_sync").fetchone()
    assert count == {"n": 1}
