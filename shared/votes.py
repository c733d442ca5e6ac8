"""Votes and fans' additions: the Python side of the ``cast_vote`` and ``add_song`` RPCs.

Everything that must be atomic lives in the database (see
``supabase/migrations/20261204110000_votes_coalesced.sql``, which redefines
``20261122000500_votes.sql`` and ``…0502_add_song.sql``);
this module calls the RPCs as the token's user and turns their refusals into
JSON API errors (``shared.rpc``). It imports nothing of the sync engine or the
source clients, so ``cast_vote`` and ``add_song`` start fast.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared import rpc
from shared.auth import Claims
from shared.logging import get_logger

log = get_logger(__name__)


def cast_vote(claims: Claims, setlist_song_id: uuid.UUID, vote: bool) -> dict[str, Any]:
    """Vote (or take the vote back) as the token's user; the new count and vote state."""
    answer = rpc.call(
        "select public.cast_vote(%s, %s) as answer", [setlist_song_id, vote], claims
    )
    log.info("vote_cast", setlist_song_id=str(setlist_song_id), vote=vote,
             vote_count=answer["vote_count"])
    return answer


def add_song(claims: Claims, show_id: uuid.UUID, song_id: uuid.UUID) -> dict[str, Any]:
    """Add a song of the show's artist to its predicted setlist, as the token's user."""
    answer = rpc.call("select public.add_song(%s, %s) as answer", [show_id, song_id], claims)
    log.info("song_added", show_id=str(show_id), song_id=str(song_id))
    return answer
