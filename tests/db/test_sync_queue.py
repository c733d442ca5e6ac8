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


def test_a_force_while_pending_upgrades_the_pending_job(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select public.enqueue_sync_job('artist_catalogue', %s)", [entity])
    again = db.execute(
        "select public.enqueue_sync_job('artist_catalogue', %s, '{\"force\": true}') as id",
        [entity]).fetchone()
    assert again == {"id": None}
    jobs = db.execute("select options from public.sync_read_jobs(30, 10)").fetchall()
    assert jobs == [{"options": {"force": True}}]


def test_a_pending_row_whose_message_vanished_does_not_block(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select public.enqueue_sync_job('artist_shows', %s)", [entity])
    db.execute("delete from pgmq.q_sync")  # purged by hand
    row = db.execute("select public.enqueue_sync_job('artist_shows', %s) as id",
                     [entity]).fetchone()
    assert row is not None and row["id"] is not None
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 1}


def test_completing_a_job_releases_it_in_the_same_transaction(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select public.enqueue_sync_job('artist_shows', %s)", [entity])
    job = db.execute("select msg_id, read_ct from public.sync_read_jobs(30, 1)").fetchone()
    assert job is not None
    status = db.execute("select public.sync_complete_job(%s, %s, 5) as s",
                        [job["msg_id"], job["read_ct"]]).fetchone()
    assert status == {"s": "done"}
    assert db.execute("select count(*) as n from public.sync_pending_jobs").fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 0}
    again = db.execute("select public.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    assert again is not None and again["id"] is not None
