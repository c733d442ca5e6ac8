"""The one transformation from source payloads to normalised records.

Clients return the providers' own shapes (pydantic models); everything the
rest of the backend stores comes out of the functions here, so each rule
lives in one place:

* artists with every external id found (Ticketmaster attraction id, Spotify id
  from the attraction's Spotify link, MusicBrainz id);
* venues, with string coordinates parsed and country codes upper-cased;
* shows from Ticketmaster events, add-ons (parking, VIP, upsells, "not a
  concert ticket", non-Music segments) dropped and duplicate events of one
  concert collapsed;
* songs from Spotify tracks with version suffixes recognised, and a catalogue
  keeping the original studio version of each title;
* played setlists from setlist.fm: ordered songs, encores marked, tape entries
  left out, covers flagged.

Parsing only: when two names or titles are the same (``private.name_key``,
``private.song_title_key``) is the database's to say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.sources import setlistfm_models as sfm
from shared.sources import spotify_models as sp
from shared.sources import ticketmaster_models as tm

ArtistSource = Literal["ticketmaster", "spotify", "musicbrainz"]
VenueSource = Literal["ticketmaster", "setlistfm"]
ShowSource = Literal["ticketmaster", "setlistfm"]
ShowStatus = Literal["scheduled", "postponed", "rescheduled", "cancelled"]
SongVersion = Literal[
    "studio", "remaster", "edit", "instrumental", "acoustic", "live", "demo", "remix"
]

# ---------------------------------------------------------------------------------------------
# Song titles and versions
# ---------------------------------------------------------------------------------------------

# Markers found in " - …" suffixes and in (…) / […] groups, most specific first.
_MARKER_PATTERNS: tuple[tuple[str, SongVersion | None], ...] = (
    (r"\b(feat|ft)\.?\s|\bfeaturing\b|^with\s", None),
    (r"\b(album|original|studio|lp)\s+version\b", "studio"),
    (r"\bbonus\s+track\b|\bexplicit\b|\bclean\b", None),
    (r"\bremix(ed)?\b|\brework\b|\bmix\b", "remix"),
    (r"\bdemo\b", "demo"),
    (r"\bacoustic\b|\bunplugged\b", "acoustic"),
    (r"\blive\b|\bin concert\b|\bsessions?\b", "live"),
    (r"\binstrumental\b", "instrumental"),
    (r"\bre-?master(ed)?\b|\bmono\b|\bstereo\b|\banniversary\b", "remaster"),
    (r"\bedit\b|\bsingle\s+version\b|\bversion\b", "edit"),
)
_VERSION_MARKERS = tuple(
    (re.compile(pattern, re.IGNORECASE), version) for pattern, version in _MARKER_PATTERNS
)
_SUFFIX_SEPARATOR = re.compile(r"\s+[-\u2013\u2014]\s+")
_BRACKET_GROUP = re.compile(r"\s*[(\[]([^()\[\]]*)[)\]]")

# Lower is better when several tracks share a title.
_VERSION_RANK: dict[SongVersion, int] = {
    "studio": 0,
    "remaster": 1,
    "edit": 2,
    "instrumental": 3,
    "acoustic": 4,
    "live": 5,
    "demo": 6,
    "remix": 7,
}
_ALBUM_TYPE_RANK = {"album": 0, "single": 1, "compilation": 2}


def _marker_version(text: str) -> tuple[bool, SongVersion | None]:
    """(is a version/credit marker, the version it implies)."""
    for pattern, version in _VERSION_MARKERS:
        if pattern.search(text):
            return True, version
    return False, None


def split_song_title(title: str) -> tuple[str, SongVersion]:
    """A track title without its version and featuring markers, and the version they imply.

    "The Funeral - Remastered 2011" → ("The Funeral", "remaster");
    "Laredo (Live at KEXP)" → ("Laredo", "live"); "(Don't Fear) The Reaper"
    keeps its parentheses. Suffixes that are not markers stay in the title.
    """
    version: SongVersion = "studio"

    def found(marker_version: SongVersion | None) -> None:
        nonlocal version
        if marker_version is not None and _VERSION_RANK[marker_version] > _VERSION_RANK[version]:
            version = marker_version

    parts = _SUFFIX_SEPARATOR.split(title.strip())
    kept = [parts[0]]
    for part in parts[1:]:
        is_marker, marker_version = _marker_version(part)
        if is_marker:
            found(marker_version)
        else:
            kept.append(part)
    remaining = " - ".join(kept)

    def drop_group(match: re.Match[str]) -> str:
        is_marker, marker_version = _marker_version(match.group(1))
        if not is_marker:
            return match.group(0)
        found(marker_version)
        return ""

    cleaned = _BRACKET_GROUP.sub(drop_group, remaining).strip()
    return (cleaned or title.strip()), version


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArtistRecord:
    name: str
    ticketmaster_id: str | None = None
    spotify_id: str | None = None
    musicbrainz_id: str | None = None
    image_url: str | None = None
    genres: tuple[str, ...] = ()
    # Absent for development-mode Spotify apps.
    popularity: int | None = None
    followers: int | None = None
    ticketmaster_url: str | None = None
    spotify_url: str | None = None
    # Ticketmaster only: the attraction's count of upcoming events.
    upcoming_event_count: int | None = None

    def external_ids(self) -> list[tuple[ArtistSource, str]]:
        """(source, id) pairs as ``public.artist_external_ids`` stores them."""
        pairs: list[tuple[ArtistSource, str | None]] = [
            ("ticketmaster", self.ticketmaster_id),
            ("spotify", self.spotify_id),
            ("musicbrainz", self.musicbrainz_id),
        ]
        return [(source, value) for source, value in pairs if value]


@dataclass(frozen=True, slots=True)
class VenueRecord:
    name: str
    city: str | None
    ticketmaster_id: str | None = None
    setlistfm_id: str | None = None
    state: str | None = None
    state_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    address: str | None = None
    postal_code: str | None = None
    timezone: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def external_ids(self) -> list[tuple[VenueSource, str]]:
        pairs: list[tuple[VenueSource, str | None]] = [
            ("ticketmaster", self.ticketmaster_id),
            ("setlistfm", self.setlistfm_id),
        ]
        return [(source, value) for source, value in pairs if value]


@dataclass(frozen=True, slots=True)
class ShowRecord:
    """One concert: an artist at a venue on a local date."""

    ticketmaster_id: str
    # Other Ticketmaster events of the same concert (resale listings, re-issues).
    duplicate_ticketmaster_ids: tuple[str, ...]
    name: str
    # Attraction ids in billing order; the first is the headliner.
    artist_ticketmaster_ids: tuple[str, ...]
    artists: tuple[ArtistRecord, ...]
    venue: VenueRecord
    local_date: date
    local_time: time | None
    # UTC start when the time is known (never for TBA / "no specific time").
    starts_at: datetime | None
    timezone: str | None
    status: ShowStatus
    ticket_url: str | None
    image_url: str | None
    on_sale_at: datetime | None
    price_min: float | None = None
    price_max: float | None = None
    price_currency: str | None = None

    def external_ids(self) -> list[tuple[VenueSource, str]]:
        return [
            ("ticketmaster", i) for i in (self.ticketmaster_id, *self.duplicate_ticketmaster_ids)
        ]


@dataclass(frozen=True, slots=True)
class SongRecord:
    title: str  # without version markers: what songs.title stores and its key comes from
    version: SongVersion
    spotify_id: str
    spotify_url: str | None
    album: str | None
    album_spotify_id: str | None
    album_type: str | None
    release_date: date | None
    duration_ms: int | None
    # Full tracks only: album tracks are "simplified" and carry no ISRC.
    isrc: str | None
    popularity: int | None = None
    disc_number: int | None = None
    track_number: int | None = None


@dataclass(frozen=True, slots=True)
class PlayedSong:
    position: int  # 1-based over performed songs, encores included
    title: str  # without version markers, as a catalogue song's (SongRecord.title)
    set_number: int  # 1-based, in setlist.fm's order of sets (encores included)
    set_name: str | None
    encore: int  # 0 in the main set, 1 for the first encore, …
    is_cover: bool
    cover_artist_name: str | None = None
    cover_artist_mbid: str | None = None
    guest_artist_name: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class PlayedSetlist:
    setlistfm_id: str
    version_id: str | None
    url: str | None  # setlist.fm asks for a link wherever its data is shown
    event_date: date
    artist: ArtistRecord
    venue: VenueRecord | None
    tour_name: str | None
    info: str | None
    last_updated: datetime | None
    songs: tuple[PlayedSong, ...]


# ---------------------------------------------------------------------------------------------
# Artists
# ---------------------------------------------------------------------------------------------

_SPOTIFY_ARTIST_ID = re.compile(r"artist[/:]([0-9A-Za-z]{22})(?![0-9A-Za-z])")
_UNDEFINED_CLASSIFICATION = {"undefined", "other", ""}


def spotify_id_from_link(url: str) -> str | None:
    """The artist id of ``https://open.spotify.com/artist/<id>`` or ``spotify:artist:<id>``."""
    match = _SPOTIFY_ARTIST_ID.search(url)
    return match.group(1) if match else None


def _musicbrainz_id(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(UUID(value.strip()))
    except ValueError:
        return None


def artist_from_ticketmaster(attraction: tm.Attraction) -> ArtistRecord:
    links = attraction.external_links
    spotify_id = next(
        (
            found
            for link in links.get("spotify", [])
            if link.url and (found := spotify_id_from_link(link.url))
        ),
        None,
    )
    musicbrainz_id = next(
        (mbid for link in links.get("musicbrainz", []) if (mbid := _musicbrainz_id(link.id))),
        None,
    )
    return ArtistRecord(
        name=attraction.name.strip(),
        ticketmaster_id=attraction.id,
        spotify_id=spotify_id,
        musicbrainz_id=musicbrainz_id,
        image_url=_best_ticketmaster_image(attraction.images),
        genres=_ticketmaster_genres(attraction.classifications),
        ticketmaster_url=attraction.url,
        spotify_url=f"https://open.spotify.com/artist/{spotify_id}" if spotify_id else None,
        upcoming_event_count=attraction.upcoming_events.total,
    )


def artist_from_spotify(artist: sp.Artist) -> ArtistRecord:
    return ArtistRecord(
        name=artist.name.strip(),
        spotify_id=artist.id,
        image_url=_largest_spotify_image(artist.images),
        genres=tuple(artist.genres),
        popularity=artist.popularity,
        followers=artist.followers.total if artist.followers else None,
        spotify_url=artist.external_urls.spotify,
    )


def artist_from_setlistfm(artist: sfm.Artist) -> ArtistRecord:
    return ArtistRecord(name=artist.name.strip(), musicbrainz_id=_musicbrainz_id(artist.mbid))


def _ticketmaster_genres(classifications: Iterable[tm.Classification]) -> tuple[str, ...]:
    genres: list[str] = []
    for classification in classifications:
        for named in (classification.genre, classification.sub_genre):
            name = (named.name or "").strip() if named else ""
            if name.lower() not in _UNDEFINED_CLASSIFICATION and name not in genres:
                genres.append(name)
    return tuple(genres)


# ---------------------------------------------------------------------------------------------
# Venues
# ---------------------------------------------------------------------------------------------


def _coordinate(value: float | None, limit: float) -> float | None:
    return value if value is not None and -limit <= value <= limit else None


def _country_code(code: str | None) -> str | None:
    code = (code or "").strip().upper()
    return code if re.fullmatch(r"[A-Z]{2}", code) else None


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def venue_from_ticketmaster(venue: tm.Venue) -> VenueRecord:
    location = venue.location or tm.Location()
    return VenueRecord(
        name=venue.name.strip(),
        city=_blank_to_none(venue.city.name if venue.city else None),
        ticketmaster_id=venue.id,
        state=_blank_to_none(venue.state.name if venue.state else None),
        state_code=_blank_to_none(venue.state.state_code if venue.state else None),
        country=_blank_to_none(venue.country.name if venue.country else None),
        country_code=_country_code(venue.country.country_code if venue.country else None),
        address=_blank_to_none(venue.address.line1 if venue.address else None),
        postal_code=_blank_to_none(venue.postal_code),
        timezone=_blank_to_none(venue.timezone),
        latitude=_coordinate(location.latitude, 90),
        longitude=_coordinate(location.longitude, 180),
    )


def venue_from_setlistfm(venue: sfm.Venue) -> VenueRecord | None:
    name = _blank_to_none(venue.name)
    if name is None:
        return None
    city = venue.city or sfm.City()
    coords = city.coords or sfm.Coords()
    return VenueRecord(
        name=name,
        city=_blank_to_none(city.name),
        setlistfm_id=_blank_to_none(venue.id),
        state=_blank_to_none(city.state),
        state_code=_blank_to_none(city.state_code),
        country=_blank_to_none(city.country.name if city.country else None),
        country_code=_country_code(city.country.code if city.country else None),
        latitude=_coordinate(coords.lat, 90),
        longitude=_coordinate(coords.long, 180),
    )


# ---------------------------------------------------------------------------------------------
# Shows
# ---------------------------------------------------------------------------------------------

_ADD_ON_NAME = re.compile(
    r"not a concert ticket|\bparking\b|\bupgrades?\b|\bsuites?\b|\bpass(es)?\b|post[ -]?game"
    r"|^vip\b|\bfast lane\b|\blawn chair\b|\brental\b",
    re.IGNORECASE,
)
_ADD_ON_TYPES = {"upsell", "parking"}
_STATUS: dict[str, ShowStatus] = {
    "onsale": "scheduled",
    "offsale": "scheduled",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "postponed": "postponed",
    "rescheduled": "rescheduled",
}


def is_concert_event(event: tm.Event) -> bool:
    """False for test events and add-ons: parking, VIP, upsells, suites, passes, non-Music."""
    if event.test or _ADD_ON_NAME.search(event.name):
        return False
    segments = {c.segment.id for c in event.classifications if c.segment is not None}
    if tm.MUSIC_SEGMENT_ID not in segments or tm.MISCELLANEOUS_SEGMENT_ID in segments:
        return False
    for classification in event.classifications:
        for named in (classification.type, classification.sub_type):
            if named is not None and (named.name or "").strip().lower() in _ADD_ON_TYPES:
                return False
    return True


def show_status(code: str | None) -> ShowStatus:
    """Ticketmaster status code, both spellings of "cancelled" accepted, in any case."""
    return _STATUS.get((code or "").strip().lower(), "scheduled")


def show_from_ticketmaster(event: tm.Event) -> ShowRecord | None:
    """The show an event stands for, or None for add-ons and events without venue or date."""
    if not is_concert_event(event):
        return None
    start = event.dates.start
    venues = event.embedded.venues
    if start.local_date is None or not venues:
        return None
    venue = venue_from_ticketmaster(venues[0])
    timezone = event.dates.timezone or venue.timezone
    local_time = None if start.no_specific_time or start.time_tba else start.local_time
    public_sale = event.sales.public if event.sales else None
    price = next((p for p in event.price_ranges if p.min is not None), None)
    return ShowRecord(
        ticketmaster_id=event.id,
        duplicate_ticketmaster_ids=(),
        name=event.name.strip(),
        artist_ticketmaster_ids=tuple(a.id for a in event.embedded.attractions),
        artists=tuple(artist_from_ticketmaster(a) for a in event.embedded.attractions),
        venue=venue,
        local_date=start.local_date,
        local_time=local_time,
        starts_at=_utc_start(start, local_time, timezone),
        timezone=timezone,
        status=show_status(event.dates.status.code),
        ticket_url=event.url,
        image_url=_best_ticketmaster_image(event.images),
        on_sale_at=public_sale.start_date_time if public_sale else None,
        price_min=price.min if price else None,
        price_max=price.max if price else None,
        price_currency=_blank_to_none(price.currency.upper() if price and price.currency else None),
    )


def shows_from_ticketmaster(events: Iterable[tm.Event]) -> list[ShowRecord]:
    """Shows from an event list: add-ons dropped, events of one concert collapsed.

    A concert is (headliner, venue, local date); the first event listed keeps
    its id and the others are kept as ``duplicate_ticketmaster_ids``.
    """
    shows: dict[tuple[str | None, str | None, date], ShowRecord] = {}
    for event in events:
        show = show_from_ticketmaster(event)
        if show is None:
            continue
        headliner = show.artist_ticketmaster_ids[0] if show.artist_ticketmaster_ids else None
        key = (headliner, show.venue.ticketmaster_id, show.local_date)
        first = shows.get(key)
        if first is None:
            shows[key] = show
        elif show.ticketmaster_id != first.ticketmaster_id:
            shows[key] = _with_duplicate(first, show.ticketmaster_id)
    return list(shows.values())


def _with_duplicate(show: ShowRecord, event_id: str) -> ShowRecord:
    if event_id in show.duplicate_ticketmaster_ids:
        return show
    fields = {name: getattr(show, name) for name in ShowRecord.__dataclass_fields__}
    fields["duplicate_ticketmaster_ids"] = (*show.duplicate_ticketmaster_ids, event_id)
    return ShowRecord(**fields)


def _utc_start(
    start: tm.EventStart, local_time: time | None, timezone: str | None
) -> datetime | None:
    if local_time is None:
        return None
    if start.date_time is not None:
        return start.date_time.astimezone(UTC)
    if start.local_date is None or timezone is None:
        return None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return datetime.combine(start.local_date, local_time, zone).astimezone(UTC)


def _best_ticketmaster_image(images: Iterable[tm.Image]) -> str | None:
    """The widest 16:9 image, real artwork before Ticketmaster's generic fallbacks."""
    ranked = sorted(
        images,
        key=lambda image: (image.fallback, image.ratio != "16_9", -(image.width or 0)),
    )
    return ranked[0].url if ranked else None


# ---------------------------------------------------------------------------------------------
# Songs
# ---------------------------------------------------------------------------------------------


def _release_date(album: sp.SimplifiedAlbum | None) -> date | None:
    raw = album.release_date if album else None
    if not raw:
        return None
    parts = raw.split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else 1
        day = int(parts[2]) if len(parts) > 2 else 1
        return date(year, month, day)
    except ValueError:
        return None


def song_from_spotify(
    track: sp.SimplifiedTrack, album: sp.SimplifiedAlbum | None = None
) -> SongRecord:
    """A song from a full track (``/tracks/{id}``) or an album track plus its album."""
    full = track if isinstance(track, sp.Track) else None
    album = album or (full.album if full else None)
    title, version = split_song_title(track.name)
    if version == "studio" and album is not None:
        # A plain title on "Acoustic at the Ryman" or "… (Remastered)" is not the original.
        version = _marker_version(album.name)[1] or version
    return SongRecord(
        title=title,
        version=version,
        spotify_id=track.id,
        spotify_url=track.external_urls.spotify,
        album=album.name if album else None,
        album_spotify_id=album.id if album else None,
        album_type=album.album_type if album else None,
        release_date=_release_date(album),
        duration_ms=track.duration_ms if track.duration_ms and track.duration_ms > 0 else None,
        isrc=_isrc(full.external_ids.isrc if full else None),
        popularity=full.popularity if full else None,
        disc_number=track.disc_number,
        track_number=track.track_number,
    )


def _isrc(value: str | None) -> str | None:
    code = (value or "").replace("-", "").strip().upper()
    return code if re.fullmatch(r"[A-Z0-9]{12}", code) else None


def song_preference(song: SongRecord) -> tuple[int, int, date, int, int]:
    """Sort key: studio before remaster, edit, acoustic, live, demo and remix; then albums
    before singles and compilations; then the earliest release."""
    return (
        _VERSION_RANK[song.version],
        _ALBUM_TYPE_RANK.get(song.album_type or "", 3),
        song.release_date or date.max,
        song.disc_number or 0,
        song.track_number or 0,
    )


def catalogue_from_spotify(
    songs: Sequence[SongRecord], title_keys: Sequence[str]
) -> list[SongRecord]:
    """One song per title key (``title_keys[i]`` is the database's key of ``songs[i]``'s
    title): the preferred version, the original studio recording."""
    best: dict[str, SongRecord] = {}
    for song, key in zip(songs, title_keys, strict=True):
        current = best.get(key)
        if current is None or song_preference(song) < song_preference(current):
            best[key] = song
    ranked = sorted(best.items(), key=lambda item: (item[1].release_date or date.max, item[0]))
    return [song for _, song in ranked]


def _largest_spotify_image(images: Iterable[sp.Image]) -> str | None:
    ranked = sorted(images, key=lambda image: -(image.width or 0))
    return ranked[0].url if ranked else None


# ---------------------------------------------------------------------------------------------
# Played setlists
# ---------------------------------------------------------------------------------------------


def played_setlist_from_setlistfm(setlist: sfm.Setlist) -> PlayedSetlist:
    """Songs in playing order; tape entries and unnamed songs left out."""
    songs: list[PlayedSong] = []
    for set_number, song_set in enumerate(setlist.sets, start=1):
        for song in song_set.song:
            name = song.name.strip()
            if song.tape or not name:
                continue
            songs.append(
                PlayedSong(
                    position=len(songs) + 1,
                    title=split_song_title(name)[0],
                    set_number=set_number,
                    set_name=_blank_to_none(song_set.name),
                    encore=song_set.encore or 0,
                    is_cover=song.cover is not None,
                    cover_artist_name=_blank_to_none(song.cover.name) if song.cover else None,
                    cover_artist_mbid=_musicbrainz_id(song.cover.mbid) if song.cover else None,
                    guest_artist_name=_blank_to_none(song.with_.name) if song.with_ else None,
                    info=_blank_to_none(song.info),
                )
            )
    return PlayedSetlist(
        setlistfm_id=setlist.id,
        version_id=setlist.version_id,
        url=setlist.url,
        event_date=setlist.event_date,
        artist=artist_from_setlistfm(setlist.artist),
        venue=venue_from_setlistfm(setlist.venue) if setlist.venue else None,
        tour_name=_blank_to_none(setlist.tour.name) if setlist.tour else None,
        info=_blank_to_none(setlist.info),
        last_updated=setlist.last_updated,
        songs=tuple(songs),
    )
