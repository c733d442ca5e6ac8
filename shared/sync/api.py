"""What the sync functions share: who may force a refresh."""

from __future__ import annotations

import flask

from shared.web import Forbidden, is_internal_caller


def caller_may_force(request: flask.Request, force: bool) -> bool:
    """Internal callers (queue, cron) may force a refresh; clients only get fresh-or-stale.

    A request presenting ``X-Internal-Secret`` must present the right one.
    """
    if force and not is_internal_caller(request):
        raise Forbidden("only internal callers may force a refresh", code="force_not_allowed")
    return force
