"""Configuration from the environment, read once per process.

Base URLs default to the real services so a test can point any client at a
local server by setting one variable. Secrets are ``SecretStr`` so they never
show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    http_timeout_seconds: float = Field(default=10.0, gt=0)
    # Longest a source call waits for a rate-limit slot before failing with
    # RateLimited (a request answers 503 + Retry-After). Request paths keep it
    # short; the queue worker may set a longer one in its own environment.
    source_max_slot_wait_seconds: float = Field(default=10.0, ge=0)

    @property
    def jwt_issuer(self) -> str:
        return f"{self.supabase_url.rstrip('/')}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return self.supabase_jwks_url or f"{self.jwt_issuer}/.well-known/jwks.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
