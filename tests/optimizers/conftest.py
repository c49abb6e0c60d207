"""A real PostgreSQL server for the tuning tests: the machine's initdb/pg_ctl in a temporary folder."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest


def _binaries() -> str | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return os.path.dirname(shutil.which("initdb"))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """``postgresql://spri@127.0.0.1:PORT`` of a server started for this test session (trust auth on
    loopback, fsync off), run as the ``postgres`` user (or ``nobody``) when the tests run as root;
    skipped with a reason where no server binaries exist (``.ci/run`` installs them)."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt-get install postgresql); .ci/run installs them")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with pip install 'spri-dspy[postgres]'")
    folder = tempfile.mkdtemp(prefix="spri-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = "postgres" if _has_user("postgres") else "nobody"
        shutil.chown(folder, user)
        run_as = ["runuser", "-u", user, "--"]
    data, port = os.path.join(folder, "data"), _free_port()
    subprocess.run([*run_as, f"{binaries}/initdb", "-D", data, "-A", "trust", "-U", "spri", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run([*run_as, f"{binaries}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(folder, "log"), "-w",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://spri@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, f"{binaries}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's server, as the URL a user gives ``--storage``."""
    import psycopg

    name = f"tune_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
