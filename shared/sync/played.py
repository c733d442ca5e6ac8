"""What artists really play, from setlist.fm: played setlists and live history.

Two job kinds (SQL in ``supabase/migrations/20261204120000_played_setlists.sql``):

* ``played_setlist`` (entity: a show), queued by pg_cron
  (``private.enqueue_played_setlist_lookups``) at +6 h, +1 d, +3 d and +7 d
  after the show starts, most recent shows first. One setlist.fm call: the
  artist's setlists of the show's date (``dd-MM-yyyy``). When the artist
  played more than once that day, the setlist is the one at the show's venue
  (setlist.fm venue id, then venue name, then city). A setlist with songs is
  stored as the show's played setlist (``private.import_played_setlist``:
  idempotent, an edit on setlist.fm replaces it at the next lookup); the
  lookup is recorded in the same transaction.
* ``artist_live_history`` (entity: an artist, 7 days): the artist's newest
  setlist.fm setlists (two pages of 20 at most), per song how many of those
  with songs had it. It weights ``create_setlist``'s draw
  (``private.live_draw_weight``) and, for an artist without a usable Spotify
  catalogue, its songs are the catalogue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from shared import db
from shared.db import Connection
from shared.keys import name_keys
from shared.logging import get_logger
from shared.sources import setlistfm_models as sfm
from shared.sources.errors import SourceError
from shared.sources.records import PlayedSetlist, played_setlist_from_setlistfm
from shared.sync import clients
from shared.sync.freshness import is_fresh, record_success
from shared.sync.jobs import job_transaction
from shared.sync.registry import Job, JobOutcome, job_handler

log = get_logger(__name__)

PLAYED_KIND: Final = "played_setlist"
LIVE_HISTORY_KIND: Final = "artist_live_history"
# Pages of 20 setlists per live-history refresh (the quota note in the migration counts 2).
LIVE_HISTORY_PAGES: Final = 2


@dataclass(frozen=True, slots=True)
class ShowPlace:
    """What identifies a show on setlist.fm: artist, date, and where."""

    show_id: uuid.UUID
    artist_mbid: str | None
    local_date: date
    venue_name_key: str
    city_key: str
    country_code: str | None
    venue_setlistfm_ids: frozenset[str]
    # Shows of the same artist on the same date (this one included).
    shows_that_day: int


def _show_place(conn: Connection, show_id: uuid.UUID) -> ShowPlace | None:
    row = conn.execute(
        "select s.id, s.local_date, v.name_key as venue_name_key, v.city_key, v.country_code,"
        " private.artist_musicbrainz_id(s.artist_id) as mbid,"
        " array(select vx.external_id from public.venue_external_ids vx"
        "   where vx.venue_id = v.id and vx.source = 'setlistfm') as venue_ids,"
        " (select count(*) from public.shows o where o.artist_id = s.artist_id"
        "   and o.local_date = s.local_date and o.status <> 'removed') as same_day"
        " from public.shows s join public.venues v on v.id = s.venue_id where s.id = %s",
        [show_id],
    ).fetchone()
    if row is None:
        return None
    return ShowPlace(
        show_id=row["id"],
        artist_mbid=row["mbid"],
        local_date=row["local_date"],
        venue_name_key=row["venue_name_key"],
        city_key=row["city_key"],
        country_code=row["country_code"],
        venue_setlistfm_ids=frozenset(row["venue_ids"]),
        shows_that_day=int(row["same_day"]),
    )


def _only(setlists: Sequence[sfm.Setlist]) -> sfm.Setlist | None:
    return setlists[0] if len(setlists) == 1 else None


def choose_setlist(
    conn: Connection, place: ShowPlace, setlists: Sequence[sfm.Setlist]
) -> sfm.Setlist | None:
    """The show's setlist among the artist's setlists of its date, or None.

    One setlist that day is the show's, unless the artist has several shows
    that day: then, as when setlist.fm lists several, it must be at the
    show's venue (setlist.fm venue id, then venue name) or, failing that, the
    only one in its city. Never a guess between two. Names are compared by their
    database keys, asked in ``conn`` (the lookup's own transaction).
    """
    candidates = [
        s for s in setlists
        if s.event_date == place.local_date and s.artist.mbid == place.artist_mbid
    ]
    if not candidates:
        return None
    if len(candidates) == 1 and place.shows_that_day <= 1:
        return candidates[0]

    def venue(s: sfm.Setlist) -> sfm.Venue:
        return s.venue or sfm.Venue()

    by_id = [s for s in candidates if venue(s).id and venue(s).id in place.venue_setlistfm_ids]
    if len(by_id) == 1:
        return by_id[0]
    names = [venue(s).name or "" for s in candidates]
    cities = [(venue(s).city or sfm.City()).name or "" for s in candidates]
    keys = name_keys(conn, names + cities)
    venue_keys, city_keys = keys[: len(names)], keys[len(names) :]
    by_name = [s for s, key in zip(candidates, venue_keys, strict=True)
               if key and key == place.venue_name_key]
    in_city = [s for s, key in zip(candidates, city_keys, strict=True)
               if key and key == place.city_key]
    return _only(by_name) or _only(in_city)


def _played_payload(played: PlayedSetlist) -> str:
    return json.dumps({
        "setlistfm_id": played.setlistfm_id,
        "version_id": played.version_id,
        "url": played.url,
        "last_updated": played.last_updated.isoformat() if played.last_updated else None,
        "songs": [
            {
                "title": s.title,
                "set_number": s.set_number,
                "set_name": s.set_name,
                "encore": s.encore,
                "is_cover": s.is_cover,
                "cover_artist_name": s.cover_artist_name,
                "cover_artist_mbid": s.cover_artist_mbid,
                "info": s.info,
            }
            for s in played.songs
        ],
    })


def look_up_played_setlist(show_id: uuid.UUID, *, job: Job | None = None) -> dict[str, Any]:
    """One lookup of the show's played setlist (one setlist.fm call), stored when found."""
    with db.transaction() as conn:
        place = _show_place(conn, show_id)
    if place is None:
        return {"status": "show_not_found"}
    if place.artist_mbid is None:
        return {"status": "skipped", "reason": "no_musicbrainz_id"}
    try:
        # One page: an artist rarely has more than 20 setlists on one date.
        setlists = clients.setlistfm().search_setlists(
            artist_mbid=place.artist_mbid, day=place.local_date, max_pages=1
        )
    except SourceError as error:
        with db.transaction() as conn:
            conn.execute("select private.record_played_setlist_error(%s, %s)",
                         [show_id, str(error)])
        raise
    with job_transaction(job) as conn:
        chosen = choose_setlist(conn, place, setlists)
        played = played_setlist_from_setlistfm(chosen) if chosen is not None else None
        found = played is not None and bool(played.songs)
        imported: dict[str, Any] | None = None
        if played is not None and found:
            row = conn.execute(
                "select private.import_played_setlist(%s, %s::jsonb) as answer",
                [show_id, _played_payload(played)],
            ).fetchone()
            imported = row["answer"] if row else None
        row = conn.execute(
            "select private.record_played_setlist_lookup(%s, %s) as lookup", [show_id, found]
        ).fetchone()
        lookup = row["lookup"] if row else {}
    outcome = {
        "status": lookup.get("status"),
        "candidates": len(setlists),
        "setlistfm_id": chosen.id if chosen is not None else None,
        "action": imported["action"] if imported else None,
        "songs": imported["songs"] if imported else 0,
        "next_attempt_at": lookup.get("next_attempt_at"),
    }
    log.info("played_setlist_lookup", show_id=str(show_id), **outcome)
    return outcome


@job_handler(PLAYED_KIND)
def played_setlist_job(job: Job) -> JobOutcome:
    return look_up_played_setlist(job.entity_id, job=job)


def _live_history_payload(setlists: Sequence[sfm.Setlist]) -> str:
    counted = []
    for setlist in setlists:
        played = played_setlist_from_setlistfm(setlist)
        if not played.songs:
            continue  # made from an announced line-up: says nothing about the songs
        counted.append({
            "setlistfm_id": played.setlistfm_id,
            "event_date": played.event_date.isoformat(),
            "songs": [{"title": s.title} for s in played.songs],
        })
    return json.dumps(counted)


def refresh_live_history(
    artist_id: uuid.UUID, *, force: bool = False, job: Job | None = None
) -> dict[str, Any]:
    """The artist's live history from its newest setlist.fm setlists, when stale."""
    with db.transaction() as conn:
        row = conn.execute(
            "select a.id, private.artist_musicbrainz_id(a.id) as mbid"
            " from public.artists a where a.id = %s",
            [artist_id],
        ).fetchone()
        if row is None:
            return {"status": "artist_not_found"}
        if row["mbid"] is None:
            return {"status": "skipped", "reason": "no_musicbrainz_id"}
        if not force and is_fresh(conn, LIVE_HISTORY_KIND, artist_id):
            return {"status": "fresh"}
    setlists = clients.setlistfm().artist_setlists(row["mbid"], max_pages=LIVE_HISTORY_PAGES)
    with job_transaction(job) as conn:
        answer = conn.execute(
            "select private.ingest_live_history(%s, %s::jsonb) as answer",
            [artist_id, _live_history_payload(setlists)],
        ).fetchone()
        record_success(conn, LIVE_HISTORY_KIND, artist_id)
    result = {"status": "fetched", "fetched_setlists": len(setlists),
              **(answer["answer"] if answer else {})}
    log.info("live_history_refreshed", artist_id=str(artist_id), **result)
    return result


@job_handler(LIVE_HISTORY_KIND)
def live_history_job(job: Job) -> JobOutcome:
    return refresh_live_history(job.entity_id, force=job.force, job=job)
