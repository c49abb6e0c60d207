"""``spri serve`` from the command line: its checks before any model, the settings it serves with, and the
embedded model answering the official client over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn", reason="spri serve comes with pip install 'spri-dspy[serve]'")

from spri_dspy import cli  # noqa: E402
from spri_dspy.cli import build as cli_build  # noqa: E402


@pytest.fixture
def started(monkeypatch, scripted):
    """What ``spri serve`` would serve, captured instead of listening: {"app", "host", "port"}; models scripted."""
    import uvicorn

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **options: captured.update(app=app, host=host, port=port))
    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: scripted(None, model=f"scripted/{model}")[1])
    return captured


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0 is reachable from other machines: give --api-key KEY"),
    (["--max-concurrency", "0"], "--max-concurrency must be at least 1, got 0"),
    (["--port", "70000"], "--port must be from 1 to 65535"),
    (["--threshold", "7"], "--threshold must be from 1 to 5"),
    (["--program", "missing.json"], "--program missing.json:"),
])
def test_bad_flags_are_refused_before_any_model(started, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("SPRI_API_KEY", raising=False)
    assert cli.main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err and started == {}


def test_the_key_from_the_environment_serves_a_public_address(started, capsys, monkeypatch):
    from starlette.testclient import TestClient

    monkeypatch.setenv("SPRI_API_KEY", "team-key-123456")
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "9001", "--max-rounds", "2", "--threshold", "3"]) == 0
    assert (started["host"], started["port"]) == ("0.0.0.0", 9001)
    err = capsys.readouterr().err
    assert "OpenAI-compatible API http://0.0.0.0:9001/v1" in err and "requests need the API key" in err
    assert "team-key-123456" not in err
    api = TestClient(started["app"])
    assert api.get("/v1/models").status_code == 401
    headers = {"Authorization": "Bearer team-key-123456"}
    assert "spri" in {m["id"] for m in api.get("/v1/models", headers=headers).json()["data"]}
    reply = api.post("/v1/chat/completions", headers=headers,
                     json={"model": "spri", "messages": [{"role": "user", "content": "q"}]}).json()
    assert [r["round"] for r in reply["spri"]["trace"]] == [1, 1]  # the placeholder critics accept at once
    refused = api.post("/v1/chat/completions", headers=headers, json={
        "model": "spri", "messages": [{"role": "user", "content": "q"}], "max_rounds": 3})
    assert refused.status_code == 400 and "between 1 and 2" in refused.json()["error"]["message"]
    server = started["app"].state.server
    assert server.program("spri", ()).threshold == 3  # the flags are the served programs' settings


@pytest.mark.embedded
def test_the_embedded_model_answers_the_official_client_live(tmp_path):
    import openai

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "spri_dspy.cli", "serve", "--port", str(port), "--max-rounds", "1"],
                               stdout=log, stderr=subprocess.STDOUT,
                               env={k: v for k, v in os.environ.items() if k != "SPRI_API_KEY"})
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.5)
        chunks = list(client.chat.completions.create(
            model="spri", messages=[{"role": "user", "content": "My sister never calls me back."}], stream=True,
            stream_options={"include_usage": True}))
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    steps = [c.model_extra["spri"] for c in chunks if (c.model_extra.get("spri") or {}).get("event") == "step"]
    assert [s["step"] for s in steps] == ["principle_generator", "principle_critic", "responder", "response_critic"]
    assert all(len(s["outputs"]["feedback"].split()) >= 5 for s in steps if s["kind"] == "critic")
    assert all(s["outputs"]["score"] in range(1, 6) for s in steps if s["kind"] == "critic")
    response = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(response.split()) >= 3 and chunks[-1].usage.model_extra["lm_calls"] == 4
