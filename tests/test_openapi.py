"""openapi.yaml is a valid OpenAPI 3.1 document, names every function, and
describes what the functions really answer: every response below comes from
the deployed apps (``build_app()``) and is validated against the schema the
document gives for its path, method and status. The PostgREST read RPCs are
checked against their component schemas the same way."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from psycopg.rows import dict_row
from pytest_httpx import HTTPXMock
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import Client, TestResponse

from devstack.migrate import PROJECT_ROOT
from devstack.server import build_app, function_names
from shared.auth import reset_jwks_cache
from shared.budgets import identity_key
from shared.config import get_settings
from shared.sync import clients
from tests.setlists.helpers import build_stage, cast_vote
from tests.support.catalogue import insert_artist, insert_show, insert_venue
from tests.support.db import Connection, create_user, request_as
from tests.sync.upstream import BOH_TM, Upstream

SPEC_FILE = PROJECT_ROOT / "openapi.yaml"
SPEC_URI = "urn:theset:openapi"
SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
ISSUER = f"{SUPABASE_URL}/auth/v1"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
INTERNAL = {"X-Internal-Secret": "openapi-test-internal-secret-0123456789"}
# The functions whose every documented status (but 5xx) these tests provoke.
FULLY_EXERCISED = ("health", "create_setlist", "cast_vote", "add_song")


def load_spec() -> dict[str, Any]:
    spec, _ = read_from_filename(str(SPEC_FILE))
    assert isinstance(spec, dict)
    return spec


SPEC = load_spec()
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator_at(pointer: str) -> Any:
    """A JSON Schema validator (OpenAPI 3.1 dialect, formats checked) for the schema at
    ``pointer`` in the document, its $refs resolved within the document."""
    return OAS31Validator(
        {"$ref": SPEC_URI + pointer}, registry=REGISTRY, format_checker=oas31_format_checker
    )


def response_pointer(path: str, method: str, status: int) -> str:
    responses = SPEC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered undocumented {status}"
    entry = responses[str(status)]
    if "$ref" in entry:
        name = entry["$ref"].rsplit("/", 1)[-1]
        return _pointer("components", "responses", name, "content", "application/json", "schema")
    return _pointer("paths", path, method, "responses", str(status), "content",
                    "application/json", "schema")


class Contract:
    """Checks answers against the document and remembers which statuses were seen."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: set[tuple[str, str, int]] = set()

    def call(
        self, method: str, path: str, body: Any = None, *, raw: str | None = None,
        headers: dict[str, str] | None = None, valid_request: bool = False,
        query: dict[str, str] | None = None,
    ) -> TestResponse:
        if valid_request:
            operation = SPEC["paths"][path][method]
            schema = _pointer("paths", path, method, "requestBody", "content",
                              "application/json", "schema")
            assert "requestBody" in operation
            validator_at(schema).validate(body)
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        response = self.client.open(path, method=method.upper(), data=data, query_string=query,
                                    headers=headers or {}, content_type="application/json")
        assert response.headers["Content-Type"].startswith("application/json")
        payload = json.loads(response.get_data(as_text=True))
        if method not in SPEC["paths"][path]:
            # Undocumented methods are refused with the documented 405 body.
            assert response.status_code == 405
            pointer = _pointer("components", "responses", "MethodNotAllowed", "content",
                               "application/json", "schema")
        else:
            pointer = response_pointer(path, method, response.status_code)
        if response.status_code != 204:
            errors = sorted(validator_at(pointer).iter_errors(payload), key=str)
            assert not errors, (method, path, response.status_code, payload,
                                [e.message for e in errors])
        self.seen.add((path, method, response.status_code))
        return response

    def assert_all_statuses_seen(self, path: str, method: str) -> None:
        documented = {int(s) for s in SPEC["paths"][path][method]["responses"]}
        assert documented <= {200, 201, 202, 400, 401, 403, 404, 409, 422, 429, 502, 503}
        missing = {s for s in documented if s < 500} - {
            status for (p, m, status) in self.seen if (p, m) == (path, method)}
        assert not missing, f"{method.upper()} {path}: never provoked {sorted(missing)}"


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app()


@pytest.fixture
def contract(
    app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Contract]:
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", HS_SECRET)
    monkeypatch.setenv("INTERNAL_SECRET", INTERNAL["X-Internal-Secret"])
    monkeypatch.setenv("TICKETMASTER_API_KEY", "tmKey8a7B6c5D4e3F2g1H0iJkLmNoPqRs")
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "theset-client-id")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "spotifySecret0f1e2d3c4b5a69788")
    monkeypatch.setenv("SETLISTFM_API_KEY", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
    get_settings.cache_clear()
    reset_jwks_cache()
    clients.configure(sleep=lambda _seconds: None)
    yield Contract(Client(app))
    clients.configure()
    reset_jwks_cache()
    get_settings.cache_clear()


def spend_budget(db: Connection, address: str, action: str) -> None:
    """Leave the client at ``address`` no budget for ``action`` for the next hour."""
    db.execute("insert into private.client_budgets (client_key, action, tat)"
               " values (%s, %s, now() + interval '1 hour')",
               [identity_key(f"address:{address}"), action])


def bearer(user: uuid.UUID, **overrides: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": str(user), "aud": "authenticated", "exp": now + 600,
              "iat": now, "role": "authenticated", "is_anonymous": False, **overrides}
    return {"Authorization": f"Bearer {jwt.encode(claims, HS_SECRET, algorithm='HS256')}"}


# -- the document ------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_every_function_is_documented_and_nothing_else() -> None:
    assert {p.lstrip("/") for p in SPEC["paths"]} == set(function_names())


def test_every_schema_is_a_valid_json_schema() -> None:
    for name, schema in SPEC["components"]["schemas"].items():
        OAS31Validator.check_schema(schema)
        assert name


# -- the functions' real answers -------------------------------------------------------


def test_health(contract: Contract) -> None:
    assert contract.call("get", "/health").status_code == 200
    assert contract.call("post", "/health").status_code == 405
    contract.assert_all_statuses_seen("/health", "get")


def test_create_setlist(contract: Contract, db: Connection) -> None:
    stage = build_stage(db, on_setlist=0)
    ok = contract.call("post", "/create_setlist", {"show_id": str(stage.show_id)},
                       valid_request=True)
    assert ok.status_code == 200
    webhook = {"type": "INSERT", "table": "shows", "schema": "public",
               "record": {"id": str(stage.show_id), "status": "scheduled"}, "old_record": None}
    assert contract.call("post", "/create_setlist", webhook, headers=INTERNAL,
                         valid_request=True).status_code == 200
    # An artist nobody knows on Spotify yet: pending, queued.
    lonely = insert_show(db, insert_artist(db, "Phish"), insert_venue(db, "Madison Square Garden",
                                                                      "New York"))
    assert contract.call("post", "/create_setlist", {"show_id": str(lonely)}).status_code == 202
    assert contract.call("post", "/create_setlist", raw="{nope").status_code == 400
    assert contract.call("post", "/create_setlist", webhook).status_code == 401
    assert contract.call("post", "/create_setlist", {"show_id": str(uuid.uuid4())}
                         ).status_code == 404
    over = build_stage(db, on_setlist=0, days_ahead=-1, venue_name="The Fillmore")
    closed = contract.call("post", "/create_setlist", {"show_id": str(over.show_id)})
    assert closed.status_code == 409 and closed.json is not None
    assert closed.json["error"]["code"] == "show_closed"
    assert contract.call("get", "/create_setlist").status_code == 405
    # A catalogue to import, for a client whose import budget is spent: 429, no call.
    on_spotify = insert_artist(db, "Band of Horses")
    db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
               " values ('spotify', '0OdUWJ0sBjDrqHygGUXeCF', %s)", [on_spotify])
    empty = insert_show(db, on_spotify, insert_venue(db, "Red Rocks", "Morrison"))
    spend_budget(db, "203.0.113.9", "import")
    refused = contract.call("post", "/create_setlist", {"show_id": str(empty)},
                            headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    contract.assert_all_statuses_seen("/create_setlist", "post")


def test_cast_vote(contract: Contract, db: Connection) -> None:
    stage = build_stage(db, on_setlist=11)
    fan = create_user(db)
    entry = {"setlist_song_id": str(stage.entries[0])}
    for body in (entry, {**entry, "vote": False}, {**entry, "vote": True}):
        assert contract.call("post", "/cast_vote", body, headers=bearer(fan),
                             valid_request=True).status_code == 200
    assert contract.call("post", "/cast_vote", {"vote": True}, headers=bearer(fan)
                         ).status_code == 400
    assert contract.call("post", "/cast_vote", entry).status_code == 401
    assert contract.call("post", "/cast_vote", entry, headers=bearer(fan, is_anonymous=True)
                         ).status_code == 403
    assert contract.call("post", "/cast_vote", {"setlist_song_id": str(uuid.uuid4())},
                         headers=bearer(fan)).status_code == 404
    for other in stage.entries[1:10]:
        contract.call("post", "/cast_vote", {"setlist_song_id": str(other)}, headers=bearer(fan))
    full = contract.call("post", "/cast_vote", {"setlist_song_id": str(stage.entries[10])},
                         headers=bearer(fan))
    assert full.status_code == 409
    assert contract.call("get", "/cast_vote").status_code == 405
    contract.assert_all_statuses_seen("/cast_vote", "post")


def test_add_song(contract: Contract, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    body = {"show_id": str(stage.show_id), "song_id": str(stage.song_ids[8])}
    assert contract.call("post", "/add_song", body, headers=bearer(fan),
                         valid_request=True).status_code == 201
    assert contract.call("post", "/add_song", body, headers=bearer(fan)).status_code == 200
    assert contract.call("post", "/add_song", {"show_id": str(stage.show_id)},
                         headers=bearer(fan)).status_code == 400
    assert contract.call("post", "/add_song", body).status_code == 401
    assert contract.call("post", "/add_song", body, headers=bearer(fan, is_anonymous=True)
                         ).status_code == 403
    assert contract.call("post", "/add_song", {**body, "song_id": str(uuid.uuid4())},
                         headers=bearer(fan)).status_code == 404
    phish = insert_artist(db, "Phish")
    tweezer = db.execute("insert into public.songs (artist_id, title)"
                         " values (%s, 'Tweezer') returning id", [phish]).fetchone()
    assert tweezer is not None
    assert contract.call("post", "/add_song", {**body, "song_id": str(tweezer["id"])},
                         headers=bearer(fan)).status_code == 422
    db.execute("update public.shows set status = 'cancelled'")
    assert contract.call("post", "/add_song", {**body, "song_id": str(stage.song_ids[9])},
                         headers=bearer(fan)).status_code == 409
    assert contract.call("put", "/add_song", body).status_code == 405
    contract.assert_all_statuses_seen("/add_song", "post")


def test_sync_functions(
    contract: Contract, db: Connection, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = Upstream(httpx_mock)
    upstream.tm_attraction()
    upstream.tm_search()
    upstream.spotify_artist()
    upstream.setlistfm_search()
    upstream.tm_events()
    upstream.spotify_catalogue()
    artist = contract.call("post", "/sync_artist", {"ticketmaster_id": BOH_TM},
                           valid_request=True)
    assert artist.status_code == 200, artist.json
    assert artist.json is not None
    artist_id = artist.json["artist"]["id"]
    assert contract.call("post", "/sync_artist", {"name": "x", "spotify_id": "y"}
                         ).status_code == 400
    assert contract.call("post", "/sync_artist", {"ticketmaster_id": BOH_TM, "force": True}
                         ).status_code == 403
    shows = contract.call("post", "/sync_shows", {"artist_id": artist_id}, valid_request=True)
    assert shows.status_code == 200, shows.json
    assert contract.call("post", "/sync_shows", {"artist_id": str(uuid.uuid4())}
                         ).status_code == 404
    assert contract.call("post", "/sync_shows", {"artist_id": "nope"}).status_code == 400
    assert contract.call("post", "/run_jobs", {"budget_seconds": 5}).status_code == 401
    assert contract.call("post", "/run_jobs", {"budget_seconds": 0.5}, headers=INTERNAL,
                         valid_request=True).status_code == 200
    assert contract.call("post", "/run_jobs", {"budget_seconds": -1}, headers=INTERNAL
                         ).status_code == 400
    assert contract.call("get", "/sync_status").status_code == 401
    assert contract.call("get", "/sync_status", headers=INTERNAL).status_code == 200
    found = contract.call("get", "/search_artists", query={"q": "band of horses"})
    assert found.status_code == 200, found.json
    spend_budget(db, "203.0.113.10", "search")
    assert contract.call("get", "/search_artists", query={"q": "band of"},
                         headers={"X-Forwarded-For": "203.0.113.10"}).status_code == 429
    # Another instance is refreshing these shows right now: 202, the refresh queued.
    db.execute("delete from private.sync_state where job_kind = 'artist_shows'")
    db.execute("select private.sync_flight_take(%s, gen_random_uuid(), 60)",
               [f"artist_shows:{artist_id}"])
    monkeypatch.setenv("SINGLE_FLIGHT_WAIT_SECONDS", "0.2")
    get_settings.cache_clear()
    pending = contract.call("post", "/sync_shows", {"artist_id": artist_id})
    assert pending.status_code == 202, pending.json
    assert contract.call("get", "/search_artists").status_code == 400
    assert contract.call("post", "/sync_my_artists", {}).status_code == 401
    fan = create_user(db)
    assert contract.call("post", "/sync_my_artists", {}, headers=bearer(fan)).status_code == 400


# -- the PostgREST read RPCs ------------------------------------------------------------


def test_read_rpcs_match_their_schemas(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[1])
    db.execute("insert into public.setlists (show_id, kind, source_url)"
               " values (%s, 'actual', 'https://www.setlist.fm/setlist/x.html')",
               [stage.show_id])
    show_page = validator_at(_pointer("components", "schemas", "ShowPage"))
    artist_page = validator_at(_pointer("components", "schemas", "ArtistPage"))
    for role, user in (("anon", None), ("authenticated", fan)):
        with request_as(database_url, role, user) as conn:
            show = conn.execute("select public.get_show_page(%s) as p", [stage.show_id]
                                ).fetchone()
            artist = conn.execute("select public.get_artist_page(%s) as p", [stage.artist_id]
                                  ).fetchone()
        assert show is not None and artist is not None
        show_page.validate(show["p"])
        artist_page.validate(artist["p"])
        assert artist["p"]["upcoming_shows"]


def test_vote_broadcasts_match_their_schema(database_url: str, db: Connection) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[1])
        cast_vote(conn, fan, stage.entries[2])
    db.execute("select * from private.flush_vote_broadcasts()")
    message = validator_at(_pointer("components", "schemas", "VoteCountsMessage"))
    payloads = db.execute("select payload from realtime.messages where event = 'vote_counts'"
                          ).fetchall()
    assert len(payloads) == 1
    message.validate(payloads[0]["payload"])


def test_read_rpcs_with_a_played_setlist_match_their_schemas(
    database_url: str, db: Connection
) -> None:
    stage = build_stage(db)
    fan = create_user(db)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cast_vote(conn, fan, stage.entries[2])
    db.execute("update public.shows set local_date = current_date - 1 where id = %s",
               [stage.show_id])
    songs = [{"title": "Laredo", "set_number": 1, "encore": 0,
              "is_cover": False, "info": "extended outro"},
             {"title": "Am I a Good Man", "set_number": 2,
              "set_name": "Encore:", "encore": 1, "is_cover": True,
              "cover_artist_name": "Them Two"}]
    db.execute("select private.import_played_setlist(%s, %s::jsonb)", [stage.show_id, json.dumps({
        "setlistfm_id": "63d6e2b7", "version_id": "7be1d6a0",
        "url": "https://www.setlist.fm/setlist/band-of-horses/2026/x-63d6e2b7.html",
        "last_updated": "2026-11-30T23:41:07.000+0000", "songs": songs})])
    none_found = insert_show(db, stage.artist_id, insert_venue(db, "9:30 Club", "Washington"), -3)
    db.execute("insert into private.played_setlist_lookups (show_id, status) values"
               " (%s, 'none_found')", [none_found])
    show_page = validator_at(_pointer("components", "schemas", "ShowPage"))
    artist_page = validator_at(_pointer("components", "schemas", "ArtistPage"))
    with request_as(database_url, "anon", None) as conn:
        show = conn.execute("select public.get_show_page(%s) as p", [stage.show_id]).fetchone()
        other = conn.execute("select public.get_show_page(%s) as p", [none_found]).fetchone()
        artist = conn.execute("select public.get_artist_page(%s) as p", [stage.artist_id]
                              ).fetchone()
    assert show is not None and other is not None and artist is not None
    show_page.validate(show["p"])
    show_page.validate(other["p"])
    artist_page.validate(artist["p"])
    assert show["p"]["played"]["songs"][1]["cover_artist"] == {"name": "Them Two", "mbid": None}
    assert show["p"]["accuracy"]["played"] == 2
    assert other["p"]["played"] == {"status": "none_found", "id": None, "source_url": None,
                                    "songs": []}
    assert [s["played"] for s in artist["p"]["past_shows"]] == ["found", "none_found"]
    assert artist["p"]["accuracy"]["shows"] == 1
