"""Errors of the sync engine, and how functions answer them (``shared.web.answers``).

Upstream trouble becomes a JSON error with a fitting status, never a stack
trace: a source that is down or answered garbage is 502, a source that
limits us or is not configured is 503, something the source does not know is
404.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import flask

from shared.sources import errors as source_errors
from shared.sync.queue import Enqueued
from shared.web import ApiError, NotFound, answers, json_response


class SyncError(Exception):
    """Base class of the sync engine's own errors."""


class PermanentJobError(SyncError):
    """Retrying cannot help: the worker dead-letters the job at once."""


class ArtistNotFound(PermanentJobError, LookupError):
    """No artist with this id in the database."""

    def __init__(self, artist_id: object) -> None:
        super().__init__(f"no artist {artist_id}")


class FlightPending(SyncError):
    """Another caller is doing the same upstream work and did not finish within the wait."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"another caller is doing {key.split(':', 1)[0]} work right now")
        self.key = key
        self.retry_after = retry_after
        # The jobs queued so that the work lands even if that caller fails.
        self.queued: list[Enqueued] = []


class NoSpotifyId(PermanentJobError):
    """The artist has no Spotify id, so there is no catalogue to import."""

    def __init__(self, artist_id: object) -> None:
        super().__init__(f"artist {artist_id} has no Spotify id")


def is_permanent(error: BaseException) -> bool:
    """Errors that no retry will fix: the worker dead-letters them without waiting."""
    return isinstance(
        error,
        PermanentJobError
        | source_errors.NotFound
        | source_errors.ClientError
        | source_errors.InvalidPayload
        | ValueError,
    ) and not isinstance(error, source_errors.ConfigurationError)


def retry_after_seconds(error: BaseException, now: datetime | None = None) -> float | None:
    """The wait a source asked for (a 429's Retry-After, a quota's reset), if any."""
    if isinstance(error, source_errors.RateLimited) and error.retry_after is not None:
        return error.retry_after
    if isinstance(error, source_errors.QuotaExhausted):
        moment = now or datetime.now(UTC)
        return max(0.0, (error.reset_at - moment).total_seconds())
    return None


def held_back_for(error: BaseException, now: datetime | None = None) -> float | None:
    """Seconds a job must wait when a limit, not a failure, stopped it; None otherwise.

    Our own limiter refusing a slot (``RateLimited`` without a status: nothing
    was sent), a spent daily quota, or another caller doing the same import:
    none of these says anything about the job, so it waits without using up
    an attempt.
    """
    if isinstance(error, source_errors.RateLimited) and error.status_code is None:
        return error.retry_after or 1.0
    if isinstance(error, source_errors.QuotaExhausted):
        return retry_after_seconds(error, now)
    if isinstance(error, FlightPending):
        return error.retry_after
    return None


@answers(source_errors.SourceError)
def api_error_for(error: source_errors.SourceError) -> ApiError:
    """The answer a client gets when a source failed during its request."""
    provider = error.provider
    if isinstance(error, source_errors.NotFound):
        return NotFound(f"{provider} does not know this artist", code="not_found_upstream")
    if isinstance(error, source_errors.RateLimited | source_errors.QuotaExhausted):
        wait = retry_after_seconds(error)
        if wait is None:
            return ApiError(
                f"{provider} is rate limiting us; try again later",
                code="upstream_rate_limited",
                status=503,
            )
        seconds = max(1, math.ceil(wait))
        return ApiError(
            f"{provider} is rate limiting us; try again later",
            code="upstream_rate_limited",
            status=503,
            details={"retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )
    if isinstance(error, source_errors.ConfigurationError):
        return ApiError(
            f"{provider} is not available right now", code="upstream_unavailable", status=503
        )
    return ApiError(
        f"{provider} did not answer properly; try again later", code="upstream_error", status=502
    )


@answers(ArtistNotFound)
def _artist_not_found(error: ArtistNotFound) -> ApiError:
    return NotFound(str(error), code="artist_not_found")


@answers(FlightPending)
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
