"""openai_lm: DSPy's native engine with a connection pool for many requests in flight."""

from __future__ import annotations

import threading

import dspy
import pytest

from spri_dspy import openai_lm
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
