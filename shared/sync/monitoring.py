"""The sync engine's health: ``private.sync_monitoring()`` and the quota shares, as JSON."""

from __future__ import annotations

from typing import Any

from shared import db
from shared.db import Connection


def fetch_status(conn: Connection | None = None) -> dict[str, Any]:
    """Per job kind and per provider, as the ``sync_status`` function answers it;
    ``quotas``: each provider's daily quota shares, their use today and reset time."""
    if conn is None:
        with db.transaction() as own:
            return fetch_status(own)
    row = conn.execute(
        "select private.sync_monitoring() as status, private.source_quota_status() as quotas"
    ).fetchone()
    status: dict[str, Any] = row["status"] if row else {}
    status["quotas"] = row["quotas"] if row else []
    return status
