"""What the sync functions share: who may force a refresh."""

from __future__ import annotations

import flask

from shared.web import Forbidden, is_internal_caller


def caller_may_force(request: flask.Request, force: bool) -> bool:
    """Internal callers (queue, cron) may force a refresh; clients only get fresh-or-stale.

    A request presenting ``X-Internal-Secret`` must present the right one.
    """
    internal = is_internal_caller(request)  # a wrong secret is 401, forcing or not
    if force and not internal:
        raise Forbidden("only internal callers may force a refresh", code="force_not_allowed")
    return force
