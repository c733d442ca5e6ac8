"""Discovery: live artist search and a signed-in user's Spotify artists.

The functions ``search_artists`` and ``sync_my_artists`` stay thin; what they
share with each other (and with tests) lives here. SQL is only RPC calls
(``supabase/migrations/20261122000600_discovery.sql`` and ``...0601...``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from psycopg.types.json import Jsonb
from pydantic import SecretStr

from shared import db
from shared.auth import Claims
from shared.config import get_settings
from shared.logging import get_logger
from shared.sources import errors as source_errors
from shared.sources.errors import SourceError
from shared.sources.records import (
    ArtistRecord,
    artist_from_spotify,
    artist_from_ticketmaster,
)
from shared.sync import clients
from shared.sync.errors import FlightPending, api_error_for
from shared.sync.freshness import is_fresh, record_failure
from shared.sync.ingest import ingest_artists
from shared.sync.queue import enqueue
from shared.sync.singleflight import Flight, single_flight
from shared.web import ApiError, Forbidden, ServiceUnavailable, Unauthorized

log = get_logger(__name__)

USER_ARTISTS: Final = "user_artists"
# Preference when an attraction's ids point at different artists of ours.
_SOURCE_ORDER = ("ticketmaster", "spotify", "musicbrainz")


# -- search ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundArtist:
    record: ArtistRecord
    artist_id: uuid.UUID | None

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "name": r.name,
            "ticketmaster_id": r.ticketmaster_id,
            "spotify_id": r.spotify_id,
            "musicbrainz_id": r.musicbrainz_id,
            "image_url": r.image_url,
            "genres": list(r.genres),
            "upcoming_event_count": r.upcoming_event_count,
            "ticketmaster_url": r.ticketmaster_url,
            "artist_id": None if self.artist_id is None else str(self.artist_id),
        }


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    found: list[FoundArtist]
    # "ticketmaster": Ticketmaster's answer, live or cached; "local": our own
    # artists, because Ticketmaster could not be asked (``fallback_reason``).
    source: Literal["ticketmaster", "local"]
    cached: bool
    fetched_at: datetime | None
    fallback_reason: str | None = None

    def as_dict(self, query: str) -> dict[str, Any]:
        return {
            "query": query,
            "items": [artist.as_dict() for artist in self.found],
            "source": self.source,
            "cached": self.cached,
            "fetched_at": None if self.fetched_at is None else self.fetched_at.isoformat(),
            "fallback_reason": self.fallback_reason,
        }


def search_artists(query: str, limit: int) -> SearchAnswer:
    """Music attractions with upcoming events, matched to our artists.

    The same normalised query (``private.name_key``) is answered from the shared
    cache for ``SEARCH_CACHE_TTL_SECONDS``, and concurrent identical searches
    make one Ticketmaster call (single flight). When Ticketmaster cannot be
    asked (down, limiting us, out of today's request share, not configured)
    the answer is our own artists matching the query (``source: "local"``);
    when there are none either, the error that kept Ticketmaster from answering
    (a ``SourceError``, or ``FlightPending``) is raised.
    """
    ttl = get_settings().search_cache_ttl_seconds

    def cached(row: dict[str, Any] | None) -> SearchAnswer | None:
        if row is None or row["items"] is None:
            return None
        records = [ArtistRecord(**{**r, "genres": tuple(r["genres"])}) for r in row["items"]]
        return SearchAnswer(_matched(records[:limit]), "ticketmaster", True, row["fetched_at"])

    def done(after_flight: bool) -> SearchAnswer | None:
        with db.transaction() as conn:
            return cached(conn.execute(
                "select items, fetched_at from private.search_cache_lookup(%s, %s, %s)",
                [query, limit, ttl],
            ).fetchone())

    def lead(flight: Flight) -> SearchAnswer:
        attractions = clients.ticketmaster().search_attractions(query, size=limit)
        records = [artist_from_ticketmaster(a) for a in attractions]
        with db.transaction() as conn:
            row = conn.execute(
                "select private.search_cache_store(%s, %s, %s) as fetched_at",
                [query, limit, Jsonb([asdict(r) for r in records])],
            ).fetchone()
            flight.finish(conn)
        fetched_at = row["fetched_at"] if row else datetime.now(UTC)
        return SearchAnswer(_matched(records), "ticketmaster", False, fetched_at)

    # The flight's key is the query's name key, read with the first look into the cache.
    with db.transaction() as conn:
        first = conn.execute(
            "select k.key, c.items, c.fetched_at from (select private.name_key(%s) as key) as k"
            " left join private.search_cache_lookup(%s, %s, %s) as c on true",
            [query, query, limit, ttl],
        ).fetchone()
    assert first is not None
    answer = cached(first)
    if answer is not None:
        return answer
    try:
        return single_flight(f"search:{first['key']}", lead, done, checked=True)
    except (SourceError, FlightPending) as error:
        local = _local_artists(query, limit)
        log.warning("search_answered_locally", error_type=type(error).__name__,
                    items=len(local))
        if not local and isinstance(error, FlightPending):
            # The same search, started by someone else, outlasted the wait (rare).
            raise ServiceUnavailable(
                "this search is in progress; ask again shortly",
                code="search_in_progress",
                headers={"Retry-After": "1"},
            ) from None
        if not local:
            raise
        reason = "search_in_progress" if isinstance(error, FlightPending) else (
            api_error_for(error).code)
        return SearchAnswer(local, "local", False, None, reason)


def _matched(records: Sequence[ArtistRecord]) -> list[FoundArtist]:
    known = _known_artists(records)
    found = []
    for record in records:
        ours = next(
            (
                known[(source, external_id)]
                for source in _SOURCE_ORDER
                for s, external_id in record.external_ids()
                if s == source and (source, external_id) in known
            ),
            None,
        )
        found.append(FoundArtist(record, ours))
    return found


def _local_artists(query: str, limit: int) -> list[FoundArtist]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select * from private.search_local_artists(%s, %s)", [query, limit]
        ).fetchall()
    return [
        FoundArtist(
            ArtistRecord(
                name=row["name"],
                ticketmaster_id=row["ticketmaster_id"],
                spotify_id=row["spotify_id"],
                musicbrainz_id=row["musicbrainz_id"],
                image_url=row["image_url"],
                genres=tuple(row["genres"] or ()),
                ticketmaster_url=row["ticketmaster_url"],
                upcoming_event_count=row["upcoming_show_count"],
            ),
            row["artist_id"],
        )
        for row in rows
    ]


def _known_artists(records: Sequence[ArtistRecord]) -> dict[tuple[str, str], uuid.UUID]:
    pairs = [pair for record in records for pair in record.external_ids()]
    if not pairs:
        return {}
    with db.transaction() as conn:
        rows = conn.execute(
            "select source, external_id, artist_id"
            " from private.artist_ids_by_external_id(%s::text[], %s::text[])",
            [[source for source, _ in pairs], [external_id for _, external_id in pairs]],
        ).fetchall()
    return {(row["source"], row["external_id"]): row["artist_id"] for row in rows}


# -- a user's Spotify artists ---------------------------------------------------------------


class SpotifyTokenRejected(Unauthorized):
    """Spotify refused the user's provider token (401): the client must refresh it."""

    code = "spotify_token_invalid"


@dataclass(frozen=True, slots=True)
class MyArtists:
    artists: list[dict[str, Any]]
    refreshed: bool
    synced_at: datetime | None
    counts: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "artists": self.artists,
            "refreshed": self.refreshed,
            "synced_at": None if self.synced_at is None else self.synced_at.isoformat(),
            "counts": self.counts,
        }


def my_artists(claims: Claims) -> list[dict[str, Any]]:
    """``public.my_artists()`` run as the caller, exactly as supabase-js would."""
    with db.transaction(claims.raw) as conn:
        rows = conn.execute("select * from public.my_artists()").fetchall()
    return [
        {
            "artist_id": str(row["artist_id"]),
            "name": row["name"],
            "image_url": row["image_url"],
            "genres": row["genres"],
            "is_top": row["is_top"],
            "top_rank": row["top_rank"],
            "is_followed": row["is_followed"],
            "upcoming_show_count": row["upcoming_show_count"],
            "next_show": row["next_show"],
        }
        for row in rows
    ]


def _last_synced(user_id: uuid.UUID) -> datetime | None:
    with db.transaction() as conn:
        row = conn.execute(
            "select last_success_at from private.sync_state"
            " where job_kind = %s and entity_id = %s",
            [USER_ARTISTS, user_id],
        ).fetchone()
    return None if row is None else row["last_success_at"]


def user_artists_fresh(user_id: uuid.UUID) -> bool:
    with db.transaction() as conn:
        return is_fresh(conn, USER_ARTISTS, user_id)


def sync_my_artists(claims: Claims, spotify_token: SecretStr | None, *, force: bool) -> MyArtists:
    """The caller's Spotify top and followed artists, from Spotify at most once an hour.

    Within the TTL (and unless ``force``) the answer comes from the database
    and Spotify is not called. Otherwise both lists are read with the user's
    provider token, the artists ingested (``private.ingest_artists``, mode
    ``fill``: a user's list never overwrites what the artist import knows),
    the user's rows replaced and the freshness recorded, in one transaction;
    artists whose details are stale are queued for import (their shows follow).
    """
    user_id = claims.user_id
    if not force and user_artists_fresh(user_id):
        return MyArtists(my_artists(claims), refreshed=False, synced_at=_last_synced(user_id))
    if spotify_token is None:
        raise ApiError(
            "send the Spotify provider token in X-Spotify-Token to refresh your artists",
            code="spotify_token_required",
            status=400,
        )
    client = clients.spotify()
    try:
        top = client.me_top_artists(spotify_token)
        followed = client.me_followed_artists(spotify_token)
    except source_errors.SourceError as error:
        record_failure(USER_ARTISTS, user_id, type(error).__name__, job=None)
        if isinstance(error, source_errors.Forbidden):
            raise Forbidden(
                "Spotify refused: the token lacks the user-top-read and user-follow-read"
                " scopes, or this account may not use the app",
                code="spotify_forbidden",
            ) from None
        if isinstance(error, source_errors.BadCredentials) and error.status_code == 401:
            raise SpotifyTokenRejected(
                "Spotify rejected the provider token: refresh it (sign in with Spotify again)"
            ) from None
        raise
    records = [artist_from_spotify(a) for a in top] + [artist_from_spotify(a) for a in followed]
    # replace_user_artists refuses a deleted account (PT401 unknown_user): the
    # refusal is answered as such (shared.web).
    with db.transaction() as conn:
        resolved = ingest_artists(conn, records, mode="fill") if records else []
        ids = [r.id for r in resolved]
        counts_row = conn.execute(
            "select private.replace_user_artists(%s, %s::uuid[], %s::uuid[]) as counts",
            [user_id, ids[: len(top)], ids[len(top) :]],
        ).fetchone()
        for artist_id in dict.fromkeys(ids):
            if not is_fresh(conn, "artist_details", artist_id):
                enqueue(conn, "artist_details", artist_id)
    counts = None if counts_row is None else dict(counts_row["counts"])
    log.info("user_artists_synced", top=len(top), followed=len(followed))
    return MyArtists(
        my_artists(claims), refreshed=True, synced_at=datetime.now(UTC), counts=counts
    )
