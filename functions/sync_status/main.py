"""sync_status: the sync engine's health as JSON for dashboards (internal callers).

``GET`` with ``X-Internal-Secret``: per job kind the queue depth, oldest
message age, jobs done and failed in the last hour and dead letters; per
provider the API calls, error rate and latency of the last hour.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from shared.sync.monitoring import fetch_status
from shared.web import endpoint, require_internal_caller


@functions_framework.http
@endpoint(["GET"])
def sync_status(request: flask.Request) -> dict[str, Any]:
    require_internal_caller(request)
    return fetch_status()
