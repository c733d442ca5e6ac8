"""A migrated database in a throw-away cluster, for benchmarks and one-off checks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devstack.cluster import Cluster, free_port
from devstack.migrate import apply_migrations, apply_platform


@contextmanager
def scratch_database(
    url: str | None = None, *, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Yield ``url`` as given, or a new cluster's migrated ``postgres`` database,
    destroyed on exit. ``settings`` go into the new cluster's configuration."""
    if url:
        yield url
        return
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="theset-scratch-")), free_port())
    cluster.init({"max_connections": "200", "log_min_messages": "warning", **(settings or {})})
    cluster.start()
    try:
        apply_platform(cluster.admin_url())
        apply_migrations(cluster.url())
        yield cluster.url()
    finally:
        cluster.destroy()
