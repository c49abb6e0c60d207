"""LLM-judge metrics in DSPy's ``(example, prediction, trace=None)`` shape.

Each metric asks a judge (a typed signature; the score is a ranged Literal, never
parsed from text) and returns the score divided by the top of its scale, so
``dspy.Evaluate`` reports a percentage of the maximum. While an optimizer is
bootstrapping (``trace`` is not None) it returns whether the score reached
``pass_score`` instead, as DSPy optimizers expect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import dspy

from spri_dspy.signatures.metrics import (
    JudgeEmpathy,
    JudgePrincipleUsefulness,
    JudgeReappraisalAlignment,
    JudgeResponseAdherence,
)


class JudgeMetric:
    """A DSPy metric scored by an LLM judge.

    Args:
        signature: the judge's signature, with a typed ``score`` output.
        inputs: builds the judge's inputs from ``(example, prediction)``.
        scale: the top score (5 or 10).
        lm: the judge's LM; None uses the configured one.
        pass_score: the score that counts as a pass while bootstrapping.
    """

    def __init__(self, signature: type[dspy.Signature], inputs: Callable[[Any, Any], dict], scale: int,
                 lm: dspy.BaseLM | None = None, pass_score: int | None = None):
        self.judge = dspy.Predict(signature)
        self.inputs = inputs
        self.scale = scale
        self.lm = lm
        self.pass_score = pass_score if pass_score is not None else scale - scale // 5

    def score(self, example, prediction) -> int:
        """The judge's raw score for one prediction."""
        with dspy.context(lm=self.lm) if self.lm is not None else contextlib.nullcontext():
            inputs = {name: value for name, value in self.inputs(example, prediction).items() if value is not None}
            return int(self.judge(**inputs).score)

    def __call__(self, example, prediction, trace=None) -> float | bool:
        raw = self.score(example, prediction)
        if trace is not None:
            return raw >= self.pass_score
        return raw / self.scale


def reappraisal_alignment(lm: dspy.BaseLM | None = None) -> JudgeMetric:
    """Alignment of ``prediction.response`` with ``example.standards`` for ``example.query`` under the aim
    ``example.goal`` (1-10, the paper's first judge)."""
    return JudgeMetric(JudgeReappraisalAlignment,
                       lambda e, p: {"post": e.query, "goal": e.get("goal"), "standards": e.standards,
                                     "response": p.response}, 10, lm)


def empathy(lm: dspy.BaseLM | None = None) -> JudgeMetric:
    """Empathy of ``prediction.response`` to ``example.query`` (1-5, the paper's second judge)."""
    return JudgeMetric(JudgeEmpathy, lambda e, p: {"post": e.query, "response": p.response}, 5, lm)


def principle_usefulness(lm: dspy.BaseLM | None = None) -> JudgeMetric:
    """Usefulness of ``prediction.principles`` for ``example.query`` (1-5)."""
    return JudgeMetric(JudgePrincipleUsefulness, lambda e, p: {"query": e.query, "principles": p.principles}, 5, lm)


def response_adherence(lm: dspy.BaseLM | None = None) -> JudgeMetric:
    """Adherence of ``prediction.response`` to ``prediction.principles`` (1-5)."""
    return JudgeMetric(JudgeResponseAdherence,
                       lambda e, p: {"query": e.query, "principles": p.principles, "response": p.response}, 5, lm)


def human_agreement(example, prediction, trace=None) -> float | bool:
    """Closeness of a judge's ``prediction.score`` to ``example.human_score`` on the 1-5 scale:
    1 - |difference| / 4 (exact match while bootstrapping)."""
    difference = abs(float(prediction.score) - float(example.human_score))
    if trace is not None:
        return difference == 0
    return max(0.0, 1 - difference / 4)


def preference_accuracy(example, prediction, trace=None) -> bool:
    """Whether a pairwise judge's ``prediction.verdict`` is the human ``example.label`` (A, B or tie)."""
    return prediction.verdict == example.label
