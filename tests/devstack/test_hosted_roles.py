"""The migrations as hosted Supabase runs them: as a `postgres` that is not a
superuser, from scratch (the test template) and on top of the previous release."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import psycopg
import pytest

from devstack.cluster import Cluster
from devstack.migrate import (
    MIGRATIONS_DIR,
    PROJECT_ROOT,
    SuperuserMigrationError,
    apply_migrations,
    apply_platform,
    apply_seed,
    pending_migrations,
)
from tests.support.db import Connection

# The release the migrations must upgrade: main before this branch.
PREVIOUS_RELEASE = "0979af47c15b575807ddcf9e38c9e3869b1c26ba"
# The migration that makes songs' title keys generated, and checks the rows first.
KEYS_MIGRATION = "20261206130000"

# pgmq as hosted Supabase ships it: 1.5.1 (supabase/postgres issue #1867 names
# 1.5.1 as bundled with the 17.6.1.016+ images; its nix/ext/pgmq build patches the
# 1.5.0 -> 1.5.1 upgrade; the move to 1.13.0 is draft PR #2431). The calls this project makes,
# with the signatures pgmq 1.5.1's pgmq-extension/sql/pgmq.sql defines for them.
PGMQ_1_5_1_CALLS = {
    "create": "pgmq.create(text)",
    "send": "pgmq.send(text,jsonb,integer)",
    "send_batch": "pgmq.send_batch(text,jsonb[],integer)",
    "read": "pgmq.read(text,integer,integer)",
    "set_vt": "pgmq.set_vt(text,bigint,integer)",
    "delete": "pgmq.delete(text,bigint)",
    "archive": "pgmq.archive(text,bigint)",
}
# The queue's tables as 1.5.1 has them (headers came with 1.5.0).
PGMQ_1_5_1_COLUMNS = {
    "q_sync": {"msg_id", "read_ct", "enqueued_at", "vt", "message", "headers"},
    "a_sync": {"msg_id", "read_ct", "enqueued_at", "archived_at", "vt", "message", "headers"},
}


def test_postgres_has_exactly_what_hosted_supabase_gives_it(db: Connection) -> None:
    role = db.execute(
        "select rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,"
        " rolbypassrls from pg_roles where rolname = 'postgres'").fetchone()
    assert role == {"rolsuper": False, "rolcreaterole": True, "rolcreatedb": True,
                    "rolcanlogin": True, "rolreplication": True, "rolbypassrls": True}
    assert db.execute("select current_user as u").fetchone() == {"u": "postgres"}


def test_every_project_object_belongs_to_postgres(db: Connection) -> None:
    foreign = db.execute(
        "select c.relname, pg_get_userbyid(c.relowner) as owner from pg_class c"
        " where c.relnamespace in"
        "   ('public'::regnamespace, 'private'::regnamespace, 'ops'::regnamespace)"
        " and pg_get_userbyid(c.relowner) <> 'postgres'"
        " union all"
        " select p.proname, pg_get_userbyid(p.proowner) from pg_proc p"
        " where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)"
        " and pg_get_userbyid(p.proowner) <> 'postgres'").fetchall()
    assert foreign == []


def test_migrations_refuse_a_superuser(superuser_database_url: str) -> None:
    with pytest.raises(SuperuserMigrationError):
        apply_migrations(superuser_database_url)


def test_the_pgmq_calls_exist_in_the_version_hosted_supabase_ships(db: Connection) -> None:
    sources = [path.read_text() for path in MIGRATIONS_DIR.glob("*.sql")]
    sources += [path.read_text() for path in (PROJECT_ROOT / "shared").rglob("*.py")]
    called = {name for text in sources for name in re.findall(r"\bpgmq\.([a-z_]+)\s*\(", text)}
    assert called <= set(PGMQ_1_5_1_CALLS), called - set(PGMQ_1_5_1_CALLS)
    tables = {name for text in sources for name in re.findall(r"\bpgmq\.([aq]_[a-z_]+)\b", text)}
    assert tables <= set(PGMQ_1_5_1_COLUMNS)
    # Each 1.5.1 call also resolves in the local pgmq, which is newer: a
    # function of that name takes those arguments first, any further ones defaulted.
    for name in called:
        arguments = PGMQ_1_5_1_CALLS[name].split("(", 1)[1].rstrip(")").split(",")
        row = db.execute(
            "select exists (select from pg_proc p where p.pronamespace = 'pgmq'::regnamespace"
            " and p.proname = %s and p.pronargs >= %s and p.pronargs - p.pronargdefaults <= %s"
            " and (select array_agg(t::regtype::text order by n) from unnest(p.proargtypes)"
            "      with ordinality as a(t, n) where n <= %s) = %s::text[]) as ok",
            [name, len(arguments), len(arguments), len(arguments), arguments]).fetchone()
        assert row == {"ok": True}, PGMQ_1_5_1_CALLS[name]
    # Every column the migrations read from the queue tables exists in 1.5.1.
    for table, columns in PGMQ_1_5_1_COLUMNS.items():
        local = {row["attname"] for row in db.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
            " and not attisdropped", [f"pgmq.{table}"])}
        assert columns <= local


def _catalogue(url: str) -> list[tuple[object, ...]]:
    """The schema the migrations leave: relations and columns, routines and their
    bodies, policies, triggers, grants."""
    with psycopg.connect(url) as conn:
        return conn.execute("""
            select 'column', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                   a.attnotnull::text
              from pg_attribute a join pg_class c on c.oid = a.attrelid
             where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace,
                                      'ops'::regnamespace)
               and a.attnum > 0 and not a.attisdropped
            union all
            select 'relation', c.relname, c.relkind::text, coalesce(c.relacl::text, ''), ''
              from pg_class c
             where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace,
                                      'ops'::regnamespace)
            union all
            select 'routine', p.oid::regprocedure::text, md5(p.prosrc),
                   coalesce(p.proacl::text, ''), p.prosecdef::text
              from pg_proc p
             where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
            union all
            select 'policy', tablename, policyname, coalesce(qual, ''),
                   coalesce(with_check, '') from pg_policies
            union all
            select 'trigger', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), ''
              from pg_trigger where not tgisinternal
            union all
            select 'cron', jobname, schedule, command, username from cron.job
            order by 1, 2, 3, 4
        """).fetchall()


def _release_files(revision: str, destination: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", revision,
         "supabase/migrations", "supabase/seed.sql"],
        capture_output=True, check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination / "supabase"


def _migrations_before(version: str, destination: Path) -> Path:
    destination.mkdir()
    for migration in pending_migrations():
        if migration.version < version:
            shutil.copy(migration.path, destination / migration.path.name)
    return destination


def test_the_migrations_upgrade_the_previous_release(
    pg_cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    """The previous release's migrations and seed, then this checkout's on top,
    all as postgres: the same schema as from scratch, the data still there.
    pg_cron can only be created in the database its launcher watches, the
    cluster's own `postgres`: the upgrade runs there."""
    released = _release_files(PREVIOUS_RELEASE, tmp_path)
    assert pending_migrations(released / "migrations"), "no migrations in the release"
    apply_platform(pg_cluster.admin_url())
    upgraded = pg_cluster.url()
    apply_migrations(upgraded, released / "migrations")
    apply_seed(upgraded, released / "seed.sql")
    with psycopg.connect(upgraded) as conn:
        seeded = conn.execute("select count(*) from public.shows").fetchone()
    applied = apply_migrations(upgraded, _migrations_before(KEYS_MIGRATION, tmp_path / "before"))
    # A setlist.fm song stored under setlist.fm's name but keyed by its parsed title:
    # the keys migration names it and stops, and goes through once it is renamed.
    with psycopg.connect(upgraded, autocommit=True) as conn:
        row = conn.execute(
            "insert into public.songs (artist_id, title, title_key, source)"
            " select id, 'Laredo (Live)', 'laredo', 'setlistfm' from public.artists limit 1"
            " returning id::text").fetchone()
    assert row is not None
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=row[0]):
        apply_migrations(upgraded)
    with psycopg.connect(upgraded, autocommit=True) as conn:
        conn.execute("update public.songs set title = 'Laredo' where id = %s", [row[0]])
    applied += apply_migrations(upgraded)
    assert [m.version for m in applied] == sorted(
        {m.version for m in pending_migrations()}
        - {m.version for m in pending_migrations(released / "migrations")})
    assert _catalogue(upgraded) == _catalogue(database_url)
    with psycopg.connect(upgraded) as conn:
        assert conn.execute("select count(*) from public.shows").fetchone() == seeded
