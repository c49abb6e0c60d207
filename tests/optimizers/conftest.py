"""A real PostgreSQL server for the tuning tests (spri_dspy.testing.postgres), skipped where the machine has none."""

from __future__ import annotations

import uuid

import pytest

from spri_dspy.testing.postgres import PostgresServer, server_binaries


@pytest.fixture(scope="session")
def postgres_server():
    """A server started for this test session; skipped with a reason where no server binaries exist
    (``.ci/run`` installs them)."""
    if server_binaries() is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt-get install postgresql); .ci/run installs them")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with pip install 'spri-dspy[postgres]'")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's server, as the URL a user gives ``--storage``."""
    return postgres_server.database(f"tune_{uuid.uuid4().hex[:8]}")
