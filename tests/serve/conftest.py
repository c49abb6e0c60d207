"""A ``spri serve`` app started in the test on a free port (uvicorn in a thread)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

pytest.importorskip("uvicorn", reason="spri serve comes with pip install 'spri-dspy[serve]'")
pytest.importorskip("openai", reason="the official client is in the test extra")


@pytest.fixture
def serve():
    """``with serve(app) as url:``: the app served on 127.0.0.1 at a free port; ``url`` is its root."""
    import uvicorn

    @contextlib.contextmanager
    def start(app):
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=20)

    return start
