"""health: is the function runtime up, can it reach the database, which migration is applied."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
import psycopg

from shared.db import transaction
from shared.web import ServiceUnavailable, endpoint


@functions_framework.http
@endpoint(["GET"])
def health(request: flask.Request) -> dict[str, Any]:
    try:
        with transaction() as conn:
            row = conn.execute(
                "select max(version) as version from supabase_migrations.schema_migrations"
            ).fetchone()
    except psycopg.Error as error:
        raise ServiceUnavailable("the database is unreachable") from error
    return {
        "status": "ok",
        "database": "ok",
        "migration_version": None if row is None else row["version"],
    }
