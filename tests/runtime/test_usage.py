"""Counting LM calls: calls needed (cache hits included) and made, per step."""

from __future__ import annotations

import asyncio
import uuid

import dspy
import pytest

from spri_dspy.testing import ScriptedEngine, scripted_lm
from spri_dspy.testing.engine import AsyncScriptedEngine
from spri_dspy.runtime.usage import _CALLS_NEEDED, StepUsage, count_calls_needed


def cached_lm(engine):
    return dspy.LM(f"scripted/{uuid.uuid4().hex[:8]}", engine=engine, async_engine=AsyncScriptedEngine(engine),
                   cache=True)


def test_the_counting_callback_is_attached_once_and_only_to_an_lm_with_a_cache():
    lm = cached_lm(ScriptedEngine())
    count_calls_needed(lm)
    count_calls_needed(lm)  # every batch run calls it again on the same LM
    assert lm.callbacks.count(_CALLS_NEEDED) == 1
    uncached = scripted_lm(ScriptedEngine())
    count_calls_needed(uncached)
    assert uncached.callbacks == []  # every call it needs reaches its model: DSPy reports it, no callback needed


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("cache", [True, False])
def test_calls_needed_count_cache_hits_and_calls_made_do_not(path, cache):
    engine = ScriptedEngine()
    lm = cached_lm(engine) if cache else scripted_lm(engine)
    usage = StepUsage()
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm), usage.context():
        for question in ("a", "b", "a", "a"):
            if path == "sync":
                predict(question=question)
            else:
                asyncio.run(predict.acall(question=question))
    reached = 2 if cache else 4
    assert len(engine.calls) == reached
    assert (usage.calls_needed, usage.calls) == (4, reached)
    assert dict(usage.by_step[("other", "other", lm.model)]) == {
        "calls": reached, "calls_needed": 4, "prompt_tokens": usage.by_step[("other", "other", lm.model)]["prompt_tokens"],
        "completion_tokens": usage.by_step[("other", "other", lm.model)]["completion_tokens"]}


def test_a_failed_call_is_not_counted_as_needed():
    def broken(call):
        raise ValueError("no answer")

    lm = scripted_lm(ScriptedEngine({"unknown:answer": broken}))
    lm = lm.copy(num_retries=0)
    usage = StepUsage()
    with dspy.context(lm=lm), usage.context():
        with pytest.raises(Exception, match="no answer"):
            dspy.Predict("question -> answer")(question="q")
        assert usage.calls_needed == 0
    ok = scripted_lm(ScriptedEngine())
    with dspy.context(lm=ok), usage.context():
        dspy.Predict("question -> answer")(question="q")
    assert usage.calls_needed == 1
