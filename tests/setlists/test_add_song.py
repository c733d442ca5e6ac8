"""add_song: a fan adds a song of the show's artist, once per setlist."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from werkzeug.test import Client, TestResponse

from devstack.fixtures import BAND_OF_HORSES_SONGS
from tests.setlists.conftest import HS_SECRET, ISSUER
from tests.setlists.helpers import PHISH_SONGS, build_stage, create_users, run_concurrently, scalar
from tests.support.catalogue import insert_artist, insert_songs
from tests.support.db import Connection, create_user


def token(user: uuid.UUID, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "sub": str(user), "aud": "authenticated",
                              "exp": now + 600, "iat": now, "role": "authenticated",
                              "is_anonymous": False, **overrides}
    return jwt.encode(claims, HS_SECRET, algorithm="HS256")


def add(client: Client, bearer: str | None, body: Any) -> TestResponse:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    return client.post("/add_song", data=json.dumps(body), headers=headers,
                       content_type="application/json")


def entries(db: Connection, setlist_id: uuid.UUID | None) -> list[dict[str, Any]]:
    return db.execute(
        "select ss.id, ss.position, ss.vote_count, ss.added_by, so.title"
        " from public.setlist_songs ss join public.songs so on so.id = ss.song_id"
        " where ss.setlist_id = %s order by ss.position", [setlist_id]).fetchall()


def test_adds_at_the_end_once(client: Client, db: Connection) -> None:
    stage = build_stage(db)  # songs 0..4 on the setlist
    fan = create_user(db)
    body = {"show_id": str(stage.show_id), "song_id": str(stage.song_ids[7])}
    response = add(client, token(fan), body)
    assert response.status_code == 201
    assert response.json is not None
    rows = entries(db, stage.setlist_id)
    assert response.json == {
        "setlist_song_id": str(rows[-1]["id"]), "setlist_id": str(stage.setlist_id),
        "show_id": str(stage.show_id), "song_id": str(stage.song_ids[7]),
        "title": BAND_OF_HORSES_SONGS[7], "position": 6, "vote_count": 0, "added": True,
        "songs_added": 1, "songs_added_limit": 5,
    }
    assert (rows[-1]["title"], rows[-1]["added_by"], rows[-1]["vote_count"]) == (
        BAND_OF_HORSES_SONGS[7], fan, 0)

    again = add(client, token(create_user(db)), body)
    assert again.status_code == 200
    assert again.json is not None
    assert again.json == {**response.json, "added": False, "songs_added": 0}
    assert len(entries(db, stage.setlist_id)) == 6
    message = db.execute(
        "select topic, event, payload from realtime.messages where event = 'song_added'"
    ).fetchall()
    assert len(message) == 1
    assert message[0]["topic"] == f"setlist:{stage.setlist_id}"
    assert message[0]["payload"]["setlist_song_id"] == str(rows[-1]["id"])


def test_a_song_of_another_artist_is_refused(client: Client, db: Connection) -> None:
    stage = build_stage(db)
    phish = insert_artist(db, "Phish")
    [tweezer] = insert_songs(db, phish, PHISH_SONGS[:1])
    response = add(client, token(create_user(db)),
                   {"show_id": str(stage.show_id), "song_id": str(tweezer)})
    assert response.status_code == 422
    assert response.json is not None
    assert response.json["error"]["code"] == "song_of_another_artist"
    assert len(entries(db, stage.setlist_id)) == 5


def test_the_setlist_is_drawn_first_when_missing(client: Client, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    fan = create_user(db)
    response = add(client, token(fan),
                   {"show_id": str(stage.show_id), "song_id": str(stage.song_ids[0])})
    setlist = scalar(db, "select id from public.setlists where show_id = %s", [stage.show_id])
    rows = entries(db, setlist)
    assert response.json is not None
    if response.status_code == 200:
        # The draw picked this very song: it is on the setlist, once.
        assert response.json["added"] is False
        assert len(rows) == 5
    else:
        assert response.status_code == 201
        assert len(rows) == 6 and rows[-1]["added_by"] == fan
    assert len({r["title"] for r in rows}) == len(rows)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "unauthorized"),
        ("unknown show", 404, "show_not_found"),
        ("unknown song", 404, "song_not_found"),
        ("started", 409, "voting_closed"),
        ("anonymous", 403, "anonymous_user"),
        ("malformed", 400, "bad_request"),
    ],
)
def test_refusals_write_nothing(
    client: Client, db: Connection, case: str, status: int, code: str
) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    bearer: str | None = token(fan)
    body: dict[str, Any] = {"show_id": str(stage.show_id), "song_id": str(stage.song_ids[9])}
    if case == "no token":
        bearer = None
    elif case == "unknown show":
        body["show_id"] = str(uuid.uuid4())
    elif case == "unknown song":
        body["song_id"] = str(uuid.uuid4())
    elif case == "started":
        db.execute("update public.shows set starts_at = now() - interval '5 minutes'")
    elif case == "anonymous":
        bearer = token(fan, is_anonymous=True)
    elif case == "malformed":
        body = {"show_id": str(stage.show_id)}
    response = add(client, bearer, body)
    assert response.status_code == status
    assert response.json is not None and response.json["error"]["code"] == code
    assert len(entries(db, stage.setlist_id)) == 5
    assert scalar(db, "select count(*) from realtime.messages") == 0


def test_one_fan_adds_at_most_five(client: Client, db: Connection) -> None:
    stage = build_stage(db)
    bearer = token(create_user(db))
    codes = [add(client, bearer, {"show_id": str(stage.show_id), "song_id": str(song)}).status_code
             for song in stage.song_ids[5:11]]
    assert codes == [201] * 5 + [409]
    assert len(entries(db, stage.setlist_id)) == 10


def test_concurrent_additions_get_distinct_positions(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    users = create_users(db, 11)

    def work(conn: Connection, task: tuple[uuid.UUID, uuid.UUID]) -> Any:
        user, song = task
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', %s, true),"
                         " set_config('role', 'authenticated', true)",
                         [json.dumps({"sub": str(user), "role": "authenticated"})])
            return conn.execute("select public.add_song(%s, %s) as a",
                                [stage.show_id, song]).fetchone()

    # 11 fans, each a different song; then 10 fans racing for the same one.
    results = run_concurrently(database_url, list(zip(users, stage.song_ids[5:16], strict=True)),
                               work)
    assert [r for r in results if isinstance(r, Exception)] == []
    rows = entries(db, stage.setlist_id)
    assert [r["position"] for r in rows] == list(range(1, 17))
    extra = build_stage(db, artist_name="Band of Horses", venue_name="Ryman Auditorium")
    racers = create_users(db, 10)
    results = run_concurrently(
        database_url, [(user, extra.song_ids[12]) for user in racers],
        lambda conn, task: work_for(conn, task, extra.show_id))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(r["a"]["added"] for r in results) == 1
    assert len(entries(db, extra.setlist_id)) == 6


def work_for(conn: Connection, task: tuple[uuid.UUID, uuid.UUID], show: uuid.UUID) -> Any:
    user, song = task
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true),"
                     " set_config('role', 'authenticated', true)",
                     [json.dumps({"sub": str(user), "role": "authenticated"})])
        return conn.execute("select public.add_song(%s, %s) as a", [show, song]).fetchone()
