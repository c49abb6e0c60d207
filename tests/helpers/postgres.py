"""A throwaway PostgreSQL server for tests and benchmarks: the machine's own initdb/pg_ctl, in a temporary folder.

    with PostgresServer() as server:
        url = server.database("tune")      # postgresql://spri@127.0.0.1:PORT/tune, empty
        ...

Trust authentication on loopback only, fsync off; run as the ``postgres`` user (or ``nobody``) when the
caller is root, since the server refuses to run as root. :func:`server_binaries` says whether the
machine has the server at all (Debian: ``apt-get install postgresql``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def server_binaries() -> str | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, or Debian's ``/usr/lib/postgresql/<version>/bin``."""
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return os.path.dirname(shutil.which("initdb"))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    """A PostgreSQL server on a free loopback port for the life of a ``with`` block (see the module docstring).

    Args:
        binaries: the folder of ``initdb``/``pg_ctl`` (default: :func:`server_binaries`).
    """

    def __init__(self, binaries: str | None = None):
        self.binaries = binaries or server_binaries()
        if self.binaries is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl); Debian: apt-get install postgresql")
        self.folder = self.url = None
        self._as: list[str] = []

    def __enter__(self) -> PostgresServer:
        self.folder = tempfile.mkdtemp(prefix="spri-pg-")
        if os.geteuid() == 0:
            user = "postgres" if _has_user("postgres") else "nobody"
            shutil.chown(self.folder, user)
            self._as = ["runuser", "-u", user, "--"]
        data, port = os.path.join(self.folder, "data"), _free_port()
        subprocess.run([*self._as, f"{self.binaries}/initdb", "-D", data, "-A", "trust", "-U", "spri", "--no-sync"],
                       check=True, capture_output=True)
        options = f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run([*self._as, f"{self.binaries}/pg_ctl", "-D", data, "-o", options, "-l",
                        os.path.join(self.folder, "log"), "-w", "start"], check=True, capture_output=True)
        self.url = f"postgresql://spri@127.0.0.1:{port}"
        return self

    def database(self, name: str) -> str:
        """Create the empty database ``name`` (letters, digits, underscores) and return its URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and underscores, got {name!r}")
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def __exit__(self, *exc) -> None:
        subprocess.run([*self._as, f"{self.binaries}/pg_ctl", "-D", os.path.join(self.folder, "data"), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
