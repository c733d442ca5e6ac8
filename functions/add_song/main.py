"""add_song: the signed-in caller adds a song of the show's artist to its predicted setlist.

``POST {"show_id": "<uuid>", "song_id": "<uuid>"}`` with
``Authorization: Bearer <Supabase access token>``. The song goes at the end
of the setlist with no votes (201). Each song appears once per setlist: adding
one already there answers 200 with ``added: false`` and where it is; songs of
another artist are refused (422);
at most ``songs_added_limit`` (5) additions per user per show; closed like
voting once the show starts. See ``openapi.yaml``.
"""

from __future__ import annotations

import uuid
from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict

from shared import votes
from shared.auth import authenticate
from shared.web import endpoint, parse_json


class AddSongRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    show_id: uuid.UUID
    song_id: uuid.UUID


@functions_framework.http
@endpoint(["POST"])
def add_song(request: flask.Request) -> tuple[dict[str, Any], int]:
    claims = authenticate(request)
    body = parse_json(request, AddSongRequest)
    answer = votes.add_song(claims, body.show_id, body.song_id)
    return answer, 201 if answer["added"] else 200
