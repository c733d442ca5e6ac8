"""Typed errors raised by the source clients.

Every message is built from redacted text only (see ``shared.sources.http.redact``):
no API key, token or full request URL ever reaches an exception, a log line or
the API call log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Provider = Literal["ticketmaster", "spotify", "setlistfm"]


class SourceError(Exception):
    """Base class: a call to an external source did not produce usable data."""

    def __init__(
        self,
        provider: Provider,
        endpoint: str,
        message: str,
        *,
        status_code: int | None = None,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.status_code = status_code
        self.detail = message
        status = f" {status_code}" if status_code is not None else ""
        super().__init__(f"{provider} {endpoint}{status}: {message}")


class ConfigurationError(SourceError):
    """The client cannot be used as configured (missing credentials, bad setting)."""


class BadCredentials(ConfigurationError):
    """The source refused the credentials (HTTP 401): wrong key, expired token."""


class Forbidden(BadCredentials):
    """The credentials are valid but not allowed to use this endpoint (HTTP 403).

    Spotify answers 403 to development-mode apps on endpoints it removed for
    them (``/artists?ids=``), so callers can fall back to other endpoints.
    """


class NotFound(SourceError):
    """The requested resource does not exist (HTTP 404)."""


class ClientError(SourceError):
    """Any other 4xx: the request itself is wrong. Never retried."""


class RateLimited(SourceError):
    """HTTP 429 for a short-term limit; ``retry_after`` is the wait the source asked for.

    With ``status_code`` None nothing was sent: the shared rate limiter's next
    free slot was further away than the call may wait (``retry_after``).
    """

    def __init__(
        self,
        provider: Provider,
        endpoint: str,
        message: str,
        *,
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, endpoint, message, status_code=status_code)
        self.retry_after = retry_after


class QuotaExhausted(SourceError):
    """The daily quota is used up: no call to this provider may be made before ``reset_at``."""

    def __init__(
        self,
        provider: Provider,
        endpoint: str,
        message: str,
        *,
        reset_at: datetime,
        status_code: int | None = 429,
    ) -> None:
        super().__init__(provider, endpoint, message, status_code=status_code)
        self.reset_at = reset_at


class UpstreamError(SourceError):
    """The source failed: HTTP 5xx, timeout or connection error. Retried before raising."""


class InvalidPayload(SourceError):
    """The source answered 2xx with a body that is not what its API promises."""
