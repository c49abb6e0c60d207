"""Counting LM calls: calls needed (cache hits included) and made, per step."""

from __future__ import annotations

import dspy
import pytest

from spri_dspy.testing import ScriptedEngine, scripted_lm
from spri_dspy.runtime.usage import _CALLS_NEEDED, StepUsage, count_calls_needed


def test_the_counting_callback_is_attached_once():
    lm = scripted_lm(ScriptedEngine())
    count_calls_needed(lm)
    count_calls_needed(lm)  # every batch run calls it again on the same LM
    assert lm.callbacks.count(_CALLS_NEEDED) == 1


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
