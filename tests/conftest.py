"""Shared fixtures: a scripted LM that answers each SPRI step deterministically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# A fresh DSPy disk cache per test session (set before DSPy is imported): no stale hits, no writes to ~.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="spri-dspy-test-cache-")

import uuid

import pytest

from spri_dspy.testing import ScriptedEngine, scripted_lm
from helpers import PAPER
from helpers.postgres import PostgresServer, server_binaries


@pytest.fixture
def scripted():
    """Factory: ``scripted(script, model=...)`` -> (engine, lm) over a fresh ScriptedEngine."""

    def make(script=None, model="scripted/base", **engine_options):
        engine = ScriptedEngine(script, **engine_options)
        return engine, scripted_lm(engine, model)

    return make


@pytest.fixture
def shared_paper():
    """The paper's released data beside the checkout, or skip when it is absent."""
    if not PAPER.is_dir():
        pytest.skip("../shared/spri-paper is not beside this checkout")
    return PAPER


# A real PostgreSQL server for the tuning-worker tests (helpers.postgres).
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


@pytest.fixture
def reappraisal_rows(tmp_path):
    """``reappraisal_rows(n)``: a JSONL file of ``n`` RESORT-shaped rows (post, aim, constitution, standards)."""
    def write(n):
        rows = [{"Reddit Post": f"post {i}", "appraisal_dimension_aim": f"aim {i % 2}", "constitution": f"c {i}",
                 "standards": "s"} for i in range(n)]
        path = tmp_path / "reappraisal.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write


@pytest.fixture(scope="session")
def llama_server():
    """llama.cpp's own OpenAI-compatible server (llama-cpp-python's app, ``python -m spri_dspy.embedded``) on a
    free port, serving the embedded GGUF as ``openai/smollm2``; yields its base URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("llama_cpp.server", reason="llama.cpp's server: pip install 'llama-cpp-python[server]'")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, "-m", "spri_dspy.embedded", "--host", "127.0.0.1", "--port", str(port),
                                "--n_ctx", "4096", "--n_threads", "2", "--seed", "7", "--model_alias", "smollm2"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"llama.cpp's server did not start; its log: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def cli_models(monkeypatch, scripted):
    """``cli_models(script)``: every LM the ``spri`` command builds (``--lm``, ``--critic-lm``, ``--judge-lm``)
    answered by a scripted engine of its own over ``script()``; returns the engines by model name."""
    from spri_dspy.cli import build as cli_build

    engines = {}

    def use(script=lambda: None):
        def make_lm(model, **options):
            engines[model], lm = scripted(script(), model=f"scripted/{model}")
            return lm

        monkeypatch.setattr(cli_build, "make_lm", make_lm)
        return engines

    return use


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the OS package) driven by Playwright; skipped where either is missing."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
