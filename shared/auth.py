"""Verification of Supabase access tokens presented as ``Authorization: Bearer <jwt>``.

Tokens are verified locally, never by calling Supabase Auth per request:

* ES256 / RS256 tokens against the project's JWKS (``get_settings().jwks_url``),
  fetched with httpx and cached for ``JWKS_TTL_SECONDS``. A token naming a
  ``kid`` the cache does not know triggers one refetch (signing-key rotation),
  but at most one fetch per ``JWKS_REFETCH_COOLDOWN_SECONDS``, so tokens with
  made-up kids cannot turn us into a load generator against the JWKS endpoint.
* HS256 tokens against the legacy shared secret, only when one is configured.

The algorithm a token claims only selects which kind of key to look up; each
key is then bound to exactly one algorithm (EC P-256 → ES256, RSA → RS256,
the shared secret → HS256), which rules out ``alg: none`` and algorithm
confusion (e.g. an HS256 token "signed" with a published public key).

Error messages and log lines never contain the token or anything decoded from it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

import flask
import httpx
import jwt
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from shared.config import get_settings
from shared.logging import get_logger
from shared.web import ServiceUnavailable, Unauthorized

log = get_logger(__name__)

AUDIENCE: Final = "authenticated"
# Tolerated clock skew between Supabase Auth and this instance.
LEEWAY_SECONDS: Final = 10
# Supabase edge-caches its JWKS for 10 minutes, so fetching more often gains nothing.
JWKS_TTL_SECONDS: Final = 600.0
JWKS_REFETCH_COOLDOWN_SECONDS: Final = 30.0
# Real access tokens are around 1 KB; anything far larger is not worth parsing.
MAX_TOKEN_LENGTH: Final = 16 * 1024

_ASYMMETRIC_ALGORITHMS: Final = frozenset({"ES256", "RS256"})
_SYMMETRIC_ALGORITHM: Final = "HS256"
_REQUIRED_CLAIMS: Final = ["exp", "iat", "sub", "aud", "iss"]

_MESSAGE_MISSING: Final = "an access token is required"
_MESSAGE_MALFORMED_HEADER: Final = "the Authorization header must be 'Bearer <access token>'"
_MESSAGE_EXPIRED: Final = "the access token has expired"
_MESSAGE_INVALID: Final = "the access token is not valid"


class InvalidAccessToken(Unauthorized):
    """The presented access token was missing, malformed, expired or not trusted (401)."""


class AccessTokenVerificationUnavailable(ServiceUnavailable):
    """The signing keys could not be fetched, so no verdict on the token is possible (503).

    Deliberately not a 401: a client told its token is invalid signs the user
    out, which is the wrong reaction to our JWKS endpoint being unreachable.
    """


class Claims(BaseModel):
    """The verified claims of a Supabase access token."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    sub: str
    role: str
    aud: str | list[str]
    exp: int
    iat: int
    iss: str
    email: str | None = None
    phone: str | None = None
    is_anonymous: bool = False
    session_id: str | None = None
    aal: str | None = None
    # Everything the token carried, verbatim: what the database expects in
    # ``request.jwt.claims`` (see ``shared.db.transaction``).
    raw: dict[str, Any]

    @field_validator("sub")
    @classmethod
    def _sub_is_a_uuid(cls, value: str) -> str:
        uuid.UUID(value)
        return value

    @field_validator("email", "phone")
    @classmethod
    def _empty_means_absent(cls, value: str | None) -> str | None:
        # Supabase sends "" for a user without an email or phone (e.g. anonymous sign-ins).
        return value or None

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.sub)


class JwksCache:
    """The project's signing keys by ``kid``, refreshed on expiry and on unknown kids.

    Thread-safe; one fetch at a time. A failed fetch keeps the previous keys
    (Supabase rotates keys with overlap, so slightly stale keys are still good)
    and counts towards the cooldown, so an unreachable endpoint is not retried
    on every request.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = JWKS_TTL_SECONDS,
        refetch_cooldown_seconds: float = JWKS_REFETCH_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_seconds = ttl_seconds
        self._refetch_cooldown_seconds = refetch_cooldown_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._url: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    def get_key(self, url: str, kid: str, *, timeout_seconds: float) -> jwt.PyJWK | None:
        """The verification key for ``kid``, or None if the JWKS does not have it."""
        with self._lock:
            if url != self._url:
                self._forget(url)
            now = self._clock()
            if self._is_expired(now) and self._may_fetch(now):
                self._refresh(url, now, timeout_seconds)
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._refresh(url, now, timeout_seconds)
                key = self._keys.get(kid)
            if key is None and self._fetched_at is None:
                raise AccessTokenVerificationUnavailable(
                    "access tokens cannot be verified right now", code="auth_unavailable"
                )
            return key

    def _forget(self, url: str) -> None:
        self._url = url
        self._keys = {}
        self._fetched_at = None
        self._attempted_at = None

    def _is_expired(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._ttl_seconds

    def _may_fetch(self, now: float) -> bool:
        return (
            self._attempted_at is None or now - self._attempted_at >= self._refetch_cooldown_seconds
        )

    def _refresh(self, url: str, now: float, timeout_seconds: float) -> None:
        self._attempted_at = now
        try:
            response = httpx.get(
                url, timeout=timeout_seconds, headers={"Accept": "application/json"}
            )
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("jwks_fetch_failed", error_type=type(error).__name__)
            return
        self._keys = _verification_keys(document)
        self._fetched_at = now
        log.info("jwks_fetched", key_count=len(self._keys))


def _verification_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signature keys of a JWKS document, each bound to a single algorithm."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        log.warning("jwks_malformed")
        return {}
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        algorithm = _algorithm_for(entry)
        if not isinstance(kid, str) or algorithm is None or kid in keys:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm)
        except jwt.PyJWTError:
            log.warning("jwks_key_unusable", kid=kid)
    return keys


def _algorithm_for(entry: Mapping[str, Any]) -> str | None:
    # Only asymmetric signature keys: a symmetric ("oct") key in a public JWKS
    # would let anyone who can read the JWKS forge tokens.
    if entry.get("use", "sig") != "sig":
        return None
    kty, declared = entry.get("kty"), entry.get("alg")
    if kty == "EC" and entry.get("crv") == "P-256":
        algorithm = "ES256"
    elif kty == "RSA":
        algorithm = "RS256"
    else:
        return None
    return algorithm if declared in (None, algorithm) else None


_jwks_cache = JwksCache()


def reset_jwks_cache(*, clock: Callable[[], float] = time.monotonic) -> None:
    """Drop every cached signing key (tests; an operator forcing a refetch)."""
    global _jwks_cache
    _jwks_cache = JwksCache(clock=clock)


def verify_access_token(token: str) -> Claims:
    """Verify a Supabase access token and return its claims.

    Raises ``InvalidAccessToken`` (401) for any token we do not trust and
    ``AccessTokenVerificationUnavailable`` (503) when the JWKS is unreachable
    and no keys are cached.
    """
    if not token:
        raise InvalidAccessToken(_MESSAGE_MISSING)
    if len(token) > MAX_TOKEN_LENGTH:
        raise _rejected("too_long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _rejected("malformed") from None

    settings = get_settings()
    # Anything but a string (a list, an object) is garbage, and unhashable besides.
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise _rejected("algorithm_not_allowed")
    key: jwt.PyJWK | str
    allowed_algorithm: str
    if algorithm in _ASYMMETRIC_ALGORITHMS:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _rejected("missing_kid")
        found = _jwks_cache.get_key(
            settings.jwks_url, kid, timeout_seconds=settings.http_timeout_seconds
        )
        if found is None:
            raise _rejected("unknown_kid")
        key, allowed_algorithm = found, found.algorithm_name
    elif algorithm == _SYMMETRIC_ALGORITHM:
        if settings.supabase_jwt_secret is None:
            raise _rejected("hs256_not_configured")
        key, allowed_algorithm = (
            settings.supabase_jwt_secret.get_secret_value(),
            _SYMMETRIC_ALGORITHM,
        )
    else:
        raise _rejected("algorithm_not_allowed")

    try:
        payload = jwt.decode(
            token,
            key,
            # Exactly the one algorithm the key is for, whatever else the header claims.
            algorithms=[allowed_algorithm],
            audience=AUDIENCE,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        log.info("access_token_rejected", reason="expired")
        raise InvalidAccessToken(_MESSAGE_EXPIRED) from None
    except jwt.InvalidSignatureError:
        raise _rejected("bad_signature") from None
    except jwt.InvalidAudienceError:
        raise _rejected("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise _rejected("wrong_issuer") from None
    except jwt.MissingRequiredClaimError:
        raise _rejected("missing_claim") from None
    except jwt.PyJWTError:
        raise _rejected("invalid") from None

    try:
        return Claims.model_validate({**payload, "raw": payload})
    except ValidationError:
        raise _rejected("unexpected_claims") from None


def _rejected(reason: str) -> InvalidAccessToken:
    # ``reason`` is one of our own fixed words, never text derived from the token.
    log.info("access_token_rejected", reason=reason)
    return InvalidAccessToken(_MESSAGE_INVALID)


def authenticate(request: flask.Request) -> Claims:
    """The verified claims of the caller's ``Authorization: Bearer`` token (401 otherwise)."""
    token = _bearer_token(request)
    if token is None:
        raise InvalidAccessToken(_MESSAGE_MISSING)
    return verify_access_token(token)


def optional_user(request: flask.Request) -> Claims | None:
    """The caller's claims if an Authorization header is present, None if it is absent.

    A present but bad header is a 401, not an anonymous request: silently
    downgrading would hide an expired session from the client.
    """
    token = _bearer_token(request)
    return None if token is None else verify_access_token(token)


def _bearer_token(request: flask.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidAccessToken(_MESSAGE_MALFORMED_HEADER)
    return token
