"""Pydantic models of Spotify Web API responses.

Development-mode apps get no ``popularity`` or ``followers`` and often empty
``genres`` (February 2026 change), simplified tracks carry no album, ISRC or
popularity: all optional. Ids and names are required.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Image(_Model):
    url: NonEmptyStr
    width: int | None = None
    height: int | None = None


class ExternalUrls(_Model):
    spotify: str | None = None


class ExternalIds(_Model):
    isrc: str | None = None


class Followers(_Model):
    total: int | None = None


class SimplifiedArtist(_Model):
    id: NonEmptyStr
    name: NonEmptyStr


class Artist(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    genres: list[str] = []
    images: list[Image] = []
    popularity: int | None = None
    followers: Followers | None = None
    external_urls: ExternalUrls = ExternalUrls()


class SimplifiedAlbum(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    album_type: str | None = None
    # Only on items of /artists/{id}/albums: album, single, compilation, appears_on.
    album_group: str | None = None
    # ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` according to ``release_date_precision``.
    release_date: str | None = None
    release_date_precision: Literal["year", "month", "day"] | None = None
    total_tracks: int | None = None
    images: list[Image] = []
    artists: list[SimplifiedArtist] = []
    external_urls: ExternalUrls = ExternalUrls()


class SimplifiedTrack(_Model):
    id: NonEmptyStr
    name: NonEmptyStr
    duration_ms: int | None = None
    explicit: bool = False
    disc_number: int | None = None
    track_number: int | None = None
    is_local: bool = False
    preview_url: str | None = None
    artists: list[SimplifiedArtist] = []
    external_urls: ExternalUrls = ExternalUrls()


class Track(SimplifiedTrack):
    album: SimplifiedAlbum | None = None
    external_ids: ExternalIds = ExternalIds()
    popularity: int | None = None


class ArtistsPaging(_Model):
    href: str | None = None
    items: list[Artist]
    limit: int
    next: str | None = None
    offset: int = 0
    previous: str | None = None
    total: int


class AlbumsPaging(_Model):
    href: str | None = None
    items: list[SimplifiedAlbum]
    limit: int
    next: str | None = None
    offset: int = 0
    previous: str | None = None
    total: int


class TracksPaging(_Model):
    href: str | None = None
    items: list[SimplifiedTrack]
    limit: int
    next: str | None = None
    offset: int = 0
    previous: str | None = None
    total: int


class ArtistSearchResponse(_Model):
    artists: ArtistsPaging


class SeveralArtistsResponse(_Model):
    # Unknown ids come back as null entries.
    artists: list[Artist | None]


class Cursors(_Model):
    after: str | None = None
    before: str | None = None


class ArtistsCursorPaging(_Model):
    href: str | None = None
    items: list[Artist]
    limit: int
    next: str | None = None
    cursors: Cursors = Cursors()
    total: int | None = None


class FollowedArtistsResponse(_Model):
    artists: ArtistsCursorPaging


class AccessToken(_Model):
    access_token: NonEmptyStr
    token_type: str = "bearer"  # noqa: S105 - a token kind, not a secret
    expires_in: int = Field(gt=0)
