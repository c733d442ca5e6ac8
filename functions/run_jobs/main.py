"""run_jobs: the pg_cron webhook that drains the sync queue within a time budget.

``POST {"budget_seconds": 50}`` with ``X-Internal-Secret``. Jobs started
within the budget run to their end. Answers the drain summary: processed,
done, retried, dead, per kind, elapsed seconds.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.sync.worker import Worker, load_handlers
from shared.web import endpoint, parse_json, require_internal_caller

load_handlers()


class RunJobsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # pg_cron fires every minute; a run should end before the next one.
    budget_seconds: float = Field(default=50.0, gt=0, le=540)


@functions_framework.http
@endpoint(["POST"])
def run_jobs(request: flask.Request) -> dict[str, Any]:
    require_internal_caller(request)
    body = parse_json(request, RunJobsRequest)
    return Worker().drain(body.budget_seconds).as_dict()
