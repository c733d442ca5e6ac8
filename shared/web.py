"""HTTP plumbing shared by every function: JSON errors, body parsing, CORS, internal auth.

Every answer is JSON. Errors have the shape
``{"error": {"code": "...", "message": "..."}}`` with a fitting status; an
unexpected exception is logged server-side and answered as a bare 500, never
with a stack trace or any detail that could carry a secret.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from shared.config import get_settings
from shared.logging import get_logger

log = get_logger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[flask.Request], "flask.Response | tuple[Any, int] | dict[str, Any]"]

# The client authenticates with a bearer token, never cookies, so any origin
# may call the functions.
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, X-Internal-Secret, X-Spotify-Token"
    ),
    "Access-Control-Max-Age": "3600",
}


class ApiError(Exception):
    """An error the caller should see, with its HTTP status and a stable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class ServiceUnavailable(ApiError):
    status, code = 503, "unavailable"


def error_response(error: ApiError) -> flask.Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    response = json_response({"error": body}, error.status)
    response.headers.update(error.headers)
    return response


def json_response(payload: Any, status: int = 200) -> flask.Response:
    response = flask.Response(
        json.dumps(payload, default=str), status=status, mimetype="application/json"
    )
    response.headers.update(_CORS_HEADERS)
    return response


def endpoint(
    methods: Iterable[str],
) -> Callable[[Handler], Callable[[flask.Request], flask.Response]]:
    """Wrap a function's handler: method check, CORS preflight, JSON answers and errors."""
    allowed = frozenset(m.upper() for m in methods)

    def decorate(handler: Handler) -> Callable[[flask.Request], flask.Response]:
        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            if request.method == "OPTIONS":
                preflight = json_response({}, 204)
                preflight.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(allowed))
                return preflight
            if request.method not in allowed:
                return error_response(
                    ApiError(
                        f"method {request.method} is not allowed",
                        code="method_not_allowed",
                        status=405,
                    )
                )
            try:
                result = handler(request)
            except ApiError as error:
                return error_response(error)
            except ValidationError as error:
                return error_response(BadRequest("invalid request", details=_problems(error)))
            except Exception:
                log.exception("unhandled_error", function=handler.__name__)
                return error_response(ApiError("internal error", code="internal", status=500))
            if isinstance(result, flask.Response):
                result.headers.update(_CORS_HEADERS)
                return result
            if isinstance(result, tuple):
                return json_response(result[0], result[1])
            return json_response(result)

        return wrapper

    return decorate


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    # Location and reason only: echoing the rejected input could reflect secrets.
    return [
        {"field": ".".join(str(part) for part in problem["loc"]), "problem": problem["msg"]}
        for problem in error.errors(include_url=False, include_input=False)
    ]


def parse_json(request: flask.Request, model: type[ModelT]) -> ModelT:
    """Validate a JSON object body against ``model`` (400 on anything else)."""
    payload = request.get_json(silent=True)
    if payload is None and request.get_data():
        raise BadRequest("the body is not valid JSON", code="invalid_json")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return model.model_validate(payload)


def parse_query(request: flask.Request, model: type[ModelT]) -> ModelT:
    """Validate query-string parameters against ``model`` (400 on anything else)."""
    return model.model_validate(request.args.to_dict())


def require_internal_caller(request: flask.Request) -> None:
    """Accept only callers presenting the internal shared secret (cron, webhooks, worker)."""
    secret = get_settings().internal_secret
    presented = request.headers.get("X-Internal-Secret", "")
    if secret is None or not presented:
        raise Unauthorized("an internal secret is required")
    if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
        raise Unauthorized("the internal secret is not valid")
