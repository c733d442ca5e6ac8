"""Played setlists from setlist.fm: the lookup schedule after a show, the
import (sets, encores, covers, tape left out, songs matched or added), the
choice between two shows of one day, edits, concurrency; and the live history
that weights the predicted setlist's draw."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from devstack.fixtures import BAND_OF_HORSES_SONGS
from shared.sources.errors import UpstreamError
from shared.sync import played
from shared.sync.registry import Job, handler_for
from shared.sync.worker import Worker, WorkerConfig, load_handlers
from tests.setlists.helpers import run_concurrently, scalar
from tests.support.db import Connection
from tests.sync.setlistfm_setlists import (
    ANTHEM,
    ARTIST_SETLISTS,
    NOT_FOUND,
    SEARCH_SETLISTS,
    STUBBS,
    ZILKER_PARK,
    page,
    setlist,
    setlistfm_date,
    songs,
)
from tests.sync.snapshots import row_versions
from tests.sync.upstream import BOH_MBID, Upstream

SETLIST_TABLES = (
    "public.setlists", "public.setlist_songs", "public.songs", "private.played_setlist_lookups"
)


# -- the stage -------------------------------------------------------------------------------


def band_of_horses(db: Connection, *, mbid: str | None = BOH_MBID) -> uuid.UUID:
    artist = db.execute(
        "insert into public.artists (name) values ('Band of Horses') returning id").fetchone()
    assert artist is not None
    if mbid:
        db.execute("insert into public.artist_external_ids (source, external_id, artist_id)"
                   " values ('musicbrainz', %s, %s)", [mbid, artist["id"]])
    return uuid.UUID(str(artist["id"]))


def catalogue(db: Connection, artist: uuid.UUID, titles: list[str] = BAND_OF_HORSES_SONGS
              ) -> dict[str, uuid.UUID]:
    """The artist's Spotify catalogue."""
    ids = {}
    for title in titles:
        row = db.execute(
            "insert into public.songs (artist_id, title) values (%s, %s) returning id",
            [artist, title]).fetchone()
        assert row is not None
        ids[title] = row["id"]
    return ids


def venue(db: Connection, name: str, city: str, country: str = "US") -> uuid.UUID:
    row = db.execute("insert into public.venues (name, city, country_code, timezone)"
                     " values (%s, %s, %s, 'America/New_York') returning id",
                     [name, city, country]).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"]))


def past_show(db: Connection, artist: uuid.UUID, venue_id: uuid.UUID, *, hours_ago: float
              ) -> tuple[uuid.UUID, date]:
    """A show that started ``hours_ago`` hours ago."""
    row = db.execute(
        "insert into public.shows (artist_id, venue_id, local_date, starts_at)"
        " values (%s, %s, (now() - make_interval(secs => %s * 3600))::date,"
        "         now() - make_interval(secs => %s * 3600)) returning id, local_date",
        [artist, venue_id, hours_ago, hours_ago]).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"])), row["local_date"]


def anthem_show(db: Connection, *, hours_ago: float = 30) -> tuple[uuid.UUID, uuid.UUID, date]:
    artist = band_of_horses(db)
    catalogue(db, artist)
    show, day = past_show(db, artist, venue(db, "The Anthem", "Washington"),
                          hours_ago=hours_ago)
    return artist, show, day


def played_rows(db: Connection, show: uuid.UUID) -> list[dict[str, Any]]:
    return db.execute(
        "select ss.position, so.title, so.source, ss.set_number, ss.set_name, ss.encore,"
        " ss.is_cover, ss.cover_artist_name, ss.info"
        " from public.setlists sl join public.setlist_songs ss on ss.setlist_id = sl.id"
        " join public.songs so on so.id = ss.song_id"
        " where sl.show_id = %s and sl.kind = 'actual' order by ss.position", [show]).fetchall()


def lookup(db: Connection, show: uuid.UUID) -> dict[str, Any] | None:
    return db.execute("select status, attempts, schedule_slot, next_attempt_at, last_error"
                      " from private.played_setlist_lookups where show_id = %s", [show]).fetchone()


def search_answers(upstream: Upstream, *bodies: tuple[int, dict[str, Any]]) -> None:
    """The search answers, one per call in order (the last one repeats)."""
    answers = list(bodies)

    def answer(request: httpx.Request) -> httpx.Response:
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(status, json=body)

    upstream.mock.add_callback(answer, url=SEARCH_SETLISTS, is_optional=True, is_reusable=True)


# -- the import ------------------------------------------------------------------------------


def test_a_played_setlist_keeps_order_sets_encores_and_covers(
    upstream: Upstream, db: Connection
) -> None:
    artist, show, day = anthem_show(db)
    search_answers(upstream, (200, page([setlist("63d6e2b7", day)])))

    outcome = played.look_up_played_setlist(show)

    [request] = upstream.api_requests()
    assert request.url.params["artistMbid"] == BOH_MBID
    assert request.url.params["date"] == setlistfm_date(day)  # dd-MM-yyyy
    assert request.headers["Accept"] == "application/json"
    assert outcome["status"] == "found" and outcome["action"] == "created"
    rows = played_rows(db, show)
    assert [(r["position"], r["title"], r["set_number"], r["encore"]) for r in rows] == [
        (1, "The Funeral", 1, None),
        (2, "Laredo", 1, None),
        (3, "Am I a Good Man", 1, None),
        (4, "Is There a Ghost", 1, None),
        # The catalogue's spelling: the typographic apostrophe matched by title key.
        (5, "No One's Gonna Love You", 2, 1),
        (6, "General Specific", 2, 1),
    ]  # "Intro" and "Outro" were tape
    cover = rows[2]
    assert (cover["is_cover"], cover["cover_artist_name"]) == (True, "Them Two")
    assert rows[1]["info"] == "extended outro"
    # Catalogue songs matched; the others added to it, marked as from setlist.fm.
    assert {r["title"]: r["source"] for r in rows if r["source"] == "setlistfm"} == {
        "Am I a Good Man": "setlistfm", "General Specific": "setlistfm"}
    assert scalar(db, "select count(*) from public.songs where artist_id = %s",
                  [artist]) == len(BAND_OF_HORSES_SONGS) + 2
    url = scalar(db, "select source_url from public.setlists where show_id = %s", [show])
    assert url.startswith("https://www.setlist.fm/setlist/band-of-horses/")
    # Found 30 hours after the start: the +6 h and +1 d slots are spent; next +3 d.
    state = lookup(db, show)
    assert state is not None and state["status"] == "found" and state["schedule_slot"] == 2
    started = scalar(db, "select starts_at from public.shows where id = %s", [show])
    assert state["next_attempt_at"] == started + timedelta(days=3)


def test_no_setlist_is_a_404_retried_on_schedule_then_none_found(
    upstream: Upstream, db: Connection
) -> None:
    _, show, _ = anthem_show(db, hours_ago=7)
    search_answers(upstream, (404, NOT_FOUND))

    assert played.look_up_played_setlist(show)["status"] == "waiting"
    state = lookup(db, show)
    started = scalar(db, "select starts_at from public.shows where id = %s", [show])
    assert state is not None and state["next_attempt_at"] == started + timedelta(days=1)
    assert played_rows(db, show) == []

    # Eight days on: the last slot (+7 d) has passed and still nothing.
    db.execute("update public.shows set starts_at = starts_at - interval '8 days',"
               " local_date = local_date - 8 where id = %s", [show])
    assert played.look_up_played_setlist(show)["status"] == "none_found"
    state = lookup(db, show)
    assert state is not None
    assert (state["status"], state["attempts"], state["next_attempt_at"]) == (
        "none_found", 2, None)


def test_a_setlist_without_songs_is_not_found_yet(upstream: Upstream, db: Connection) -> None:
    _, show, day = anthem_show(db)
    # Created from the announced line-up: "sets": {"set": []}.
    search_answers(upstream, (200, page([setlist("2bd6b8d2", day, sets={"set": []})])))
    assert played.look_up_played_setlist(show)["status"] == "waiting"
    assert scalar(db, "select count(*) from public.setlists where kind = 'actual'") == 0


def test_the_same_artist_twice_on_one_date_gets_each_show_its_setlist(
    upstream: Upstream, db: Connection
) -> None:
    artist = band_of_horses(db)
    catalogue(db, artist)
    festival, day = past_show(db, artist, venue(db, "Zilker Park", "Austin"), hours_ago=30)
    aftershow, _ = past_show(db, artist, venue(db, "Stubb's BBQ", "Austin"), hours_ago=30)
    search_answers(upstream, (200, page([
        setlist("73d6f6a9", day, STUBBS, {"set": [songs("Laredo", "Older", "Factory")]}),
        setlist("33d6f6ad", day, ZILKER_PARK, {"set": [songs("The Funeral", "Is There a Ghost")]}),
    ])))

    played.look_up_played_setlist(festival)
    played.look_up_played_setlist(aftershow)

    assert [r["title"] for r in played_rows(db, festival)] == ["The Funeral", "Is There a Ghost"]
    assert [r["title"] for r in played_rows(db, aftershow)] == ["Laredo", "Older", "Factory"]


def test_one_setlist_on_a_day_with_two_shows_goes_only_to_its_own_show(
    upstream: Upstream, db: Connection
) -> None:
    artist = band_of_horses(db)
    catalogue(db, artist)
    festival, day = past_show(db, artist, venue(db, "Zilker Park", "Austin"), hours_ago=30)
    elsewhere, _ = past_show(db, artist, venue(db, "The Anthem", "Washington"), hours_ago=30)
    search_answers(upstream, (200, page([setlist("33d6f6ad", day, ZILKER_PARK)])))

    assert played.look_up_played_setlist(elsewhere)["setlistfm_id"] is None
    assert played.look_up_played_setlist(festival)["setlistfm_id"] == "33d6f6ad"
    assert played_rows(db, elsewhere) == []
    assert len(played_rows(db, festival)) == 6


def test_an_edit_on_setlistfm_updates_it_and_the_same_answer_writes_nothing(
    upstream: Upstream, db: Connection
) -> None:
    _, show, day = anthem_show(db, hours_ago=7)
    first = setlist("63d6e2b7", day, sets={"set": [songs("The Funeral", "Laredo")]})
    edited = setlist("63d6e2b7", day, version_id="3be1d6f4",
                     last_updated="2026-12-02T10:12:44.000+0000",
                     sets={"set": [songs("The Funeral", "Laredo", "Ode to LRC"),
                                   songs("Is There a Ghost", encore=1)]})
    search_answers(upstream, (200, page([first])), (200, page([edited])))

    assert played.look_up_played_setlist(show)["action"] == "created"
    db.execute("update private.played_setlist_lookups set next_attempt_at = now()")
    assert played.look_up_played_setlist(show)["action"] == "updated"
    assert [(r["title"], r["encore"]) for r in played_rows(db, show)] == [
        ("The Funeral", None), ("Laredo", None), ("Ode to LRC", None), ("Is There a Ghost", 1)]
    assert scalar(db, "select source_version_id from public.setlists where show_id = %s",
                  [show]) == "3be1d6f4"

    before = row_versions(db, ("public.setlists", "public.setlist_songs", "public.songs"))
    assert played.look_up_played_setlist(show)["action"] == "unchanged"
    assert row_versions(db, ("public.setlists", "public.setlist_songs", "public.songs")) == before


def _import(conn: Connection, task: tuple[uuid.UUID, str]) -> str:
    show, body = task
    row = conn.execute("select private.import_played_setlist(%s, %s::jsonb) as a",
                       [show, body]).fetchone()
    assert row is not None
    return str(row["a"]["action"])


def _payload(setlist_id: str, version: str, titles: list[str]) -> str:
    return json.dumps({
        "setlistfm_id": setlist_id, "version_id": version, "url": None, "last_updated": None,
        "songs": [{"title": t, "set_number": 1, "encore": 0, "is_cover": False}
                  for t in titles]})


def test_concurrent_imports_of_one_show_leave_one_whole_setlist(
    database_url: str, db: Connection
) -> None:
    artist, show, _ = anthem_show(db)
    # Two versions, each with a song the catalogue lacks, imported 32 times at once.
    versions = {
        "v1": ["The Funeral", "Laredo", "Marry Song"],
        "v2": ["Is There a Ghost", "Older", "Marry Song", "Weed Party"],
    }
    tasks = [(show, _payload("63d6e2b7", v, versions[v])) for v in ("v1", "v2") * 16]

    results = run_concurrently(database_url, tasks, _import, connections=32)

    assert all(isinstance(r, str) for r in results), results
    assert results.count("created") == 1
    assert scalar(db, "select count(*) from public.setlists where kind = 'actual'") == 1
    stored = scalar(db, "select source_version_id from public.setlists where show_id = %s",
                    [show])
    assert [r["title"] for r in played_rows(db, show)] == versions[stored]
    # Each new title is one song, however many imports added it at once.
    for title in ("Marry Song", "Weed Party"):
        assert scalar(db, "select count(*) from public.songs where artist_id = %s"
                      " and title = %s", [artist, title]) == 1


def test_bad_input_is_refused_and_writes_nothing(db: Connection) -> None:
    _, show, _ = anthem_show(db)
    before = row_versions(db, SETLIST_TABLES)
    for body in ({"setlistfm_id": "63d6e2b7", "songs": []},
                 {"setlistfm_id": "", "songs": [{"title": "Laredo"}]},
                 {"setlistfm_id": "63d6e2b7", "songs": [{"title": " "}]},
                 # A title with no title key: nothing but an apostrophe.
                 {"setlistfm_id": "63d6e2b7", "songs": [{"title": "’"}]}):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            db.execute("select private.import_played_setlist(%s, %s::jsonb)",
                       [show, json.dumps(body)])
    assert row_versions(db, SETLIST_TABLES) == before


def test_a_source_failure_waits_an_hour_and_is_raised(upstream: Upstream, db: Connection) -> None:
    _, show, _ = anthem_show(db)
    search_answers(upstream, (500, {"code": 500, "status": "Internal Server Error",
                                    "message": "error",
                                    "timestamp": "2026-12-04T21:00:00.000+0000"}))
    with pytest.raises(UpstreamError):
        played.look_up_played_setlist(show)
    state = lookup(db, show)
    assert state is not None and state["status"] == "waiting" and state["last_error"]
    assert timedelta(minutes=59) < state["next_attempt_at"] - datetime.now(
        state["next_attempt_at"].tzinfo) <= timedelta(hours=1)


# -- the schedule ----------------------------------------------------------------------------


def queued(db: Connection, kind: str) -> list[str]:
    return [r["entity_id"] for r in db.execute(
        "select message ->> 'entity_id' as entity_id from pgmq.q_sync"
        " where message ->> 'kind' = %s order by msg_id", [kind])]


def test_due_lookups_are_queued_most_recent_first_within_the_budget(db: Connection) -> None:
    artist = band_of_horses(db)
    shows = {hours: past_show(db, artist, venue(db, f"Stage {hours}", "Washington"),
                              hours_ago=hours)[0]
             for hours in (2, 7, 30, 80, 200, 24 * 40)}
    nameless = band_of_horses(db, mbid=None)
    no_mbid, _ = past_show(db, nameless, venue(db, "The Anthem", "Washington"), hours_ago=30)
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")

    assert scalar(db, "select private.enqueue_played_setlist_lookups(3)") == 3
    # Started 2 hours ago: not due (+6 h). 40 days ago: past the schedule. No mbid: no lookup.
    assert queued(db, "played_setlist") == [str(shows[h]) for h in (7, 30, 80)]
    assert scalar(db, "select private.enqueue_played_setlist_lookups(3)") == 1
    assert queued(db, "played_setlist")[-1] == str(shows[200])
    assert str(no_mbid) not in queued(db, "played_setlist")
    # A lookup done waits for its next slot.
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    db.execute("select private.record_played_setlist_lookup(%s, false)", [shows[7]])
    assert str(shows[7]) not in [*map(str, queued(db, "played_setlist"))]
    db.execute("select private.enqueue_played_setlist_lookups(10)")
    assert str(shows[7]) not in queued(db, "played_setlist")


def test_the_schedules_stay_inside_the_setlistfm_daily_quota(db: Connection) -> None:
    jobs = {r["jobname"]: (r["schedule"], r["command"]) for r in db.execute(
        "select jobname, schedule, command from cron.job")}
    assert jobs["sync-enqueue-played-setlists"] == (
        "*/10 * * * *", "select private.enqueue_played_setlist_lookups(3)")
    assert jobs["sync-enqueue-live-history"] == (
        "*/20 * * * *", "select private.enqueue_stale_artist_jobs('artist_live_history', 1)")
    per_day = 6 * 24 * 3 * 1 + 3 * 24 * 1 * played.LIVE_HISTORY_PAGES  # calls at most
    assert per_day == 576 and per_day <= 1440 * 0.5


def test_the_job_runs_from_the_queue(upstream: Upstream, db: Connection) -> None:
    assert handler_for("played_setlist") is played.played_setlist_job
    _, show, day = anthem_show(db)
    search_answers(upstream, (200, page([setlist("63d6e2b7", day)])))
    db.execute("delete from pgmq.q_sync")
    db.execute("delete from private.sync_pending_jobs")
    db.execute("select private.enqueue_played_setlist_lookups(3)")

    summary = Worker(WorkerConfig(heartbeat=False)).drain(30)

    assert summary.as_dict()["by_kind"]["played_setlist"] == {"done": 1}
    assert len(played_rows(db, show)) == 6
    assert queued(db, "played_setlist") == []


# -- live history ----------------------------------------------------------------------------


def _history_pages(today: date) -> list[dict[str, Any]]:
    """25 setlists over two pages, newest first: 20 with the hits, five empty ones."""
    hits = ["The Funeral", "Is There a Ghost", "Laredo", "No One's Gonna Love You", "Older"]
    shows = [setlist(f"{i:02x}d6e2b7", today - timedelta(days=3 * i), ANTHEM,
                     {"set": [songs(*hits[:4]), songs(hits[4], "General Specific", encore=1)]}
                     if i < 20 else {"set": []})
             for i in range(25)]
    return [page(shows[:20], number=1, total=25), page(shows[20:], number=2, total=25)]


def history_answers(upstream: Upstream) -> None:
    pages = _history_pages(date.today())

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[int(request.url.params.get("p", "1")) - 1])

    upstream.mock.add_callback(answer, url=ARTIST_SETLISTS, is_optional=True, is_reusable=True)


def test_live_history_counts_plays_over_paged_setlists(upstream: Upstream, db: Connection) -> None:
    artist = band_of_horses(db)
    catalogue(db, artist)
    history_answers(upstream)

    result = played.refresh_live_history(artist)

    assert [r.url.params["p"] for r in upstream.api_requests()] == ["1", "2"]
    assert result["setlists"] == 20  # the five empty ones say nothing
    plays = {r["title"]: r["plays"] for r in db.execute(
        "select so.title, ls.plays from private.artist_live_songs ls"
        " join public.songs so on so.id = ls.song_id where ls.artist_id = %s", [artist])}
    assert plays == {"The Funeral": 20, "Is There a Ghost": 20, "Laredo": 20,
                     "No One's Gonna Love You": 20, "Older": 20, "General Specific": 20}
    # Fresh for 7 days: no second call, and a forced refresh writes nothing new.
    assert played.refresh_live_history(artist) == {"status": "fresh"}
    history_tables = ("private.artist_live_songs", "private.artist_live_history", "public.songs")
    before = row_versions(db, history_tables)
    played.refresh_live_history(artist, force=True)
    assert row_versions(db, history_tables) == before


def _draw_picks(db: Connection, artist: uuid.UUID, shows: int) -> list[str]:
    place = venue(db, "9:30 Club", "Washington")
    picks: list[str] = []
    for days in range(1, shows + 1):
        row = db.execute("insert into public.shows (artist_id, venue_id, local_date)"
                         " values (%s, %s, current_date + %s) returning id",
                         [artist, place, days]).fetchone()
        assert row is not None
        answer = scalar(db, "select public.create_setlist(%s, false)", [row["id"]])
        picks += [s["title"] for s in answer["songs"]]
    return picks


def test_the_draw_follows_the_live_history(upstream: Upstream, db: Connection) -> None:
    artist = band_of_horses(db)
    catalogue(db, artist)
    history_answers(upstream)
    played.refresh_live_history(artist)
    live = {"The Funeral", "Is There a Ghost", "Laredo", "No One's Gonna Love You", "Older",
            "General Specific"}

    picks = _draw_picks(db, artist, 20)

    # Uniform over 17 songs would give 6/17 = 35% live songs; weighted ~99%.
    share = sum(p in live for p in picks) / len(picks)
    assert share > 0.85, share


def test_without_live_history_the_draw_is_uniform(db: Connection) -> None:
    artist = band_of_horses(db)
    catalogue(db, artist)
    picks = _draw_picks(db, artist, 20)
    # 100 picks over 16 songs: every song is about as likely (expected 6.25 each).
    assert len(set(picks)) >= 12
    assert max(picks.count(title) for title in set(picks)) <= 16


def test_an_artist_without_spotify_gets_its_catalogue_from_setlistfm(
    upstream: Upstream, db: Connection
) -> None:
    artist = band_of_horses(db)  # a MusicBrainz id, no Spotify id, no songs
    history_answers(upstream)
    place = venue(db, "9:30 Club", "Washington")
    show = db.execute("insert into public.shows (artist_id, venue_id, local_date)"
                      " values (%s, %s, current_date + 10) returning id",
                      [artist, place]).fetchone()
    assert show is not None
    assert load_handlers() == []

    Worker(WorkerConfig(heartbeat=False)).drain(60)

    titles = [s["title"] for s in scalar(
        db, "select public.create_setlist(%s, false)", [show["id"]])["songs"]]
    assert len(titles) == 5
    assert set(titles) <= {"The Funeral", "Is There a Ghost", "Laredo",
                           "No One's Gonna Love You", "Older", "General Specific"}
    assert scalar(db, "select bool_and(source = 'setlistfm') from public.songs") is True


def test_live_history_job_is_registered(db: Connection) -> None:
    assert handler_for("artist_live_history") is played.live_history_job
    nobody = Job(msg_id=0, kind="artist_live_history", entity_id=uuid.uuid4(), attempt=1)
    assert played.live_history_job(nobody) == {"status": "artist_not_found"}


def test_an_unnamed_song_is_left_out(upstream: Upstream, db: Connection) -> None:
    _, show, day = anthem_show(db)
    search_answers(upstream, (200, page([setlist("63d6e2b7", day, sets={"set": [
        {"song": [{"name": "", "info": "unknown song"}, {"name": "Laredo"}]}]})])))
    assert played.look_up_played_setlist(show)["songs"] == 1
    assert [r["title"] for r in played_rows(db, show)] == ["Laredo"]
