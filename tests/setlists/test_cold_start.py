"""The vote functions start without the sync engine: loading ``cast_vote`` or
``add_song`` (as the runtime does, in a fresh interpreter) imports no source
client and no ``shared.sync`` module; ``create_setlist`` imports the catalogue
import only when it needs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devstack.migrate import PROJECT_ROOT
from devstack.server import FUNCTIONS_DIR

LOAD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("function_main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith("shared.sources") or m.startswith("shared.sync"))))
"""


def engine_modules_loaded_by(function: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(FUNCTIONS_DIR / function / "main.py")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("function", ["cast_vote", "add_song"])
def test_the_vote_functions_load_no_source_client_and_no_sync_module(function: str) -> None:
    assert engine_modules_loaded_by(function) == []


def test_create_setlist_loads_the_catalogue_import_only_when_needed() -> None:
    loaded = engine_modules_loaded_by("create_setlist")
    assert [m for m in loaded if m.startswith("shared.sources")] == []
    assert "shared.sync.catalogue" not in loaded and "shared.sync.ingest" not in loaded
