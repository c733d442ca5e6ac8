"""``./dev deploy --env staging|production [--dry-run]``: one revision to one environment.

Target: a hosted Supabase project per environment (the database) and Cloud Run
functions (``gcloud functions deploy --gen2``, runtime python311, HTTP trigger,
functions-framework entry point = the function's name) in one Google Cloud
project per environment. The steps, in order:

1. the revision: a clean work tree at ``HEAD`` (a dry run only warns);
2. production only: refuse unless staging holds a passed smoke test of this
   very revision (``ops.deployments`` in the staging database);
3. the migrations, with ``supabase db push`` semantics: each file not yet in
   ``supabase_migrations.schema_migrations`` runs in its own transaction and is
   recorded; a version the project has but this checkout lacks stops the deploy;
   never a reset, never the seed;
4. the deploy is recorded (``ops.deployments``);
5. the functions' secrets go to Secret Manager (value on stdin, never on a
   command line); the internal secret also goes to Vault, where pg_cron and
   the new-show webhook read it;
6. every ``functions/<name>/`` is packaged with ``shared/`` and a
   ``requirements.txt`` pinned to the versions the tests ran with, then deployed;
7. the ``run_jobs`` cron webhook and the Database Webhook on new shows are
   registered (both read the secret from Vault at each call);
8. smoke test: ``health`` answers 200 with this checkout's latest migration,
   and the ``popular_artists`` RPC answers through the project's REST API;
9. the smoke test is recorded as passed: only now may production take this revision.

``--dry-run`` prints every step (commands and SQL, secrets shown as the name of
the variable they come from) and runs none: no connection, no ``gcloud``.
Configuration comes from ``THESET_<ENV>_*`` variables (see README, Deploy).
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import httpx
import psycopg
from packaging.requirements import Requirement
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.migrate import MIGRATIONS_DIR, PROJECT_ROOT, apply_migrations, pending_migrations
from devstack.server import FUNCTIONS_DIR, function_names

ENVIRONMENTS = ("staging", "production")
RUNTIME = "python311"
BUILD_DIR = PROJECT_ROOT / "build" / "functions"
SHARED_DIR = PROJECT_ROOT / "shared"
VAULT_SECRET_NAME = "internal_secret"  # noqa: S105 - the name, not the secret
# Per function: request timeout (s) and memory. run_jobs drains for up to
# 50 s of budget and lets started jobs finish.
FUNCTION_TIMEOUTS = {"run_jobs": 180}
DEFAULT_TIMEOUT = 60
MEMORY = "256Mi"


class DeployTarget(BaseSettings):
    """One environment, from ``THESET_STAGING_*`` or ``THESET_PRODUCTION_*``."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # Direct or session-pooler connection (port 5432) as `postgres`: migrations,
    # Vault, webhook registration and the deploy record.
    database_url: SecretStr | None = None
    # What the functions get as DATABASE_URL: Supavisor transaction mode (6543).
    functions_database_url: SecretStr | None = None
    gcp_project: str | None = None
    gcp_region: str = "europe-west1"
    supabase_url: str | None = None
    # The publishable (anon) key: not a secret, the client ships it too.
    supabase_anon_key: str | None = None
    spotify_client_id: str | None = None
    internal_secret: SecretStr | None = None
    supabase_jwt_secret: SecretStr | None = None
    ticketmaster_api_key: SecretStr | None = None
    spotify_client_secret: SecretStr | None = None
    setlistfm_api_key: SecretStr | None = None


def load_target(environment: str) -> DeployTarget:
    class _Target(DeployTarget):
        model_config = SettingsConfigDict(
            env_prefix=f"THESET_{environment.upper()}_", env_file=None, extra="ignore",
            frozen=True,
        )

    return _Target()


def env_name(environment: str, setting: str) -> str:
    return f"THESET_{environment.upper()}_{setting.upper()}"


# Function environment: (variable the function reads, DeployTarget field).
# Secrets go to Secret Manager as theset-<env>-<variable, dashed>.
FUNCTION_SECRETS = (
    ("DATABASE_URL", "functions_database_url"),
    ("INTERNAL_SECRET", "internal_secret"),
    ("SUPABASE_JWT_SECRET", "supabase_jwt_secret"),
    ("TICKETMASTER_API_KEY", "ticketmaster_api_key"),
    ("SPOTIFY_CLIENT_SECRET", "spotify_client_secret"),
    ("SETLISTFM_API_KEY", "setlistfm_api_key"),
)
FUNCTION_SETTINGS = (
    ("SUPABASE_URL", "supabase_url"),
    ("SPOTIFY_CLIENT_ID", "spotify_client_id"),
)
# Fixed per function, not per environment: the worker behind run_jobs may wait
# longer for a rate-limit slot than a request path.
FUNCTION_FIXED_SETTINGS = {"run_jobs": {"SOURCE_MAX_SLOT_WAIT_SECONDS": "60"}}


class DeployError(RuntimeError):
    """A step refused or failed; the deploy stops there."""


@dataclass(frozen=True)
class Step:
    title: str
    shown: str
    action: Callable[[], None] = field(repr=False)


# -- packaging -------------------------------------------------------------------------------------


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(text) for text in project["project"]["dependencies"]]


def pinned_requirements() -> list[str]:
    """The runtime dependency closure, each pinned to the version installed here
    (the one the tests ran with), markers evaluated for the function runtime."""
    pins: dict[str, str] = {}
    pending: list[tuple[Requirement, str]] = [(req, "") for req in _runtime_requirements()]
    seen: set[tuple[str, str]] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError as error:
            raise DeployError(
                f"{requirement.name} is not installed: run ./dev lint first"
            ) from error
        name = dist.metadata["Name"]
        pins[name.lower()] = f"{name}=={dist.version}"
        for wanted in ("", *sorted(requirement.extras)):
            if (name.lower(), wanted) in seen:
                continue
            seen.add((name.lower(), wanted))
            pending.extend((Requirement(text), wanted) for text in dist.requires or [])
    return [pins[key] for key in sorted(pins)]


def build_package(name: str, destination: Path = BUILD_DIR) -> Path:
    """``destination/<name>/``: the function's main.py, the shared package and the
    pinned requirements.txt, as Cloud Run functions builds a Python source."""
    source = FUNCTIONS_DIR / name / "main.py"
    if not source.is_file():
        raise DeployError(f"no function {name!r} in functions/")
    package = destination / name
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    shutil.copy2(source, package / "main.py")
    shutil.copytree(SHARED_DIR, package / "shared",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (package / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
    return package


# -- commands --------------------------------------------------------------------------------------


def secret_id(environment: str, variable: str) -> str:
    return f"theset-{environment}-{variable.lower().replace('_', '-')}"


def function_url(target: DeployTarget, name: str) -> str:
    project = target.gcp_project or "<project>"
    return f"https://{target.gcp_region}-{project}.cloudfunctions.net/{name}"


def deploy_command(environment: str, target: DeployTarget, name: str, source: Path) -> list[str]:
    """The ``gcloud`` command; a setting not configured shows as its variable (dry run)."""
    settings = {
        variable: getattr(target, attr) or f"${env_name(environment, attr)}"
        for variable, attr in FUNCTION_SETTINGS
        if getattr(target, attr) is not None or variable == "SUPABASE_URL"
    }
    settings.update(FUNCTION_FIXED_SETTINGS.get(name, {}))
    project = target.gcp_project or f"${env_name(environment, 'gcp_project')}"
    secrets = ",".join(
        f"{variable}={secret_id(environment, variable)}:latest"
        for variable, attr in FUNCTION_SECRETS
        if getattr(target, attr) is not None or variable in ("DATABASE_URL", "INTERNAL_SECRET")
    )
    return [
        "gcloud", "functions", "deploy", name, "--gen2",
        f"--project={project}", f"--region={target.gcp_region}",
        f"--runtime={RUNTIME}", f"--source={source}", f"--entry-point={name}",
        "--trigger-http", "--allow-unauthenticated",
        f"--timeout={FUNCTION_TIMEOUTS.get(name, DEFAULT_TIMEOUT)}s", f"--memory={MEMORY}",
        "--set-env-vars=" + ",".join(f"{key}={value}" for key, value in settings.items()),
        f"--set-secrets={secrets}",
    ]


def _run(command: Sequence[str], stdin: str | None = None, check: bool = True) -> int:
    result = subprocess.run(list(command), input=stdin, text=True, check=False)
    if check and result.returncode != 0:
        raise DeployError(f"{command[0]} {command[1]} failed ({result.returncode})")
    return result.returncode


# -- the plan --------------------------------------------------------------------------------------


def current_revision() -> tuple[str, bool]:
    """``HEAD`` and whether the work tree is clean."""
    revision = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    status = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return revision, status == ""


def latest_local_version(directory: Path = MIGRATIONS_DIR) -> str:
    return pending_migrations(directory)[-1].version


def _require(value: str | SecretStr | None, environment: str, setting: str) -> str:
    if value is None or value == "":
        raise DeployError(f"{env_name(environment, setting)} is not set")
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=15)


def staging_passed(staging_url: str, revision: str) -> bool:
    with _connect(staging_url) as conn:
        row = conn.execute(
            "select exists (select from ops.deployments where environment = 'staging'"
            " and revision = %s and smoke_passed_at is not null)",
            [revision],
        ).fetchone()
    return bool(row and row[0])


def push_migrations(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """``supabase db push``: refuse when the project has versions this checkout
    lacks, then apply the pending ones. Returns the versions applied."""
    local = {migration.version for migration in pending_migrations(directory)}
    with _connect(url) as conn:
        remote = {
            str(row[0])
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
    unknown = sorted(remote - local)
    if unknown:
        raise DeployError(
            "the project has migrations this checkout lacks: " + ", ".join(unknown)
        )
    return [migration.version for migration in apply_migrations(url, directory)]


def smoke_test(target: DeployTarget, environment: str, expected_version: str) -> None:
    health = httpx.get(function_url(target, "health"), timeout=30)
    if health.status_code != 200 or health.json().get("migration_version") != expected_version:
        raise DeployError(f"health answered {health.status_code}: {health.text[:200]}")
    supabase_url = _require(target.supabase_url, environment, "supabase_url")
    anon_key = _require(target.supabase_anon_key, environment, "supabase_anon_key")
    rpc = httpx.post(
        f"{supabase_url.rstrip('/')}/rest/v1/rpc/popular_artists",
        json={"limit": 1},
        headers={"apikey": anon_key, "Content-Type": "application/json"},
        timeout=30,
    )
    if rpc.status_code != 200 or not isinstance(rpc.json(), list):
        raise DeployError(f"popular_artists answered {rpc.status_code}: {rpc.text[:200]}")


@dataclass
class DeployRun:
    environment: str
    target: DeployTarget
    revision: str
    staging_url: SecretStr | None = None
    deployment_id: int | None = None

    def url(self) -> str:
        return _require(self.target.database_url, self.environment, "database_url")

    def record_start(self) -> None:
        with _connect(self.url()) as conn:
            row = conn.execute(
                "insert into ops.deployments (environment, revision, migration_version)"
                " values (%s, %s, (select max(version) from supabase_migrations.schema_migrations))"
                " returning id",
                [self.environment, self.revision],
            ).fetchone()
        self.deployment_id = None if row is None else int(str(row[0]))

    def record(self, column: str) -> None:
        if column not in ("deployed_at", "smoke_passed_at"):
            raise ValueError(column)
        with _connect(self.url()) as conn:
            conn.execute(
                f"update ops.deployments set {column} = now() where id = %s",
                [self.deployment_id],
            )

    def put_vault_secret(self) -> None:
        secret = _require(self.target.internal_secret, self.environment, "internal_secret")
        with _connect(self.url()) as conn:
            row = conn.execute(
                "select id from vault.secrets where name = %s", [VAULT_SECRET_NAME]
            ).fetchone()
            if row is None:
                conn.execute("select vault.create_secret(%s, %s)", [secret, VAULT_SECRET_NAME])
            else:
                conn.execute("select vault.update_secret(%s, %s)", [row[0], secret])

    def register_webhooks(self) -> None:
        with _connect(self.url()) as conn:
            conn.execute("select private.schedule_run_jobs_webhook(%s)",
                         [function_url(self.target, "run_jobs")])
            conn.execute("select private.schedule_new_show_webhook(%s)",
                         [function_url(self.target, "create_setlist")])
            conn.execute("select private.schedule_vote_broadcasts()")

    def put_function_secret(self, variable: str, attr: str) -> None:
        value = _require(getattr(self.target, attr), self.environment, attr)
        project = _require(self.target.gcp_project, self.environment, "gcp_project")
        name = secret_id(self.environment, variable)
        exists = _run(["gcloud", "secrets", "describe", name, f"--project={project}"],
                      check=False) == 0
        if not exists:
            _run(["gcloud", "secrets", "create", name, "--replication-policy=automatic",
                  f"--project={project}"])
        _run(["gcloud", "secrets", "versions", "add", name, "--data-file=-",
              f"--project={project}"], stdin=value)

    def deploy_function(self, name: str) -> None:
        _require(self.target.gcp_project, self.environment, "gcp_project")
        _require(self.target.supabase_url, self.environment, "supabase_url")
        package = build_package(name, BUILD_DIR / self.environment)
        _run(deploy_command(self.environment, self.target, name, package))

    def check_gate(self) -> None:
        staging = _require(self.staging_url, "staging", "database_url")
        if not staging_passed(staging, self.revision):
            raise DeployError(
                f"revision {self.revision[:12]} has no passed smoke test on staging:"
                " deploy it to staging first"
            )


def plan(run: DeployRun) -> list[Step]:
    env = run.environment
    target = run.target
    db = f"${env_name(env, 'database_url')}"
    latest = latest_local_version()
    steps: list[Step] = []
    if env == "production":
        steps.append(Step(
            "refuse unless staging passed this revision",
            f"psql ${env_name('staging', 'database_url')}: select from ops.deployments where"
            f" environment = 'staging' and revision = '{run.revision}'"
            " and smoke_passed_at is not null",
            run.check_gate,
        ))
    steps.append(Step(
        "apply pending migrations (supabase db push semantics)",
        f"psql {db}: for each of {len(pending_migrations())} files up to {latest} not in"
        " supabase_migrations.schema_migrations: one transaction, then record it;"
        " stop if the project has a version this checkout lacks",
        lambda: print(f"   applied: {', '.join(push_migrations(run.url())) or 'none'}"),
    ))
    steps.append(Step(
        "record the deploy",
        f"psql {db}: insert into ops.deployments (environment, revision) values"
        f" ('{env}', '{run.revision}')",
        run.record_start,
    ))
    steps.append(Step(
        "internal secret into Vault (pg_cron and the new-show webhook read it there)",
        f"psql {db}: vault.create_secret / vault.update_secret"
        f"(${env_name(env, 'internal_secret')}, '{VAULT_SECRET_NAME}')",
        run.put_vault_secret,
    ))
    project = target.gcp_project or f"${env_name(env, 'gcp_project')}"
    for variable, attr in FUNCTION_SECRETS:
        if getattr(target, attr) is None and variable not in ("DATABASE_URL", "INTERNAL_SECRET"):
            continue
        name = secret_id(env, variable)
        steps.append(Step(
            f"secret {variable} into Secret Manager",
            f"gcloud secrets create {name} --replication-policy=automatic --project={project}"
            f" (when missing); gcloud secrets versions add {name} --data-file=-"
            f" --project={project} < ${env_name(env, attr)}",
            functools.partial(run.put_function_secret, variable, attr),
        ))
    for name in function_names():
        package = BUILD_DIR / env / name
        steps.append(Step(
            f"package and deploy {name}",
            f"package functions/{name}/main.py + shared/ + pinned requirements.txt into"
            f" {package.relative_to(PROJECT_ROOT)}; "
            + shlex.join(deploy_command(env, target, name, package.relative_to(PROJECT_ROOT))),
            functools.partial(run.deploy_function, name),
        ))
    steps.append(Step(
        "record the functions as deployed",
        f"psql {db}: update ops.deployments set deployed_at = now()",
        lambda: run.record("deployed_at"),
    ))
    steps.append(Step(
        "register the run_jobs cron webhook, the Database Webhook on new shows and the"
        " vote broadcasts",
        f"psql {db}:"
        f" select private.schedule_run_jobs_webhook('{function_url(target, 'run_jobs')}');"
        f" select private.schedule_new_show_webhook('{function_url(target, 'create_setlist')}');"
        " select private.schedule_vote_broadcasts()",
        run.register_webhooks,
    ))
    steps.append(Step(
        "smoke test",
        f"GET {function_url(target, 'health')} → 200, migration_version {latest};"
        f" POST ${env_name(env, 'supabase_url')}/rest/v1/rpc/popular_artists → 200",
        lambda: smoke_test(target, env, latest),
    ))
    steps.append(Step(
        "record the smoke test as passed",
        f"psql {db}: update ops.deployments set smoke_passed_at = now()",
        lambda: run.record("smoke_passed_at"),
    ))
    return steps


def execute(steps: Iterable[Step], dry_run: bool) -> None:
    for number, step in enumerate(steps, start=1):
        print(f"{number:2}. {step.title}\n    {step.shown}", flush=True)
        if not dry_run:
            step.action()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS)
    parser.add_argument("--dry-run", action="store_true",
                        help="print every step, run none")
    args = parser.parse_args(argv)
    revision, clean = current_revision()
    mode = "dry run" if args.dry_run else "deploy"
    print(f"{mode}: revision {revision} to {args.env}")
    if not clean:
        if not args.dry_run:
            print("the work tree has uncommitted changes: commit them first", file=sys.stderr)
            return 1
        print("warning: the work tree has uncommitted changes (a real deploy refuses)")
    run = DeployRun(args.env, load_target(args.env), revision,
                    staging_url=load_target("staging").database_url)
    try:
        execute(plan(run), args.dry_run)
    except DeployError as error:
        print(f"deploy stopped: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"environment": args.env, "revision": revision, "dry_run": args.dry_run}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
