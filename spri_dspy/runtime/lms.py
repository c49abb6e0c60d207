"""``dspy.LM``s for OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp server, ...) at high concurrency, and the
one place that decides where a model's requests go (:func:`resolve_endpoint`).

DSPy 3.4 sends ``openai/...`` models through its native lm15 engine, whose shared
connection pool holds at most 100 connections: however many threads a batch runs,
no more than 100 requests are in flight (100 calls/s at 1 s latency). ``dspy.LM``
has no setting for that pool, so :func:`openai_lm` gives the LM DSPy's own
``LM15Engine`` built from a ``dspy.lm15.RouterConfig`` with ``max_connections`` set.

An engine given to ``dspy.LM`` also has no pricing provider, so DSPy does not
estimate a cost per call: a model name missing from DSPy's price catalogue (every
self-hosted model) used to cost a scan of the whole catalogue, about 5 ms of CPU per
call. Cost is not reported for these LMs; calls and tokens are.

Where requests go: ``api_base`` when given, else the base-URL variables of the model's
provider (``OPENAI_BASE_URL`` then ``OPENAI_API_BASE`` for ``openai/`` models, the
OpenAI SDK's and LiteLLM's; ``<PROVIDER>_API_BASE`` then ``<PROVIDER>_BASE_URL`` for
any other, the ones DSPy and LiteLLM read), else the provider's own default. DSPy
leaves the base URL out of its cache key; every LM built here puts the endpoint in
(:func:`endpoint_cache_id`), so two servers serving one model name never share answers.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dspy

from spri_dspy.secrets import register_url

OPENAI_PROVIDER = "openai-chat"
"""lm15's provider id of the OpenAI Chat Completions wire, which ``openai/...`` model names route to."""

EMBEDDED = "embedded"
"""The model name of the embedded SmolLM2-135M-Instruct (:func:`spri_dspy.embedded_lm`)."""


def base_url_variables(model: str) -> tuple[str, ...]:
    """The environment variables that name a base URL for ``model``'s provider, in the order they are read."""
    prefix = model.split("/", 1)[0].upper().replace("-", "_") if "/" in model else "OPENAI"
    if prefix == "OPENAI":
        return ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    return (f"{prefix}_API_BASE", f"{prefix}_BASE_URL")


@dataclass(frozen=True)
class Endpoint:
    """Where a model's requests go, and what said so (:func:`resolve_endpoint` builds it).

    Args:
        url: the base URL, or None for the provider's own default (and for the embedded model).
        source: ``api_base`` (given by the caller: ``--api-base``), the environment variable it came from,
            ``default`` or ``in process`` (the embedded model).

    Example:
        ```python
        endpoint = spri_dspy.resolve_endpoint("openai/my-model")  # OPENAI_BASE_URL, OPENAI_API_BASE, else OpenAI
        print(endpoint.describe("openai/my-model"), endpoint.public)
        ```
    """

    url: str | None
    source: str

    @property
    def public(self) -> str | None:
        """The URL without credentials, query or fragment: what may be printed and recorded."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    @property
    def host(self) -> str:
        """``host:port`` of the URL, or what stands for it (``the provider's default``, ``in process``)."""
        if self.source == "in process":
            return "in process"
        if self.url is None:
            return "the provider's default"
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def describe(self, model: str) -> str:
        """One line for ``--verbose``: the model, where its requests go and why."""
        if self.source == "in process":
            return f"{model}: runs in this process"
        if self.url is None:
            return f"{model} -> the provider's default endpoint (no api_base, none of {', '.join(base_url_variables(model))} set)"
        origin = "--api-base" if self.source == "api_base" else f"${self.source}"
        return f"{model} -> {self.public} (from {origin})"


def resolve_endpoint(model: str, api_base: str | None = None, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Where ``model``'s requests go: ``api_base`` first, then the provider's base-URL variables
    (:func:`base_url_variables`), else the provider's default. Every LM built here, the CLI's and a Ray
    actor's, asks this one function."""
    if model == EMBEDDED:
        return Endpoint(None, "in process")
    if api_base:
        return Endpoint(api_base, "api_base")
    environ = os.environ if environ is None else environ
    for name in base_url_variables(model):
        if (environ.get(name) or "").strip():
            return Endpoint(environ[name].strip(), name)
    return Endpoint(None, "default")


def endpoint_cache_id(url: str | None) -> int | None:
    """The number that keeps ``url``'s answers apart in DSPy's cache (None for the provider's default).

    DSPy's cache key leaves out ``api_base``; it keeps ``rollout_id``, its documented way to tell cache
    entries apart, which is never sent to the server. A stable number per base URL (credentials
    left out, so a new key keeps the cache) makes the endpoint part of the key.
    """
    if url is None:
        return None
    public = Endpoint(url, "api_base").public or url
    return int.from_bytes(hashlib.sha256(public.encode()).digest()[:6], "big")


def endpoint_of(lm: Any) -> Endpoint | None:
    """The endpoint an LM built here sends to (None for an LM built elsewhere that names none)."""
    endpoint = getattr(lm, "spri_endpoint", None)
    if isinstance(endpoint, Endpoint):
        return endpoint
    url = (getattr(lm, "kwargs", None) or {}).get("api_base")
    return Endpoint(url, "api_base") if url else None


def _keyed(lm: dspy.LM, endpoint: Endpoint) -> dspy.LM:
    """``lm`` with ``endpoint`` in its cache key and recorded on it (:func:`endpoint_of`)."""
    cache_id = endpoint_cache_id(endpoint.url)
    if cache_id is not None and lm.kwargs.get("rollout_id") is None:
        lm.kwargs["rollout_id"] = cache_id
        lm._warned_zero_temp_rollout = True  # DSPy's warning about rollout_id at temperature 0 is not for this use
    lm.spri_endpoint = endpoint
    return lm


OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
"""Where ``openai/`` requests go when no base URL is given or set (OpenAI's own API)."""


def proxy_for(url: str) -> str | None:
    """The proxy that requests to ``url`` go through, or None: the proxy variables read the way DSPy's transport
    reads them on each request (``urllib.request.getproxies``: ``HTTP_PROXY``/``HTTPS_PROXY`` by scheme, else
    ``ALL_PROXY``; none for a host that ``NO_PROXY`` names)."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    try:
        if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
            return None
    except Exception:  # as DSPy's transport: a platform lookup that fails bypasses nothing
        pass
    return proxy or None


RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")
"""What an OpenAI-compatible server is asked for when an adapter wants JSON (:func:`openai_lm`)."""


def _capabilities(model: str, response_format: str) -> tuple[bool, frozenset[str]]:
    """The capability hints DSPy's adapters read (``supports_response_schema``, ``supported_params``) that
    :func:`openai_lm`'s engines declare: a custom engine declares them itself, DSPy's catalogue is not consulted
    for it. ``auto`` takes the catalogue's hints for ``model`` (none for a name it does not know, e.g. a
    self-hosted one)."""
    if response_format not in RESPONSE_FORMATS:
        raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, got {response_format!r}")
    params = {"temperature", "max_tokens", "top_p", "stop", "seed"}
    if response_format == "auto":
        known = dspy.LM(model, engine="lm15")  # native routing whatever the environment: LiteLLM is never loaded
        schema, params = known.supports_response_schema, set(known.supported_params) | params
    else:
        schema = response_format == "json_schema"
        params |= {"response_format"} if response_format != "none" else set()
    return schema, frozenset(params)


def openai_lm(model: str, api_base: str | None = None, *, api_key: str | None = None, max_connections: int = 1024,
              response_format: str = "auto", **lm_kwargs: Any) -> dspy.LM:
    """A ``dspy.LM`` for ``openai/<model>`` on an OpenAI-compatible endpoint, with up to ``max_connections``
    requests in flight.

    Args:
        model: ``openai/<name>``, the name as the server knows it (``openai/meta-llama/Llama-3.1-8B-Instruct``).
        api_base: the server's base URL (default: ``OPENAI_BASE_URL``, else ``OPENAI_API_BASE``, else OpenAI's).
        api_key: default ``OPENAI_API_KEY`` from the environment (any value for a server that needs none).
        max_connections: the connection pool's size: the most requests in flight at once.
        response_format: what DSPy's JSON adapters ask the server for: ``json_schema`` (output constrained to
            the step's schema: OpenAI, vLLM, llama.cpp's ``llama-server``, Ollama), ``json_object`` (any JSON:
            llama-cpp-python's server, which refuses ``json_schema``), ``none`` (the prompt alone), or ``auto``
            (what DSPy's catalogue says of the model name; ``none`` for a name it does not know).
        lm_kwargs: the rest of ``dspy.LM``'s settings (``max_tokens``, ``temperature``, ``cache``, ``num_retries`` ...).

    The endpoint is part of DSPy's cache key for this LM (:func:`endpoint_cache_id`). The proxy variables
    (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) are read once, here (:func:`proxy_for`), for
    the synchronous calls; DSPy's transport would read the whole environment again on every call, which cost
    about 0.05 ms of CPU per call. Async calls (``acall``) keep DSPy's per-request reading.

    Example:
        ```python
        import dspy
        import spri_dspy

        lm = spri_dspy.openai_lm("openai/meta-llama/Llama-3.1-8B-Instruct", api_base="http://gpu-host:8000/v1",
                                 max_connections=512, max_tokens=512)
        dspy.configure(lm=lm)
        ```
    """
    from spri_dspy.compat import AsyncLM15Engine, LM15Engine, RouterConfig, StdlibTransport  # DSPy's native engine

    if not model.startswith("openai/") or model == "openai/":
        raise ValueError(f"openai_lm takes an 'openai/<model>' name, got {model!r}")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
        raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
    endpoint = resolve_endpoint(model, api_base)
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key and endpoint.url:
        key = "unused"  # a self-hosted server that checks no key; OpenAI itself refuses one, with its own error

    routes = {"api_keys": {OPENAI_PROVIDER: key} if key else None,
              "base_urls": {OPENAI_PROVIDER: endpoint.url} if endpoint.url else None}
    engine = LM15Engine(RouterConfig(**routes, transport=StdlibTransport(
        max_connections=max_connections, proxy=proxy_for(endpoint.url or OPENAI_DEFAULT_URL), trust_env=False)))
    async_engine = AsyncLM15Engine(RouterConfig(**routes, max_connections=max_connections))
    schema, params = _capabilities(model, response_format)
    for declared in (engine, async_engine):
        declared.supports_response_schema, declared.supported_params = schema, params
    return _keyed(dspy.LM(model, engine=engine, async_engine=async_engine, **lm_kwargs), endpoint)


@dataclass(frozen=True)
class LMSpec:
    """What builds an LM, on this machine or on any node of a cluster: a model name and its settings, never a
    key (each machine reads its keys from its own environment, e.g. ``OPENAI_API_KEY``).

    Args:
        model: ``embedded`` (:func:`spri_dspy.embedded_lm`), ``openai/<name>`` (:func:`openai_lm`, for OpenAI
            and any OpenAI-compatible server) or any other DSPy/LiteLLM model string (a plain ``dspy.LM``).
        api_base: the server's base URL (none for the embedded model; see :func:`resolve_endpoint` for the
            environment variables read without one, and :meth:`resolved` to fix them before the spec travels).
        max_tokens: the completion budget per call.
        cache: DSPy's LM cache on or off.
        max_connections: ``openai/`` models: the most requests in flight at once.
        response_format: ``openai/`` models: what the JSON adapters ask the server for (see :func:`openai_lm`).
        temperature: the sampling temperature; None leaves it to the server (the embedded model: 0).

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
    response_format: str = "auto"
    temperature: float | None = None

    @property
    def endpoint(self) -> Endpoint:
        """Where this spec's requests go, resolved on this machine (:func:`resolve_endpoint`)."""
        return resolve_endpoint(self.model, self.api_base)

    def resolved(self) -> LMSpec:
        """This spec with the base URL this machine resolves written in: a Ray actor then sends where the
        driver would, whatever its node's environment says."""
        return replace(self, api_base=self.endpoint.url) if self.model != EMBEDDED else self

    def build(self) -> dspy.BaseLM:
        """The ``dspy.LM`` this spec describes (the embedded model loads on its first call)."""
        if self.model == EMBEDDED:
            if self.api_base:
                raise ValueError("the embedded model takes no api_base")
            from spri_dspy.runtime.embedded import embedded_lm

            return embedded_lm(max_tokens=self.max_tokens, cache=self.cache,
                               **({"temperature": self.temperature} if self.temperature is not None else {}))
        if self.model.startswith("openai/"):  # OpenAI or any OpenAI-compatible server: a pool for many calls in flight
            return openai_lm(self.model, self.api_base, max_connections=self.max_connections,
                             response_format=self.response_format, max_tokens=self.max_tokens, cache=self.cache,
                             temperature=self.temperature)
        # Other providers: DSPy reads their variables itself (an api_base from the environment stays there).
        return _keyed(dspy.LM(self.model, api_base=self.api_base, max_tokens=self.max_tokens, cache=self.cache,
                              temperature=self.temperature),
                      self.endpoint)


ADAPTERS = ("chat", "json", "compact", "compact-last", "compact-first")
"""The prompt formats :func:`make_adapter` builds: DSPy's ``ChatAdapter`` and ``JSONAdapter`` formats (as
:class:`spri_dspy.ChatAdapter` and :class:`spri_dspy.JSONAdapter`, the same messages for less CPU), and
:class:`spri_dspy.CompactJSONAdapter` (a short JSON prompt for small models), with each step's instruction before
its inputs (``compact``, its default, which a prompt cache keeps across the rounds of a step; ``compact-first``
names the same explicitly) or after them (``compact-last``, the embedded model's format until December 2026)."""


def default_adapter(*models: str | None) -> str:
    """The prompt format that suits these model names: ``compact`` when one is the embedded model, else
    ``chat`` (DSPy's default)."""
    return "compact" if EMBEDDED in models else "chat"


def make_adapter(name: str) -> dspy.Adapter:
    """The adapter named ``name`` (one of :data:`ADAPTERS`). ``json`` and ``compact`` ask the server for
    schema-constrained output (``response_format``) where the model supports it."""
    from spri_dspy import adapters

    if name == "chat":
        return adapters.ChatAdapter()
    if name == "json":
        return adapters.JSONAdapter()
    if name in ("compact", "compact-first"):
        return adapters.CompactJSONAdapter(instruction="first")
    if name == "compact-last":
        return adapters.CompactJSONAdapter(instruction="last")
    raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, got {name!r}")


def adapter_record(adapter: Any) -> dict[str, Any] | None:
    """What ``run.json`` and a tuning study record of an adapter (JSON data): its class and the setting that changes
    its prompts (CompactJSONAdapter's ``instruction``); None when none is configured (each step then uses
    :func:`spri_dspy.adapters.default_adapter`)."""
    if adapter is None:
        return None
    instruction = getattr(adapter, "instruction", None)
    return {"class": type(adapter).__name__, **({"instruction": instruction} if isinstance(instruction, str) else {})}


def adapter_named(record: dict[str, Any] | None) -> str | None:
    """The first of :data:`ADAPTERS` whose adapter :func:`adapter_record` records as ``record`` (None for no adapter or
    one :func:`make_adapter` does not build)."""
    if record is None:
        return None
    return next((name for name in ADAPTERS if adapter_record(make_adapter(name)) == record), None)


def adapter_for(*models: str | None) -> dspy.Adapter | None:
    """The adapter for these model names: :class:`spri_dspy.CompactJSONAdapter` when one is the embedded model
    (driven through JSON schemas with a short prompt), else None (DSPy's default)."""
    return make_adapter("compact") if default_adapter(*models) == "compact" else None


class EndpointError(RuntimeError):
    """A model's endpoint cannot serve the run at all: it does not answer on the first call, refuses the
    key, or has no such model. Retrying per input cannot help, so a batch ends at once."""


def endpoint_failure(exc: BaseException, *, first_call: bool) -> str | None:
    """Why ``exc`` means no call to this endpoint can succeed (None for an error worth DSPy's retries or
    one input's failure): the key refused (401/403), no such model or route (404), or, on the run's first
    call, no connection at all (a name that does not resolve, a refused connection)."""
    from spri_dspy.compat import LMAuthError, LMProviderError, LMTransportError, LMUnsupportedModelError

    status = getattr(exc, "status", None)  # the HTTP status of a provider's error response
    if isinstance(exc, LMAuthError):
        return f"refused the key (HTTP {status or 401})"
    if isinstance(exc, LMUnsupportedModelError) or (isinstance(exc, LMProviderError) and status == 404):
        return "has no such model (HTTP 404)"
    if isinstance(exc, LMProviderError) and status in (401, 403):
        return f"refused the key (HTTP {status})"
    if first_call and isinstance(exc, LMTransportError):
        return "could not be reached"
    return None


def endpoint_error(exc: BaseException, lms: Any, *, first_call: bool) -> EndpointError | None:
    """The :class:`EndpointError` that ``exc`` amounts to (:func:`endpoint_failure`), naming the endpoint of the
    LM among ``lms`` that raised it and the model, in one line; None when ``exc`` is not one."""
    reason = endpoint_failure(exc, first_call=first_call)
    if reason is None:
        return None
    model = getattr(exc, "model", None) or "the model"
    endpoint = next((found for lm in lms if getattr(lm, "model", None) == model and (found := endpoint_of(lm))), None)
    where = endpoint.public if endpoint and endpoint.url else (
        "the provider's default endpoint" if endpoint or str(model).startswith("openai/") else "its endpoint")
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return EndpointError(f"{where} {reason} for {model}: {detail}")


def check_model_name(model: str, api_base: str | None = None) -> None:
    """Raise ValueError unless DSPy can route ``model`` (natively, or through LiteLLM's provider list)."""
    from spri_dspy.compat import select_backend

    try:
        if select_backend(dspy.LM(model, api_base=api_base), None).native:
            return  # DSPy routes it natively; no need to load LiteLLM (seconds) to check it
    except Exception:
        pass
    from spri_dspy.compat import get_llm_provider  # imports LiteLLM with its bundled price list (no network fetch)

    import litellm

    # LiteLLM prints a "Provider List" banner on unknown providers; only with --verbose (its logger at INFO).
    litellm.suppress_debug_info = not logging.getLogger("LiteLLM").isEnabledFor(logging.INFO)
    try:
        get_llm_provider(model, api_base=api_base)
    except Exception:
        raise ValueError(
            f"unknown model {model!r}: use 'embedded' or a DSPy/LiteLLM model string such as openai/gpt-4o-mini"
        ) from None


def lm_spec(model: str, *, api_base: str | None = None, max_tokens: int = 512, cache: bool = True,
            max_connections: int = 1024, response_format: str = "auto", temperature: float | None = None) -> LMSpec:
    """The :class:`LMSpec` of a model name as a user gives it (``embedded`` or a DSPy/LiteLLM model string),
    checked up front (:func:`check_model_name`; ValueError), its base URL resolved from ``api_base`` or the
    environment (:meth:`LMSpec.resolved`), and credentials in that URL registered as secrets."""
    if model != EMBEDDED and not model.startswith("openai/"):  # openai/ models are openai_lm's: nothing to look up
        check_model_name(model, api_base)
    spec = LMSpec(model, api_base=api_base, max_tokens=max_tokens, cache=cache,
                  max_connections=max(1024, max_connections), response_format=response_format,
                  temperature=temperature).resolved()
    register_url(spec.api_base)
    return spec

