"""The keys the database owns: ``private.name_key``, ``private.song_title_key`` and the
generated ``songs.title_key``. Python parses a title (``split_song_title``); whether two
spellings are one name or one song is the database's to say. The expected keys are the
ones the Python copy of these functions gave before the database became their only owner."""

from __future__ import annotations

import pytest
from psycopg import errors

from shared.keys import name_keys, song_title_keys
from shared.sources.records import split_song_title
from tests.support.catalogue import insert_artist
from tests.support.db import Connection

NAME_KEYS = {
    "Beyoncé": "beyonce",
    "BEYONCE": "beyonce",
    "Sigur Rós": "sigur ros",
    "Mø": "mo",
    "Motörhead": "motorhead",
    "José González": "jose gonzalez",
    "Æther Realm": "aether realm",
    "Straßenjungs": "strassenjungs",
    "GROẞSTADT": "grossstadt",
    "Ŧrash Ŧalk": "trash talk",
    "Кино": "кино",
    "Mumford & Sons": "mumford and sons",
    "&": "and",
    "  The  Shins ": "the shins",
    "Guns N' Roses": "guns n roses",
    "AC/DC": "ac dc",
    # Nothing but punctuation: the name itself, lower case, trimmed.
    "!!!": "!!!",
    "  ?!  ": "?!",
    "": "",
}

NO_ONE = "no ones gonna love you"


def test_name_key_folds_accents_case_spacing_punctuation_and_ampersand(db: Connection) -> None:
    assert dict(zip(NAME_KEYS, name_keys(db, list(NAME_KEYS)), strict=True)) == NAME_KEYS


def test_song_title_key_drops_apostrophes_of_every_kind(db: Connection) -> None:
    spellings = [f"No One{mark}s Gonna Love You" for mark in "'’‘ʼ`´"]

    assert song_title_keys(db, spellings) == [NO_ONE] * len(spellings)
    # A name key alone reads the apostrophe as a word break.
    assert name_keys(db, ["No One's Gonna Love You"]) == ["no one s gonna love you"]


def test_song_title_key_is_the_name_key_otherwise(db: Connection) -> None:
    titles = ["Tweezer", "Tweezer Reprise", "(Don't Fear) The Reaper", "Rock & Roll", "Laredo"]

    assert song_title_keys(db, titles) == [
        "tweezer", "tweezer reprise", "dont fear the reaper", "rock and roll", "laredo"]


def test_versions_share_the_key_of_their_parsed_title(db: Connection) -> None:
    versions = ["No One's Gonna Love You - 2012 Remaster",
                "No One’s Gonna Love You (Live at KEXP)",
                "No One's Gonna Love You (feat. Sam Beam)",
                "No One's Gonna Love You"]

    parsed = [split_song_title(title)[0] for title in versions]

    assert song_title_keys(db, parsed) == [NO_ONE] * len(versions)


def test_songs_title_key_is_generated_from_the_title(db: Connection) -> None:
    artist = insert_artist(db)
    song = db.execute("insert into public.songs (artist_id, title) values (%s, %s)"
                      " returning id, title_key", [artist, "No One’s Gonna Love You"]).fetchone()
    assert song is not None and song["title_key"] == NO_ONE

    with pytest.raises(errors.UniqueViolation):
        db.execute("insert into public.songs (artist_id, title) values (%s, %s)",
                   [artist, "No One's Gonna Love You"])
    with pytest.raises(errors.GeneratedAlways):
        db.execute("insert into public.songs (artist_id, title, title_key)"
                   " values (%s, 'Laredo', 'laredo')", [artist])
    with pytest.raises(errors.CheckViolation):
        db.execute("insert into public.songs (artist_id, title) values (%s, '’')", [artist])
    renamed = db.execute("update public.songs set title = 'Laredo' where id = %s"
                         " returning title_key", [song["id"]]).fetchone()
    assert renamed == {"title_key": "laredo"}
