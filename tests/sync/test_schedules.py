"""pg_cron schedules: what is scheduled, and what each scheduled statement does
(the launcher does not run jobs in test databases, so the tests run the SQL)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from shared import db as shared_db
from shared.sources.records import ArtistRecord
from shared.sync.ingest import ingest_artists
from tests.support.catalogue import insert_show, insert_venue
from tests.support.db import Connection
from tests.sync.snapshots import count


def _artist(name: str, tm_id: str | None) -> uuid.UUID:
    with shared_db.transaction() as conn:
        [r] = ingest_artists(conn, [ArtistRecord(name=name, ticketmaster_id=tm_id)])
    return r.id


def test_the_sync_schedules_exist(db: Connection) -> None:
    jobs = {
        r["jobname"]: (r["schedule"], r["command"])
        for r in db.execute("select jobname, schedule, command from cron.job")
    }
    assert jobs["sync-enqueue-stale-shows"] == (
        "*/10 * * * *",
        "select private.enqueue_stale_artist_jobs('artist_shows', 20)",
    )
    assert jobs["sync-enqueue-stale-artists"][1] == (
        "select private.enqueue_stale_artist_jobs('artist_details', 10)"
    )
    assert jobs["sync-popularity-daily"][1] == "select private.enqueue_popularity_refresh()"
    assert jobs["sync-cleanup-daily"][1] == "select private.sync_cleanup()"
    assert "sync-run-jobs" not in jobs  # production only: needs pg_net


def test_stale_shows_are_queued_soonest_show_first(database_url: str, db: Connection) -> None:
    later = _artist("Later Band", "K8vZ917LATE")
    sooner = _artist("Sooner Band", "K8vZ917SOON")
    no_shows = _artist("Quiet Band", "K8vZ917QUIE")
    fresh = _artist("Fresh Band", "K8vZ917FRSH")
    _artist("Not On Ticketmaster", None)
    venue = insert_venue(db)
    insert_show(db, later, venue, days_ahead=90)
    insert_show(db, sooner, venue, days_ahead=3)
    db.execute("select private.sync_record_success('artist_shows', %s)", [fresh])

    stale_shows = "select private.enqueue_stale_artist_jobs('artist_shows', 10) as n"
    queued = db.execute(stale_shows).fetchone()
    assert queued == {"n": 3}
    order = [
        r["entity"]
        for r in db.execute(
            "select (message ->> 'entity_id')::uuid as entity from pgmq.q_sync"
            " where message ->> 'kind' = 'artist_shows' order by msg_id"
        )
    ]
    assert order == [sooner, later, no_shows]
    # Already pending: nothing queued twice.
    assert db.execute(stale_shows).fetchone() == {"n": 0}


def test_stale_artists_and_the_popularity_refresh_are_queued(
    db: Connection, database_url: str
) -> None:
    stale = _artist("Stale Band", "K8vZ917STAL")
    fresh = _artist("Fresh Band", "K8vZ917FRSH")
    db.execute("select private.sync_record_success('artist_details', %s)", [fresh])
    db.execute("select private.sync_record_success('artist_details', %s)", [stale])
    db.execute(
        "update private.sync_state set next_due_at = now() - interval '1 hour'"
        " where entity_id = %s",
        [stale],
    )
    stale_details = "select private.enqueue_stale_artist_jobs('artist_details', 10) as n"
    assert db.execute(stale_details).fetchone() == {"n": 1}
    queued = db.execute("select private.enqueue_popularity_refresh() is not null as q")
    assert queued.fetchone() == {"q": True}
    kinds = sorted(r["k"] for r in db.execute("select message ->> 'kind' as k from pgmq.q_sync"))
    assert kinds == ["artist_details", "artist_popularity"]


def test_cleanup_removes_only_old_bookkeeping(db: Connection) -> None:
    for age in ("40 days", "1 day"):
        db.execute(
            "insert into private.api_calls (called_at, provider, endpoint, method, latency_ms,"
            " attempt, outcome) values (now() - %s::interval, 'spotify', '/x', 'GET', 1, 1,"
            " 'ok')",
            [age],
        )
        db.execute(
            "insert into private.sync_job_runs (finished_at, job_kind, attempt, outcome)"
            " values (now() - %s::interval, 'artist_shows', 1, 'done')",
            [age],
        )
    db.execute(
        "insert into cron.job_run_details (jobid, runid, status, start_time, end_time)"
        " values (1, 424242, 'succeeded', now() - interval '9 days',"
        " now() - interval '9 days')"
    )
    result = db.execute("select private.sync_cleanup() as r").fetchone()
    assert result is not None
    assert result["r"]["api_calls"] == 1 and result["r"]["job_runs"] == 1
    assert result["r"]["cron_runs"] == 1
    assert count(db, "private.api_calls") == 1 and count(db, "private.sync_job_runs") == 1


def test_the_production_webhook_needs_pg_net(db: Connection) -> None:
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="pg_net"):
        db.execute("select private.schedule_run_jobs_webhook('https://example.com/run_jobs')")


def test_the_production_webhook_posts_with_the_secret_from_vault(db: Connection) -> None:
    """With stand-ins for pg_net and Vault, the scheduled statement does what it should."""
    db.execute("create schema net")
    db.execute("create table net.posts (url text, headers jsonb, body jsonb, timeout int)")
    db.execute(
        "create function net.http_post(url text, body jsonb default '{}',"
        " params jsonb default '{}', headers jsonb default '{}',"
        " timeout_milliseconds int default 5000) returns bigint"
        " language sql as $$ insert into net.posts values (url, headers, body,"
        " timeout_milliseconds); select 1::bigint $$"
    )
    db.execute("create schema vault")
    db.execute(
        "create view vault.decrypted_secrets as"
        " select 'internal_secret'::text as name, 's3cr3t'::text as decrypted_secret"
    )

    db.execute("select private.schedule_run_jobs_webhook('https://fn.example.com/run_jobs')")
    job = db.execute(
        "select schedule, command from cron.job where jobname = 'sync-run-jobs'"
    ).fetchone()
    assert job is not None and job["schedule"] == "* * * * *"
    assert "s3cr3t" not in job["command"]  # read from Vault at each run, never stored
    db.execute(job["command"])
    post = db.execute("select * from net.posts").fetchone()
    assert post == {
        "url": "https://fn.example.com/run_jobs",
        "headers": {"Content-Type": "application/json", "X-Internal-Secret": "s3cr3t"},
        "body": {"budget_seconds": 50},
        "timeout": 60000,
    }
    assert db.execute("select private.unschedule_run_jobs_webhook() as ok").fetchone() == {
        "ok": True
    }


def _run_queued_jobs(db: Connection, failing: set[uuid.UUID]) -> None:
    """Run every queued job: those of ``failing`` entities end as dead letters (a
    permanently failing source), the others succeed."""
    jobs = db.execute("select msg_id, read_ct, message from private.sync_read_jobs(30, 100)")
    for job in jobs.fetchall():
        entity = uuid.UUID(job["message"]["entity_id"])
        if job["message"]["kind"] == "create_setlist":  # queued for the new shows
            db.execute("select private.sync_complete_job(%s, %s)", [job["msg_id"], job["read_ct"]])
        elif entity in failing:
            db.execute(
                "select private.sync_fail_job(%s, %s, 'UpstreamError: 503', 60, true)",
                [job["msg_id"], job["read_ct"]],
            )
        else:
            db.execute(
                "select private.sync_record_success(%s, %s)", [job["message"]["kind"], entity]
            )
            db.execute(
                "select private.sync_complete_job(%s, %s)", [job["msg_id"], job["read_ct"]]
            )


@pytest.mark.parametrize("kind", ["artist_details", "artist_shows"])
def test_failing_artists_with_near_shows_do_not_starve_a_stale_healthy_one(
    kind: str, database_url: str, db: Connection
) -> None:
    venue = insert_venue(db)
    failing = [_artist(f"Failing {i}", f"K8vZ917F{i:03d}") for i in range(6)]
    for days, artist in enumerate(failing, start=1):
        insert_show(db, artist, venue, days_ahead=days)
    healthy = _artist("Healthy Band", "K8vZ917HLTH")
    insert_show(db, healthy, venue, days_ahead=200)
    db.execute(f"select private.sync_record_success('{kind}', %s)", [healthy])
    db.execute(
        "update private.sync_state set next_due_at = now() - interval '1 hour'"
        " where entity_id = %s",
        [healthy],
    )

    def run() -> set[uuid.UUID]:
        before = {r["msg_id"] for r in db.execute("select msg_id from pgmq.q_sync")}
        db.execute("select private.enqueue_stale_artist_jobs(%s, 3)", [kind])
        return {
            r["entity"]
            for r in db.execute(
                "select msg_id, (message ->> 'entity_id')::uuid as entity from pgmq.q_sync"
            )
            if r["msg_id"] not in before
        }

    queued: set[uuid.UUID] = set()
    for _ in range(4):  # four scheduler runs (an hour), every job run in between
        queued |= run()
        _run_queued_jobs(db, set(failing))
    assert healthy in queued
    # Each failing artist was tried, then waits out its backoff instead of retaking a slot.
    assert set(failing) <= queued
    waiting = db.execute(
        "select count(*) as n from private.sync_state where job_kind = %s"
        " and consecutive_failures > 0 and next_due_at > now()",
        [kind],
    ).fetchone()
    assert waiting == {"n": len(failing)}


def test_only_artist_details_and_shows_have_a_stale_artist_schedule(db: Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select private.enqueue_stale_artist_jobs('artist_catalogue', 10)")
