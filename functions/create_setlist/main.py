"""create_setlist: make sure a show has its predicted setlist.

Two callers:

* the client (or anyone) opening a show page: ``POST {"show_id": "<uuid>"}``;
  an ``Authorization`` header is optional but, when present, must be valid;
* a Supabase Database Webhook on ``INSERT`` into ``public.shows``, which
  posts ``{"type": "INSERT", "table": "shows", "schema": "public",
  "record": {...}, "old_record": null}`` and must present ``X-Internal-Secret``.

Answers 200 with the setlist (``status: "ready"``, ``created`` true when this
call drew it), or 202 with ``status: "pending"`` when the artist's catalogue
cannot be had yet: the job is then queued and no song is ever invented.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared import setlists
from shared.auth import optional_user
from shared.budgets import upstream_spending
from shared.web import endpoint, parse_json, require_internal_caller


class CreateSetlistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    show_id: uuid.UUID


class ShowRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID


class ShowInsertedWebhook(BaseModel):
    """Supabase Database Webhook payload for an insert into public.shows."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type: Literal["INSERT"]
    table: Literal["shows"]
    schema_name: Literal["public"] = Field(alias="schema")
    record: ShowRecord
    old_record: None = None


@functions_framework.http
@endpoint(["POST"])
def create_setlist(request: flask.Request) -> tuple[dict[str, Any], int]:
    payload = request.get_json(silent=True)
    if isinstance(payload, dict) and "type" in payload and "record" in payload:
        require_internal_caller(request)
        show_id = parse_json(request, ShowInsertedWebhook).record.id
        claims = None
    else:
        claims = optional_user(request)
        show_id = parse_json(request, CreateSetlistRequest).show_id
    # Only an empty catalogue calls a source (Spotify): the client's import budget.
    with upstream_spending(request, "import", claims):
        answer = setlists.create_setlist(show_id)
    return answer, 202 if answer["status"] == "pending" else 200
