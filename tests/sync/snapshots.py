"""What the database holds, read from the database itself: row versions
(xmin, ctid) of every catalogue row, so "nothing was written" is proved by
PostgreSQL and not by the code's own counters."""

from __future__ import annotations

from typing import Any

from tests.support.db import Connection

CATALOGUE_TABLES = (
    "public.artists",
    "public.artist_external_ids",
    "public.venues",
    "public.venue_external_ids",
    "public.shows",
    "public.show_external_ids",
    "public.songs",
)


def row_versions(db: Connection, tables: tuple[str, ...] = CATALOGUE_TABLES) -> dict[str, Any]:
    """Every row's physical version per table: any insert, update or delete changes it."""
    versions: dict[str, Any] = {}
    for table in tables:
        rows = db.execute(
            f"select ctid::text as ctid, xmin::text as xmin from {table} order by ctid"
        ).fetchall()
        versions[table] = [(r["ctid"], r["xmin"]) for r in rows]
    return versions


def count(db: Connection, table: str, where: str = "true", params: list[Any] | None = None) -> int:
    row = db.execute(
        f"select count(*) as n from {table} where {where}", params or []
    ).fetchone()
    assert row is not None
    return int(row["n"])
