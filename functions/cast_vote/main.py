"""cast_vote: the signed-in caller votes for a song of a show's predicted setlist, or takes
the vote back.

``POST {"setlist_song_id": "<uuid>", "vote": true|false}`` with
``Authorization: Bearer <Supabase access token>``. The voter is the token's
user, never anything in the body. Voting twice (or unvoting twice) changes
nothing and answers the same state. Limits: at most ``votes_limit`` (10)
votes per user per show; voting closes when the show starts or is cancelled;
anonymous sign-ins cannot vote. See ``openapi.yaml``.
"""

from __future__ import annotations

import uuid
from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, StrictBool

from shared import votes
from shared.auth import authenticate
from shared.web import endpoint, parse_json


class CastVoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    setlist_song_id: uuid.UUID
    # false takes the caller's vote back.
    vote: StrictBool = True


@functions_framework.http
@endpoint(["POST"])
def cast_vote(request: flask.Request) -> dict[str, Any]:
    claims = authenticate(request)
    body = parse_json(request, CastVoteRequest)
    return votes.cast_vote(claims, body.setlist_song_id, body.vote)
