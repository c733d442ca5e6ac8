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
        name: functions_framework.create_app(  # type: ignore[no-untyped-call]
            name, str(directory / name / "main.py")
        )
        for name in function_names(directory)
    }

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # ``/<name>`` and ``/<name>/...`` reach the function with its own path
        # (at least "/"), as a deployed function sees it.
        _, _, rest = environ.get("PATH_INFO", "").partition("/")
        name, slash, path = rest.partition("/")
        app = mounts.get(name)
        if app is None:
            return _not_found(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
        environ["PATH_INFO"] = slash + path or "/"
        return app(environ, start_response)

    return dispatch

