"""sync_shows: an artist's upcoming shows, refreshed now when stale (24 hours) or forced.

``POST {"artist_id": "<uuid>", "force": false}`` (``force`` for internal
callers). Answers 200 ``{"artist_id", "refreshed", "created", "updated",
"unchanged", "removed", "shows": [ids], "skipped"}``; 202 pending (with the
refresh queued) when another caller's refresh of this artist outlasted the
wait; 404 unknown artist; 429 ``rate_limited`` over the client's budget;
502/503 when Ticketmaster is down or limits us.
"""

from __future__ import annotations

import uuid
from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict

from shared.budgets import upstream_spending
from shared.sync.api import caller_may_force
from shared.sync.shows import refresh_artist_shows
from shared.web import endpoint, parse_json


class SyncShowsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    artist_id: uuid.UUID
    force: bool = False


@functions_framework.http
@endpoint(["POST"])
def sync_shows(request: flask.Request) -> dict[str, Any]:
    body = parse_json(request, SyncShowsRequest)
    force = caller_may_force(request, body.force)
    with upstream_spending(request, "import"):
        result = refresh_artist_shows(body.artist_id, force=force)
    answer = result.as_dict()
    answer["removed_shows"] = [str(i) for i in result.removed]
    return answer
