"""Apply the local platform, the migrations and the seed, the way Supabase does.

Each migration file runs in one transaction and is recorded in
``supabase_migrations.schema_migrations``; files already recorded are skipped,
and file names that do not match the CLI's ``<14 digits>_<name>.sql`` are
ignored, as the CLI ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import psycopg

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "supabase" / "migrations"
SEED_FILE = PROJECT_ROOT / "supabase" / "seed.sql"
_MIGRATION_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>.+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def platform_sql() -> str:
    return files("devstack").joinpath("platform.sql").read_text(encoding="utf-8")


def apply_platform(admin_url: str) -> None:
    """As the superuser (``admin_url``): pgmq from the SQL the PyPI package bundles,
    then the Supabase platform stand-in, which hands pgmq to ``postgres``."""
    from pgmq.install import get_embedded_install_sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        installed = conn.execute(
            "select to_regclass('pgmq.meta') is not null"
        ).fetchone()
        if installed is None or not installed[0]:
            with conn.transaction():
                conn.execute(get_embedded_install_sql())
        conn.execute(platform_sql())


class SuperuserMigrationError(RuntimeError):
    """Migrations must apply as hosted Supabase's non-superuser ``postgres``."""


def _refuse_superuser(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = conn.execute(
        "select rolsuper from pg_catalog.pg_roles where rolname = current_user"
    ).fetchone()
    if row is None or row[0]:
        raise SuperuserMigrationError(
            "migrations run as the project's role (postgres), never as a superuser"
        )


def pending_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append(Migration(match["version"], match["name"], path))
    return found


def apply_migrations(url: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every migration not yet recorded; returns those applied now.

    ``url`` connects as the role hosted Supabase gives the project, which is not
    a superuser: a superuser connection is refused, so nothing can come to rely
    on rights production does not have."""
    applied_now = []
    with psycopg.connect(url, autocommit=True) as conn:
        _refuse_superuser(conn)
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for migration in pending_migrations(directory):
            if migration.version in done:
                continue
            statements = migration.path.read_text(encoding="utf-8")
            with conn.transaction():
                conn.execute(statements)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values (%s, %s, array[%s])",
                    [migration.version, migration.name, statements],
                )
            applied_now.append(migration)
    return applied_now


def latest_version(url: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select max(version) from supabase_migrations.schema_migrations"
        ).fetchone()
        return None if row is None else row[0]


def apply_seed(url: str, path: Path = SEED_FILE) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(path.read_text(encoding="utf-8"))
