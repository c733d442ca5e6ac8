"""``./dev deploy``: the dry run, the production gate, db push semantics, the packages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from devstack.cluster import free_port
from devstack.deploy import (
    DeployError,
    DeployRun,
    build_package,
    execute,
    latest_local_version,
    load_target,
    plan,
    push_migrations,
)
from devstack.migrate import PROJECT_ROOT, latest_version
from devstack.server import function_names
from tests.support.db import Connection

REVISION = "0123456789abcdef0123456789abcdef01234567"
SECRET = "a-real-looking-internal-secret-4f1c"


@pytest.fixture
def gcloud_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gcloud`` first on PATH that only records that it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gcloud.log"
    shim = bin_dir / "gcloud"
    shim.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _environment(database_url: str, gcloud_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{gcloud_dir}{os.pathsep}{env['PATH']}"
    for environment in ("STAGING", "PRODUCTION"):
        env[f"THESET_{environment}_DATABASE_URL"] = database_url
        env[f"THESET_{environment}_INTERNAL_SECRET"] = SECRET
        env[f"THESET_{environment}_GCP_PROJECT"] = f"theset-{environment.lower()}"
    return env


def test_the_dry_run_prints_every_step_and_runs_none(
    database_url: str, db: Connection, gcloud_log: Path
) -> None:
    migrations_before = db.execute(
        "select count(*) as n from supabase_migrations.schema_migrations").fetchone()
    result = subprocess.run(
        [sys.executable, "-m", "devstack.deploy", "--env", "production", "--dry-run"],
        env=_environment(database_url, gcloud_log.parent / "bin"),
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "refuse unless staging passed this revision" in out
    assert "supabase db push semantics" in out
    assert f"up to {latest_local_version()}" in out
    for name in function_names():
        assert f"gcloud functions deploy {name} --gen2 --project=theset-production" in out
        assert f"--entry-point={name}" in out
    assert "gcloud secrets versions add theset-production-internal-secret --data-file=-" in out
    assert "schedule_run_jobs_webhook('https://europe-west1-theset-production.cloudfunctions" \
           ".net/run_jobs')" in out
    assert "schedule_new_show_webhook(" in out
    assert "rpc/popular_artists" in out
    assert SECRET not in out and SECRET not in result.stderr
    # Nothing ran: no gcloud call, no package, no row.
    assert not gcloud_log.exists()
    assert db.execute("select count(*) as n from ops.deployments").fetchone() == {"n": 0}
    assert db.execute(
        "select count(*) as n from supabase_migrations.schema_migrations"
    ).fetchone() == migrations_before


def test_production_refuses_a_revision_staging_has_not_passed(
    database_url: str, db: Connection, gcloud_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THESET_STAGING_DATABASE_URL", database_url)
    monkeypatch.setenv("THESET_PRODUCTION_DATABASE_URL", database_url)
    monkeypatch.setenv("THESET_PRODUCTION_GCP_PROJECT", "theset-production")
    run = DeployRun("production", load_target("production"), REVISION,
                    staging_url=load_target("staging").database_url)
    # Deployed to staging but its smoke test never passed: still refused.
    db.execute("insert into ops.deployments (environment, revision, deployed_at)"
               " values ('staging', %s, now())", [REVISION])
    with pytest.raises(DeployError, match="no passed smoke test on staging"):
        execute(plan(run), dry_run=False)
    assert not gcloud_log.exists()
    assert db.execute(
        "select count(*) as n from ops.deployments where environment = 'production'"
    ).fetchone() == {"n": 0}

    db.execute("update ops.deployments set smoke_passed_at = now() where revision = %s",
               [REVISION])
    run.check_gate()  # passes now
    other = DeployRun("production", load_target("production"), "f" * 40,
                      staging_url=load_target("staging").database_url)
    with pytest.raises(DeployError):
        other.check_gate()


def test_migrations_are_pushed_never_reset(database_url: str, db: Connection) -> None:
    assert push_migrations(database_url) == []
    db.execute("insert into supabase_migrations.schema_migrations (version, name)"
               " values ('29991231000000', 'from_another_branch')")
    with pytest.raises(DeployError, match="29991231000000"):
        push_migrations(database_url)
    # The project's tables and history are untouched.
    assert db.execute("select count(*) as n from supabase_migrations.schema_migrations"
                      " where version = '29991231000000'").fetchone() == {"n": 1}


def test_a_package_holds_the_function_shared_and_pinned_requirements(tmp_path: Path) -> None:
    package = build_package("cast_vote", tmp_path)
    assert (package / "main.py").read_text() == (
        PROJECT_ROOT / "functions" / "cast_vote" / "main.py").read_text()
    assert (package / "shared" / "db.py").is_file()
    assert not list(package.rglob("__pycache__"))
    requirements = (package / "requirements.txt").read_text().split()
    assert all("==" in line for line in requirements)
    pinned = {line.split("==")[0].lower(): line.split("==")[1] for line in requirements}
    for name in ("functions-framework", "psycopg", "psycopg-binary", "psycopg-pool",
                 "pydantic", "httpx", "pyjwt", "cryptography", "flask"):
        assert pinned[name] == version(name), name
    # Dev tooling stays out of the functions.
    for name in ("pytest", "pgmq", "mypy", "ruff"):
        assert name not in pinned


@pytest.fixture
def served_health(tmp_path: Path, database_url: str) -> Iterator[str]:
    package = build_package("health", tmp_path)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # The package's own shared/ comes first, as in the function's container.
    env.update({"PYTHONPATH": str(package), "DATABASE_URL": database_url})
    which = subprocess.run(
        [sys.executable, "-c", "import shared, main; print(shared.__file__)"],
        cwd=package, env=env, capture_output=True, text=True, check=True,
    )
    assert which.stdout.strip().startswith(str(package))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "functions-framework"), "--target=health",
         "--source=main.py", "--host=127.0.0.1", f"--port={port}"],
        cwd=package, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_built_package_imports_and_serves_health(served_health: str, database_url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            response = httpx.get(served_health, timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "database": "ok", "migration_version": latest_version(database_url)}


def test_the_new_show_webhook_posts_what_create_setlist_accepts(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With stand-ins for pg_net and Vault (as tests/sync/test_schedules.py), a new
    show posts Supabase's Database Webhook payload, which create_setlist takes."""
    from werkzeug.test import Client

    from devstack.fixtures import BAND_OF_HORSES_SONGS
    from devstack.server import build_app
    from shared.config import get_settings
    from tests.support.catalogue import (
        insert_artist,
        insert_show,
        insert_songs,
        insert_venue,
    )

    with pytest.raises(Exception, match="pg_net"):
        db.execute("select private.schedule_new_show_webhook('https://fn.example.com/x')")
    db.execute("create schema net")
    db.execute("create table net.posts (url text, headers jsonb, body jsonb)")
    db.execute(
        "create function net.http_post(url text, body jsonb default '{}',"
        " params jsonb default '{}', headers jsonb default '{}',"
        " timeout_milliseconds int default 5000) returns bigint"
        " language sql as $$ insert into net.posts values (url, headers, body);"
        " select 1::bigint $$")
    db.execute("create schema vault")
    db.execute("create view vault.decrypted_secrets as"
               f" select 'internal_secret'::text as name, '{SECRET}'::text as decrypted_secret")
    url = "https://europe-west1-theset-staging.cloudfunctions.net/create_setlist"
    db.execute("select private.schedule_new_show_webhook(%s)", [url])
    trigger = db.execute("select pg_get_triggerdef(oid) as d from pg_trigger"
                         " where tgname = 'shows_create_setlist_webhook'").fetchone()
    assert trigger is not None and SECRET not in trigger["d"]

    artist = insert_artist(db, "Band of Horses")
    insert_songs(db, artist, list(BAND_OF_HORSES_SONGS))
    show = insert_show(db, artist, insert_venue(db, "Crypto.com Arena"), 30)
    post = db.execute("select * from net.posts").fetchone()
    assert post is not None and post["url"] == url
    assert post["headers"]["X-Internal-Secret"] == SECRET
    assert post["body"]["type"] == "INSERT" and post["body"]["record"]["id"] == str(show)

    monkeypatch.setenv("INTERNAL_SECRET", SECRET)
    get_settings.cache_clear()
    answer = Client(build_app()).post(
        "/create_setlist", json=post["body"], headers={"X-Internal-Secret": SECRET})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json is not None and answer.json["status"] == "ready"

    db.execute("select private.unschedule_new_show_webhook()")
    insert_show(db, artist, insert_venue(db, "The Anthem"), 40)
    assert db.execute("select count(*) as n from net.posts").fetchone() == {"n": 1}
