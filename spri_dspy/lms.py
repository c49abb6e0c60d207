"""``dspy.LM``s for OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp server, ...) at high concurrency.

DSPy 3.4 sends ``openai/...`` models through its native lm15 engine, whose shared
connection pool holds at most 100 connections: however many threads a batch runs,
no more than 100 requests are in flight (100 calls/s at 1 s latency). ``dspy.LM``
has no setting for that pool, so :func:`openai_lm` gives the LM DSPy's own
``LM15Engine`` built from a ``dspy.lm15.RouterConfig`` with ``max_connections`` set.

An engine given to ``dspy.LM`` also has no pricing provider, so DSPy does not
estimate a cost per call: a model name missing from DSPy's price catalogue (every
self-hosted model) used to cost a scan of the whole catalogue, about 5 ms of CPU per
call. Cost is not reported for these LMs; calls and tokens are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import dspy

OPENAI_PROVIDER = "openai-chat"
"""lm15's provider id of the OpenAI Chat Completions wire, which ``openai/...`` model names route to."""


def openai_lm(model: str, api_base: str | None = None, *, api_key: str | None = None, max_connections: int = 1024,
              **lm_kwargs: Any) -> dspy.LM:
    """A ``dspy.LM`` for ``openai/<model>`` on an OpenAI-compatible endpoint, with up to ``max_connections``
    requests in flight.

    Args:
        model: ``openai/<name>``, the name as the server knows it (``openai/meta-llama/Llama-3.1-8B-Instruct``).
        api_base: the server's base URL (default: OpenAI's).
        api_key: default ``OPENAI_API_KEY`` from the environment (any value for a server that needs none).
        max_connections: the connection pool's size: the most requests in flight at once.
        lm_kwargs: the rest of ``dspy.LM``'s settings (``max_tokens``, ``temperature``, ``cache``, ``num_retries`` ...).

    Example:
        ```python
        import dspy
        import spri_dspy

        lm = spri_dspy.openai_lm("openai/meta-llama/Llama-3.1-8B-Instruct", api_base="http://gpu-host:8000/v1",
                                 max_connections=512, max_tokens=512)
        dspy.configure(lm=lm)
        ```
    """
    from dspy.clients.engines.lm15_engine import AsyncLM15Engine, LM15Engine  # DSPy's native engine (3.4 series)
    from dspy.lm15 import RouterConfig

    if not model.startswith("openai/") or model == "openai/":
        raise ValueError(f"openai_lm takes an 'openai/<model>' name, got {model!r}")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
        raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key and api_base:
        key = "unused"  # a self-hosted server that checks no key; OpenAI itself refuses one, with its own error

    config = RouterConfig(max_connections=max_connections, api_keys={OPENAI_PROVIDER: key} if key else None,
                          base_urls={OPENAI_PROVIDER: api_base} if api_base else None)
    return dspy.LM(model, engine=LM15Engine(config), async_engine=AsyncLM15Engine(config), **lm_kwargs)


EMBEDDED = "embedded"
"""The model name of the embedded SmolLM2-135M-Instruct (:func:`spri_dspy.embedded_lm`)."""


@dataclass(frozen=True)
class LMSpec:
    """What builds an LM, on this machine or on any node of a cluster: a model name and its settings, never a
    key (each machine reads its keys from its own environment, e.g. ``OPENAI_API_KEY``).

    Args:
        model: ``embedded`` (:func:`spri_dspy.embedded_lm`), ``openai/<name>`` (:func:`openai_lm`, for OpenAI
            and any OpenAI-compatible server) or any other DSPy/LiteLLM model string (a plain ``dspy.LM``).
        api_base: the server's base URL (none for the embedded model).
        max_tokens: the completion budget per call.
        cache: DSPy's LM cache on or off.
        max_connections: ``openai/`` models: the most requests in flight at once.

    Example:
        ```python
        spec = LMSpec("openai/meta-llama/Llama-3.1-8B-Instruct", api_base="http://gpu-host:8000/v1")
        dspy.configure(lm=spec.build())
        ```
    """

    model: str
    api_base: str | None = None
    max_tokens: int = 512
    cache: bool = True
    max_connections: int = 1024

    def build(self) -> dspy.BaseLM:
        """The ``dspy.LM`` this spec describes (the embedded model loads on its first call)."""
        if self.model == EMBEDDED:
            if self.api_base:
                raise ValueError("the embedded model takes no api_base")
            from spri_dspy.embedded import embedded_lm

            return embedded_lm(max_tokens=self.max_tokens, cache=self.cache)
        if self.model.startswith("openai/"):  # OpenAI or any OpenAI-compatible server: a pool for many calls in flight
            return openai_lm(self.model, self.api_base, max_connections=self.max_connections,
                             max_tokens=self.max_tokens, cache=self.cache)
        return dspy.LM(self.model, api_base=self.api_base, max_tokens=self.max_tokens, cache=self.cache)


def adapter_for(*models: str | None) -> dspy.Adapter | None:
    """The adapter for these model names: :class:`spri_dspy.CompactJSONAdapter` when one is the embedded model
    (driven through JSON schemas with a short prompt), else None (DSPy's default)."""
    if EMBEDDED in models:
        from spri_dspy.adapters import CompactJSONAdapter

        return CompactJSONAdapter()
    return None
