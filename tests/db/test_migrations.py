from __future__ import annotations

import re

from devstack.migrate import MIGRATIONS_DIR, apply_migrations, pending_migrations
from tests.support.db import Connection


def test_every_migration_file_is_applied_and_recorded(db: Connection) -> None:
    recorded = [
        (row["version"], row["name"])
        for row in db.execute(
            "select version, name from supabase_migrations.schema_migrations order by version"
        )
    ]
    files = [(m.version, m.name) for m in pending_migrations()]
    assert files, "no migrations found"
    assert recorded == files


def test_applying_again_is_a_no_op(database_url: str, db: Connection) -> None:
    before = db.execute("select count(*) as n from pg_class").fetchone()
    assert apply_migrations(database_url) == []
    after = db.execute("select count(*) as n from pg_class").fetchone()
    assert before == after


def test_migrations_use_only_what_supabase_provides() -> None:
    # The local platform file stands in for Supabase; migrations must not
    # create or depend on its private pieces.
    forbidden = re.compile(
        r"create\s+(table|function|schema)\s+(if\s+not\s+exists\s+)?(auth|realtime|supabase_migrations)\.",
        re.IGNORECASE,
    )
    for path in MIGRATIONS_DIR.glob("*.sql"):
        text = path.read_text()
        assert not forbidden.search(text), f"{path.name} creates a platform object"
        assert "devstack" not in text
