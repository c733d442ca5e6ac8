"""Access-token verification (shared.auth) against a mocked JWKS endpoint; no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import flask
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pytest_httpx import HTTPXMock

from devstack.tokens import mint_local_token
from shared import auth
from shared.auth import (
    AccessTokenVerificationUnavailable,
    Claims,
    InvalidAccessToken,
    JwksCache,
    authenticate,
    optional_user,
    reset_jwks_cache,
    verify_access_token,
)
from shared.config import get_settings
from shared.web import Unauthorized, endpoint

SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
ISSUER = f"{SUPABASE_URL}/auth/v1"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
USER_ID = "5b1e4c1e-3c3a-4c52-9f0e-6a1d7e9b2f10"


# --- keys, JWKS documents and token builders ---------------------------------


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rotated_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig", "key_ops": ["verify"]}


def supabase_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": USER_ID,
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": "fan@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], key: Any, algorithm: str, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to produce (alg none, HMAC keyed with a public key)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


# --- environment, clock, log recorder ------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingLogger:
    """Stands in for the module's structlog logger so tests can read every line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = warning = error = exception = debug = _record

    def text(self) -> str:
        return json.dumps(self.lines, default=str)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorded_log(monkeypatch: pytest.MonkeyPatch) -> RecordingLogger:
    recorder = RecordingLogger()
    monkeypatch.setattr(auth, "log", recorder)
    return recorder


@pytest.fixture
def jwks_only(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, recorded_log: RecordingLogger
) -> Iterator[None]:
    """A project signing with asymmetric keys only: no legacy HS256 secret."""
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    monkeypatch.delenv("SUPABASE_JWKS_URL", raising=False)
    monkeypatch.delenv("SUPABASE_JWT_SECRET", raising=False)
    get_settings.cache_clear()
    reset_jwks_cache(clock=clock)
    yield
    get_settings.cache_clear()
    reset_jwks_cache()


@pytest.fixture
def with_hs_secret(jwks_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_JWT_SECRET", HS_SECRET)
    get_settings.cache_clear()


def serve_jwks(httpx_mock: HTTPXMock, *jwks: dict[str, Any]) -> None:
    httpx_mock.add_response(url=JWKS_URL, json={"keys": list(jwks)})


def jwks_fetches(httpx_mock: HTTPXMock) -> int:
    return len(httpx_mock.get_requests(url=JWKS_URL))


def assert_rejected_without_leak(
    token: str, recorded_log: RecordingLogger, expected: type[Exception] = InvalidAccessToken
) -> pytest.ExceptionInfo[Exception]:
    with pytest.raises(expected) as caught:
        verify_access_token(token)
    assert isinstance(caught.value, Unauthorized)
    assert caught.value.status == 401
    assert caught.value.code == "unauthorized"
    # Each segment of the token, ignoring ones too short to tell apart from ordinary words.
    for fragment in {token, *token.split(".")} - {""}:
        if len(fragment) >= 8:
            assert fragment not in str(caught.value)
            assert fragment not in recorded_log.text()
    return caught


# --- accepted tokens -----------------------------------------------------------


@pytest.mark.usefixtures("jwks_only")
def test_es256_token_is_verified_against_the_jwks(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"), rsa_jwk(rsa_key, "rsa-1"))
    issued = supabase_claims()

    claims = verify_access_token(signed(issued, ec_key, "ES256", kid="ec-1"))

    assert isinstance(claims, Claims)
    assert claims.sub == USER_ID
    assert claims.user_id == uuid.UUID(USER_ID)
    assert claims.role == "authenticated"
    assert claims.aud == "authenticated"
    assert claims.exp == issued["exp"]
    assert claims.email == "fan@example.com"
    assert claims.is_anonymous is False
    assert claims.raw == issued


@pytest.mark.usefixtures("jwks_only")
def test_rs256_token_is_verified_against_the_jwks(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"), rsa_jwk(rsa_key, "rsa-1"))

    claims = verify_access_token(signed(supabase_claims(), rsa_key, "RS256", kid="rsa-1"))

    assert claims.sub == USER_ID


@pytest.mark.usefixtures("jwks_only")
def test_jwks_is_cached_between_tokens(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")

    for _ in range(5):
        verify_access_token(token)
        clock.advance(60)

    assert jwks_fetches(httpx_mock) == 1


@pytest.mark.usefixtures("jwks_only")
def test_jwks_is_refetched_after_its_ttl(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")

    verify_access_token(token)
    clock.advance(auth.JWKS_TTL_SECONDS + 1)
    verify_access_token(token)

    assert jwks_fetches(httpx_mock) == 2


@pytest.mark.usefixtures("with_hs_secret")
def test_hs256_token_is_verified_against_the_legacy_secret(httpx_mock: HTTPXMock) -> None:
    claims = verify_access_token(signed(supabase_claims(), HS_SECRET, "HS256"))

    assert claims.sub == USER_ID
    assert jwks_fetches(httpx_mock) == 0


@pytest.mark.usefixtures("with_hs_secret")
def test_anonymous_sign_in_has_no_email() -> None:
    token = signed(supabase_claims(email="", is_anonymous=True), HS_SECRET, "HS256")

    claims = verify_access_token(token)

    assert claims.email is None
    assert claims.is_anonymous is True


@pytest.mark.usefixtures("with_hs_secret")
def test_slightly_expired_token_is_within_the_clock_skew_leeway() -> None:
    now = int(time.time())
    token = signed(supabase_claims(iat=now - 3600, exp=now - 2), HS_SECRET, "HS256")

    assert verify_access_token(token).sub == USER_ID


@pytest.mark.usefixtures("with_hs_secret")
def test_minted_local_token_has_supabases_claims_and_verifies() -> None:
    token = mint_local_token(USER_ID, email="demo@example.com", secret=HS_SECRET, issuer=ISSUER)

    claims = verify_access_token(token)

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert set(claims.raw) == {
        "sub", "aud", "exp", "iat", "iss", "email", "phone", "role", "aal", "amr",
        "session_id", "is_anonymous", "app_metadata", "user_metadata",
    }  # fmt: skip
    assert claims.raw["exp"] - claims.raw["iat"] == 3600
    assert claims.raw["amr"] == [{"method": "password", "timestamp": claims.raw["iat"]}]
    assert claims.raw["app_metadata"]["provider"] == "email"
    assert claims.raw["user_metadata"] == {}
    assert claims.email == "demo@example.com"
    assert claims.role == "authenticated"
    assert claims.aal == "aal1"
    assert claims.is_anonymous is False
    assert uuid.UUID(claims.raw["session_id"])


# --- rejected tokens -----------------------------------------------------------


@pytest.mark.usefixtures("with_hs_secret")
def test_expired_token_is_rejected_as_expired(recorded_log: RecordingLogger) -> None:
    now = int(time.time())
    token = signed(supabase_claims(iat=now - 7200, exp=now - 3600), HS_SECRET, "HS256")

    caught = assert_rejected_without_leak(token, recorded_log)

    assert "expired" in str(caught.value)


@pytest.mark.usefixtures("jwks_only")
def test_token_signed_by_another_key_is_rejected(
    httpx_mock: HTTPXMock,
    ec_key: ec.EllipticCurvePrivateKey,
    rotated_ec_key: ec.EllipticCurvePrivateKey,
    recorded_log: RecordingLogger,
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    forged = signed(supabase_claims(), rotated_ec_key, "ES256", kid="ec-1")

    assert_rejected_without_leak(forged, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
def test_hs256_token_with_another_secret_is_rejected(recorded_log: RecordingLogger) -> None:
    token = signed(supabase_claims(), "another-secret-that-is-also-32-bytes-long", "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
def test_tampered_payload_is_rejected(recorded_log: RecordingLogger) -> None:
    header, _, signature = signed(supabase_claims(), HS_SECRET, "HS256").split(".")
    other_user = b64url(json.dumps(supabase_claims(sub=str(uuid.uuid4()))).encode())

    assert_rejected_without_leak(f"{header}.{other_user}.{signature}", recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize("audience", ["anon", "service_role", None])
def test_wrong_audience_is_rejected(audience: str | None, recorded_log: RecordingLogger) -> None:
    token = signed(supabase_claims(aud=audience), HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize(
    "issuer", ["https://someone-else.supabase.co/auth/v1", "supabase", f"{SUPABASE_URL}", None]
)
def test_wrong_issuer_is_rejected(issuer: str | None, recorded_log: RecordingLogger) -> None:
    token = signed(supabase_claims(iss=issuer), HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize("subject", [None, "", "not-a-uuid"])
def test_missing_or_malformed_sub_is_rejected(
    subject: str | None, recorded_log: RecordingLogger
) -> None:
    token = signed(supabase_claims(sub=subject), HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize("claim", ["exp", "iat", "role"])
def test_token_without_a_required_claim_is_rejected(
    claim: str, recorded_log: RecordingLogger
) -> None:
    token = signed(supabase_claims(**{claim: None}), HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
def test_oversized_token_is_rejected_before_parsing(recorded_log: RecordingLogger) -> None:
    bloated = supabase_claims(user_metadata={"bio": "x" * auth.MAX_TOKEN_LENGTH})
    token = signed(bloated, HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
def test_legacy_anon_key_is_not_a_user_token(recorded_log: RecordingLogger) -> None:
    anon_key = signed(
        {"iss": "supabase", "ref": "abcdefghijklmnop", "role": "anon", "iat": 1, "exp": 2**31},
        HS_SECRET,
        "HS256",
    )

    assert_rejected_without_leak(anon_key, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_rejected(
    alg: str, httpx_mock: HTTPXMock, recorded_log: RecordingLogger
) -> None:
    token = hand_made_token({"alg": alg, "typ": "JWT"}, supabase_claims(), hmac_key=None)

    assert_rejected_without_leak(token, recorded_log)
    assert jwks_fetches(httpx_mock) == 0


@pytest.mark.usefixtures("jwks_only")
def test_hs256_token_is_rejected_when_only_jwks_is_configured(
    httpx_mock: HTTPXMock, recorded_log: RecordingLogger
) -> None:
    token = signed(supabase_claims(), HS_SECRET, "HS256")

    assert_rejected_without_leak(token, recorded_log)
    assert jwks_fetches(httpx_mock) == 0


@pytest.mark.parametrize("fixture", ["jwks_only", "with_hs_secret"])
def test_hs256_token_keyed_with_the_public_key_is_rejected(
    fixture: str,
    request: pytest.FixtureRequest,
    httpx_mock: HTTPXMock,
    rsa_key: rsa.RSAPrivateKey,
    recorded_log: RecordingLogger,
) -> None:
    request.getfixturevalue(fixture)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hand_made_token(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, supabase_claims(), hmac_key=public_pem
    )

    assert_rejected_without_leak(confused, recorded_log)
    assert jwks_fetches(httpx_mock) == 0


@pytest.mark.usefixtures("jwks_only")
def test_token_claiming_an_algorithm_other_than_its_keys_is_rejected(
    httpx_mock: HTTPXMock,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
    recorded_log: RecordingLogger,
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    # Signed with a real RSA key but naming the EC key's kid.
    token = signed(supabase_claims(), rsa_key, "RS256", kid="ec-1")

    assert_rejected_without_leak(token, recorded_log)


@pytest.mark.usefixtures("jwks_only")
def test_symmetric_key_published_in_the_jwks_is_never_used(
    httpx_mock: HTTPXMock, recorded_log: RecordingLogger
) -> None:
    oct_jwk = {"kty": "oct", "kid": "oct-1", "alg": "HS256", "k": b64url(HS_SECRET.encode())}
    serve_jwks(httpx_mock, oct_jwk)

    for algorithm in ("HS256", "RS256", "ES256"):
        token = hand_made_token(
            {"alg": algorithm, "typ": "JWT", "kid": "oct-1"},
            supabase_claims(),
            hmac_key=HS_SECRET.encode(),
        )
        assert_rejected_without_leak(token, recorded_log)
    assert auth._jwks_cache.get_key(JWKS_URL, "oct-1", timeout_seconds=1) is None


@pytest.mark.usefixtures("jwks_only")
def test_asymmetric_token_without_kid_is_rejected(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, recorded_log: RecordingLogger
) -> None:
    token = signed(supabase_claims(), ec_key, "ES256")

    assert_rejected_without_leak(token, recorded_log)
    assert jwks_fetches(httpx_mock) == 0


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.not-base64!.sig",
        f"{b64url(b'[1,2]')}.{b64url(b'{}')}.",
        f"{b64url(b'{}')}.{b64url(b'{}')}.sig",
        hand_made_token({"alg": ["HS256"]}, {}, hmac_key=b"k"),
        hand_made_token({"alg": {"HS256": 1}}, {}, hmac_key=b"k"),
        hand_made_token({"alg": "ES256", "kid": ["ec-1"]}, {}, hmac_key=b"k"),
        "x" * (auth.MAX_TOKEN_LENGTH + 1),
    ],
)
def test_garbage_is_rejected(garbage: str, recorded_log: RecordingLogger) -> None:
    assert_rejected_without_leak(garbage, recorded_log)


@pytest.mark.usefixtures("with_hs_secret")
def test_empty_token_is_rejected_as_missing() -> None:
    with pytest.raises(InvalidAccessToken, match="required"):
        verify_access_token("")


# --- unknown kids, rotation and JWKS outages --------------------------------------


@pytest.mark.usefixtures("jwks_only")
def test_unknown_kid_triggers_exactly_one_refetch_then_rejects(
    httpx_mock: HTTPXMock,
    ec_key: ec.EllipticCurvePrivateKey,
    rotated_ec_key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
    recorded_log: RecordingLogger,
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    verify_access_token(signed(supabase_claims(), ec_key, "ES256", kid="ec-1"))
    clock.advance(auth.JWKS_REFETCH_COOLDOWN_SECONDS + 1)

    stranger = signed(supabase_claims(), rotated_ec_key, "ES256", kid="ec-unknown")
    assert_rejected_without_leak(stranger, recorded_log)
    assert jwks_fetches(httpx_mock) == 2

    # A flood of random kids right after is answered from the cache.
    for _ in range(20):
        random_kid = signed(supabase_claims(), rotated_ec_key, "ES256", kid=str(uuid.uuid4()))
        assert_rejected_without_leak(random_kid, recorded_log)
    assert jwks_fetches(httpx_mock) == 2


@pytest.mark.usefixtures("jwks_only")
def test_unknown_kid_on_a_cold_cache_fetches_once(
    httpx_mock: HTTPXMock, rotated_ec_key: ec.EllipticCurvePrivateKey, recorded_log: RecordingLogger
) -> None:
    serve_jwks(httpx_mock)  # a project still on the legacy secret publishes no keys
    stranger = signed(supabase_claims(), rotated_ec_key, "ES256", kid="ec-unknown")

    assert_rejected_without_leak(stranger, recorded_log)
    assert jwks_fetches(httpx_mock) == 1


@pytest.mark.usefixtures("jwks_only")
def test_rotated_key_is_accepted_after_one_refetch(
    httpx_mock: HTTPXMock,
    ec_key: ec.EllipticCurvePrivateKey,
    rotated_ec_key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"), ec_jwk(rotated_ec_key, "ec-2"))
    old_token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")
    verify_access_token(old_token)
    clock.advance(auth.JWKS_REFETCH_COOLDOWN_SECONDS + 1)

    new_token = signed(supabase_claims(), rotated_ec_key, "ES256", kid="ec-2")
    assert verify_access_token(new_token).sub == USER_ID
    assert jwks_fetches(httpx_mock) == 2

    # Both keys are now cached: neither token costs another fetch.
    verify_access_token(old_token)
    verify_access_token(new_token)
    assert jwks_fetches(httpx_mock) == 2


@pytest.mark.usefixtures("jwks_only")
def test_unreachable_jwks_with_nothing_cached_is_a_503_not_a_401(
    httpx_mock: HTTPXMock,
    ec_key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
    recorded_log: RecordingLogger,
) -> None:
    httpx_mock.add_response(url=JWKS_URL, status_code=502)
    token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")

    for _ in range(3):  # retried only after the cooldown
        with pytest.raises(AccessTokenVerificationUnavailable) as caught:
            verify_access_token(token)
        assert caught.value.status == 503
        assert token not in str(caught.value)
    assert jwks_fetches(httpx_mock) == 1

    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    clock.advance(auth.JWKS_REFETCH_COOLDOWN_SECONDS + 1)
    assert verify_access_token(token).sub == USER_ID
    assert token not in recorded_log.text()


@pytest.mark.usefixtures("jwks_only")
def test_stale_keys_keep_working_while_the_jwks_is_unreachable(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    httpx_mock.add_response(url=JWKS_URL, status_code=503)
    token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")
    verify_access_token(token)
    clock.advance(auth.JWKS_TTL_SECONDS + 1)

    assert verify_access_token(token).sub == USER_ID
    assert verify_access_token(token).sub == USER_ID
    assert jwks_fetches(httpx_mock) == 2


@pytest.mark.parametrize(
    "document",
    [{"keys": "nope"}, [], {"keys": [1, {"kty": "RSA", "kid": "x"}, {"kty": "EC", "kid": "x"}]}],
)
def test_malformed_jwks_documents_yield_no_keys(httpx_mock: HTTPXMock, document: Any) -> None:
    httpx_mock.add_response(url=JWKS_URL, json=document)

    assert JwksCache().get_key(JWKS_URL, "x", timeout_seconds=1) is None
    assert jwks_fetches(httpx_mock) == 1


def test_changing_the_jwks_url_drops_the_cached_keys(
    httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    other_url = "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json"
    serve_jwks(httpx_mock, ec_jwk(ec_key, "ec-1"))
    httpx_mock.add_response(url=other_url, json={"keys": []})
    cache = JwksCache()

    assert cache.get_key(JWKS_URL, "ec-1", timeout_seconds=1) is not None
    assert cache.get_key(other_url, "ec-1", timeout_seconds=1) is None


# --- Flask integration ------------------------------------------------------------


@pytest.fixture
def app() -> flask.Flask:
    return flask.Flask(__name__)


@endpoint(["GET"])
def whoami(request: flask.Request) -> dict[str, Any]:
    claims = authenticate(request)
    return {"user_id": claims.sub}


@endpoint(["GET"])
def maybe_whoami(request: flask.Request) -> dict[str, Any]:
    claims = optional_user(request)
    return {"user_id": claims.sub if claims else None}


def call(app: flask.Flask, handler: Any, authorization: str | None) -> flask.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with app.test_request_context("/", method="GET", headers=headers):
        response: flask.Response = handler(flask.request)
        return response


@pytest.mark.usefixtures("with_hs_secret")
def test_endpoint_answers_the_verified_user(app: flask.Flask) -> None:
    token = signed(supabase_claims(), HS_SECRET, "HS256")

    response = call(app, whoami, f"Bearer {token}")

    assert response.status_code == 200
    assert response.get_json() == {"user_id": USER_ID}


@pytest.mark.usefixtures("with_hs_secret")
def test_bearer_scheme_is_case_insensitive(app: flask.Flask) -> None:
    token = signed(supabase_claims(), HS_SECRET, "HS256")

    assert call(app, whoami, f"bearer {token}").status_code == 200


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer two tokens",
        "Token {valid}",
        "Bearer {expired}",
        "Bearer {wrong_secret}",
    ],
)
def test_endpoint_answers_401_json_without_echoing_the_token(
    app: flask.Flask, authorization: str | None
) -> None:
    now = int(time.time())
    tokens = {
        "valid": signed(supabase_claims(), HS_SECRET, "HS256"),
        "expired": signed(supabase_claims(iat=now - 7200, exp=now - 3600), HS_SECRET, "HS256"),
        "wrong_secret": signed(supabase_claims(), "x" * 40, "HS256"),
    }
    header = authorization.format(**tokens) if authorization is not None else None

    response = call(app, whoami, header)

    assert response.status_code == 401
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"]
    for token in tokens.values():
        for part in token.split("."):
            assert part not in response.get_data(as_text=True)


@pytest.mark.usefixtures("with_hs_secret")
def test_optional_user_is_none_without_a_header(app: flask.Flask) -> None:
    response = call(app, maybe_whoami, None)

    assert response.status_code == 200
    assert response.get_json() == {"user_id": None}


@pytest.mark.usefixtures("with_hs_secret")
def test_optional_user_returns_the_signed_in_user(app: flask.Flask) -> None:
    token = signed(supabase_claims(), HS_SECRET, "HS256")

    assert call(app, maybe_whoami, f"Bearer {token}").get_json() == {"user_id": USER_ID}


@pytest.mark.usefixtures("with_hs_secret")
@pytest.mark.parametrize("authorization", ["Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer "])
def test_optional_user_does_not_downgrade_a_bad_header_to_anonymous(
    app: flask.Flask, authorization: str
) -> None:
    response = call(app, maybe_whoami, authorization)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.usefixtures("jwks_only")
def test_endpoint_answers_503_when_keys_cannot_be_fetched(
    app: flask.Flask, httpx_mock: HTTPXMock, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    httpx_mock.add_response(url=JWKS_URL, status_code=500)
    token = signed(supabase_claims(), ec_key, "ES256", kid="ec-1")

    response = call(app, whoami, f"Bearer {token}")

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "auth_unavailable"
