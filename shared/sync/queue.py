"""Enqueueing sync jobs (``public.enqueue_sync_job``): one pending message per (kind, entity)."""

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
        "select public.enqueue_sync_job(%s, %s, %s::jsonb, %s) as msg_id",
        [kind, entity_id, json.dumps(dict(options or {})), delay_seconds],
    ).fetchone()
    return Enqueued(kind, entity_id, None if row is None else row["msg_id"])
