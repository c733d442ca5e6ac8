"""The local server mounts every function at /<name>, as deployed."""

from __future__ import annotations

import tomllib

import pytest
from werkzeug.test import Client

from devstack.cli import DB_PORT, LOCAL_SUPABASE_URL
from devstack.migrate import PROJECT_ROOT, SEED_FILE, latest_version
from devstack.server import build_app, function_names
from shared.config import get_settings
from shared.db import close_pool


def test_every_function_directory_is_served() -> None:
    assert "health" in function_names()


def test_health_reports_the_database_and_migration(database_url: str) -> None:
    client = Client(build_app())
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "database": "ok",
        "migration_version": latest_version(database_url),
    }
    assert client.get("/health/").status_code == 200


def test_unknown_paths_and_methods_answer_json_errors(database_url: str) -> None:
    client = Client(build_app())
    missing = client.get("/no_such_function")
    assert missing.status_code == 404
    assert missing.json == {"error": {"code": "not_found", "message": "no function at this path"}}
    wrong_method = client.delete("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json is not None
    assert wrong_method.json["error"]["code"] == "method_not_allowed"


def test_health_answers_503_when_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_POOL_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/postgres")
    get_settings.cache_clear()
    close_pool()
    response = Client(build_app()).get("/health")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"]["code"] == "unavailable"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_the_supabase_cli_config_matches_the_local_stack() -> None:
    config = tomllib.loads((PROJECT_ROOT / "supabase" / "config.toml").read_text())
    assert config["db"]["port"] == DB_PORT
    assert config["db"]["major_version"] == 15
    assert LOCAL_SUPABASE_URL.endswith(f":{config['api']['port']}")
    assert (PROJECT_ROOT / "supabase" / config["db"]["seed"]["sql_paths"][0]) == SEED_FILE
