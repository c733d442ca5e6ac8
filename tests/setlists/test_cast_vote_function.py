"""The cast_vote function over HTTP: the token decides the voter, every bad
request is a JSON 4xx and writes nothing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from pytest_httpx import HTTPXMock
from werkzeug.test import Client, TestResponse

from devstack.tokens import mint_local_token
from shared.config import get_settings
from tests.setlists.conftest import HS_SECRET, ISSUER, JWKS_URL
from tests.setlists.helpers import build_stage, scalar
from tests.support.db import Connection, create_user


def token(user: uuid.UUID, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": str(user), "aud": "authenticated", "exp": now + 600, "iat": now,
        "email": f"{user}@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
        "app_metadata": {"provider": "email"}, "user_metadata": {},
        "session_id": str(uuid.uuid4()), "is_anonymous": False,
    }
    claims.update(overrides)
    secret = claims.pop("_secret", HS_SECRET)
    return jwt.encode(claims, secret, algorithm="HS256")


def vote(client: Client, bearer: str | None, body: Any, **headers: str) -> TestResponse:
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/cast_vote", data=data, headers=headers,
                       content_type="application/json")


def nothing_written(db: Connection) -> bool:
    return bool(scalar(db, "select count(*) from public.votes") == 0
            and scalar(db, "select count(*) from private.vote_tallies") == 0
            and scalar(db, "select count(*) from realtime.messages") == 0)


def test_vote_and_unvote(client: Client, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    entry = str(stage.entries[0])
    minted = mint_local_token(str(fan), secret=HS_SECRET, issuer=ISSUER)

    first = vote(client, minted, {"setlist_song_id": entry})
    again = vote(client, minted, {"setlist_song_id": entry, "vote": True})
    assert first.status_code == again.status_code == 200
    assert first.json == again.json == {
        "setlist_song_id": entry, "setlist_id": str(stage.setlist_id),
        "show_id": str(stage.show_id), "vote_count": 1, "voted": True, "votes_used": 1,
        "votes_limit": 10,
    }
    assert first.headers["Content-Type"] == "application/json"

    back = vote(client, minted, {"setlist_song_id": entry, "vote": False})
    assert back.status_code == 200
    assert back.json is not None
    assert (back.json["vote_count"], back.json["voted"], back.json["votes_used"]) == (0, False, 0)
    assert scalar(db, "select count(*) from public.votes") == 0
    # The change waits, dirty, for the next broadcast flush; it nets to zero.
    assert scalar(db, "select bool_and(dirty) and sum(votes) = 0 from private.vote_tallies") is True


def test_the_body_cannot_name_the_voter(client: Client, db: Connection) -> None:
    stage = build_stage(db)
    fan, victim = create_user(db), create_user(db)
    response = vote(client, token(fan),
                    {"setlist_song_id": str(stage.entries[0]), "user_id": str(victim)})
    assert response.status_code == 400
    assert nothing_written(db)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(user: uuid.UUID) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "expired": token(user, exp=now - 3600, iat=now - 7200),
        "wrong signature": token(user, _secret="another-secret-that-is-at-least-32-chars-long"),
        "wrong aud": token(user, aud="anon"),
        "wrong issuer": token(user, iss="https://evil.example.com/auth/v1"),
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(
            {"sub": str(user), "aud": "authenticated", "role": "authenticated", "iss": ISSUER,
             "exp": now + 600, "iat": now}) + ".",
        "garbage": "not-a-jwt-at-all",
        "no token": None,
    }


@pytest.mark.parametrize("case", list(bad_tokens(uuid.uuid4())))
def test_untrusted_tokens_are_401_and_write_nothing(
    client: Client, db: Connection, case: str
) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    response = vote(client, bad_tokens(fan)[case], {"setlist_song_id": str(stage.entries[0])})
    assert response.status_code == 401, case
    assert response.json is not None
    assert response.json["error"]["code"] == "unauthorized"
    assert isinstance(response.json["error"]["message"], str)
    assert nothing_written(db)


def test_hs256_is_refused_when_only_jwks_is_configured(
    client: Client, db: Connection, monkeypatch: pytest.MonkeyPatch, httpx_mock: HTTPXMock
) -> None:
    monkeypatch.delenv("SUPABASE_JWT_SECRET")
    get_settings.cache_clear()
    stage = build_stage(db)
    fan = create_user(db)
    response = vote(client, token(fan), {"setlist_song_id": str(stage.entries[0])})
    assert response.status_code == 401
    assert response.json is not None and response.json["error"]["code"] == "unauthorized"
    assert httpx_mock.get_requests() == []
    assert nothing_written(db)


def test_an_es256_token_from_the_jwks_is_accepted(
    client: Client, db: Connection, monkeypatch: pytest.MonkeyPatch, httpx_mock: HTTPXMock
) -> None:
    monkeypatch.delenv("SUPABASE_JWT_SECRET")
    get_settings.cache_clear()
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    httpx_mock.add_response(url=JWKS_URL, json={"keys": [{**jwk, "kid": "k1", "alg": "ES256",
                                                           "use": "sig"}]})
    stage = build_stage(db)
    fan = create_user(db)
    now = int(time.time())
    signed = jwt.encode(
        {"iss": ISSUER, "sub": str(fan), "aud": "authenticated", "exp": now + 600, "iat": now,
         "role": "authenticated", "is_anonymous": False},
        key, algorithm="ES256", headers={"kid": "k1"})
    response = vote(client, signed, {"setlist_song_id": str(stage.entries[0])})
    assert response.status_code == 200
    assert response.json is not None and response.json["vote_count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        {},
        {"setlist_song_id": "not-a-uuid"},
        {"setlist_song_id": None},
        {"setlist_song_id": "0b5a3c3e-8f0e-4a57-9d86-5c1a2b3c4d5e", "vote": "yes"},
        {"setlist_song_id": "0b5a3c3e-8f0e-4a57-9d86-5c1a2b3c4d5e", "vote": 1},
    ],
)
def test_malformed_bodies_are_400(client: Client, db: Connection, body: Any) -> None:
    build_stage(db)
    fan = create_user(db)
    response = vote(client, token(fan), body)
    assert response.status_code == 400
    assert response.json is not None and response.json["error"]["code"] in (
        "bad_request", "invalid_json")
    assert nothing_written(db)


def test_unknown_setlist_song_is_404(client: Client, db: Connection) -> None:
    build_stage(db)
    fan = create_user(db)
    response = vote(client, token(fan), {"setlist_song_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["error"]["code"] == "setlist_song_not_found"
    assert nothing_written(db)


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("started", 409, "voting_closed"),
        ("anonymous", 403, "anonymous_user"),
        ("deleted", 401, "unknown_user"),
    ],
)
def test_refusals(client: Client, db: Connection, setup: str, status: int, code: str) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    bearer = token(fan)
    if setup == "started":
        db.execute("update public.shows set starts_at = now() - interval '1 hour'")
    elif setup == "anonymous":
        bearer = token(fan, is_anonymous=True)
    elif setup == "deleted":
        db.execute("delete from auth.users where id = %s", [fan])
    response = vote(client, bearer, {"setlist_song_id": str(stage.entries[0])})
    assert response.status_code == status
    assert response.json is not None and response.json["error"]["code"] == code
    assert nothing_written(db)


def test_vote_limit_is_409(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=11)
    fan = create_user(db)
    bearer = token(fan)
    for entry in stage.entries[:10]:
        assert vote(client, bearer, {"setlist_song_id": str(entry)}).status_code == 200
    response = vote(client, bearer, {"setlist_song_id": str(stage.entries[10])})
    assert response.status_code == 409
    assert response.json is not None
    assert response.json["error"]["code"] == "vote_limit_reached"
    assert scalar(db, "select count(*) from public.votes") == 10


def test_only_post(client: Client) -> None:
    assert client.get("/cast_vote").status_code == 405
