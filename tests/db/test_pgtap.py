"""Run the pgTAP suites in supabase/tests with pg_prove, as `supabase test db` does."""

from __future__ import annotations

import shutil
import subprocess

from psycopg.conninfo import conninfo_to_dict

from devstack.migrate import PROJECT_ROOT

PGTAP_DIR = PROJECT_ROOT / "supabase" / "tests"


def test_pgtap_suites_pass(database_url: str) -> None:
    suites = sorted(str(path) for path in PGTAP_DIR.rglob("*.sql"))
    assert suites, "no pgTAP suites found"
    pg_prove = shutil.which("pg_prove")
    assert pg_prove, "pg_prove is missing: ./dev installs libtap-parser-sourcehandler-pgtap-perl"
    info = conninfo_to_dict(database_url)
    result = subprocess.run(
        [pg_prove, "--host", str(info["host"]), "--port", str(info["port"]),
         "--username", str(info["user"]), "--dbname", str(info["dbname"]), "--verbose", *suites],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: PASS" in result.stdout
