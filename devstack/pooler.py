"""A PgBouncer in transaction mode in front of a local cluster: Supavisor's
transaction mode (port 6543 in production) as the functions meet it.

Each transaction may run on a different server connection, and server
connections are shared by every client, so session state (``SET``, session
advisory locks, ``LISTEN``) leaks or vanishes, and PgBouncer 1.18 (Debian 12)
rejects protocol-level prepared statements outright.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from devstack.cluster import OWNER, Cluster, free_port, running_as_root

PGBOUNCER = Path(os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer"))


@contextmanager
def transaction_pooler(cluster: Cluster, pool_size: int = 4) -> Iterator[int]:
    """Run PgBouncer (``pool_mode = transaction``, ``pool_size`` server connections
    per database) for ``cluster``; yields its port. Any database name passes through."""
    root = Path(tempfile.mkdtemp(prefix="theset-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text(f'"{OWNER}" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={cluster.port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {root / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        f"logfile = {root / 'pgbouncer.log'}\n"
        f"pidfile = {root / 'pgbouncer.pid'}\n"
    )
    command = [str(PGBOUNCER), str(root / "pgbouncer.ini")]
    if running_as_root():  # PgBouncer refuses to run as root
        postgres = pwd.getpwnam("postgres")
        for path in (root, *root.iterdir()):
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_accepting(port, process, root)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_accepting(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg.connect(
                f"postgresql://{OWNER}@127.0.0.1:{port}/postgres", connect_timeout=2
            ).close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = root / "pgbouncer.log"
                raise RuntimeError(
                    "pgbouncer did not start: "
                    + (log.read_text(errors="replace")[-2000:] if log.exists() else "")
                ) from None
            time.sleep(0.1)
