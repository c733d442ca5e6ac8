from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.support.db import Connection


def test_enqueueing_a_pending_job_again_yields_one_message(db: Connection) -> None:
    entity = uuid.uuid4()
    first = db.execute("select private.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    again = db.execute("select private.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    other = db.execute("select private.enqueue_sync_job('artist_catalogue', %s) as id",
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
            row = conn.execute("select private.enqueue_sync_job('artist_details', %s)",
                               [entity]).fetchone()
            return None if row is None else row[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(enqueue, range(32)))
    assert sum(result is not None for result in results) == 1
    count = db.execute("select count(*) as n from pgmq.q_sync").fetchone()
    assert count == {"n": 1}


def test_a_force_while_pending_upgrades_the_pending_job(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('artist_catalogue', %s)", [entity])
    again = db.execute(
        "select private.enqueue_sync_job('artist_catalogue', %s, '{\"force\": true}') as id",
        [entity]).fetchone()
    assert again == {"id": None}
    jobs = db.execute("select options from private.sync_read_jobs(30, 10)").fetchall()
    assert jobs == [{"options": {"force": True}}]


def test_a_pending_row_whose_message_vanished_does_not_block(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    db.execute("delete from pgmq.q_sync")  # purged by hand
    row = db.execute("select private.enqueue_sync_job('artist_shows', %s) as id",
                     [entity]).fetchone()
    assert row is not None and row["id"] is not None
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 1}


def test_completing_a_job_releases_it_in_the_same_transaction(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    job = db.execute("select msg_id, read_ct from private.sync_read_jobs(30, 1)").fetchone()
    assert job is not None
    status = db.execute("select private.sync_complete_job(%s, %s, 5) as s",
                        [job["msg_id"], job["read_ct"]]).fetchone()
    assert status == {"s": "done"}
    assert db.execute("select count(*) as n from private.sync_pending_jobs").fetchone() == {"n": 0}
    assert db.execute("select count(*) as n from pgmq.q_sync").fetchone() == {"n": 0}
    again = db.execute("select private.enqueue_sync_job('artist_shows', %s) as id",
                       [entity]).fetchone()
    assert again is not None and again["id"] is not None


def _pending_rows_name_their_messages(db: Connection) -> bool:
    mismatched = db.execute(
        "select count(*) as n from private.sync_pending_jobs p"
        " left join pgmq.q_sync q on q.msg_id = p.msg_id"
        " where q.message ->> 'kind' is distinct from p.job_kind"
        " or (q.message ->> 'entity_id')::uuid is distinct from p.entity_id").fetchone()
    return mismatched == {"n": 0}


def test_a_batch_enqueue_sends_one_message_per_entity_not_yet_pending(db: Connection) -> None:
    pending, new, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    db.execute("select private.enqueue_sync_job('create_setlist', %s)", [pending])
    queued = db.execute(
        "select private.enqueue_sync_jobs('create_setlist', %s::uuid[]) as n",
        [[new, pending, new, None, other]]).fetchone()
    assert queued == {"n": 2}
    entities = sorted(entity for _, entity in _messages(db))
    assert entities == sorted(str(e) for e in (pending, new, other))
    assert _pending_rows_name_their_messages(db)


def test_overlapping_batch_enqueues_at_once_send_one_message_per_entity(
    database_url: str, db: Connection
) -> None:
    entities = [uuid.uuid4() for _ in range(40)]
    barrier = threading.Barrier(8)

    def enqueue(seed: int) -> None:
        some = entities[seed * 4 : seed * 4 + 20]  # each overlaps its neighbours
        with psycopg.connect(database_url) as conn:
            barrier.wait()
            conn.execute("select private.enqueue_sync_jobs('create_setlist', %s::uuid[])",
                         [some[::-1] if seed % 2 else some])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(enqueue, range(8)))
    assert sorted(entity for _, entity in _messages(db)) == sorted(str(e) for e in entities)
    assert _pending_rows_name_their_messages(db)


def _messages(db: Connection) -> list[tuple[str, str]]:
    return [
        (r["message"]["kind"], r["message"]["entity_id"])
        for r in db.execute("select message from pgmq.q_sync order by msg_id")
    ]


def _read_one(db: Connection) -> dict[str, int]:
    job = db.execute("select msg_id, read_ct from private.sync_read_jobs(300, 1)").fetchone()
    assert job is not None
    return {"msg_id": job["msg_id"], "read_ct": job["read_ct"]}


@pytest.mark.parametrize("ending", ["done", "dead"])
def test_a_job_asked_for_while_it_runs_runs_again_after_it(
    ending: str, database_url: str, db: Connection
) -> None:
    """create_setlist(S) is queued (new songs) while a run of create_setlist(S) that
    found no catalogue is finishing: S must get another run."""
    show = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('create_setlist', %s)", [show])
    running = _read_one(db)  # a worker runs it

    with psycopg.connect(database_url, autocommit=True) as other:
        again = other.execute(
            "select private.enqueue_sync_job('create_setlist', %s, '{\"why\": \"songs\"}')",
            [show],
        ).fetchone()
    assert again == (None,)  # pending: no second message while it runs

    if ending == "done":
        status = db.execute(
            "select private.sync_complete_job(%s, %s) as s",
            [running["msg_id"], running["read_ct"]],
        ).fetchone()
    else:
        status = db.execute(
            "select private.sync_fail_job(%s, %s, 'boom', 60, true) as s",
            [running["msg_id"], running["read_ct"]],
        ).fetchone()
    assert status == {"s": ending}

    assert _messages(db) == [("create_setlist", str(show))]
    rerun = db.execute("select msg_id, read_ct, options from private.sync_read_jobs(300, 1)")
    job = rerun.fetchone()
    assert job is not None and job["msg_id"] != running["msg_id"] and job["read_ct"] == 1
    assert job["options"] == {"why": "songs"}
    pending = db.execute("select msg_id, rerun from private.sync_pending_jobs").fetchall()
    assert pending == [{"msg_id": job["msg_id"], "rerun": False}]
    # This run ends normally: nothing left.
    db.execute("select private.sync_complete_job(%s, 1)", [job["msg_id"]])
    assert _messages(db) == []
    assert db.execute("select count(*) as n from private.sync_pending_jobs").fetchone() == {"n": 0}


def test_a_request_while_running_is_kept_when_the_run_completes_concurrently(
    database_url: str, db: Connection
) -> None:
    """Two sessions: the enqueue holds the pending row when the worker completes."""
    show = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('create_setlist', %s)", [show])
    running = _read_one(db)

    with psycopg.connect(database_url) as enqueuer:
        enqueuer.execute("select private.enqueue_sync_job('create_setlist', %s)", [show])
        with psycopg.connect(database_url, autocommit=True) as worker:
            pid = worker.info.backend_pid
            done: list[object] = []

            def complete() -> None:
                row = worker.execute(
                    "select private.sync_complete_job(%s, %s)",
                    [running["msg_id"], running["read_ct"]],
                ).fetchone()
                done.append(row[0] if row else None)

            thread = threading.Thread(target=complete)
            thread.start()
            # The worker's completion waits for the enqueuer's transaction.
            while db.execute(
                "select wait_event_type = 'Lock' as waiting from pg_stat_activity where pid = %s",
                [pid],
            ).fetchone() != {"waiting": True}:
                assert thread.is_alive() and not done, "the completion did not wait"
                time.sleep(0.01)
            enqueuer.commit()
            thread.join()
    assert done == ["done"]
    assert _messages(db) == [("create_setlist", str(show))]
    assert db.execute("select count(*) as n from private.sync_pending_jobs").fetchone() == {"n": 1}


def test_a_retry_covers_a_request_made_while_running(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    running = _read_one(db)
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    assert db.execute("select rerun from private.sync_pending_jobs").fetchone() == {"rerun": True}
    db.execute(
        "select private.sync_fail_job(%s, %s, 'boom', 0, false)",
        [running["msg_id"], running["read_ct"]],
    )
    retried = _read_one(db)
    assert retried["msg_id"] == running["msg_id"]
    db.execute("select private.sync_complete_job(%s, %s)", [retried["msg_id"], retried["read_ct"]])
    assert _messages(db) == []  # the retry was the run asked for: no third one


def test_enqueueing_a_job_not_yet_read_does_not_mark_a_rerun(db: Connection) -> None:
    entity = uuid.uuid4()
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    db.execute("select private.enqueue_sync_job('artist_shows', %s)", [entity])
    assert db.execute("select rerun from private.sync_pending_jobs").fetchone() == {"rerun": False}


# -- grants: what service_role is given, it can run -----------------------------------------

QUEUE_FUNCTIONS = [
    "private.enqueue_sync_job(text, uuid, jsonb, integer)",
    "private.sync_read_jobs(integer, integer)",
    "private.sync_extend_job(bigint, integer)",
    "private.sync_complete_job(bigint, integer, integer)",
    "private.sync_fail_job(bigint, integer, text, integer, boolean, integer)",
    "private.enqueue_stale_artist_jobs(text, integer)",
    "private.enqueue_popularity_refresh()",
    "private.sync_cleanup(interval, interval, interval, interval, interval)",
    "private.sync_monitoring()",
]


def test_service_role_has_no_rights_on_pgmq_or_cron(database_url: str) -> None:
    for statement in ("select count(*) from pgmq.q_sync", "select count(*) from cron.job"):
        with psycopg.connect(database_url) as conn:
            conn.execute("set role service_role")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_functions_using_pgmq_or_cron_are_not_granted_to_service_role(db: Connection) -> None:
    granted = db.execute(
        "select p.oid::regprocedure::text as fn from pg_proc p"
        " where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)"
        "   and not p.prosecdef"
        "   and p.prosrc ~ '(pgmq|cron)\\.|private\\.(enqueue_sync_job|sync_release_pending)\\('"
        "   and has_function_privilege('service_role', p.oid, 'execute')"
    ).fetchall()
    assert granted == []
    for fn in QUEUE_FUNCTIONS:
        row = db.execute(
            "select has_function_privilege('service_role', %s::regprocedure, 'execute') as ok",
            [fn],
        ).fetchone()
        assert row == {"ok": False}, fn


def test_service_role_can_ingest_songs_that_queue_setlists(
    database_url: str, db: Connection
) -> None:
    """ingest_songs stays usable by service_role: the queueing runs with definer rights."""
    artist = db.execute(
        "insert into public.artists (name) values ('Phish') returning id"
    ).fetchone()
    venue = db.execute(
        "insert into public.venues (name, city) values ('MSG', 'New York') returning id"
    ).fetchone()
    assert artist is not None and venue is not None
    show = db.execute(
        "insert into public.shows (artist_id, venue_id, local_date)"
        " values (%s, %s, current_date + 3) returning id",
        [artist["id"], venue["id"]],
    ).fetchone()
    assert show is not None
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    with psycopg.connect(database_url) as conn:
        conn.execute("set role service_role")
        rows = conn.execute(
            "select song_id from private.ingest_songs(%s, '[{\"title\": \"Tweezer\"}]')",
            [artist["id"]],
        ).fetchall()
        conn.commit()
    assert len(rows) == 1 and rows[0][0] is not None
    assert _messages(db) == [("create_setlist", str(show["id"]))]
