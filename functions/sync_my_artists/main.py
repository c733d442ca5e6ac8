"""sync_my_artists: the signed-in user's Spotify top and followed artists.

``POST {"force": false}`` with ``Authorization: Bearer <Supabase access token>``
and the user's Spotify provider token (supabase-js ``session.provider_token``,
scopes ``user-top-read`` and ``user-follow-read``) in ``X-Spotify-Token``.

Spotify is read at most once an hour per user (``force`` skips that wait);
within the hour the answer comes from the database and the Spotify token is
not needed. The user is the verified token's subject, never a parameter.

Answers 200 ``{"artists": [public.my_artists rows], "refreshed": bool,
"synced_at": ..., "counts": {"top", "followed", "removed"} | null}``;
400 ``spotify_token_required`` (stale and no X-Spotify-Token); 401
``spotify_token_invalid`` (Spotify rejected the provider token: refresh it) or
an invalid access token; 403 ``spotify_forbidden`` (missing scopes, or the
account may not use a development-mode app); 502/503 when Spotify fails or
limits us.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, SecretStr

from shared.auth import authenticate
from shared.budgets import upstream_spending
from shared.discovery import sync_my_artists as run_sync
from shared.web import endpoint, parse_json

# A Spotify access token is ~200-300 characters; anything far longer is garbage.
MAX_SPOTIFY_TOKEN_LENGTH = 2048


class SyncMyArtistsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    force: bool = False


def _spotify_token(request: flask.Request) -> SecretStr | None:
    raw = request.headers.get("X-Spotify-Token", "").strip()
    if raw.lower().startswith("bearer "):
        raw = raw[7:].strip()
    if not raw or len(raw) > MAX_SPOTIFY_TOKEN_LENGTH or any(c.isspace() for c in raw):
        return None
    return SecretStr(raw)


@functions_framework.http
@endpoint(["POST"])
def sync_my_artists(request: flask.Request) -> flask.Response | dict[str, Any]:
    claims = authenticate(request)
    body = parse_json(request, SyncMyArtistsRequest)
    with upstream_spending(request, "import", claims):
        result = run_sync(claims, _spotify_token(request), force=body.force)
    return result.as_dict()

