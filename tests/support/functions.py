"""The functions as deployed, for tests: some of them mounted side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.server import FUNCTIONS_DIR, build_app


def functions_app(directory: Path, names: tuple[str, ...]) -> Any:
    """A WSGI app serving only ``names`` (linked into ``directory``), as ``./dev up`` serves all."""
    for name in names:
        (directory / name).symlink_to(FUNCTIONS_DIR / name, target_is_directory=True)
    return build_app(directory)
