"""Configuration from the environment, read once per process.

Base URLs default to the real services so a test can point any client at a
local server by setting one variable. Secrets are ``SecretStr`` so they never
show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.quota import DailyQuota


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    database_url: str = "postgresql://postgres@127.0.0.1:54322/postgres"
    # Connections per process; cloud functions run one request at a time per
    # instance, the local server and the worker run a few threads.
    database_pool_max_size: int = Field(default=10, ge=1)
    # How long a request waits for a connection before answering 503.
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0)

    supabase_url: str = "http://127.0.0.1:54321"
    supabase_jwt_secret: SecretStr | None = None
    # Overrides ``<SUPABASE_URL>/auth/v1/.well-known/jwks.json`` when set.
    supabase_jwks_url: str | None = None
    # Shared secret presented by internal callers (pg_cron webhook, database
    # webhooks, the queue worker) in the ``X-Internal-Secret`` header.
    internal_secret: SecretStr | None = None

    ticketmaster_api_key: SecretStr | None = None
    ticketmaster_base_url: str = "https://app.ticketmaster.com/discovery/v2"
    ticketmaster_requests_per_second: float = Field(default=5.0, gt=0)

    spotify_client_id: str | None = None
    spotify_client_secret: SecretStr | None = None
    spotify_api_base_url: str = "https://api.spotify.com/v1"
    spotify_accounts_base_url: str = "https://accounts.spotify.com"
    spotify_requests_per_second: float = Field(default=5.0, gt=0)

    setlistfm_api_key: SecretStr | None = None
    setlistfm_base_url: str = "https://api.setlist.fm/rest/1.0"
    setlistfm_requests_per_second: float = Field(default=2.0, gt=0)

    # Daily quotas, split into two shares: request traffic (functions answering
    # clients) may use at most the quota less the sync's reserve; the sync
    # engine (queue worker, internal callers) may use all of it. Ticketmaster's
    # schedules need up to 3,840 calls on a busy day (README: Schedules).
    ticketmaster_daily_quota: int | None = Field(default=5000, gt=0)
    ticketmaster_sync_reserved_calls: int = Field(default=3000, ge=0)
    spotify_daily_quota: int | None = Field(default=None, gt=0)
    spotify_sync_reserved_calls: int = Field(default=0, ge=0)
    setlistfm_daily_quota: int | None = Field(default=1440, gt=0)
    setlistfm_sync_reserved_calls: int = Field(default=720, ge=0)

    # Search answers are shared for this long (seconds) per normalised query.
    search_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    # Per-client budgets of requests that call a source: a client may make
    # ``burst`` such requests at once, then ``per_minute`` a minute.
    client_search_per_minute: float = Field(default=20.0, gt=0)
    client_search_burst: int = Field(default=10, ge=1)
    client_import_per_minute: float = Field(default=6.0, gt=0)
    client_import_burst: int = Field(default=5, ge=1)
    # X-Forwarded-For entries appended by the platform's own proxies: Cloud Run's
    # front end appends the address it saw (1); an external load balancer in
    # front adds one more (2). Entries before them are client-supplied.
    trusted_proxy_hops: int = Field(default=1, ge=0)
    # Longest a request waits for another caller's identical import before 202.
    single_flight_wait_seconds: float = Field(default=10.0, ge=0)

    http_timeout_seconds: float = Field(default=10.0, gt=0)
    # Longest a source call waits for a rate-limit slot before failing with
    # RateLimited (a request answers 503 + Retry-After). Request paths keep it
    # short; the queue worker may set a longer one in its own environment.
    source_max_slot_wait_seconds: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _reserves_fit_their_quotas(self) -> Settings:
        for provider in ("ticketmaster", "spotify", "setlistfm"):
            quota = getattr(self, f"{provider}_daily_quota")
            reserved = getattr(self, f"{provider}_sync_reserved_calls")
            if quota is not None and reserved > quota:
                raise ValueError(f"{provider.upper()}_SYNC_RESERVED_CALLS exceeds its daily quota")
        return self

    def daily_quota(self, provider: str) -> DailyQuota | None:
        """The provider's daily quota and the sync's reserve, None without a daily quota."""
        limit: int | None = getattr(self, f"{provider}_daily_quota")
        if limit is None:
            return None
        return DailyQuota(limit, getattr(self, f"{provider}_sync_reserved_calls"))

    @property
    def jwt_issuer(self) -> str:
        return f"{self.supabase_url.rstrip('/')}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return self.supabase_jwks_url or f"{self.jwt_issuer}/.well-known/jwks.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
