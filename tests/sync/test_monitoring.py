"""The monitoring RPC and the status command's tables."""

from __future__ import annotations

import uuid

from rich.console import Console

from devstack.status import render
from shared.sync.monitoring import fetch_status
from tests.support.db import Connection


def test_monitoring_counts_queue_runs_dead_letters_and_calls(
    database_url: str, db: Connection
) -> None:
    for _ in range(2):
        db.execute("select private.enqueue_sync_job('artist_shows', %s)", [uuid.uuid4()])
    db.execute(
        "update pgmq.q_sync set enqueued_at = now() - interval '5 minutes'"
        " where msg_id = (select min(msg_id) from pgmq.q_sync)"
    )
    db.execute(
        "insert into private.sync_job_runs (job_kind, attempt, outcome, duration_ms) values"
        " ('artist_shows', 1, 'done', 40), ('artist_shows', 1, 'retry', 10),"
        " ('artist_catalogue', 5, 'dead', 10)"
    )
    db.execute(
        "insert into private.sync_dead_letters (msg_id, job_kind, message, attempts,"
        " last_error) values (9, 'artist_catalogue', '{}', 5, 'UpstreamError: 503')"
    )
    db.execute(
        "insert into private.api_calls (provider, endpoint, method, status_code, latency_ms,"
        " attempt, outcome) values ('spotify', '/a', 'GET', 200, 100, 1, 'ok'),"
        " ('spotify', '/a', 'GET', 503, 300, 1, 'server_error'),"
        " ('spotify', '/a', 'GET', 200, 200, 1, 'ok'),"
        " ('ticketmaster', '/b', 'GET', 404, 50, 1, 'not_found')"
    )

    status = fetch_status()

    assert status["queue"]["depth"] == 2
    jobs = {job["kind"]: job for job in status["jobs"]}
    shows = jobs["artist_shows"]
    assert (
        shows["depth"],
        shows["visible"],
        shows["done_last_hour"],
        shows["failed_last_hour"],
    ) == (2, 2, 1, 1)
    assert shows["oldest_age_seconds"] >= 300
    assert jobs["artist_catalogue"]["dead_letters"] == 1
    providers = {p["provider"]: p for p in status["providers"]}
    assert providers["spotify"]["calls_last_hour"] == 3
    assert float(providers["spotify"]["error_rate"]) == round(1 / 3, 4)
    assert providers["spotify"]["avg_latency_ms"] == 200
    assert providers["ticketmaster"]["error_rate"] == 0  # a 404 is an answer, not an error
    assert providers["setlistfm"]["calls_last_hour"] == 0

    console = Console(record=True, width=140)
    render(status, console)
    text = console.export_text()
    assert "artist_shows" in text and "artist_catalogue" in text and "spotify" in text
    assert "33.3%" in text
