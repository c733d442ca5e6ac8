"""A private PostgreSQL 15 cluster in a project folder, on its own port.

PostgreSQL refuses to run as root, so when this runs as root (CI does) the
server runs as the ``postgres`` system user, which then owns the cluster folder.

As on hosted Supabase, the cluster's superuser is ``supabase_admin`` and the
project's role ``postgres`` is not a superuser (devstack/platform.sql creates
it): the migrations, the functions and the worker all run as ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "supabase_admin"
OWNER = "postgres"


def running_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(command: Sequence[str]) -> list[str]:
    if running_as_root():
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Cluster:
    """A cluster living in ``root`` (``root/data`` and ``root/postgres.log``)."""

    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """The project's own role, ``postgres``: what DATABASE_URL names in production."""
        return f"postgresql://{OWNER}@127.0.0.1:{self.port}/{database}"

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser: only for the platform stand-in and cluster housekeeping."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, settings: Mapping[str, str]) -> None:
        """Create the cluster with ``settings`` written to its configuration."""
        self.root.mkdir(parents=True, exist_ok=True)
        if running_as_root():
            postgres = pwd.getpwnam("postgres")
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        self._run(
            [
                str(PG_BINDIR / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", SUPERUSER,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C.UTF-8",
            ]
        )
        lines = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "shared_preload_libraries": "'pg_cron'",
            "cron.database_name": "'postgres'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            **settings,
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# TheSet local stack\n")
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())

    def start(self, options: Mapping[str, str] | None = None) -> None:
        """Start the server; ``options`` override settings for this run only."""
        extra = " ".join(f"-c {key}={value}" for key, value in (options or {}).items())
        command = [
            str(PG_BINDIR / "pg_ctl"),
            "--pgdata", str(self.data_dir),
            "--log", str(self.log_file),
            "--wait",
            "--timeout", "60",
        ]
        if extra:
            command += ["--options", extra]
        self._run([*command, "start"])

    def stop(self) -> None:
        if self.is_running():
            self._run(
                [str(PG_BINDIR / "pg_ctl"), "--pgdata", str(self.data_dir), "--wait",
                 "--mode", "fast", "stop"]
            )

    def is_running(self) -> bool:
        if not self.exists():
            return False
        status = subprocess.run(
            _as_server_user([str(PG_BINDIR / "pg_ctl"), "--pgdata", str(self.data_dir), "status"]),
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, command: Sequence[str]) -> None:
        result = subprocess.run(
            _as_server_user(command), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log_tail}"
            )
