"""setlist.fm setlist answers for Band of Horses, shaped exactly like the API's
(``tests/sources/payloads/setlistfm_search_setlists.json``): ``dd-MM-yyyy``
dates, songs nested in ``sets.set[]``, ``encore`` numbers, ``tape`` intros,
``cover`` artist objects, ``info`` notes, paged lists newest first, and 404 for
a search without a match."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

from tests.sources.conftest import payload
from tests.sync.upstream import BOH_MBID, SETLISTFM

BOH_ARTIST = {
    "mbid": BOH_MBID,
    "tmid": 1013827,
    "name": "Band of Horses",
    "sortName": "Band of Horses",
    "disambiguation": "",
    "url": "https://www.setlist.fm/setlists/band-of-horses-53d6e3b1.html",
}

ANTHEM = {
    "id": "4bd6f3a2",
    "name": "The Anthem",
    "city": {
        "id": "4140963",
        "name": "Washington",
        "state": "Washington, D.C.",
        "stateCode": "DC",
        "coords": {"lat": 38.8951118, "long": -77.0363658},
        "country": {"code": "US", "name": "United States"},
    },
    "url": "https://www.setlist.fm/venue/the-anthem-washington-dc-usa-4bd6f3a2.html",
}

ZILKER_PARK = {
    "id": "6bd6ca7e",
    "name": "Zilker Park",
    "city": {
        "id": "4671654",
        "name": "Austin",
        "state": "Texas",
        "stateCode": "TX",
        "coords": {"lat": 30.267153, "long": -97.7430608},
        "country": {"code": "US", "name": "United States"},
    },
    "url": "https://www.setlist.fm/venue/zilker-park-austin-tx-usa-6bd6ca7e.html",
}

STUBBS = {
    "id": "53d6b3e5",
    "name": "Stubb's BBQ",
    "city": ZILKER_PARK["city"],
    "url": "https://www.setlist.fm/venue/stubbs-bbq-austin-tx-usa-53d6b3e5.html",
}

# A Band of Horses show as setlist.fm writes it: a tape intro, an "info"
# note, a cover (Them Two's "Am I a Good Man", which the band recorded), a
# typographic apostrophe, a song its Spotify albums in the test catalogue
# lack ("General Specific"), and an encore.
SHOW_SETS: dict[str, Any] = {
    "set": [
        {
            "song": [
                {"name": "Intro", "tape": True},
                {"name": "The Funeral"},
                {"name": "Laredo", "info": "extended outro"},
                {"name": "Am I a Good Man",
                 "cover": {"name": "Them Two", "sortName": "Them Two",
                           "url": "https://www.setlist.fm/setlists/them-two-6bd3e2f6.html"}},
                {"name": "Is There a Ghost"},
            ]
        },
        {
            "encore": 1,
            "song": [
                {"name": "No One\u2019s Gonna Love You"},
                {"name": "General Specific"},
                {"name": "Outro", "tape": True},
            ],
        },
    ]
}


def setlistfm_date(day: date) -> str:
    return day.strftime("%d-%m-%Y")


def setlist(
    setlist_id: str,
    day: date,
    venue: dict[str, Any] = ANTHEM,
    sets: dict[str, Any] | None = None,
    *,
    version_id: str = "7be1d6a0",
    last_updated: str = "2026-11-30T23:41:07.000+0000",
    tour: str | None = "Things Are Great Tour",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": setlist_id,
        "versionId": version_id,
        "eventDate": setlistfm_date(day),
        "lastUpdated": last_updated,
        "artist": copy.deepcopy(BOH_ARTIST),
        "venue": copy.deepcopy(venue),
        "sets": copy.deepcopy(SHOW_SETS if sets is None else sets),
        "url": f"https://www.setlist.fm/setlist/band-of-horses/{day.year}/"
               f"{venue['name'].lower().replace(' ', '-')}-{setlist_id}.html",
    }
    if tour:
        body["tour"] = {"name": tour}
    return body


def songs(*names: str, encore: int | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"song": [{"name": n} for n in names]}
    if encore:
        block["encore"] = encore
    return block


def page(setlists: list[dict[str, Any]], *, number: int = 1, total: int | None = None
         ) -> dict[str, Any]:
    body: dict[str, Any] = payload("setlistfm_search_setlists.json")
    body.update({"page": number, "total": len(setlists) if total is None else total,
                 "setlist": setlists})
    return body


NOT_FOUND: dict[str, Any] = payload("setlistfm_404.json")

SEARCH_SETLISTS = re.compile(re.escape(SETLISTFM + "/search/setlists") + r"(\?.*)?$")
ARTIST_SETLISTS = re.compile(
    re.escape(f"{SETLISTFM}/artist/{BOH_MBID}/setlists") + r"(\?.*)?$"
)
