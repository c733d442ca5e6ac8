"""sync_my_artists: Spotify replaced at the HTTP boundary; the user only from the verified token."""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock
from werkzeug.test import Client, TestResponse

from devstack.tokens import mint_local_token
from tests.discovery.conftest import JWT_SECRET, SUPABASE_URL
from tests.discovery.helpers import artist, show, venue
from tests.support.db import Connection, create_user

PAYLOADS = Path(__file__).parent / "payloads"
TOP = re.compile(r"^https://api\.spotify\.com/v1/me/top/artists(\?.*)?$")
FOLLOWING = re.compile(r"^https://api\.spotify\.com/v1/me/following(\?.*)?$")
SPOTIFY_TOKEN = "BQUserProviderToken-from-supabase-session"

BOH, PHISH = "0OdUWJ0sBjDrqHygGUXeCF", "5wbIWUzTPuTxTyG6ouQKqz"
FLEET_FOXES, SHINS = "4EVpmkEwrLYEg6jIsiPMIb", "4LG4Bs1Gadh0gMq2ecA8F4"
MMJ = "4URGQHaJ5ojE4yL7o0EJTx"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def bearer(user_id: uuid.UUID) -> str:
    token = mint_local_token(str(user_id), secret=JWT_SECRET, issuer=f"{SUPABASE_URL}/auth/v1")
    return f"Bearer {token}"


def sync(client: Client, user_id: uuid.UUID | None, body: dict[str, Any] | None = None,
         spotify_token: str | None = SPOTIFY_TOKEN) -> TestResponse:
    headers = {}
    if user_id is not None:
        headers["Authorization"] = bearer(user_id)
    if spotify_token is not None:
        headers["X-Spotify-Token"] = spotify_token
    return client.post("/sync_my_artists", json=body or {}, headers=headers)


def spotify_lists(httpx_mock: HTTPXMock) -> None:
    """Top artists over two pages (BoH, Phish, Fleet Foxes), followed over two (BoH, Shins, MMJ)."""
    httpx_mock.add_response(url=TOP, match_headers={"Authorization": f"Bearer {SPOTIFY_TOKEN}"},
                            json=payload("spotify_me_top_artists_page1.json"))
    httpx_mock.add_response(url=TOP, json=payload("spotify_me_top_artists_page2.json"))
    httpx_mock.add_response(url=FOLLOWING, json=payload("spotify_me_following_page1.json"))
    httpx_mock.add_response(url=FOLLOWING, json=payload("spotify_me_following_page2.json"))


def user_rows(db: Connection, user_id: uuid.UUID) -> set[tuple[str, str, int | None]]:
    rows = db.execute(
        "select x.external_id, ua.relation, ua.rank from public.user_artists ua"
        " join public.artist_external_ids x on x.artist_id = ua.artist_id"
        "  and x.source = 'spotify' where ua.user_id = %s", [user_id]).fetchall()
    return {(r["external_id"], r["relation"], r["rank"]) for r in rows}


def test_first_sync_reads_spotify_and_stores_ranked_top_and_followed_artists(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    # Band of Horses is already ours, with a show coming up.
    boh = artist(db, "Band of Horses", popularity=61)
    db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
               " values ('spotify', %s, %s)", [BOH, boh])
    next_show = show(db, boh, venue(db, "Crypto.com Arena", "Los Angeles"), 9)
    spotify_lists(httpx_mock)

    response = sync(client, user)

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.json
    assert answer is not None
    assert answer["refreshed"] is True
    assert answer["counts"] == {"top": 3, "followed": 3, "removed": 0}
    names = [(a["name"], a["top_rank"], a["is_followed"]) for a in answer["artists"]]
    assert names == [("Band of Horses", 1, True), ("Phish", 2, False), ("Fleet Foxes", 3, False),
                     ("My Morning Jacket", None, True), ("The Shins", None, True)]
    assert answer["artists"][0]["artist_id"] == str(boh)
    assert answer["artists"][0]["next_show"]["show"]["id"] == str(next_show)
    assert user_rows(db, user) == {
        (BOH, "top", 1), (PHISH, "top", 2), (FLEET_FOXES, "top", 3),
        (BOH, "followed", None), (SHINS, "followed", None), (MMJ, "followed", None)}
    # The existing artist was filled, not overwritten.
    row = db.execute("select popularity from public.artists where id = %s", [boh]).fetchone()
    assert row is not None and row["popularity"] == 61
    # The user's own Spotify token went to Spotify; nothing of it comes back.
    assert all(r.headers["Authorization"] == f"Bearer {SPOTIFY_TOKEN}"
               for r in httpx_mock.get_requests())
    assert SPOTIFY_TOKEN not in response.get_data(as_text=True)
    state = db.execute(
        "select next_due_at - last_success_at as ttl from private.sync_state"
        " where job_kind = 'user_artists' and entity_id = %s", [user]).fetchone()
    assert state is not None and state["ttl"].total_seconds() == 3600
    # New artists are queued for import (their shows follow from there).
    queued = db.execute("select count(*) as n from private.sync_pending_jobs"
                        " where job_kind = 'artist_details'").fetchone()
    assert queued is not None and queued["n"] == 5


def test_within_the_hour_the_answer_comes_from_the_database(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    spotify_lists(httpx_mock)
    first = sync(client, user)
    assert first.status_code == 200
    calls = len(httpx_mock.get_requests())

    # No Spotify call at all, and no provider token needed.
    second = sync(client, user, spotify_token=None)

    assert second.status_code == 200
    assert len(httpx_mock.get_requests()) == calls
    assert second.json is not None and first.json is not None
    assert second.json["refreshed"] is False
    assert second.json["counts"] is None
    assert second.json["artists"] == first.json["artists"]


def test_force_and_expiry_refresh_and_stale_rows_are_replaced(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    spotify_lists(httpx_mock)
    assert sync(client, user).status_code == 200

    # Now the user's top list is only Phish and they follow only The Shins.
    top = payload("spotify_me_top_artists_page1.json")
    top["items"] = [top["items"][1]]
    top["next"], top["total"] = None, 1
    following = payload("spotify_me_following_page1.json")
    following["artists"]["items"] = [following["artists"]["items"][1]]
    following["artists"]["next"], following["artists"]["total"] = None, 1
    following["artists"]["cursors"] = {"after": None}
    httpx_mock.add_response(url=TOP, json=top)
    httpx_mock.add_response(url=FOLLOWING, json=following)

    forced = sync(client, user, {"force": True})

    assert forced.status_code == 200
    assert forced.json is not None
    assert forced.json["refreshed"] is True
    assert forced.json["counts"] == {"top": 1, "followed": 1, "removed": 4}
    assert user_rows(db, user) == {(PHISH, "top", 1), (SHINS, "followed", None)}

    # An hour later the next call reads Spotify again without force.
    db.execute("update private.sync_state set next_due_at = now() - interval '1 second'"
               " where job_kind = 'user_artists' and entity_id = %s", [user])
    httpx_mock.add_response(url=TOP, json=copy.deepcopy(top))
    httpx_mock.add_response(url=FOLLOWING, json=copy.deepcopy(following))
    before = len(httpx_mock.get_requests())
    expired = sync(client, user)
    assert expired.status_code == 200
    assert expired.json is not None and expired.json["refreshed"] is True
    assert len(httpx_mock.get_requests()) == before + 2


def test_a_rejected_spotify_token_is_401_asking_for_a_refresh(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    httpx_mock.add_response(url=TOP, status_code=401, json=payload("spotify_401.json"))

    response = sync(client, user)

    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"]["code"] == "spotify_token_invalid"
    assert "refresh" in response.json["error"]["message"]
    assert SPOTIFY_TOKEN not in response.get_data(as_text=True)
    assert user_rows(db, user) == set()
    state = db.execute("select last_success_at, last_error from private.sync_state"
                       " where job_kind = 'user_artists' and entity_id = %s", [user]).fetchone()
    assert state is not None
    assert state["last_success_at"] is None and state["last_error"] == "BadCredentials"


def test_a_token_without_the_scopes_is_403(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    httpx_mock.add_response(url=TOP, json=payload("spotify_me_top_artists_page2.json"))
    httpx_mock.add_response(url=FOLLOWING, status_code=403, json=payload("spotify_403.json"))
    response = sync(client, user)
    assert response.status_code == 403
    assert response.json is not None
    assert response.json["error"]["code"] == "spotify_forbidden"


def test_a_stale_sync_without_a_provider_token_is_400(client: Client, db: Connection) -> None:
    response = sync(client, create_user(db), spotify_token=None)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"]["code"] == "spotify_token_required"


def test_the_user_comes_only_from_the_verified_token(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user_a = create_user(db)
    user_b = create_user(db)
    spotify_lists(httpx_mock)
    assert sync(client, user_a).status_code == 200

    # No token, a bad token, a user id in the body: none of them reaches anyone's rows.
    assert sync(client, None).status_code == 401
    bad = client.post("/sync_my_artists", json={},
                      headers={"Authorization": "Bearer not-a-jwt", "X-Spotify-Token": "x"})
    assert bad.status_code == 401
    smuggled = sync(client, user_b, {"user_id": str(user_a)})
    assert smuggled.status_code == 400

    # B syncs an empty Spotify account: A's rows stay, B sees nothing of A's.
    empty_top = payload("spotify_me_top_artists_page2.json")
    empty_top["items"], empty_top["next"], empty_top["total"] = [], None, 0
    empty_following = payload("spotify_me_following_page2.json")
    empty_following["artists"]["items"], empty_following["artists"]["total"] = [], 0
    httpx_mock.add_response(url=TOP, json=empty_top)
    httpx_mock.add_response(url=FOLLOWING, json=empty_following)
    mine = sync(client, user_b)
    assert mine.status_code == 200
    assert mine.json is not None and mine.json["artists"] == []
    assert len(user_rows(db, user_a)) == 6
    assert user_rows(db, user_b) == set()


def test_a_deleted_account_is_401(
    client: Client, httpx_mock: HTTPXMock, db: Connection
) -> None:
    user = create_user(db)
    token = bearer(user)  # still valid for its hour
    db.execute("delete from auth.users where id = %s", [user])
    spotify_lists(httpx_mock)
    response = client.post("/sync_my_artists", json={},
                           headers={"Authorization": token, "X-Spotify-Token": SPOTIFY_TOKEN})
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"]["code"] == "unknown_user"


def test_browsers_may_send_the_provider_token_header(client: Client) -> None:
    preflight = client.options("/sync_my_artists")
    assert preflight.status_code == 204
    assert "X-Spotify-Token" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("method", ["get", "put"])
def test_only_post_is_allowed(client: Client, method: str) -> None:
    assert getattr(client, method)("/sync_my_artists").status_code == 405
