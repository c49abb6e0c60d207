"""Every interface of DSPy, LiteLLM and llama-cpp-python that spri-dspy uses from below their documented top
level, in one place.

The rest of the package imports ``dspy`` (its top-level names) and this module, never a DSPy submodule.
When an upgrade moves one of these names, :func:`check` (run by the test suite) says which symbol, from
which module, with the installed version, instead of an ``ImportError`` deep inside a batch run.

DSPy and LiteLLM names are imported on first use (:func:`__getattr__`), so that importing this module
costs nothing; llama-cpp-python is reached only through the functions at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

SYMBOLS: dict[str, tuple[str, str]] = {
    # name here: (module, name there)
    # the engine protocol of dspy.LM(..., engine=...): messages, responses, usage, errors
    "Message": ("dspy.lm15", "Message"),
    "Response": ("dspy.lm15", "Response"),
    "Usage": ("dspy.lm15", "Usage"),
    "response_to_events": ("dspy.lm15", "response_to_events"),
    "ContextLengthError": ("dspy.lm15", "ContextLengthError"),
    "InvalidRequestError": ("dspy.lm15", "InvalidRequestError"),
    "RouterConfig": ("dspy.lm15", "RouterConfig"),
    # DSPy's native OpenAI-compatible engine, with its connection pool (no LiteLLM cap of 100 in flight)
    "LM15Engine": ("dspy.clients.engines.lm15_engine", "LM15Engine"),
    "AsyncLM15Engine": ("dspy.clients.engines.lm15_engine", "AsyncLM15Engine"),
    "StdlibTransport": ("dspy._vendor.lm15.transports", "StdlibTransport"),
    # which backend dspy.LM routes a model string to (native or LiteLLM)
    "select_backend": ("dspy.clients.backend_selection", "select_backend"),
    # DSPy's errors
    "LMAuthError": ("dspy.utils.exceptions", "LMAuthError"),
    "LMProviderError": ("dspy.utils.exceptions", "LMProviderError"),
    "LMTransportError": ("dspy.utils.exceptions", "LMTransportError"),
    "LMUnsupportedModelError": ("dspy.utils.exceptions", "LMUnsupportedModelError"),
    # callbacks, usage tracking, threads, field formatting, saving
    "BaseCallback": ("dspy.utils.callback", "BaseCallback"),
    "UsageTracker": ("dspy.utils.usage_tracker", "UsageTracker"),
    "ParallelExecutor": ("dspy.utils.parallelizer", "ParallelExecutor"),
    "format_field_value": ("dspy.adapters.utils", "format_field_value"),
    "serialize_for_json": ("dspy.adapters.utils", "serialize_for_json"),
    "FieldInfoWithName": ("dspy.adapters.chat_adapter", "FieldInfoWithName"),
    # what dspy.JSONAdapter builds per call, built once per signature by spri_dspy.JSONAdapter
    "has_open_ended_mapping": ("dspy.adapters.json_adapter", "_has_open_ended_mapping"),
    "structured_outputs_response_format": ("dspy.adapters.json_adapter", "_get_structured_outputs_response_format"),
    "get_dependency_versions": ("dspy.utils.saving", "get_dependency_versions"),
    # LiteLLM, for model strings DSPy does not route natively
    "get_llm_provider": ("litellm", "get_llm_provider"),
}
"""Each name this module gives, and where it comes from."""

ATTRIBUTES: dict[str, tuple[str, str]] = {
    # what is reached on objects rather than imported: (where, attribute)
    "executor_cancel_event": ("dspy.utils.parallelizer.ParallelExecutor", "cancel_jobs"),
    "llama_context": ("llama_cpp.Llama", "_ctx.ctx"),
    "shrink_logits_buffer": ("llama_cpp.Llama", "scores, _logits_all"),
    "grammar_first_greedy": ("llama_cpp.Llama", "_init_sampler, _model.vocab, input_ids, n_tokens; "
                             "llama_cpp._internals.LlamaSampler.sampler"),
    "stop_at_json_end": ("llama_cpp.Llama", "generate (its grammar argument), detokenize, token_eos"),
    "llama_model_default_params": ("llama_cpp.llama_cpp", "llama_model_default_params"),
    "llama_perf_context": ("llama_cpp", "llama_perf_context"),
}
"""Private attributes used by the functions below, for :func:`check`."""


def __getattr__(name: str) -> Any:
    if name not in SYMBOLS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, symbol = SYMBOLS[name]
    value = getattr(_import(module), symbol)
    globals()[name] = value
    return value


def _import(module: str) -> Any:
    """``importlib.import_module``; LiteLLM with its bundled price list, as spri-dspy's LMs and CLI load it (without
    that, importing it fetches the list from GitHub, and offline it retries for seconds and logs warnings)."""
    if module.split(".")[0] == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return importlib.import_module(module)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (e.g. ``"dspy"``, ``"spri-dspy"``), None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _moved(what: str, where: str, distribution: str) -> str:
    return (f"{what} is gone from {where} in the installed {distribution} "
            f"{installed_version(distribution) or 'not installed'}; spri_dspy.compat must follow it")


def check() -> list[str]:
    """What has moved: one message per symbol or attribute of :data:`SYMBOLS`/:data:`ATTRIBUTES` that the
    installed DSPy, LiteLLM or llama-cpp-python no longer has (an empty list when all are there)."""
    problems = []
    for module, symbol in SYMBOLS.values():
        distribution = module.split(".")[0]
        try:
            getattr(_import(module), symbol)
        except (ImportError, AttributeError):
            problems.append(_moved(symbol, module, distribution))
    executor = getattr(sys.modules[__name__], "ParallelExecutor")(num_threads=1, disable_progress_bar=True)
    if not isinstance(getattr(executor, "cancel_jobs", None), threading.Event):
        problems.append(_moved("ParallelExecutor.cancel_jobs (a threading.Event)", "dspy.utils.parallelizer", "dspy"))
    try:
        import llama_cpp
    except ImportError:
        return problems + [_moved("llama_cpp", "llama-cpp-python", "llama-cpp-python")]
    for name in ("llama_model_default_params", "llama_perf_context", "llama_sampler_init_grammar",
                 "llama_sampler_apply", "llama_sampler_accept", "llama_sampler_chain_remove"):
        if not hasattr(llama_cpp.llama_cpp, name):
            problems.append(_moved(name, "llama_cpp.llama_cpp", "llama-cpp-python"))
    if not hasattr(llama_cpp.Llama, "_init_sampler"):  # grammar_first_greedy's hook
        problems.append(_moved("Llama._init_sampler", "llama_cpp", "llama-cpp-python"))
    if "grammar" not in inspect.signature(llama_cpp.Llama.generate).parameters:  # stop_at_json_end's hook
        problems.append(_moved("Llama.generate(grammar=...)", "llama_cpp", "llama-cpp-python"))
    return problems


def executor_cancel_event(executor: Any) -> threading.Event:
    """The event that stops DSPy's ``ParallelExecutor`` from starting jobs (its ``cancel_jobs``)."""
    return executor.cancel_jobs


def share_cancel_event(executor: Any, event: threading.Event) -> None:
    """Make ``event`` the one that stops ``executor`` (a Ray actor's executors share their actor's stop)."""
    executor.cancel_jobs = event


def llama_context(llama: Any) -> Any:
    """The native context of a loaded ``llama_cpp.Llama`` (its private ``_ctx.ctx``), for llama.cpp's
    performance counters."""
    return llama._ctx.ctx


def shrink_logits_buffer(llama: Any) -> None:
    """Give a loaded ``llama_cpp.Llama`` that keeps no logits (``logits_all`` off) a one-row host logits buffer.

    llama-cpp-python allocates ``n_batch x vocabulary`` floats (about 100 MB for the embedded model) that,
    without ``logits_all``, it never writes and never reads (sampling reads llama.cpp's own logits), yet
    every prompt state it saves copies them and every state it restores rewrites them: 0.6 to 0.8 s per
    call of the embedded model. Its own reads slice the buffer by row, which a one-row buffer serves the same.
    """
    import numpy as np

    if getattr(llama, "_logits_all", True) is False and llama.scores.shape[0] > 1:
        llama.scores = np.zeros((1, llama.scores.shape[1]), dtype=llama.scores.dtype)


def grammar_first_greedy(llama: Any) -> None:
    """Make ``llama``'s greedy (temperature 0) grammar-constrained sampling check the grammar on the best token
    first, as llama.cpp's own samplers do: the same tokens, for a fraction of the work.

    llama-cpp-python's sampler chain applies a grammar to every token of the vocabulary (49,152 for the
    embedded model) before picking the best one: about 12 ms per generated token here, as much as the model's
    own forward pass. Greedy picks the highest-scoring token the grammar allows, so this inserts a stage after
    the repetition penalty that takes the highest-scoring token and asks a second grammar sampler, kept in step
    with every token accepted, whether it is allowed: if so, only that token goes on to the chain's grammar and
    greedy stages (which pick it, as they would have); if not, all of them do, as before. Sampling at a
    temperature above 0 keeps llama-cpp-python's chain unchanged.
    """
    import llama_cpp
    import numpy as np

    build = getattr(llama, "_init_sampler", None)
    if build is None:  # a llama-cpp-python without this hook (``check`` says so): its own chain, unchanged
        return
    token_data = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)

    def init_sampler(**settings: Any) -> Any:
        grammar = settings.get("grammar")
        if grammar is None or settings.get("temp") != 0.0:
            return build(**settings)
        chain = build(**{**settings, "grammar": None})  # [processors,] penalties, greedy
        greedy = llama_cpp.llama_sampler_chain_remove(chain.sampler, llama_cpp.llama_sampler_chain_n(chain.sampler) - 1)
        shadow = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar._grammar.encode("utf-8"),
                                                      grammar._root.encode("utf-8"))
        chain._exit_stack.callback(llama_cpp.llama_sampler_free, shadow)
        seen = [-1]  # the context's length at the previous token: what came after it was accepted
        one = (llama_cpp.llama_token_data * 1)()
        one_array = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)

        def first(candidates: Any) -> None:
            if seen[0] >= 0:
                for token in llama.input_ids[seen[0]:llama.n_tokens]:
                    llama_cpp.llama_sampler_accept(shadow, int(token))
            seen[0] = llama.n_tokens
            array = candidates.contents
            data = np.ctypeslib.as_array(
                ctypes.cast(array.data, ctypes.POINTER(ctypes.c_uint8 * (array.size * token_data.itemsize))).contents
            ).view(token_data)
            best = int(np.argmax(data["logit"]))
            one[0].id, one[0].logit, one[0].p = int(data["id"][best]), float(data["logit"][best]), 0.0
            one_array.size, one_array.selected = 1, -1
            llama_cpp.llama_sampler_apply(shadow, ctypes.byref(one_array))
            if one[0].logit != float("-inf"):  # allowed: the only candidate the grammar and greedy stages see
                data[0], array.size, array.selected = data[best].copy(), 1, -1

        chain.add_custom(first)
        chain.add_grammar(llama._model, grammar)
        llama_cpp.llama_sampler_chain_add(chain.sampler, greedy)
        return chain

    llama._init_sampler = init_sampler


class JSONEnd:
    """Watches the bytes of a JSON text as they come and says when its top-level object or array has closed:
    quotes, escapes and brackets inside strings are read as text, so only the closing bracket of the root counts."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped, self.closed = 0, False, False, False

    def feed(self, data: bytes) -> bool:
        """Read ``data``; True once the root value has closed (within ``data`` or before it)."""
        for byte in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # quote
                    self.in_string = False
            elif byte == 0x22:
                self.in_string = True
            elif byte in (0x7B, 0x5B):  # { [
                self.depth += 1
            elif byte in (0x7D, 0x5D):  # } ]
                self.depth -= 1
                self.closed = self.closed or self.depth == 0
        return self.closed


def stop_at_json_end(llama: Any) -> None:
    """End ``llama``'s grammar-constrained completions as soon as the JSON answer closes.

    llama-cpp-python evaluates every sampled token before it samples the next, so an answer's closing ``}``
    costs one more forward pass (14 ms on the embedded model here) only to sample the end-of-text token that
    the grammar leaves as the one choice (or whitespace before it). Here a completion with a grammar ends
    right after the token that closes the root value: the same answer, less any trailing whitespace, one
    forward pass sooner. Completions without a grammar are unchanged.
    """
    original = llama.generate

    def generate(tokens: Any, *args: Any, **settings: Any) -> Iterator[int]:
        inner = original(tokens, *args, **settings)
        if settings.get("grammar") is None:
            yield from inner
            return
        end = JSONEnd()
        try:
            for token in inner:
                yield token
                if end.feed(llama.detokenize([token])):
                    yield llama.token_eos()
                    return
        finally:
            inner.close()

    llama.generate = generate


def prompt_tokens_evaluated(llama: Any) -> int:
    """How many prompt tokens llama.cpp has evaluated in ``llama``'s context so far."""
    import llama_cpp

    return llama_cpp.llama_perf_context(llama_context(llama)).n_p_eval


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def llama_model_defaults(change) -> Iterator[None]:
    """While inside, llama.cpp's model defaults (``llama_cpp.llama_cpp.llama_model_default_params``) are
    ``change(defaults)``: ``Llama`` exposes no option for some of them. One loader at a time."""
    import llama_cpp

    with _PARAMS_LOCK:
        defaults = llama_cpp.llama_cpp.llama_model_default_params
        llama_cpp.llama_cpp.llama_model_default_params = change(defaults)
        try:
            yield
        finally:
            llama_cpp.llama_cpp.llama_model_default_params = defaults


def change_llama_model_defaults(change) -> None:
    """Make llama.cpp's model defaults ``change(defaults)`` for the rest of the process (a server that loads
    only its one model); see :func:`llama_model_defaults`."""
    import llama_cpp

    llama_cpp.llama_cpp.llama_model_default_params = change(llama_cpp.llama_cpp.llama_model_default_params)
