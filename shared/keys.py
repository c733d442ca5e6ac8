"""Keys that spellings of one name or song title share, as the database computes them.

The database owns them (``private.name_key``, ``private.song_title_key``: its
unaccent rules, its locale), so Python never folds a name itself: a key it
needs comes from the database, for a whole batch in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.db import Connection


def name_keys(conn: Connection, names: Sequence[str]) -> list[str]:
    """``private.name_key`` of each name, in order."""
    return _keys(conn, "select private.name_key(v) as key", names)


def song_title_keys(conn: Connection, titles: Sequence[str]) -> list[str]:
    """``private.song_title_key`` of each (parsed) title, in order: what ``songs.title_key``
    of a song with that title is."""
    return _keys(conn, "select private.song_title_key(v) as key", titles)


def _keys(conn: Connection, select: str, values: Sequence[str]) -> list[str]:
    if not values:
        return []
    rows = conn.execute(
        f"{select} from unnest(%s::text[]) with ordinality as t(v, i) order by i", [list(values)]
    ).fetchall()
    return [str(row["key"]) for row in rows]
