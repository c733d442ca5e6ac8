"""search_artists: live artist search through Ticketmaster, shared and protected.

``GET ?q=<text>&limit=<1..50, default 20>``. Music attractions with at least
one upcoming event, in Ticketmaster's relevance order; each item says which of
our artists it already is (``artist_id``, null when not imported yet).

The same normalised query is answered from a shared cache for a few minutes
(``cached``, ``fetched_at``); concurrent identical searches make one call.
When Ticketmaster cannot be asked, our own artists matching the query are the
answer (``source: "local"``, ``fallback_reason``).

Answers 200 ``{"query", "items": [{"name", "ticketmaster_id", "spotify_id",
"musicbrainz_id", "image_url", "genres", "upcoming_event_count",
"ticketmaster_url", "artist_id"}], "source", "cached", "fetched_at",
"fallback_reason"}``; 400 bad q or limit; 429 ``rate_limited`` when this
client searched too much (Retry-After); 503 ``upstream_rate_limited`` or
``upstream_unavailable`` / 502 ``upstream_error`` only when nothing local
matches either.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.budgets import upstream_spending
from shared.discovery import search_artists as run_search
from shared.web import endpoint, parse_query


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=20, ge=1, le=50)


@functions_framework.http
@endpoint(["GET"])
def search_artists(request: flask.Request) -> flask.Response | dict[str, Any]:
    query = parse_query(request, SearchQuery)
    with upstream_spending(request, "search"):
        answer = run_search(query.q, query.limit)
    return answer.as_dict(query.q)
