"""spri_dspy.compat: every DSPy, LiteLLM and llama-cpp-python interface below their top level is there, and a
moved one is named with the installed version."""

from __future__ import annotations

import threading
from importlib.metadata import version

import pytest

from spri_dspy import compat


def test_every_symbol_and_attribute_is_where_compat_expects_it():
    assert compat.check() == []


@pytest.mark.parametrize("name", sorted(compat.SYMBOLS))
def test_each_symbol_resolves(name):
    module, symbol = compat.SYMBOLS[name]
    assert getattr(compat, name) is getattr(__import__(module, fromlist=[symbol]), symbol)


def test_a_moved_symbol_is_named_with_the_installed_version(monkeypatch):
    monkeypatch.setitem(compat.SYMBOLS, "Gone", ("dspy.utils.parallelizer", "NoSuchExecutor"))
    monkeypatch.setitem(compat.SYMBOLS, "GoneModule", ("dspy.no_such_module", "Thing"))
    problems = compat.check()
    assert problems == [
        f"NoSuchExecutor is gone from dspy.utils.parallelizer in the installed dspy {version('dspy')}; "
        "spri_dspy.compat must follow it",
        f"Thing is gone from dspy.no_such_module in the installed dspy {version('dspy')}; spri_dspy.compat must follow it",
    ]


def test_a_moved_attribute_is_named(monkeypatch):
    executor_class = compat.ParallelExecutor

    class WithoutCancelEvent(executor_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self.cancel_jobs

    monkeypatch.setattr(compat, "ParallelExecutor", WithoutCancelEvent)
    assert compat.check() == [f"ParallelExecutor.cancel_jobs (a threading.Event) is gone from dspy.utils.parallelizer "
                              f"in the installed dspy {version('dspy')}; spri_dspy.compat must follow it"]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchName"):
        compat.NoSuchName  # noqa: B018


def test_a_shared_cancel_event_stops_the_executor():
    executor, event = compat.ParallelExecutor(num_threads=1, disable_progress_bar=True), threading.Event()
    compat.share_cancel_event(executor, event)
    assert compat.executor_cancel_event(executor) is event


def test_llama_model_defaults_are_changed_inside_only():
    llama_cpp = pytest.importorskip("llama_cpp")
    before = llama_cpp.llama_cpp.llama_model_default_params
    with compat.llama_model_defaults(lambda defaults: "changed"):
        assert llama_cpp.llama_cpp.llama_model_default_params == "changed"
    assert llama_cpp.llama_cpp.llama_model_default_params is before


@pytest.mark.parametrize(("pieces", "closes_at"), [
    ([b'{"a"', b': "x"', b"}"], 2),
    ([b'{"a": "}', b' {', b'"}'], 2),  # brackets inside a string are text
    ([b'{"a": "say \\"}', b'\\"', b'"}'], 2),  # an escaped quote does not end the string
    ([b'{"a": "back\\\\', b'"', b", ", b'"b": [1, {"c": 2}]', b"}\n"], 4),  # an escaped backslash does
    ([b"[1, 2", b"]"], 1),
    ([b'{"a": 1', b"}", b"\n"], 1),
])
def test_json_end_says_when_the_root_value_closes(pieces, closes_at):
    end = compat.JSONEnd()
    assert [end.feed(piece) for piece in pieces].index(True) == closes_at


class FakeLlama:
    """What stop_at_json_end reaches on a Llama: generate, detokenize, token_eos; tokens are indexes of pieces."""

    def __init__(self, pieces):
        self.pieces, self.evaluated = pieces, []

    def generate(self, tokens, grammar=None, **settings):
        for token in range(len(self.pieces)):
            yield token
            self.evaluated.append(token)  # llama-cpp-python evaluates a token only when asked for the next

    def detokenize(self, tokens):
        return b"".join(self.pieces[t] for t in tokens)

    def token_eos(self):
        return -1


def test_a_grammar_completion_ends_at_the_closing_brace_without_evaluating_it():
    llama = FakeLlama([b'{"a"', b': "}"', b" }", b"\n", b"<eos>"])
    compat.stop_at_json_end(llama)
    assert list(llama.generate([7], grammar="root ::= object")) == [0, 1, 2, -1]
    assert llama.evaluated == [0, 1]  # the brace's own forward pass is not made


def test_a_completion_without_a_grammar_runs_as_before():
    llama = FakeLlama([b"{}", b" more", b"<eos>"])
    compat.stop_at_json_end(llama)
    assert list(llama.generate([7])) == [0, 1, 2] and llama.evaluated == [0, 1, 2]


def test_check_loads_litellm_with_its_bundled_price_list():
    """Without LITELLM_LOCAL_MODEL_COST_MAP, importing LiteLLM fetches its price list from GitHub (offline: seconds
    of retries and warnings); compat sets it, as spri-dspy's LMs and CLI do, unless the user has."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    probe = "import os; from spri_dspy import compat; print(compat.check(), os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "[] True" and "cost map" not in done.stderr, done.stderr[-500:]


def test_the_llama_cpp_hooks_the_engine_relies_on_are_named_when_gone(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    monkeypatch.delattr(llama_cpp.Llama, "_init_sampler")  # grammar_first_greedy's hook
    monkeypatch.setattr(llama_cpp.Llama, "generate", lambda self, tokens: iter(()))  # stop_at_json_end's
    monkeypatch.delattr(llama_cpp.llama_cpp, "llama_sampler_chain_remove")
    problems = compat.check()
    assert [p.split(" is gone")[0] for p in problems] == ["llama_sampler_chain_remove", "Llama._init_sampler",
                                                           "Llama.generate(grammar=...)"]
