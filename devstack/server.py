"""Every function of ``functions/`` in one WSGI app, at ``/<function_name>``.

Each function is loaded with functions-framework's own ``create_app``, exactly
as it is deployed, and the apps are mounted side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from devstack.migrate import PROJECT_ROOT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FUNCTIONS_DIR = PROJECT_ROOT / "functions"


def function_names(directory: Path = FUNCTIONS_DIR) -> list[str]:
    return sorted(path.parent.name for path in directory.glob("*/main.py"))


def _not_found(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps(
        {"error": {"code": "not_found", "message": "no function at this path"}}
    ).encode()
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [body]


def build_app(directory: Path = FUNCTIONS_DIR) -> WSGIApplication:
    mounts: dict[str, WSGIApplication] = {
        f"/{name}": functions_framework.create_app(  # type: ignore[no-untyped-call]
            name, str(directory / name / "main.py")
        )
        for name in function_names(directory)
    }
    return DispatcherMiddleware(_not_found, mounts)

