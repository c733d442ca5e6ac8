"""``theset-stack``: bring the local stack up, report on it, stop it, rebuild it.

The stack: a private PostgreSQL cluster (platform, migrations, seed), every
function served at ``http://127.0.0.1:<port>/<name>``, the queue worker and the
vote broadcast flush loop.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from hashlib import sha256
from pathlib import Path

import httpx

from devstack.cluster import Cluster, running_as_root
from devstack.migrate import (
    PROJECT_ROOT,
    apply_migrations,
    apply_platform,
    apply_seed,
    latest_version,
)
from devstack.server import function_names
from devstack.tokens import mint_local_token

LOCAL_DIR = PROJECT_ROOT / ".local"
DB_PORT = int(os.environ.get("THESET_DB_PORT", "54322"))
FUNCTIONS_PORT = int(os.environ.get("THESET_FUNCTIONS_PORT", "54330"))
# Local-only secrets, public on purpose (the Supabase CLI does the same).
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105
LOCAL_INTERNAL_SECRET = "local-internal-secret-not-for-production"  # noqa: S105
LOCAL_SUPABASE_URL = "http://127.0.0.1:54321"
# The first demo user of supabase/seed.sql.
DEMO_USER_ID = "00000000-0000-4000-8000-000000000001"
DEMO_USER_EMAIL = "fan.one@example.com"

DEV_SETTINGS = {"max_connections": "200", "log_min_messages": "warning"}


def cluster_root() -> Path:
    """Where the cluster lives: ``.local/pg``, unless the ``postgres`` user
    cannot reach the project folder (a checkout under /root, say)."""
    preferred = LOCAL_DIR / "pg"
    if not running_as_root():
        return preferred
    reachable = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(LOCAL_DIR)], check=False
    )
    if reachable.returncode == 0:
        return preferred
    digest = sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"theset-{digest}"  # noqa: S108 - owned by postgres, per project


def dev_cluster() -> Cluster:
    return Cluster(cluster_root(), DB_PORT)


def stack_environment(cluster: Cluster) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", cluster.url())
    env.setdefault("SUPABASE_URL", LOCAL_SUPABASE_URL)
    env.setdefault("SUPABASE_JWT_SECRET", LOCAL_JWT_SECRET)
    env.setdefault("INTERNAL_SECRET", LOCAL_INTERNAL_SECRET)
    return env


def _pid_file(name: str) -> Path:
    return LOCAL_DIR / f"{name}.pid"


def _alive(name: str) -> int | None:
    path = _pid_file(name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        path.unlink(missing_ok=True)
        return None
    return pid


def _start_process(name: str, command: list[str], env: dict[str, str]) -> None:
    if _alive(name):
        return
    log = (LOCAL_DIR / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        start_new_session=True,
    )
    _pid_file(name).write_text(str(process.pid))


def _stop_process(name: str) -> None:
    pid = _alive(name)
    if pid is None:
        return
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    _pid_file(name).unlink(missing_ok=True)


def functions_url(name: str = "") -> str:
    return f"http://127.0.0.1:{FUNCTIONS_PORT}/{name}"


def up() -> None:
    LOCAL_DIR.mkdir(exist_ok=True)
    cluster = dev_cluster()
    fresh = not cluster.exists()
    if fresh:
        print(f"creating the database cluster in {cluster.root}")
        cluster.init(DEV_SETTINGS)
    if not cluster.is_running():
        cluster.start()
    url = cluster.url()
    apply_platform(cluster.admin_url())
    applied = apply_migrations(url)
    for migration in applied:
        print(f"applied migration {migration.version}_{migration.name}")
    if fresh:
        apply_seed(url)
        print("loaded supabase/seed.sql")

    env = stack_environment(cluster)
    python = sys.executable
    _start_process(
        "functions",
        [
            python, "-m", "gunicorn", "devstack.server:build_app()",
            "--bind", f"127.0.0.1:{FUNCTIONS_PORT}",
            "--worker-class", "gthread", "--workers", "2", "--threads", "8",
        ],
        env,
    )
    _wait_for_health()
    # The queue worker: locally it runs as a loop (in production pg_cron calls run_jobs).
    # A queue job may wait longer for a source's rate-limit slot than a request
    # a fan is waiting on (SOURCE_MAX_SLOT_WAIT_SECONDS, 10 s by default).
    worker_env = {"SOURCE_MAX_SLOT_WAIT_SECONDS": "60", **env}
    _start_process("worker", [python, "-m", "shared.sync.worker"], worker_env)
    # Vote broadcasts: in production a Supabase Cron job runs the flush every
    # second; the local pg_cron 1.4 has minute schedules only.
    _start_process("vote-broadcasts", [python, "-m", "devstack.vote_broadcasts"], env)
    print(f"database   {url}")
    for name in function_names():
        print(f"function   {functions_url(name)}")
    token = mint_local_token(
        DEMO_USER_ID, email=DEMO_USER_EMAIL, expires_in=24 * 3600,
        secret=env["SUPABASE_JWT_SECRET"], issuer=f"{env['SUPABASE_URL']}/auth/v1",
    )
    print(f"\ndemo user {DEMO_USER_EMAIL} ({DEMO_USER_ID}), access token valid 24 h:")
    print(f"export THESET_TOKEN={token}")
    print("stop with:  ./dev stop")


def _wait_for_health(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(functions_url("health"), timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the functions server did not answer; see {LOCAL_DIR}/functions.log")
        time.sleep(0.3)


def stop() -> None:
    _stop_process("vote-broadcasts")
    _stop_process("worker")
    _stop_process("functions")
    dev_cluster().stop()
    print("stopped")


def status() -> None:
    cluster = dev_cluster()
    running = cluster.is_running()
    print(f"database   {'running' if running else 'stopped'}  {cluster.url()}")
    if running:
        print(f"migration  {latest_version(cluster.url())}")
    print(f"functions  {'running' if _alive('functions') else 'stopped'}  {functions_url()}")
    print(f"worker     {'running' if _alive('worker') else 'stopped'}  {LOCAL_DIR / 'worker.log'}")
    print(f"broadcasts {'running' if _alive('vote-broadcasts') else 'stopped'}"
          f"  {LOCAL_DIR / 'vote-broadcasts.log'}")
    if running:
        _print_sync_status(cluster.url())


def _print_sync_status(url: str) -> None:
    """The sync engine's monitoring tables (queue per job kind, source APIs)."""
    import psycopg
    from psycopg.rows import dict_row

    from devstack.status import render
    from shared.sync.monitoring import fetch_status

    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            status = fetch_status(conn)
    except psycopg.Error as error:
        print(f"sync       status unavailable ({type(error).__name__}); run ./dev up to migrate")
        return
    render(status)


def reset() -> None:
    stop()
    dev_cluster().destroy()
    up()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="theset-stack", description=__doc__)
    commands = {"up": up, "stop": stop, "status": status, "reset": reset}
    parser.add_argument("command", choices=sorted(commands))
    args = parser.parse_args(argv)
    commands[args.command]()


if __name__ == "__main__":
    main()
