"""Calls to the idempotent ingest RPCs (``private.ingest_*``) from normalised records.

Every function takes the caller's connection: the job decides the
transaction, so a job's writes (and the removal of its queue message) commit
together. The RPCs decide identity, merging and what changed; nothing here
reads before writing.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

from shared.db import Connection
from shared.keys import name_keys
from shared.sources.records import ArtistRecord, ShowRecord, SongRecord, VenueRecord

Action = Literal["created", "updated", "unchanged"]
ArtistMode = Literal["replace", "fill"]

# Items per RPC call: each key holds an advisory lock until the transaction ends.
BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class Resolved:
    id: uuid.UUID
    action: Action


@dataclass(frozen=True, slots=True)
class IngestCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @classmethod
    def of(cls, resolved: Iterable[Resolved]) -> IngestCounts:
        counts = Counter(r.action for r in resolved)
        return cls(counts["created"], counts["updated"], counts["unchanged"])

    @property
    def written(self) -> int:
        return self.created + self.updated

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(frozen=True, slots=True)
class ShowsIngested:
    """Shows resolved from records, with their artists and venues."""

    show_ids: list[uuid.UUID]
    shows: IngestCounts
    artists: IngestCounts
    venues: IngestCounts
    # Show id → the ids of the artists of that show's records (headliner first).
    artist_of_show: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date | time | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _call(conn: Connection, sql: str, params: Sequence[Any]) -> list[Resolved]:
    rows = conn.execute(sql, params).fetchall()
    ordered = sorted(rows, key=lambda row: int(row["ord"]))
    return [Resolved(id=row["id"], action=row["action"]) for row in ordered]


def _batched(items: Sequence[Mapping[str, Any]]) -> Iterable[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


def _chunks(
    conn: Connection,
    items: Sequence[Mapping[str, Any]],
    lock_keys_sql: str,
    params: Sequence[Any] = (),
) -> Iterable[str]:
    """The items as JSON chunks of ``BATCH_SIZE``.

    Each ingest call locks its chunk's keys in one sorted pass; a second
    chunk would lock more keys later, so two overlapping large ingests could
    each hold what the other's next chunk needs (deadlock). With more than
    one chunk, every key of the whole input is locked first, in the same
    global order (``private.sync_lock_keys``); the calls then re-take locks
    they already hold.
    """
    if len(items) > BATCH_SIZE:
        conn.execute(
            f"select private.sync_lock_keys({lock_keys_sql})",
            [*params, json.dumps(list(items), default=_json_default)],
        )
    for chunk in _batched(items):
        yield json.dumps(list(chunk), default=_json_default)


def _ingest(
    conn: Connection,
    items: Sequence[Mapping[str, Any]],
    *,
    rpc: str,
    lock_keys: str,
    leading: Sequence[Any] = (),
    trailing: Sequence[Any] = (),
) -> list[Resolved]:
    """``items`` through an ingest RPC (``rpc``: its ``ord, id, action`` rows), chunk by
    chunk; ``leading`` and ``trailing`` are its other arguments around the chunk."""
    resolved: list[Resolved] = []
    for chunk in _chunks(conn, items, lock_keys, leading):
        resolved += _call(conn, rpc, [*leading, chunk, *trailing])
    return resolved


# -- artists ---------------------------------------------------------------------------------


def artist_item(record: ArtistRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "external_ids": [{"source": s, "id": i} for s, i in record.external_ids()],
        "image_url": record.image_url,
        "genres": list(record.genres),
        "popularity": record.popularity,
        "followers": record.followers,
        "ticketmaster_url": record.ticketmaster_url,
        "spotify_url": record.spotify_url,
    }


def ingest_artist_items(
    conn: Connection, items: Sequence[Mapping[str, Any]], mode: ArtistMode = "replace"
) -> list[Resolved]:
    return _ingest(
        conn,
        items,
        rpc="select ord, artist_id as id, action from private.ingest_artists(%s::jsonb, %s)",
        lock_keys="private.ingest_artist_lock_keys(%s::jsonb)",
        trailing=[mode],
    )


def ingest_artists(
    conn: Connection, records: Sequence[ArtistRecord], mode: ArtistMode = "replace"
) -> list[Resolved]:
    return ingest_artist_items(conn, [artist_item(r) for r in records], mode)


# -- venues ----------------------------------------------------------------------------------


def venue_item(record: VenueRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "city": record.city,
        "state": record.state,
        "state_code": record.state_code,
        "country": record.country,
        "country_code": record.country_code,
        "address": record.address,
        "postal_code": record.postal_code,
        "timezone": record.timezone,
        "latitude": record.latitude,
        "longitude": record.longitude,
        "external_ids": [{"source": s, "id": i} for s, i in record.external_ids()],
    }


def ingest_venue_items(conn: Connection, items: Sequence[Mapping[str, Any]]) -> list[Resolved]:
    return _ingest(
        conn,
        items,
        rpc="select ord, venue_id as id, action from private.ingest_venues(%s::jsonb)",
        lock_keys="private.ingest_venue_lock_keys(%s::jsonb)",
    )


def ingest_venues(conn: Connection, records: Sequence[VenueRecord]) -> list[Resolved]:
    return ingest_venue_items(conn, [venue_item(r) for r in records])


# -- shows -----------------------------------------------------------------------------------


def _iso(value: date | time | None) -> str | None:
    return None if value is None else value.isoformat()


def show_item(record: ShowRecord, artist_id: uuid.UUID, venue_id: uuid.UUID) -> dict[str, Any]:
    # Ids and dates as JSON text already: a batch of shows is serialised without
    # a fallback call per value.
    return {
        "artist_id": str(artist_id),
        "venue_id": str(venue_id),
        "local_date": record.local_date.isoformat(),
        "local_time": _iso(record.local_time),
        "starts_at": _iso(record.starts_at),
        "name": record.name,
        "status": record.status,
        "ticket_url": record.ticket_url,
        "image_url": record.image_url,
        "on_sale_at": _iso(record.on_sale_at),
        "price_min": record.price_min,
        "price_max": record.price_max,
        "price_currency": record.price_currency,
        "external_ids": [{"source": s, "id": i} for s, i in record.external_ids()],
    }


def ingest_show_items(conn: Connection, items: Sequence[Mapping[str, Any]]) -> list[Resolved]:
    return _ingest(
        conn,
        items,
        rpc="select ord, show_id as id, action from private.ingest_shows(%s::jsonb)",
        lock_keys="private.ingest_show_lock_keys(%s::jsonb)",
    )


def _keys_by_name(conn: Connection, shows: Sequence[ShowRecord]) -> dict[str, str]:
    """The name key of every headliner, venue and city name without a Ticketmaster id to go
    by, from the database (one statement; none when every one has an id)."""
    names = {show.artists[0].name for show in shows
             if show.artists and not show.artists[0].ticketmaster_id}
    for show in shows:
        if not show.venue.ticketmaster_id:
            names |= {show.venue.name, show.venue.city or ""}
    ordered = sorted(names)
    return dict(zip(ordered, name_keys(conn, ordered), strict=True))


def _venue_key(venue: VenueRecord, keys: Mapping[str, str]) -> str:
    if venue.ticketmaster_id:
        return f"tm:{venue.ticketmaster_id}"
    return f"nk:{keys[venue.name]}|{keys[venue.city or '']}|{venue.country_code}"


def _artist_key(artist: ArtistRecord, keys: Mapping[str, str]) -> str:
    if artist.ticketmaster_id:
        return f"tm:{artist.ticketmaster_id}"
    return f"name:{keys[artist.name]}"


def ingest_show_records(
    conn: Connection,
    shows: Sequence[ShowRecord],
    *,
    fallback_artist_id: uuid.UUID | None = None,
) -> ShowsIngested:
    """Shows with their headliners and venues, in the caller's transaction.

    Each show belongs to its headliner (the event's first attraction); the
    headliner is created if new, but its details are only filled, never
    overwritten (the artist import owns them). A show listing no attraction
    belongs to ``fallback_artist_id`` (the artist whose events were read) or
    is skipped.
    """
    kept = [show for show in shows if show.artists or fallback_artist_id is not None]
    keys = _keys_by_name(conn, kept)
    artists: dict[str, ArtistRecord] = {}
    venues: dict[str, VenueRecord] = {}
    for show in kept:
        if show.artists:
            artists.setdefault(_artist_key(show.artists[0], keys), show.artists[0])
        venues.setdefault(_venue_key(show.venue, keys), show.venue)

    artist_keys = sorted(artists)
    venue_keys = sorted(venues)
    artist_resolved = ingest_artists(conn, [artists[k] for k in artist_keys], mode="fill")
    venue_resolved = ingest_venues(conn, [venues[k] for k in venue_keys])
    artist_ids = {k: r.id for k, r in zip(artist_keys, artist_resolved, strict=True)}
    venue_ids = {k: r.id for k, r in zip(venue_keys, venue_resolved, strict=True)}

    items: list[dict[str, Any]] = []
    for show in kept:
        if show.artists:
            artist_id = artist_ids[_artist_key(show.artists[0], keys)]
        else:
            assert fallback_artist_id is not None
            artist_id = fallback_artist_id
        items.append(show_item(show, artist_id, venue_ids[_venue_key(show.venue, keys)]))
    show_resolved = ingest_show_items(conn, items)
    return ShowsIngested(
        show_ids=[r.id for r in show_resolved],
        shows=IngestCounts.of(show_resolved),
        artists=IngestCounts.of(artist_resolved),
        venues=IngestCounts.of(venue_resolved),
        artist_of_show={
            r.id: uuid.UUID(str(item["artist_id"]))
            for r, item in zip(show_resolved, items, strict=True)
        },
    )


def retire_missing_shows(
    conn: Connection, artist_id: uuid.UUID, seen: Sequence[uuid.UUID], since: date
) -> list[uuid.UUID]:
    rows = conn.execute(
        "select id from private.retire_missing_shows(%s, %s::uuid[], %s) as id",
        [artist_id, list(seen), since],
    ).fetchall()
    return [row["id"] for row in rows]


# -- songs -----------------------------------------------------------------------------------


def song_item(record: SongRecord) -> dict[str, Any]:
    return {
        "title": record.title,
        "spotify_id": record.spotify_id,
        "spotify_url": record.spotify_url,
        "album": record.album,
        "album_spotify_id": record.album_spotify_id,
        "release_date": record.release_date,
        "duration_ms": record.duration_ms,
        "isrc": record.isrc,
        "popularity": record.popularity,
    }


def ingest_songs(
    conn: Connection, artist_id: uuid.UUID, songs: Sequence[SongRecord]
) -> list[Resolved]:
    return _ingest(
        conn,
        [song_item(s) for s in songs],
        rpc="select ord, song_id as id, action from private.ingest_songs(%s, %s::jsonb)",
        lock_keys="private.ingest_song_lock_keys(%s, %s::jsonb)",
        leading=[artist_id],
    )
