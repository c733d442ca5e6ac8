"""Per-client budgets: how many source-spending requests one client may make.

A request that is answered from our database (a cached search, a fresh
artist) costs nothing. A request that is about to call a source first takes
one unit of its client's budget for that action (``private.take_client_budget``,
a GCRA shared by every function instance); over budget, it answers 429
``rate_limited`` with ``Retry-After`` and no source is called.

The client is the signed-in user when the request carries a valid Supabase
token, else the client's address: the last ``TRUSTED_PROXY_HOPS`` entries of
``X-Forwarded-For`` are appended by the platform's own proxies (Cloud Run's
front end appends the address it received the request from), so the entry at
that depth is the one a caller cannot forge; anything before it is whatever
the caller sent. Only a hash of the identity is stored.

Internal callers (``X-Internal-Secret``: cron, webhooks, the queue) have no
budget and spend the sync share of the daily quotas.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import flask

from shared import db
from shared.auth import Claims, optional_user
from shared.config import get_settings
from shared.logging import get_logger
from shared.quota import spending
from shared.web import ApiError, is_internal_caller

log = get_logger(__name__)

Action = Literal["search", "import"]


class OverBudget(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, action: Action, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many {action} requests from this client; try again in {seconds} s",
            details={"retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )


def client_address(request: flask.Request) -> str:
    hops = get_settings().trusted_proxy_hops
    forwarded = [
        part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")
        if part.strip()
    ]
    if hops > 0 and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.remote_addr or "unknown"


def client_key(request: flask.Request, claims: Claims | None) -> str:
    if claims is not None:
        return identity_key(f"user:{claims.user_id}")
    return identity_key(f"address:{client_address(request)}")


def identity_key(identity: str) -> str:
    """What ``client_budgets`` stores for ``user:<id>`` or ``address:<ip>``: a hash."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def take_budget(key: str, action: Action) -> None:
    """Count one request of ``action`` for the client, or raise ``OverBudget``."""
    settings = get_settings()
    per_minute, burst = (
        (settings.client_search_per_minute, settings.client_search_burst)
        if action == "search"
        else (settings.client_import_per_minute, settings.client_import_burst)
    )
    with db.transaction() as conn:
        row = conn.execute(
            "select private.take_client_budget(%s, %s, %s, %s) as wait",
            [key, action, per_minute, burst],
        ).fetchone()
    wait = float(row["wait"]) if row else 0.0
    if wait > 0:
        log.warning("client_over_budget", action=action, retry_after_seconds=round(wait, 1))
        raise OverBudget(action, wait)


@contextmanager
def upstream_spending(
    request: flask.Request, action: Action, claims: Claims | None = None
) -> Iterator[None]:
    """Source calls made inside the block are this request's: the sync share for an
    internal caller, else the request share with the client's budget checked once,
    right before the first call. ``claims``: the caller, when already authenticated."""
    if is_internal_caller(request):
        with spending("sync"):
            yield
        return
    caller = claims if claims is not None else optional_user(request)
    key = client_key(request, caller)
    with spending("request", lambda: take_budget(key, action)):
        yield
