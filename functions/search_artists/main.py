"""search_artists: live artist search through Ticketmaster.

``GET ?q=<text>&limit=<1..50, default 20>``. Music attractions with at least
one upcoming event, in Ticketmaster's relevance order; each item says which of
our artists it already is (``artist_id``, null when not imported yet).

Answers 200 ``{"query": ..., "items": [{"name", "ticketmaster_id", "spotify_id",
"musicbrainz_id", "image_url", "genres", "upcoming_event_count",
"ticketmaster_url", "artist_id"}]}``; 400 bad q or limit; 503
``upstream_rate_limited`` (``details.retry_after_seconds`` and a Retry-After
header when known) or ``upstream_unavailable``; 502 ``upstream_error``.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.discovery import search_artists as run_search
from shared.sources.errors import SourceError
from shared.sync.errors import api_error_for
from shared.web import endpoint, parse_query


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=20, ge=1, le=50)


@functions_framework.http
@endpoint(["GET"])
def search_artists(request: flask.Request) -> flask.Response | dict[str, Any]:
    query = parse_query(request, SearchQuery)
    try:
        found = run_search(query.q, query.limit)
    except SourceError as error:
        raise api_error_for(error) from None
    return {"query": query.q, "items": [artist.as_dict() for artist in found]}
