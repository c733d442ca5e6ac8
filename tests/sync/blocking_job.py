"""A job kind for the crash test: writes, then (when told to) blocks inside its
transaction until the process is killed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shared.sources.records import ArtistRecord
from shared.sync.ingest import ingest_artists
from shared.sync.jobs import job_transaction
from shared.sync.registry import Job, JobOutcome, job_handler

KIND = "test_block"
BLOCK_FILE = "THESET_TEST_BLOCK_FILE"


@job_handler(KIND)
def blocking_job(job: Job) -> JobOutcome:
    with job_transaction(job) as conn:
        conn.execute("insert into testing.job_runs (msg_id) values (%s)", [job.msg_id])
        ingest_artists(conn, [ArtistRecord(name="Half Written", ticketmaster_id="K8vZ917HALF")])
        marker = os.environ.get(BLOCK_FILE)
        if marker:
            Path(marker).write_text("started")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until SIGKILL
                time.sleep(0.05)
            raise RuntimeError("the test never killed this worker")
    return {"ran": True}
