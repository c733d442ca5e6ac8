"""The one request machinery shared by the source clients.

``SourceHttp.call`` does, for every attempt: reserve a rate-limit slot and
sleep until it (a slot further away than the policy's maximum slot wait is
not reserved and the call fails at once with ``RateLimited``), send, classify
the answer into a typed error, validate the body with a pydantic model, and
report the attempt to the call observer.
Tenacity retries the retryable failures (429 with a short enough wait, 5xx,
timeouts, connection errors) with exponential backoff and jitter, bounded in
attempts and in total waiting time. Sleeping goes through an injectable
function, so tests observe every wait without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import quote

import httpx
import pydantic
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from shared.config import Settings, get_settings
from shared.logging import get_logger
from shared.quota import DailyQuota, before_upstream_call, current_share
from shared.sources.calllog import ApiCall, ApiCallLog, CallObserver, Outcome
from shared.sources.errors import (
    BadCredentials,
    ClientError,
    Forbidden,
    InvalidPayload,
    NotFound,
    Provider,
    QuotaExhausted,
    RateLimited,
    SourceError,
    UpstreamError,
)
from shared.sources.ratelimit import DatabaseRateLimiter, RateLimiter

# httpx logs every request URL at INFO, and Ticketmaster's URL carries the API
# key in its query string: keep that logger quiet whatever the root level.
logging.getLogger("httpx").setLevel(logging.WARNING)

_log = get_logger("shared.sources.http")

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

REDACTED = "[REDACTED]"
# Slots are spaced for 92% of a provider's limit. A request arrives a little
# after its slot (database answer, sleep overshoot, scheduling); at 92% a
# request can arrive up to 87 ms later than the ones after it before any one
# second holds more requests than the provider allows. Measured on a loaded
# two-core machine, 95% (52 ms) was not enough.
RATE_HEADROOM = 0.92
# A request that wakes up later than this after its slot could land within
# the same second as the requests after it: it gives the slot up and
# reserves a new one (at most this many times).
MAX_SLOT_LATENESS_SECONDS = 0.04
MAX_SLOT_RESERVATIONS = 3
_MAX_ERROR_CHARS = 500
# Longest a request path waits for a rate-limit slot (``SOURCE_MAX_SLOT_WAIT_SECONDS``).
DEFAULT_MAX_SLOT_WAIT_SECONDS = 10.0

Sleep = Callable[[float], None]
Clock = Callable[[], float]
ErrorClassifier = Callable[[httpx.Response, str, str], SourceError | None]
"""Provider hook: (response, endpoint template, redacted body) → a specific error, or None."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, raw, URL-encoded or escaped, replaced by ``[REDACTED]``."""
    for secret in secrets:
        if not secret:
            continue
        # Longest first, so that no form leaves part of a longer one behind.
        forms = {secret, quote(secret, safe=""), quote(secret), repr(secret)[1:-1]}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return text


def build_http_client(timeout_seconds: float) -> httpx.Client:
    """One pooled, keep-alive client per source client; every phase of a request is bounded."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
        headers={"User-Agent": "TheSet/1.0 (+https://github.com/theset)"},
        follow_redirects=False,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the retry loop of one call."""

    max_attempts: int = 4
    # Total time one call may spend sleeping between attempts.
    max_total_wait_seconds: float = 30.0
    # A Retry-After longer than this is not waited for inside a request: the
    # RateLimited error (with the wait) goes to the caller, which can requeue.
    max_retry_after_seconds: float = 30.0
    # Wait after a 429 without Retry-After (setlist.fm's gateway never sends one).
    rate_limited_wait_seconds: float = 1.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    backoff_jitter_seconds: float = 0.5
    # When a daily quota runs out without saying when it resets.
    default_quota_pause: timedelta = timedelta(hours=1)
    # Longest wait for a rate-limit slot. A slot further away is not reserved
    # (nobody else loses it) and the call raises RateLimited(retry_after=wait)
    # without sending: a request answers 503 + Retry-After instead of sleeping
    # past its timeout. None: wait however long it takes.
    max_slot_wait_seconds: float | None = DEFAULT_MAX_SLOT_WAIT_SECONDS

    def __post_init__(self) -> None:
        if self.max_slot_wait_seconds is not None and self.max_slot_wait_seconds < 0:
            raise ValueError("max_slot_wait_seconds must not be negative")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class SourceHttp:
    """Rate-limited, retrying, observed JSON calls to one provider."""

    def __init__(
        self,
        *,
        provider: Provider,
        base_url: str,
        client: httpx.Client,
        requests_per_second: float,
        limiter: RateLimiter,
        observer: CallObserver,
        secrets: Iterable[str] = (),
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        classify: ErrorClassifier | None = None,
        daily_quota: DailyQuota | None = None,
    ) -> None:
        self.provider: Provider = provider
        self.daily_quota = daily_quota
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.requests_per_second = requests_per_second
        self.limiter = limiter
        self.observer = observer
        self.secrets = tuple(s for s in secrets if s)
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self._classify = classify
        # initial * 2^(attempt-1), capped, plus a random jitter.
        self._backoff = wait_exponential(
            multiplier=self.retry.backoff_initial_seconds, max=self.retry.backoff_max_seconds
        ) + wait_random(0, self.retry.backoff_jitter_seconds)

    def redact(self, text: str, extra_secrets: Iterable[str] = ()) -> str:
        """``text`` without the client's secrets nor ``extra_secrets`` (a call's own tokens)."""
        return redact(text, (*self.secrets, *extra_secrets))

    def get(
        self,
        endpoint: str,
        model: type[ModelT],
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> ModelT:
        return self.call(
            "GET", endpoint, model, path=path, params=params, headers=headers, secrets=secrets
        )

    def call(
        self,
        method: str,
        endpoint: str,
        model: type[ModelT],
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        base_url: str | None = None,
        secrets: Iterable[str] = (),
    ) -> ModelT:
        """Send ``method endpoint`` (a template filled from ``path``) and validate the answer.

        ``secrets``: this call's own credentials (an access token in
        ``headers``), redacted like the client's from anything the call
        reports. Raises a ``SourceError`` subclass; retryable failures only
        once the retry policy is exhausted.
        """
        # The caller's budget (a request's client) is checked before anything is spent.
        before_upstream_call()
        call_secrets = tuple(secret for secret in secrets if secret)
        url = (base_url or self.base_url).rstrip("/") + endpoint.format_map(
            {key: quote(value, safe="") for key, value in (path or {}).items()}
        )
        retrying = Retrying(
            retry=retry_if_exception(self._should_retry),
            wait=self._wait,
            stop=self._stop,
            sleep=self.sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._attempt(
                    method,
                    endpoint,
                    url,
                    model,
                    attempt=attempt.retry_state.attempt_number,
                    params=params,
                    headers=headers,
                    data=data,
                    auth=auth,
                    secrets=call_secrets,
                )
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        endpoint: str,
        url: str,
        model: type[ModelT],
        *,
        attempt: int,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        auth: httpx.Auth | None,
        secrets: tuple[str, ...],
    ) -> ModelT:
        self._wait_for_slot(endpoint)
        started = time.perf_counter()
        try:
            response = self.client.request(
                method,
                url,
                params=dict(params) if params else None,
                headers=dict(headers) if headers else None,
                data=dict(data) if data else None,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            # Timeouts, refused or reset connections, protocol errors.
            network_error = UpstreamError(
                self.provider, endpoint, f"{type(exc).__name__}: {self.redact(str(exc), secrets)}"
            )
            self._observe(
                endpoint, method, None, started, attempt, "network_error", network_error, secrets
            )
            raise network_error from None

        status = response.status_code
        if status >= 400:
            error = self._error_for(response, endpoint, secrets)
            self._observe(
                endpoint, method, status, started, attempt, _outcome_of(error), error, secrets
            )
            if isinstance(error, QuotaExhausted):
                self.limiter.pause_until(self.provider, error.reset_at)
            raise error

        try:
            result = model.model_validate_json(response.content)
        except pydantic.ValidationError as exc:
            invalid = InvalidPayload(
                self.provider,
                endpoint,
                self.redact(_summarise_validation(exc), secrets),
                status_code=status,
            )
            self._observe(
                endpoint, method, status, started, attempt, "invalid_payload", invalid, secrets
            )
            raise invalid from None
        self._observe(endpoint, method, status, started, attempt, "ok", None, secrets)
        return result

    def _wait_for_slot(self, endpoint: str) -> None:
        """Reserve a slot and sleep until it; reserve again if the wake-up came too late.

        Raises ``RateLimited`` (``status_code`` None, ``retry_after`` the wait)
        when the next free slot is further away than the policy allows; no
        slot is reserved then.
        """
        max_wait = self.retry.max_slot_wait_seconds
        share = current_share()
        for reservation_number in range(MAX_SLOT_RESERVATIONS):
            reservation = self.limiter.reserve(
                self.provider,
                self.requests_per_second * RATE_HEADROOM,
                max_wait,
                share=share,
                quota=self.daily_quota,
                # One request is sent, however many slots it took to send it on time.
                count_call=reservation_number == 0,
            )
            if reservation.quota_reset_at is not None:
                _log.warning(
                    "source_quota_share_spent",
                    provider=self.provider,
                    endpoint=endpoint,
                    share=share,
                    resets_at=reservation.quota_reset_at.isoformat(),
                )
                raise QuotaExhausted(
                    self.provider,
                    endpoint,
                    f"the {share} share of today's quota is used up; it resets at "
                    + reservation.quota_reset_at.isoformat(),
                    reset_at=reservation.quota_reset_at,
                    status_code=None,
                )
            if reservation.paused_until is not None:
                raise QuotaExhausted(
                    self.provider,
                    endpoint,
                    "daily quota exhausted; calls paused until "
                    + reservation.paused_until.isoformat(),
                    reset_at=reservation.paused_until,
                    status_code=None,
                )
            if not reservation.reserved:
                _log.warning(
                    "source_slot_too_far",
                    provider=self.provider,
                    endpoint=endpoint,
                    wait_seconds=round(reservation.wait_seconds, 3),
                    max_wait_seconds=max_wait,
                )
                raise RateLimited(
                    self.provider,
                    endpoint,
                    f"next request slot is {reservation.wait_seconds:.1f} s away,"
                    f" more than the {max_wait} s this call may wait",
                    status_code=None,
                    retry_after=reservation.wait_seconds,
                )
            slot = self.clock() + reservation.wait_seconds
            if reservation.wait_seconds > 0:
                self.sleep(reservation.wait_seconds)
            if self.clock() - slot <= MAX_SLOT_LATENESS_SECONDS:
                return
        # Still late after several slots: the machine is overloaded; send
        # rather than starve (a burst 429 would be retried).

    def _error_for(
        self, response: httpx.Response, endpoint: str, secrets: tuple[str, ...]
    ) -> SourceError:
        status = response.status_code
        # Redact the whole body before cutting it: a cut could split a secret.
        body = self.redact(response.text, secrets)[:_MAX_ERROR_CHARS]
        if self._classify is not None:
            specific = self._classify(response, endpoint, body)
            if specific is not None:
                return specific
        if status == 401:
            return BadCredentials(self.provider, endpoint, body, status_code=status)
        if status == 403:
            return Forbidden(self.provider, endpoint, body, status_code=status)
        if status == 404:
            return NotFound(self.provider, endpoint, body, status_code=status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            return RateLimited(
                self.provider, endpoint, body, status_code=status, retry_after=retry_after
            )
        if status >= 500:
            return UpstreamError(self.provider, endpoint, body, status_code=status)
        return ClientError(self.provider, endpoint, body, status_code=status)

    def quota_exhausted(
        self, response: httpx.Response, endpoint: str, body: str, reset_at: datetime | None
    ) -> QuotaExhausted:
        """A QuotaExhausted error, resetting at ``reset_at`` or after the default pause."""
        if reset_at is None:
            reset_at = datetime.fromtimestamp(self.clock(), UTC) + self.retry.default_quota_pause
        return QuotaExhausted(
            self.provider, endpoint, body, reset_at=reset_at, status_code=response.status_code
        )

    def _observe(
        self,
        endpoint: str,
        method: str,
        status: int | None,
        started: float,
        attempt: int,
        outcome: Outcome,
        error: SourceError | None,
        secrets: tuple[str, ...],
    ) -> None:
        self.observer.record(
            ApiCall(
                provider=self.provider,
                endpoint=endpoint,
                method=method,
                status_code=status,
                latency_ms=round((time.perf_counter() - started) * 1000),
                attempt=attempt,
                outcome=outcome,
                error=(
                    self.redact(str(error), secrets)[:_MAX_ERROR_CHARS]
                    if error is not None
                    else None
                ),
            )
        )

    # -- retry policy ------------------------------------------------------------------------

    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            if exc.status_code is None:
                # Our own limiter refused a slot too far away: waiting for it
                # here is exactly what the bound forbids.
                return False
            return exc.retry_after is None or exc.retry_after <= self.retry.max_retry_after_seconds
        return isinstance(exc, UpstreamError)

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited):
            if exc.retry_after is not None:
                return exc.retry_after
            return max(self.retry.rate_limited_wait_seconds, backoff)
        return backoff

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.retry.max_total_wait_seconds


def _outcome_of(error: SourceError) -> Outcome:
    match error:
        case QuotaExhausted():
            return "quota_exhausted"
        case RateLimited():
            return "rate_limited"
        case Forbidden():
            return "forbidden"
        case BadCredentials():
            return "bad_credentials"
        case NotFound():
            return "not_found"
        case UpstreamError():
            return "server_error"
        case InvalidPayload():
            return "invalid_payload"
        case _:
            return "client_error"


def _summarise_validation(exc: pydantic.ValidationError) -> str:
    """Field locations and messages only: the input values may be large or sensitive."""
    problems = [
        f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return f"response does not match {exc.title}: " + "; ".join(problems)


def json_field(body: Any, *keys: str) -> Any:
    """``body[k1][k2]…`` or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


@dataclass(frozen=True, kw_only=True)
class Transport:
    """How a client reaches its provider, alike for every provider: the base URL, the
    pace and timeout, the shared rate limiter, daily quota and call log, the retry
    policy (None: the provider's ``default_retry``), and the sleep and clock tests drive."""

    base_url: str
    requests_per_second: float
    timeout_seconds: float
    limiter: RateLimiter
    observer: CallObserver
    sleep: Sleep = time.sleep
    clock: Clock = time.time
    retry: RetryPolicy | None = None
    daily_quota: DailyQuota | None = None


class SourceClient:
    """What every provider client shares: how its ``SourceHttp`` is built, and its lifetime."""

    provider: ClassVar[Provider]
    # The setting holding the provider's API base URL.
    base_url_setting: ClassVar[str]
    # The provider's retry policy before the settings' slot-wait bound applies.
    default_retry: ClassVar[RetryPolicy] = RetryPolicy()
    http: SourceHttp

    def __init__(
        self, transport: Transport, *, secret: str, classify: ErrorClassifier | None = None
    ) -> None:
        self.clock = transport.clock
        self.http = SourceHttp(
            provider=self.provider,
            base_url=transport.base_url,
            client=build_http_client(transport.timeout_seconds),
            requests_per_second=transport.requests_per_second,
            limiter=transport.limiter,
            observer=transport.observer,
            secrets=[secret],
            retry=transport.retry or self.default_retry,
            sleep=transport.sleep,
            clock=transport.clock,
            classify=classify,
            daily_quota=transport.daily_quota,
        )

    @classmethod
    def settings_credentials(cls, settings: Settings) -> dict[str, Any]:
        """The provider's own constructor arguments (credentials, other URLs) from the
        settings; ``ConfigurationError`` when they are missing."""
        raise NotImplementedError

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        limiter: RateLimiter | None = None,
        observer: CallObserver | None = None,
        sleep: Sleep = time.sleep,
        max_slot_wait_seconds: float | None = None,
    ) -> Self:
        """A client configured from the environment: its credentials, the provider's
        rate and daily quota, the Postgres rate limiter and the ``api_calls`` log."""
        settings = settings or get_settings()
        transport = Transport(
            base_url=getattr(settings, cls.base_url_setting),
            requests_per_second=getattr(settings, f"{cls.provider}_requests_per_second"),
            timeout_seconds=settings.http_timeout_seconds,
            limiter=limiter or DatabaseRateLimiter(),
            observer=observer or ApiCallLog(),
            sleep=sleep,
            retry=cls.settings_retry(settings, max_slot_wait_seconds),
            daily_quota=settings.daily_quota(cls.provider),
        )
        # Each client's constructor takes its own credentials and the transport.
        construct: Callable[..., Self] = cls
        return construct(**cls.settings_credentials(settings), transport=transport)

    @classmethod
    def settings_retry(
        cls, settings: Settings, max_slot_wait_seconds: float | None = None
    ) -> RetryPolicy:
        """The policy of a client built from the settings.

        ``max_slot_wait_seconds`` overrides ``SOURCE_MAX_SLOT_WAIT_SECONDS`` (the
        queue worker can afford a longer wait than a request).
        """
        if max_slot_wait_seconds is None:
            max_slot_wait_seconds = settings.source_max_slot_wait_seconds
        return replace(cls.default_retry, max_slot_wait_seconds=max_slot_wait_seconds)

    def close(self) -> None:
        self.http.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
