"""sync_artist: import or refresh an artist now, and queue its shows and catalogue.

``POST {"ticketmaster_id"|"spotify_id"|"musicbrainz_id"|"name": ..., "force": false}``
(exactly one identifier). The artist is imported at once, so its page can
render; its shows and song catalogue are queued when stale. A fresh artist
costs no API call. ``force`` is for internal callers (``X-Internal-Secret``).

Concurrent requests for the same artist share one import; a request whose
wait for another's import runs out gets 202 ``{"status": "pending", "reason":
"import_in_progress", "retry_after_seconds", "queued"}``. A request that calls
a source takes one unit of its client's import budget first.

Answers 200 ``{"artist": {...}, "refreshed": bool, "action": ..., "queued": [...]}``;
202 pending; 400 bad input; 404 no such artist; 409 a name several artists
share (the candidates are in ``error.details``); 429 ``rate_limited`` over the
client's budget; 502/503 when a source is down or limits us.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared import db
from shared.budgets import upstream_spending
from shared.sync.api import caller_may_force
from shared.sync.artists import ArtistLookup, artist_summary
from shared.sync.artists import sync_artist as run_sync
from shared.web import endpoint, parse_json


class SyncArtistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    ticketmaster_id: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )
    spotify_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{22}$")
    musicbrainz_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    force: bool = False

    @model_validator(mode="after")
    def _exactly_one_identifier(self) -> SyncArtistRequest:
        given = [self.ticketmaster_id, self.spotify_id, self.musicbrainz_id, self.name]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "give exactly one of ticketmaster_id, spotify_id, musicbrainz_id or name"
            )
        return self


@functions_framework.http
@endpoint(["POST"])
def sync_artist(request: flask.Request) -> dict[str, Any]:
    body = parse_json(request, SyncArtistRequest)
    force = caller_may_force(request, body.force)
    lookup = ArtistLookup(
        ticketmaster_id=body.ticketmaster_id,
        spotify_id=body.spotify_id,
        musicbrainz_id=body.musicbrainz_id.lower() if body.musicbrainz_id else None,
        name=body.name,
    )
    with upstream_spending(request, "import"):
        result = run_sync(lookup, force=force)
    with db.transaction() as conn:
        artist = artist_summary(conn, result.artist_id)
    return {
        "artist": artist,
        "refreshed": result.refreshed,
        "action": result.action,
        "queued": [q.as_dict() for q in result.queued],
    }
