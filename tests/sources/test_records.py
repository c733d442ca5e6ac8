"""Transformation of source payloads into normalised records."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from shared.keys import song_title_keys
from shared.sources import records
from shared.sources import setlistfm_models as sfm
from shared.sources import spotify_models as sp
from shared.sources import ticketmaster_models as tm
from shared.sources.records import (
    SongRecord,
    catalogue_from_spotify,
    song_from_spotify,
    split_song_title,
)
from tests.sources.conftest import payload
from tests.support.db import Connection

BOH_SPOTIFY = "0OdUWJ0sBjDrqHygGUXeCF"


def events(name: str) -> list[tm.Event]:
    return tm.EventsPage.model_validate(payload(name)).events


# -- artists ---------------------------------------------------------------------------------


def test_ticketmaster_artist_carries_every_external_id() -> None:
    artist = records.artist_from_ticketmaster(
        tm.Attraction.model_validate(payload("tm_attraction.json"))
    )

    assert artist.external_ids() == [
        ("ticketmaster", "K8vZ9171ob7"),
        ("spotify", BOH_SPOTIFY),
        ("musicbrainz", "7cb5a2e9-e3a1-4b9f-9e5d-6b1bab0e6a3a"),
    ]
    assert artist.spotify_url == f"https://open.spotify.com/artist/{BOH_SPOTIFY}"
    assert artist.genres == ("Rock", "Pop")
    assert artist.upcoming_event_count == 14
    # Widest 16:9 picture.
    assert artist.image_url is not None and "TABLET_LANDSCAPE_LARGE_16_9" in artist.image_url


def test_attraction_without_links_has_only_its_ticketmaster_id() -> None:
    body = payload("tm_attractions_search.json")["_embedded"]["attractions"][1]

    artist = records.artist_from_ticketmaster(tm.Attraction.model_validate(body))

    assert artist.external_ids() == [("ticketmaster", "K8vZ917G9a0")]


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (f"https://open.spotify.com/artist/{BOH_SPOTIFY}", BOH_SPOTIFY),
        (f"https://open.spotify.com/artist/{BOH_SPOTIFY}?si=4f0c2f", BOH_SPOTIFY),
        (f"spotify:artist:{BOH_SPOTIFY}", BOH_SPOTIFY),
        ("https://open.spotify.com/album/6b4ZaGmGBbMZqD3mO2uuLh", None),
        ("https://open.spotify.com/artist/short", None),
    ],
)
def test_spotify_id_from_link(link: str, expected: str | None) -> None:
    assert records.spotify_id_from_link(link) == expected


def test_spotify_artist_in_development_mode() -> None:
    artist = records.artist_from_spotify(
        sp.Artist.model_validate(payload("spotify_artist_devmode.json"))
    )

    assert (artist.spotify_id, artist.popularity, artist.followers) == (BOH_SPOTIFY, None, None)
    assert artist.image_url is not None and artist.image_url.endswith(
        "b0d6b1d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0"
    )


def test_strict_models_refuse_records_without_id_or_name() -> None:
    with pytest.raises(ValueError, match="id"):
        sp.Artist.model_validate({"name": "Band of Horses"})
    with pytest.raises(ValueError, match="name"):
        tm.Venue.model_validate({"id": "KovZpZAEvAJA", "name": "  "})
    with pytest.raises(ValueError, match="mbid"):
        sfm.Artist.model_validate({"name": "Phish"})


# -- venues ----------------------------------------------------------------------------------


def test_ticketmaster_venue_record() -> None:
    venue = records.venue_from_ticketmaster(tm.Venue.model_validate(payload("tm_venue.json")))

    assert venue.name == "Ryman Auditorium"
    assert (venue.city, venue.state_code, venue.country_code) == ("Nashville", "TN", "US")
    assert (venue.latitude, venue.longitude) == (36.161206, -86.778495)
    assert venue.timezone == "America/Chicago"
    assert venue.external_ids() == [("ticketmaster", "KovZpZAEvAJA")]


def test_unusable_coordinates_become_unknown() -> None:
    body = payload("tm_venue.json")
    body["location"] = {"latitude": "", "longitude": "not-a-number"}

    venue = records.venue_from_ticketmaster(tm.Venue.model_validate(body))

    assert (venue.latitude, venue.longitude) == (None, None)


def test_setlistfm_venue_record() -> None:
    setlist = sfm.Setlist.model_validate(payload("setlistfm_setlist_nested.json"))
    assert setlist.venue is not None

    venue = records.venue_from_setlistfm(setlist.venue)

    assert venue is not None
    assert (venue.name, venue.city, venue.state_code, venue.country_code) == (
        "Madison Square Garden",
        "New York",
        "NY",
        "US",
    )
    assert venue.external_ids() == [("setlistfm", "23d63cc7")]


# -- shows -----------------------------------------------------------------------------------


def test_add_on_events_are_dropped_and_one_concert_is_one_show() -> None:
    shows = records.shows_from_ticketmaster(events("tm_events_with_addons.json"))

    assert [s.ticketmaster_id for s in shows] == [
        "vvG1IZ9pKbvS7J",
        "vvG1zZ9xM4q3rT",
        "G5vzZ9b1kRq8m",
    ]
    nashville = shows[0]
    # The resale listing of the same concert is the same show.
    assert nashville.duplicate_ticketmaster_ids == ("Z7r9jZ1A7j-_4",)
    assert nashville.external_ids() == [
        ("ticketmaster", "vvG1IZ9pKbvS7J"),
        ("ticketmaster", "Z7r9jZ1A7j-_4"),
    ]


@pytest.mark.parametrize(
    ("event_id", "concert"),
    [
        ("vvG1IZ9pKbvS7J", True),
        ("vvG1IZ9pKbvXdA", False),  # VIP Parking: … - Not a Concert Ticket, Miscellaneous/Parking
        ("vvG1IZ9pKbvXdQ", False),  # … - Upgrades & Extras, Miscellaneous/Upsell
    ],
)
def test_is_concert_event(event_id: str, concert: bool) -> None:
    (event,) = [e for e in events("tm_events_with_addons.json") if e.id == event_id]
    assert records.is_concert_event(event) is concert


def test_add_on_names_are_dropped_even_in_the_music_segment() -> None:
    body = payload("tm_event.json")
    for name in [
        "Band of Horses - SUITE",
        "Lawn Chair Rental - Band of Horses",
        "Band of Horses - Fast Lane Entry",
        "Band of Horses - Post Game Concert Pass",
        "VIP Club: Band of Horses",
    ]:
        body["name"] = name
        assert not records.is_concert_event(tm.Event.model_validate(body)), name
    body["name"] = "Passion Pit"
    assert records.is_concert_event(tm.Event.model_validate(body))


def test_show_record_fields() -> None:
    (show, *_) = records.shows_from_ticketmaster(events("tm_events_with_addons.json"))

    assert show.local_date == date(2026, 10, 16)
    assert show.local_time == time(20, 0)
    assert show.starts_at == datetime(2026, 10, 17, 1, 0, tzinfo=UTC)
    assert show.timezone == "America/Chicago"
    assert show.status == "scheduled"
    assert show.ticket_url == "https://www.ticketmaster.com/event/vvG1IZ9pKbvS7J"
    assert show.image_url is not None and show.image_url.endswith("RETINA_LANDSCAPE_16_9.jpg")
    assert show.on_sale_at == datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    assert show.artist_ticketmaster_ids == ("K8vZ9171ob7",)
    assert show.artists[0].musicbrainz_id == "7cb5a2e9-e3a1-4b9f-9e5d-6b1bab0e6a3a"
    assert show.venue.ticketmaster_id == "KovZpZAEvAJA"


def test_cancelled_show_without_event_timezone_uses_the_venue_timezone() -> None:
    (show,) = [
        s
        for s in records.shows_from_ticketmaster(events("tm_events_with_addons.json"))
        if s.ticketmaster_id == "vvG1zZ9xM4q3rT"
    ]

    assert show.status == "cancelled"
    assert show.timezone == "America/Los_Angeles"
    # 19:30 PDT (UTC-7), computed from the local time since no dateTime was given.
    assert show.starts_at == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    # The 1900 placeholder sales date means "unknown".
    assert show.on_sale_at is None


def test_show_without_specific_time_has_no_utc_start() -> None:
    (show,) = [
        s
        for s in records.shows_from_ticketmaster(events("tm_events_with_addons.json"))
        if s.ticketmaster_id == "G5vzZ9b1kRq8m"
    ]

    assert (show.local_time, show.starts_at) == (None, None)
    assert show.status == "rescheduled"
    assert (show.price_min, show.price_max, show.price_currency) == (45.5, 89.5, "USD")


@pytest.mark.parametrize(
    ("code", "expected_status"),
    [
        ("onsale", "scheduled"),
        ("offsale", "scheduled"),
        ("canceled", "cancelled"),
        ("cancelled", "cancelled"),
        ("CANCELLED", "cancelled"),
        ("postponed", "postponed"),
        ("rescheduled", "rescheduled"),
        (None, "scheduled"),
    ],
)
def test_show_status(code: str | None, expected_status: str) -> None:
    assert records.show_status(code) == expected_status


# -- songs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "clean", "version"),
    [
        ("The Funeral", "The Funeral", "studio"),
        ("The Funeral - Remastered 2011", "The Funeral", "remaster"),
        ("Laredo - Live at the Ryman", "Laredo", "live"),
        ("Is There a Ghost (Live)", "Is There a Ghost", "live"),
        ("No One's Gonna Love You - Acoustic", "No One's Gonna Love You", "acoustic"),
        ("Laredo (Demo)", "Laredo", "demo"),
        ("Casual Party - Radio Edit", "Casual Party", "edit"),
        ("Is There a Ghost [Remix]", "Is There a Ghost", "remix"),
        ("Crutch (feat. Sam Beam)", "Crutch", "studio"),
        ("Tweezer Reprise", "Tweezer Reprise", "studio"),
        ("(Don't Fear) The Reaper", "(Don't Fear) The Reaper", "studio"),
        ("Lamb on the Lam (In the City)", "Lamb on the Lam (In the City)", "studio"),
    ],
)
def test_split_song_title(title: str, clean: str, version: str) -> None:
    assert split_song_title(title) == (clean, version)


def album_tracks() -> list[tuple[sp.SimplifiedTrack, sp.SimplifiedAlbum]]:
    albums = sp.AlbumsPaging.model_validate(payload("spotify_artist_albums_page1.json")).items
    by_name = {a.name: a for a in albums}
    tracks = sp.TracksPaging.model_validate(payload("spotify_album_tracks_page1.json")).items
    return [(t, by_name["Infinite Arms"]) for t in tracks]


def test_song_from_an_album_track() -> None:
    track, album = album_tracks()[2]

    song = song_from_spotify(track, album)

    assert (song.title, song.version) == ("Laredo", "studio")
    assert (song.album, song.album_type, song.release_date) == (
        "Infinite Arms",
        "album",
        date(2010, 5, 18),
    )
    assert song.duration_ms == 184346
    assert song.spotify_id == "3Ez1mWZPSxVbsJW4mfuKSn"
    assert song.spotify_url == "https://open.spotify.com/track/3Ez1mWZPSxVbsJW4mfuKSn"
    assert song.isrc is None  # simplified tracks carry none


def test_song_from_a_full_track_has_isrc_and_album() -> None:
    song = song_from_spotify(sp.Track.model_validate(payload("spotify_track_devmode.json")))

    assert song.isrc == "USSM11000891"
    assert song.album == "Infinite Arms"


def variant(title: str, album: str, album_type: str, released: date) -> SongRecord:
    track = sp.SimplifiedTrack(id=f"x{abs(hash(title + album)) % 10**20:021d}", name=title)
    return song_from_spotify(
        track,
        sp.SimplifiedAlbum(
            id="a" * 22,
            name=album,
            album_type=album_type,
            release_date=released.isoformat(),
            release_date_precision="day",
        ),
    )


def test_catalogue_keeps_the_original_studio_version(db: Connection) -> None:
    track, album = album_tracks()[2]
    original = song_from_spotify(track, album)
    versions = [
        variant("Laredo - Remastered 2020", "Infinite Arms (Remastered)", "album",
                date(2020, 5, 18)),
        variant("Laredo", "Acoustic at the Ryman", "album", date(2014, 2, 11)),  # live album
        variant("Laredo (Demo)", "Infinite Arms (Deluxe)", "album", date(2011, 1, 1)),
        variant("Laredo - Acoustic", "Laredo", "single", date(2010, 9, 1)),
        variant("Laredo - Remix", "Laredo", "single", date(2010, 3, 30)),
        variant("Laredo", "Laredo", "single", date(2010, 3, 30)),
    ]
    songs = [*versions, original]
    keys = song_title_keys(db, [s.title for s in songs])
    assert keys == ["laredo"] * len(songs)

    catalogue = catalogue_from_spotify(songs, keys)

    assert catalogue == [original]
    # A plain title on a live acoustic album is not the studio version.
    assert versions[1].version == "acoustic"
    assert versions[0].version == "remaster"


def test_catalogue_has_one_song_per_title(db: Connection) -> None:
    songs = [song_from_spotify(t, a) for t, a in album_tracks()]

    catalogue = catalogue_from_spotify(songs, song_title_keys(db, [s.title for s in songs]))

    assert len(catalogue) == 10
    assert len(set(song_title_keys(db, [s.title for s in catalogue]))) == 10


# -- played setlists -------------------------------------------------------------------------


def test_played_setlist_orders_songs_marks_encores_and_covers_and_drops_tape() -> None:
    setlist = sfm.Setlist.model_validate(payload("setlistfm_setlist_nested.json"))

    played = records.played_setlist_from_setlistfm(setlist)

    assert [(s.position, s.title, s.encore, s.is_cover) for s in played.songs] == [
        (1, "Steam", 0, False),
        (2, "Tweezer", 0, False),
        (3, "Auld Lang Syne", 0, True),
        (4, "Character Zero", 1, False),
    ]
    assert played.songs[0].info == ">"
    assert played.songs[0].set_name == "Set 1:"
    assert played.songs[2].cover_artist_name == "Robert Burns"
    assert played.event_date == date(2018, 12, 31)
    assert played.artist.musicbrainz_id == "e01646f2-2a04-450d-8bf2-0d993082e058"
    assert played.tour_name == "New Year's Run 2018"
    assert (
        played.url
        == "https://www.setlist.fm/setlist/phish/2018/madison-square-garden-new-york-ny-4b943b7a.html"
    )


def test_played_setlist_from_the_flat_layout_with_a_guest() -> None:
    played = records.played_setlist_from_setlistfm(
        sfm.Setlist.model_validate(payload("setlistfm_setlist_flat.json"))
    )

    assert [(s.title, s.encore) for s in played.songs] == [
        ("Tweezer", 0),
        ("Steam", 0),
        ("Character Zero", 1),
    ]
    assert played.songs[2].guest_artist_name == "Trey Anastasio"


def test_played_setlist_without_songs() -> None:
    played = records.played_setlist_from_setlistfm(
        sfm.Setlist.model_validate(payload("setlistfm_setlist_empty.json"))
    )

    assert played.songs == ()
    assert played.event_date == date(2026, 10, 16)
