"""Observation of every outbound call: one structured log line and one ``private.api_calls`` row.

Clients report each HTTP attempt to a ``CallObserver``. The default observer,
``ApiCallLog``, does both jobs; tests inject their own to capture calls
without a database. Everything reported is already redacted: the endpoint is
a template (``/attractions/{id}.json``), never a URL with its query string.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import psycopg

from shared import db
from shared.logging import get_logger
from shared.sources.errors import Provider

Outcome = Literal[
    "ok",
    "not_found",
    "bad_credentials",
    "forbidden",
    "client_error",
    "rate_limited",
    "quota_exhausted",
    "server_error",
    "network_error",
    "invalid_payload",
]

_log = get_logger("shared.sources.calls")


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One HTTP attempt against a source (a retried call is several attempts)."""

    provider: Provider
    endpoint: str
    method: str
    status_code: int | None
    latency_ms: int
    attempt: int
    outcome: Outcome
    error: str | None = None


class CallObserver(Protocol):
    def record(self, call: ApiCall) -> None:
        """Take note of one attempt. Must not raise: observation never fails a call."""
        ...


class ApiCallLog:
    """Default observer: a JSON log line, then a best-effort insert into ``private.api_calls``."""

    def record(self, call: ApiCall) -> None:
        fields = asdict(call)
        if call.outcome == "ok":
            _log.info("source_call", **fields)
        else:
            _log.warning("source_call", **fields)
        try:
            with db.transaction() as conn:
                conn.execute(
                    "insert into private.api_calls (provider, endpoint, method, status_code,"
                    " latency_ms, attempt, outcome, error) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        call.provider,
                        call.endpoint,
                        call.method,
                        call.status_code,
                        call.latency_ms,
                        call.attempt,
                        call.outcome,
                        call.error,
                    ],
                )
        except psycopg.Error as exc:
            # The call itself succeeded or failed on its own merits; losing its
            # log row is not a reason to fail it.
            _log.warning("api_call_log_failed", provider=call.provider, error=type(exc).__name__)
