"""What the sync functions share: who may force, and errors as JSON answers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import flask

from shared.sources.errors import SourceError
from shared.sync.artists import AmbiguousArtist, ArtistUnknownUpstream
from shared.sync.errors import ArtistNotFound, FlightPending, api_error_for
from shared.web import (
    Conflict,
    Forbidden,
    NotFound,
    json_response,
    require_internal_caller,
)


def caller_may_force(request: flask.Request, force: bool) -> bool:
    """Internal callers (queue, cron) may force a refresh; clients only get fresh-or-stale.

    A request presenting ``X-Internal-Secret`` must present the right one.
    """
    internal = bool(request.headers.get("X-Internal-Secret"))
    if internal:
        require_internal_caller(request)
    if force and not internal:
        raise Forbidden("only internal callers may force a refresh", code="force_not_allowed")
    return force


def import_pending(error: FlightPending) -> flask.Response:
    """202: another caller is doing this very import and it outlasted our wait.

    Never an error: the import lands, and where there is an entity to queue a
    job for, the job is queued too (``queued``).
    """
    seconds = max(1, math.ceil(error.retry_after))
    response = json_response(
        {
            "status": "pending",
            "reason": "import_in_progress",
            "retry_after_seconds": seconds,
            "queued": [q.as_dict() for q in error.queued],
        },
        202,
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@contextmanager
def sync_errors_as_answers() -> Iterator[None]:
    """Turn the sync engine's and the sources' errors into JSON errors (4xx/5xx)."""
    try:
        yield
    except ArtistNotFound as error:
        raise NotFound(str(error), code="artist_not_found") from None
    except ArtistUnknownUpstream as error:
        raise NotFound(str(error), code="artist_not_found") from None
    except AmbiguousArtist as error:
        raise Conflict(
            str(error),
            code="ambiguous_artist",
            details=[
                {
                    "name": c.name,
                    "ticketmaster_id": c.ticketmaster_id,
                    "spotify_id": c.spotify_id,
                    "musicbrainz_id": c.musicbrainz_id,
                    "upcoming_events": c.upcoming_event_count,
                    "url": c.ticketmaster_url,
                }
                for c in error.candidates
            ],
        ) from None
    except SourceError as error:
        raise api_error_for(error) from None
