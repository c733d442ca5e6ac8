"""The one owner of the ``sync`` queue in Python: every call into the queue's RPCs.

Enqueueing (``private.enqueue_sync_job``: one pending message per (kind,
entity)), and the worker's side: reading jobs, keeping a running job hidden,
finishing it (done, retry, dead letter) and putting a held-back job back. The
SQL lives in the migrations (``…0240_sync_queue``, ``…0410_sync_worker``,
``…120000_source_quota_protection``); nothing else in Python touches pgmq.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.db import Connection


@dataclass(frozen=True, slots=True)
class Enqueued:
    kind: str
    entity_id: uuid.UUID
    # None when the same job was already pending (it absorbed the options).
    msg_id: int | None

    @property
    def already_pending(self) -> bool:
        return self.msg_id is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "entity_id": str(self.entity_id),
            "msg_id": self.msg_id,
            "already_pending": self.already_pending,
        }


def enqueue(
    conn: Connection,
    kind: str,
    entity_id: uuid.UUID,
    options: Mapping[str, Any] | None = None,
    *,
    delay_seconds: int = 0,
) -> Enqueued:
    row = conn.execute(
        "select private.enqueue_sync_job(%s, %s, %s::jsonb, %s) as msg_id",
        [kind, entity_id, json.dumps(dict(options or {})), delay_seconds],
    ).fetchone()
    return Enqueued(kind, entity_id, None if row is None else row["msg_id"])


# -- the worker's side ------------------------------------------------------------------------


def read(conn: Connection, vt_seconds: int, qty: int) -> list[dict[str, Any]]:
    """Up to ``qty`` visible jobs, hidden for ``vt_seconds``: msg_id, attempt (reads less
    holds), enqueued_at, message, options (the message's merged with later enqueues')."""
    return conn.execute(
        "select msg_id, attempt, enqueued_at, message, options"
        " from private.sync_read_jobs(%s, %s)",
        [vt_seconds, qty],
    ).fetchall()


def visible_count(conn: Connection, limit: int) -> int:
    """How many jobs, at most ``limit``, could be read now."""
    row = conn.execute("select private.sync_visible_jobs(%s) as n", [limit]).fetchone()
    return int(row["n"]) if row else 0


def extend(conn: Connection, msg_id: int, vt_seconds: int) -> bool:
    """Keep a running job hidden for another ``vt_seconds`` (the heartbeat)."""
    row = conn.execute(
        "select private.sync_extend_job(%s, %s) as extended", [msg_id, vt_seconds]
    ).fetchone()
    return bool(row and row["extended"])


def complete(conn: Connection, msg_id: int, attempt: int, duration_ms: int) -> str:
    """Delete a finished job's message in ``conn``'s transaction (the job's writes):
    'done', 'redelivered' (another worker read it meanwhile) or 'gone'."""
    row = conn.execute(
        "select private.sync_complete_job(%s, %s, %s) as status", [msg_id, attempt, duration_ms]
    ).fetchone()
    return str(row["status"]) if row else "gone"


def fail(
    conn: Connection,
    msg_id: int,
    attempt: int,
    error: str,
    *,
    retry_in_seconds: int,
    dead: bool,
    duration_ms: int,
) -> str:
    """A failed attempt: 'retry' after the delay, 'dead' (archived, a dead letter), or 'gone'.
    Records the failure of the job's entity (``private.sync_record_failure``) too."""
    row = conn.execute(
        "select private.sync_fail_job(%s, %s, %s, %s, %s, %s) as status",
        [msg_id, attempt, error, retry_in_seconds, dead, duration_ms],
    ).fetchone()
    return str(row["status"]) if row else "gone"


def hold(conn: Connection, msg_id: int, delay_seconds: int, reason: str) -> str:
    """Put a job a limit held back for ``delay_seconds`` without using up an attempt:
    'held' or 'gone'."""
    row = conn.execute(
        "select private.sync_hold_job(%s, %s, %s) as status", [msg_id, delay_seconds, reason]
    ).fetchone()
    return str(row["status"]) if row else "gone"
