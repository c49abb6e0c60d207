"""openai_lm: DSPy's native engine with a connection pool for many requests in flight; where every LM's requests
go (resolve_endpoint), per-endpoint caching, and endpoints that cannot serve."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid

import dspy
import pytest

from spri_dspy.cli import build as cli_build
from spri_dspy import LMSpec, cli, openai_lm
from spri_dspy.runtime.lms import Endpoint, endpoint_cache_id, endpoint_of, resolve_endpoint
from spri_dspy.testing import FakeOpenAIServer

IN_FLIGHT = 150  # above the 100 connections of DSPy's default pool


def _concurrent_calls(lm, n):
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        lm(f"question {i}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("pooled, most", [(True, IN_FLIGHT), (False, 100)])
def test_more_than_100_requests_are_in_flight_at_once(monkeypatch, pooled, most):
    """DSPy's own pool keeps 100 in flight whatever the thread count; openai_lm lets all of them go."""
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    with FakeOpenAIServer(latency=0.5) as server:
        lm = (openai_lm("openai/meta-llama/Llama-3.1-8B-Instruct", server.url, max_connections=1024, cache=False)
              if pooled else dspy.LM("openai/meta-llama/Llama-3.1-8B-Instruct", api_base=server.url, cache=False))
        _concurrent_calls(lm, IN_FLIGHT)
        assert server.counts["requests"] == IN_FLIGHT and server.max_in_flight == most


def test_a_call_answers_counts_tokens_and_reports_no_cost(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as server:
        lm = openai_lm("openai/m", server.url, cache=False, max_tokens=64)
        assert lm("hello")[0]
        entry = lm.history[-1]
        assert entry["usage"]["prompt_tokens"] > 0 and entry["cost"] is None  # a self-hosted model has no price
        assert lm.kwargs["max_tokens"] == 64


@pytest.mark.parametrize("model, settings, message", [
    ("anthropic/claude", {}, "takes an 'openai/<model>' name, got 'anthropic/claude'"),
    ("openai/m", {"max_connections": 0}, "max_connections must be a positive integer, got 0"),
])
def test_bad_settings_are_named(model, settings, message):
    with pytest.raises(ValueError, match=message):
        openai_lm(model, "http://127.0.0.1:1/v1", **settings)


def test_acall_goes_through_the_same_pooled_engine(monkeypatch):
    import asyncio

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    with FakeOpenAIServer() as server:
        lm = openai_lm("openai/m", server.url, cache=False)
        assert asyncio.run(lm.acall("hello"))[0] == lm("hello")[0]
        assert server.counts["requests"] == 2


# --- Where requests go: one resolution for the CLI, openai_lm, LMSpec and Ray ------------------------------------

BASE_URL_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_BASE")


@pytest.fixture
def clean_env(monkeypatch):
    """No base-URL variable from the machine running the tests, a placeholder key."""
    for name in BASE_URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    return monkeypatch


def _queries(tmp_path, n, tag):
    path = tmp_path / f"{tag}.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "query": f"{tag} question {i}"}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("variable", BASE_URL_VARIABLES)
def test_a_base_url_variable_alone_sends_every_call_to_that_server(clean_env, tmp_path, variable):
    """The user's configuration through the environment, no flag: every call reaches the named server (on the
    old code they went to api.openai.com and every input failed)."""
    with FakeOpenAIServer() as server:
        clean_env.setenv(variable, server.url)
        status = cli.main(["generate", str(_queries(tmp_path, 3, variable)), str(tmp_path / "out"), "--lm", "openai/m",
                           "--no-progress", "--no-cache"])
        assert status == 0
        assert server.counts["requests"] == 3 * 4  # 3 inputs, 4 calls each (critics accept at once)
    identity = json.loads((tmp_path / "out" / "run.json").read_text())
    assert identity["models"]["lm"]["endpoint"] == server.url


def test_the_sdk_variable_comes_before_litellms(clean_env):
    clean_env.setenv("OPENAI_BASE_URL", "http://first:1/v1")
    clean_env.setenv("OPENAI_API_BASE", "http://second:2/v1")
    assert resolve_endpoint("openai/m") == Endpoint("http://first:1/v1", "OPENAI_BASE_URL")
    assert resolve_endpoint("openai/m", "http://given:3/v1") == Endpoint("http://given:3/v1", "api_base")
    clean_env.delenv("OPENAI_BASE_URL")
    assert resolve_endpoint("openai/m") == Endpoint("http://second:2/v1", "OPENAI_API_BASE")
    clean_env.delenv("OPENAI_API_BASE")
    assert resolve_endpoint("openai/m") == Endpoint(None, "default")
    assert resolve_endpoint("embedded") == Endpoint(None, "in process")


def test_other_providers_read_the_variables_dspy_reads(clean_env):
    """DSPy sends a provider whose <PREFIX>_API_BASE or <PREFIX>_BASE_URL is set to LiteLLM, which reads them."""
    clean_env.setenv("HOSTED_VLLM_BASE_URL", "http://b:1/v1")
    assert resolve_endpoint("hosted_vllm/m") == Endpoint("http://b:1/v1", "HOSTED_VLLM_BASE_URL")
    clean_env.setenv("HOSTED_VLLM_API_BASE", "http://a:1/v1")
    assert resolve_endpoint("hosted_vllm/m") == Endpoint("http://a:1/v1", "HOSTED_VLLM_API_BASE")
    lm = LMSpec("hosted_vllm/m").build()
    assert endpoint_of(lm).url == "http://a:1/v1" and lm.kwargs["rollout_id"] == endpoint_cache_id("http://a:1/v1")


def test_api_base_beats_both_variables(clean_env, tmp_path):
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    clean_env.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    with FakeOpenAIServer() as server:
        status = cli.main(["run", "hello", "--lm", "openai/m", "--api-base", server.url, "--no-cache", "--quiet"])
        assert status == 0 and server.counts["requests"] == 4


_PATH_PROBE = """
import sys
from spri_dspy import cli
from spri_dspy.cli import build as cli_build
status = cli.main(sys.argv[1:])
import dspy
lm = cli_build.make_lm("openai/m")
print("litellm" in sys.modules, type(lm.engine).__name__, status)
"""


def test_the_variables_do_not_move_calls_onto_another_path(clean_env):
    """With the variables set, spri takes the same code path as with --api-base alone: DSPy's native engine, and
    LiteLLM never imported (the old code checked the name through LiteLLM whenever a variable was set)."""
    import os
    import subprocess
    import sys

    with FakeOpenAIServer() as server:
        outputs = []
        for variables in ({}, {"OPENAI_BASE_URL": server.url, "OPENAI_API_BASE": server.url}):
            env = {**{k: v for k, v in os.environ.items() if k not in BASE_URL_VARIABLES}, **variables}
            done = subprocess.run([sys.executable, "-c", _PATH_PROBE, "run", "hello", "--lm", "openai/m", "--api-base",
                                   server.url, "--no-cache", "--quiet"], env=env, capture_output=True, text=True,
                                  timeout=120)
            outputs.append(done.stdout.splitlines()[-1])
        assert outputs == ["False LM15Engine 0", "False LM15Engine 0"]


def test_a_second_endpoint_is_not_answered_from_the_firsts_cache(clean_env):
    """Same model name, same prompt, two servers: each answers its own (DSPy leaves api_base out of its key);
    the same server keeps its cache."""
    prompt = f"cache probe {uuid.uuid4()}"
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        openai_lm("openai/m", first.url)(prompt)
        openai_lm("openai/m", second.url)(prompt)
        openai_lm("openai/m", first.url)(prompt)
        clean_env.setenv("OPENAI_BASE_URL", second.url)
        openai_lm("openai/m")(prompt)  # the same endpoint named through the environment: its cache
        assert (first.counts["requests"], second.counts["requests"]) == (1, 1)


def test_a_new_key_keeps_the_cache_and_credentials_stay_out_of_the_key():
    assert Endpoint("http://user:s3cretpass@host:1/v1/?key=s3cret#x", "api_base").public == "http://host:1/v1"
    assert endpoint_cache_id("http://user:one@host:1/v1") == endpoint_cache_id("http://user:two@host:1/v1/")
    assert endpoint_cache_id("http://host:1/v1") != endpoint_cache_id("http://host:2/v1")
    assert endpoint_cache_id(None) is None


def test_the_cli_cache_is_per_endpoint(clean_env, tmp_path):
    """The issue's reproduction: the same input into B against a dead endpoint must not be answered from A's."""
    path = _queries(tmp_path, 1, f"cli-{uuid.uuid4()}")
    with FakeOpenAIServer() as server:
        assert cli.main(["generate", str(path), str(tmp_path / "A"), "--lm", "openai/m", "--api-base", server.url,
                         "--no-progress"]) == 0
    status = cli.main(["generate", str(path), str(tmp_path / "B"), "--lm", "openai/m", "--api-base",
                       "http://127.0.0.1:9/v1", "--no-progress"])
    assert status == 1 and not (tmp_path / "B" / "results.jsonl").read_text()


def test_run_json_records_the_endpoint_and_another_endpoint_is_another_run(clean_env, tmp_path, capsys):
    path = _queries(tmp_path, 2, "identity")
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        assert cli.main(["generate", str(path), str(tmp_path / "out"), "--lm", "openai/m", "--api-base", first.url,
                         "--no-progress", "--no-cache"]) == 0
        assert json.loads((tmp_path / "out" / "run.json").read_text())["models"]["lm"]["endpoint"] == first.url
        capsys.readouterr()
        assert cli.main(["generate", str(path), str(tmp_path / "out"), "--lm", "openai/m", "--api-base", second.url,
                         "--no-progress", "--no-cache"]) == 2
        error = capsys.readouterr().err
        assert "holds the results of a different run (models.lm.endpoint: " in error and second.url in error
        assert second.counts["requests"] == 0


def test_verbose_says_where_the_base_url_came_from(clean_env, capsys):
    with FakeOpenAIServer() as server:
        clean_env.setenv("OPENAI_API_BASE", server.url)
        assert cli.main(["run", "hello", "--lm", "openai/m", "--no-cache", "--quiet", "--verbose"]) == 0
        captured = capsys.readouterr()
        assert f"spri: openai/m -> {server.url} (from $OPENAI_API_BASE)" in captured.err
        assert f"endpoint: openai/m at 127.0.0.1:{server.url.split(':')[2].split('/')[0]}" in captured.out


def test_a_ray_actor_sends_where_the_driver_resolved(clean_env):
    """The spec that travels holds the driver's URL: an actor whose node has no variable (or another) still
    sends there."""
    import argparse

    clean_env.setenv("OPENAI_BASE_URL", "http://driver-side:8000/v1")
    args = argparse.Namespace(lm="openai/m", critic_lm="openai/c", api_base=None, max_tokens=64, no_cache=True,
                              threads=8, ray="", actors=1, verbose=False, adapter=None, temperature=None,
                              response_format="auto")
    lm_spec, critic_spec = cli_build.lm_specs(args)
    assert lm_spec.api_base == critic_spec.api_base == "http://driver-side:8000/v1"
    clean_env.setenv("OPENAI_BASE_URL", "http://actor-side:8000/v1")  # the actor's node says otherwise
    assert endpoint_of(LMSpec(**dataclasses.asdict(lm_spec)).build()).url == "http://driver-side:8000/v1"
    assert "OPENAI_API_KEY" not in json.dumps(dataclasses.asdict(lm_spec))


# --- Endpoints that cannot serve end the run at once, in one line ---------------------------------------------------


@pytest.mark.parametrize("case", ["refused", "no such host", "wrong model", "wrong key"])
def test_an_endpoint_that_cannot_serve_ends_the_run_in_one_line(clean_env, tmp_path, capsys, case):
    """Not minutes of retries and one failure per input: one line naming the endpoint and the model, exit 1,
    every input still pending (a rerun once the endpoint is fixed runs them all)."""
    import time

    servers = {"wrong model": FakeOpenAIServer(models=["served-model"]),
               "wrong key": FakeOpenAIServer(faults={"401": 1.0})}
    server = servers.get(case)
    url = {"refused": "http://127.0.0.1:9/v1", "no such host": "http://no-such-host.invalid:8000/v1"}.get(case)
    if server is not None:
        server.start()
        url = server.url
    try:
        started = time.monotonic()
        status = cli.main(["generate", str(_queries(tmp_path, 40, "dead")), str(tmp_path / "out"), "--lm", "openai/m",
                           "--api-base", url, "--no-progress", "--no-cache", "--threads", "8"])
        seconds = time.monotonic() - started
    finally:
        if server is not None:
            server.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and seconds < 20
    assert len(err) == 1 and err[0].startswith(f"spri: error: {url}") and "openai/m" in err[0]
    assert {"refused": "could not be reached", "no such host": "could not be reached",
            "wrong model": "has no such model (HTTP 404)", "wrong key": "refused the key (HTTP 401)"}[case] in err[0]
    assert (tmp_path / "out" / "results.jsonl").read_text() == (tmp_path / "out" / "failures.jsonl").read_text() == ""
    if server is not None:
        assert server.counts["requests"] <= 8 * 2  # at most one call per thread in flight, not one per input


def test_a_server_that_goes_away_mid_run_fails_inputs_not_the_run(clean_env):
    """After a call has reached the model, a transport error is transient: one input's failure, DSPy's retries."""
    from dspy.utils.exceptions import LMTransportError

    from spri_dspy.runtime.lms import endpoint_failure

    error = LMTransportError("[openai/m] failed to connect to 127.0.0.1:9")
    assert endpoint_failure(error, first_call=True) == "could not be reached"
    assert endpoint_failure(error, first_call=False) is None


# --- Proxies: the variables DSPy's transport reads, read once per LM for its sync calls -------------------------

class _Proxy:
    """A plain-HTTP forward proxy: records each request line's target and passes the request to ``upstream``."""

    def __init__(self, upstream: str):
        import http.server
        import urllib.request

        targets, opener = [], urllib.request.build_opener(urllib.request.ProxyHandler({}))
        origin = upstream.removesuffix("/v1")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                targets.append(self.path)
                path = "/" + self.path.split("://", 1)[1].split("/", 1)[1]
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(origin + path, data=body, headers={"Content-Type": "application/json"})
                with opener.open(request) as answer:
                    data = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.targets = targets
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def no_proxy_variables(clean_env):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        clean_env.delenv(name, raising=False)
        clean_env.delenv(name.lower(), raising=False)
    return clean_env


def test_http_proxy_alone_carries_every_call_sync_and_async_and_through_the_cli(no_proxy_variables, capsys):
    import asyncio

    with FakeOpenAIServer() as server:
        proxy = _Proxy(server.url)
        try:
            no_proxy_variables.setenv("HTTP_PROXY", proxy.url)
            lm = openai_lm("openai/m", "http://llm.test:9/v1", cache=False)  # a host only the proxy "knows"
            assert lm("hello")[0] and asyncio.run(lm.acall("hello"))[0]
            assert cli.main(["run", "hello", "--lm", "openai/m", "--api-base", "http://llm.test:9/v1", "--no-cache",
                             "--quiet"]) == 0
        finally:
            proxy.close()
    assert proxy.targets == ["http://llm.test:9/v1/chat/completions"] * 6  # 2 calls, then spri run's 4
    assert server.counts["requests"] == 6


def test_no_proxy_sends_its_hosts_direct(no_proxy_variables):
    with FakeOpenAIServer() as server:
        no_proxy_variables.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing listens there
        with pytest.raises(Exception):
            openai_lm("openai/m", server.url, cache=False, num_retries=0)("hello")
        no_proxy_variables.setenv("NO_PROXY", "127.0.0.1")
        assert openai_lm("openai/m", server.url, cache=False)("hello")[0]
        assert server.counts["requests"] == 1
