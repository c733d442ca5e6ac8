"""Clients for the external sources (Ticketmaster, Spotify, setlist.fm) and their records.

Build one client per process and reuse it::

    tm = TicketmasterClient.from_settings()      # DatabaseRateLimiter + ApiCallLog by default
    attractions = tm.search_attractions("band of horses")
    shows = records.shows_from_ticketmaster(tm.upcoming_events(attractions[0].id))

* ``ticketmaster``, ``spotify``, ``setlistfm``: synchronous clients returning the
  providers' own shapes (pydantic models in ``*_models``).
* ``records``: the one transformation from those shapes to normalised records
  (artists, venues, shows, songs, played setlists) and the name/title keys.
* ``errors``: what a call can raise; all subclasses of ``SourceError``.
* ``http``: the shared request machinery (slots, retries, classification,
  observation); ``ratelimit`` and ``calllog`` its pluggable parts.
"""

from shared.sources.errors import (
    BadCredentials,
    ClientError,
    ConfigurationError,
    Forbidden,
    InvalidPayload,
    NotFound,
    QuotaExhausted,
    RateLimited,
    SourceError,
    UpstreamError,
)
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient

__all__ = [
    "BadCredentials",
    "ClientError",
    "ConfigurationError",
    "Forbidden",
    "InvalidPayload",
    "NotFound",
    "QuotaExhausted",
    "RateLimited",
    "SetlistFmClient",
    "SourceError",
    "SpotifyClient",
    "TicketmasterClient",
    "UpstreamError",
]
