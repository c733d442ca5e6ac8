"""HTTP plumbing shared by every function: JSON errors, body parsing, CORS, internal auth.

Every answer is JSON. Errors have the shape
``{"error": {"code": "...", "message": "..."}}`` with a fitting status; an
unexpected exception is logged server-side and answered as a bare 500, never
with a stack trace or any detail that could carry a secret.

``endpoint`` is the one place an exception becomes an answer: an ``ApiError``
as itself, anything else through the translation registered for its type
(``answers``): invalid input and database refusals here, the sources' and the
sync engine's errors in ``shared.sync``.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import flask
import psycopg
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


Translation = Callable[[Any], "ApiError | flask.Response | None"]
TranslationT = TypeVar("TranslationT", bound=Translation)
_answers: dict[type[BaseException], Translation] = {}


def answers(error_type: type[BaseException]) -> Callable[[TranslationT], TranslationT]:
    """Register how ``error_type`` (and its subclasses) is answered to a caller.

    The one mapping from the layers' errors (database refusals, sources,
    the sync engine) to HTTP answers: each family registers its translation
    where it is defined, and ``endpoint`` answers with it. A translation
    returning None leaves the error unanswered (500, logged).
    """

    def register(translate: TranslationT) -> TranslationT:
        _answers[error_type] = translate
        return translate

    return register


def answer_for(error: BaseException) -> ApiError | flask.Response | None:
    """The registered answer of the most specific type ``error`` is an instance of."""
    if isinstance(error, ApiError):
        return error
    for cls in type(error).__mro__:
        translate = _answers.get(cls)
        if translate is not None:
            return translate(error)
    return None


class UnprocessableEntity(ApiError):
    status, code = 422, "unprocessable"


# SQLSTATEs the RPCs raise on purpose, with the error class they become.
_ERRORS_BY_SQLSTATE: Final[Mapping[str, type[ApiError]]] = {
    "P0002": NotFound,
    "PT401": Unauthorized,
    "PT403": Forbidden,
    "PT409": Conflict,
    "PT422": UnprocessableEntity,
    "22004": BadRequest,
}


@answers(psycopg.Error)
def api_error_for_database_error(error: psycopg.Error) -> ApiError | None:
    """The API error a database function's deliberate refusal (its SQLSTATE and hint)
    stands for; None for anything else.

    A refusal escaping a function is answered so; ``shared.rpc.call`` raises it.
    """
    diag = error.diag
    sqlstate, hint = diag.sqlstate, diag.message_hint
    if sqlstate == "42501" and hint == "not_signed_in":
        return Unauthorized(diag.message_primary or "sign in first", code=hint)
    kind = _ERRORS_BY_SQLSTATE.get(sqlstate or "")
    if kind is None or not hint:
        return None
    return kind(diag.message_primary or hint, code=hint)


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
            except Exception as error:
                answer = answer_for(error)
                if isinstance(answer, ApiError):
                    return error_response(answer)
                if answer is None:
                    log.exception("unhandled_error", function=handler.__name__)
                    return error_response(ApiError("internal error", code="internal", status=500))
                result = answer
            if isinstance(result, flask.Response):
                result.headers.update(_CORS_HEADERS)
                return result
            if isinstance(result, tuple):
                return json_response(result[0], result[1])
            return json_response(result)

        return wrapper

    return decorate


@answers(ValidationError)
def _invalid_request(error: ValidationError) -> ApiError:
    return BadRequest("invalid request", details=_problems(error))


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


def is_internal_caller(request: flask.Request) -> bool:
    """True for a request presenting the right internal secret; a wrong one is 401."""
    if not request.headers.get("X-Internal-Secret"):
        return False
    require_internal_caller(request)
    return True


def require_internal_caller(request: flask.Request) -> None:
    """Accept only callers presenting the internal shared secret (cron, webhooks, worker)."""
    secret = get_settings().internal_secret
    presented = request.headers.get("X-Internal-Secret", "")
    if secret is None or not presented:
        raise Unauthorized("an internal secret is required")
    if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
        raise Unauthorized("the internal secret is not valid")
