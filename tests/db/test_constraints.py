"""Every unique constraint rejects its duplicate, every foreign key acts as
declared, every check constraint holds."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.support.catalogue import (
    insert_artist,
    insert_show,
    insert_show_with_catalogue,
    insert_songs,
    insert_venue,
)
from tests.support.db import Connection, create_user


def predicted_setlist_song(db: Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    rows = insert_show_with_catalogue(db)
    setlist = db.execute(
        "insert into public.setlists (show_id, kind) values (%s, 'predicted') returning id",
        [rows.show_id]).fetchone()
    assert setlist is not None
    entry = db.execute(
        "insert into public.setlist_songs (setlist_id, song_id, position) values (%s, %s, 1)"
        " returning id", [setlist["id"], rows.song_ids[0]]).fetchone()
    assert entry is not None
    return rows.show_id, setlist["id"], entry["id"]


# -- unique constraints -------------------------------------------------------

def test_one_external_id_maps_to_one_artist(db: Connection) -> None:
    first, second = insert_artist(db, "Phish"), insert_artist(db, "Phish")
    db.execute("insert into public.artist_external_ids values ('musicbrainz',"
               " 'e01646f2-2a04-450d-8bf2-0d993082e058', %s)", [first])
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.artist_external_ids values ('musicbrainz',"
                   " 'e01646f2-2a04-450d-8bf2-0d993082e058', %s)", [second])


def test_one_artist_may_hold_several_ids_of_one_source(db: Connection) -> None:
    artist = insert_artist(db)
    for attraction in ("K8vZ9171ob7", "K8vZ917_duplicate"):
        db.execute("insert into public.artist_external_ids values ('ticketmaster', %s, %s)",
                   [attraction, artist])
    count = db.execute("select count(*) as n from public.artist_external_ids where artist_id = %s",
                       [artist]).fetchone()
    assert count == {"n": 2}


@pytest.mark.parametrize("table,parent", [("venue_external_ids", "venue"),
                                          ("show_external_ids", "show")])
def test_venue_and_show_ids_map_to_one_entity(db: Connection, table: str, parent: str) -> None:
    artist = insert_artist(db)
    venue_a, venue_b = insert_venue(db, "Venue A"), insert_venue(db, "Venue B")
    targets = {"venue": (venue_a, venue_b),
               "show": (insert_show(db, artist, venue_a), insert_show(db, artist, venue_b))}
    first, second = targets[parent]
    db.execute(f"insert into public.{table} values ('ticketmaster', 'X1', %s)", [first])
    with pytest.raises(errors.UniqueViolation):
        db.execute(f"insert into public.{table} values ('ticketmaster', 'X1', %s)", [second])


@pytest.mark.parametrize("spelling", ["Café de la Danse", "CAFE DE LA DANSE", "cafe de la danse!"])
def test_venue_natural_key_folds_case_accents_and_punctuation(
    db: Connection, spelling: str
) -> None:
    insert_venue(db, "Café de la Danse", "Paris", "FR")
    with pytest.raises(errors.UniqueViolation):
        insert_venue(db, spelling, "paris", "FR")


def test_same_venue_name_in_another_city_is_another_venue(db: Connection) -> None:
    insert_venue(db, "The Fillmore", "San Francisco", "US")
    insert_venue(db, "The Fillmore", "Detroit", "US")


def test_a_show_is_artist_venue_and_local_date(db: Connection) -> None:
    artist, venue = insert_artist(db), insert_venue(db)
    insert_show(db, artist, venue, 10)
    with pytest.raises(errors.UniqueViolation):
        insert_show(db, artist, venue, 10)
    insert_show(db, artist, venue, 11)


def test_one_song_per_normalised_title_per_artist(db: Connection) -> None:
    artist, other = insert_artist(db), insert_artist(db, "Phish")
    insert_songs(db, artist, ["Laredo"])
    with pytest.raises(errors.UniqueViolation):
        insert_songs(db, artist, ["LAREDO"])
    insert_songs(db, other, ["Laredo"])


@pytest.mark.parametrize("kind", ["predicted", "actual"])
def test_one_setlist_of_each_kind_per_show(db: Connection, kind: str) -> None:
    show_id, _, _ = predicted_setlist_song(db)
    if kind == "actual":
        db.execute("insert into public.setlists (show_id, kind) values (%s, 'actual')", [show_id])
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.setlists (show_id, kind) values (%s, %s)", [show_id, kind])


def test_a_song_once_per_setlist_and_a_position_once(db: Connection) -> None:
    _, setlist_id, entry = predicted_setlist_song(db)
    song = db.execute("select song_id from public.setlist_songs where id = %s", [entry]).fetchone()
    assert song is not None
    other_song = db.execute(
        "select id from public.songs where id <> %s limit 1", [song["song_id"]]).fetchone()
    assert other_song is not None
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.setlist_songs (setlist_id, song_id, position)"
                   " values (%s, %s, 2)", [setlist_id, song["song_id"]])
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.setlist_songs (setlist_id, song_id, position)"
                   " values (%s, %s, 1)", [setlist_id, other_song["id"]])


def test_one_vote_per_user_per_setlist_song(db: Connection) -> None:
    _, _, entry = predicted_setlist_song(db)
    user = create_user(db)
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)", [user, entry])
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)",
                   [user, entry])


def test_a_users_artist_once_per_relation(db: Connection) -> None:
    user, artist = create_user(db), insert_artist(db)
    db.execute("insert into public.user_artists (user_id, artist_id, relation) values"
               " (%s, %s, 'top'), (%s, %s, 'followed')", [user, artist, user, artist])
    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.user_artists (user_id, artist_id, relation)"
                   " values (%s, %s, 'top')", [user, artist])


# -- foreign keys ---------------------------------------------------------------

def test_deleting_an_artist_takes_its_ids_and_songs(db: Connection) -> None:
    artist = insert_artist(db)
    insert_songs(db, artist, ["Laredo"])
    db.execute("insert into public.artist_external_ids values ('spotify', '0OdUWJ0sBjDrqHygGUXeCF',"
               " %s)", [artist])
    db.execute("delete from public.artists where id = %s", [artist])
    left = db.execute("select (select count(*) from public.songs) + (select count(*) from"
                      " public.artist_external_ids) as n").fetchone()
    assert left == {"n": 0}


@pytest.mark.parametrize("parent", ["artists", "venues"])
def test_artists_and_venues_with_shows_cannot_be_deleted(db: Connection, parent: str) -> None:
    artist, venue = insert_artist(db), insert_venue(db)
    insert_show(db, artist, venue)
    target = artist if parent == "artists" else venue
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute(f"delete from public.{parent} where id = %s", [target])


def test_a_show_with_a_setlist_cannot_be_deleted(db: Connection) -> None:
    show_id, _, _ = predicted_setlist_song(db)
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("delete from public.shows where id = %s", [show_id])


def test_a_song_on_a_setlist_cannot_be_deleted(db: Connection) -> None:
    _, _, entry = predicted_setlist_song(db)
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("delete from public.songs where id = (select song_id from public.setlist_songs"
                   " where id = %s)", [entry])


def test_deleting_a_setlist_takes_its_songs_and_their_votes(db: Connection) -> None:
    _, setlist_id, entry = predicted_setlist_song(db)
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)",
               [create_user(db), entry])
    db.execute("delete from public.setlists where id = %s", [setlist_id])
    left = db.execute("select (select count(*) from public.setlist_songs) + (select count(*)"
                      " from public.votes) as n").fetchone()
    assert left == {"n": 0}


def test_deleting_a_user_takes_their_votes_profile_and_artists(db: Connection) -> None:
    _, _, entry = predicted_setlist_song(db)
    user = create_user(db)
    artist = db.execute("select id from public.artists limit 1").fetchone()
    assert artist is not None
    db.execute("insert into public.votes (user_id, setlist_song_id) values (%s, %s)", [user, entry])
    db.execute("insert into public.user_artists (user_id, artist_id, relation) values"
               " (%s, %s, 'followed')", [user, artist["id"]])
    db.execute("update public.setlist_songs set added_by = %s where id = %s", [user, entry])
    db.execute("delete from auth.users where id = %s", [user])
    left = db.execute(
        "select (select count(*) from public.votes) as votes,"
        " (select count(*) from public.profiles) as profiles,"
        " (select count(*) from public.user_artists) as user_artists,"
        " (select count(*) from public.setlist_songs where added_by is null) as kept_songs"
    ).fetchone()
    assert left == {"votes": 0, "profiles": 0, "user_artists": 0, "kept_songs": 1}


# -- checks ---------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "update public.setlist_songs set vote_count = -1",
    "update public.setlist_songs set position = 0",
    "update public.shows set status = 'sold out'",
    "update public.setlists set kind = 'wishlist'",
    "update public.shows set price_min = 50, price_max = 10",
    "update public.venues set country_code = 'usa'",
    "update public.artists set name = '  '",
])
def test_check_constraints(db: Connection, statement: str) -> None:
    predicted_setlist_song(db)
    with pytest.raises(errors.CheckViolation):
        db.execute(statement)


def test_updated_at_moves_on_update_only(db: Connection) -> None:
    artist = insert_artist(db)
    with db.transaction():
        before = db.execute("select updated_at from public.artists where id = %s",
                            [artist]).fetchone()
    db.execute("update public.artists set image_url = 'https://i.scdn.co/image/x' where id = %s",
               [artist])
    after = db.execute("select updated_at from public.artists where id = %s", [artist]).fetchone()
    assert before is not None and after is not None
    assert after["updated_at"] > before["updated_at"]


def test_name_keys_are_generated(db: Connection) -> None:
    artist = insert_artist(db, "Sigur Rós & Friends")
    row = db.execute("select name_key from public.artists where id = %s", [artist]).fetchone()
    assert row == {"name_key": "sigur ros and friends"}


# -- profiles -------------------------------------------------------------------

def test_a_spotify_sign_up_fills_the_profile(db: Connection) -> None:
    meta = {"full_name": "Jane Fan", "name": "Jane Fan", "avatar_url": "https://i.scdn.co/image/ab",
            "provider_id": "jane.fan", "sub": "jane.fan", "iss": "https://api.spotify.com/v1"}
    user = create_user(db, meta=meta, app_meta={"provider": "spotify", "providers": ["spotify"]})
    profile = db.execute("select display_name, avatar_url, spotify_id from public.profiles"
                         " where id = %s", [user]).fetchone()
    assert profile == {"display_name": "Jane Fan", "avatar_url": "https://i.scdn.co/image/ab",
                       "spotify_id": "jane.fan"}


def test_an_email_sign_up_gets_a_profile_without_spotify_id(db: Connection) -> None:
    user = create_user(db)
    profile = db.execute("select spotify_id from public.profiles where id = %s", [user]).fetchone()
    assert profile == {"spotify_id": None}


def test_a_metadata_change_updates_the_profile(db: Connection) -> None:
    user = create_user(db, meta={"full_name": "Old Name"})
    db.execute("update auth.users set raw_user_meta_data = '{\"full_name\": \"New Name\"}'"
               " where id = %s", [user])
    profile = db.execute("select display_name from public.profiles where id = %s",
                         [user]).fetchone()
    assert profile == {"display_name": "New Name"}


def test_profiles_cannot_be_written_by_their_user(database_url: str, db: Connection) -> None:
    user = create_user(db)
    with psycopg.connect(database_url) as conn:
        conn.execute("select set_config('request.jwt.claims', %s, true),"
                     " set_config('role', 'authenticated', true)",
                     [f'{{"sub": "{user}", "role": "authenticated"}}'])
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("update public.profiles set display_name = 'x'")
