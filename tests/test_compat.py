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
