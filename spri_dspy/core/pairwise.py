"""Pairwise SPRI judging: which of two responses is better, under one instance-specific rubric.

The rubric stage is SPRIJudge's; the second stage compares the two responses by it
(feedback and a verdict: A, B or tie), and a critic checks the comparison, refining it
below the threshold. To control position bias the comparison runs in both orders; a
verdict that flips with the order counts as a tie.
"""

from __future__ import annotations

from typing import Any

import dspy

from spri_dspy.core.data import check_text
from spri_dspy.core.flow import call
from spri_dspy.core.judge import RubricProgram
from spri_dspy.core.steps import Step
from spri_dspy.signatures import CompareWithRubric, CritiqueComparison, RefineComparison

_SWAPPED = {"A": "B", "B": "A", "tie": "tie"}


def render_verdict(comparison: dspy.Prediction) -> str:
    """The text of a comparison as critics and the trace see it: feedback, then the verdict."""
    return f"{comparison.feedback.strip()}\nVerdict: {comparison.verdict}"


class Comparer(Step):
    """Compares two responses by a rubric: feedback and a verdict (``"A"``, ``"B"`` or ``"tie"``).

    Takes no arguments; called with ``instruction``, ``rubric``, ``response_a``, ``response_b``
    and optionally ``reference_answer``, it returns ``feedback`` and ``verdict``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        compare = spri_dspy.Comparer()
        print(compare(instruction="Name a prime.", rubric="Score 5: a prime ...", response_a="4", response_b="7").verdict)
        ```
    """

    stage = "verdict"
    kind = "generator"

    def __init__(self):
        super().__init__(CompareWithRubric, {"feedback": "feedback", "verdict": "verdict"})


class ComparisonCritic(Step):
    """Scores 1..5 how faithfully a comparison applies the rubric, with feedback.

    Takes no arguments; called with the comparer's inputs and ``judgement`` (feedback and
    verdict as text), it returns ``score`` and ``feedback``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        critic = spri_dspy.ComparisonCritic()
        print(critic(instruction="Name a prime.", rubric="Score 5: a prime ...", response_a="4", response_b="7",
                     judgement="4 is not prime, 7 is. Verdict: B").score)
        ```
    """

    stage = "verdict"
    kind = "critic"

    def __init__(self):
        super().__init__(CritiqueComparison)


class ComparisonRefiner(Step):
    """Revises a comparison (feedback and verdict) using the critic's feedback.

    Takes no arguments; called with the comparison critic's inputs and ``feedback``, it
    returns the revised ``feedback`` and ``verdict``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        refiner = spri_dspy.ComparisonRefiner()
        print(refiner(instruction="Name a prime.", rubric="Score 5: a prime ...", response_a="4", response_b="7",
                      judgement="Both fine. Verdict: tie", feedback="4 is not prime.").verdict)
        ```
    """

    stage = "verdict"
    kind = "refiner"

    def __init__(self):
        super().__init__(RefineComparison, {"refined_feedback": "feedback", "refined_verdict": "verdict"})


class SPRIPairwiseJudge(RubricProgram):
    """SPRI for pairwise LLM-as-a-judge: which of two responses to one instruction is better.

    Stage 1 writes a rubric for the instruction, critiqued and refined as in
    :class:`spri_dspy.SPRIJudge`. Stage 2 compares the responses by it: feedback and a
    verdict ``"A"``, ``"B"`` or ``"tie"``, checked by a critic and refined below ``threshold``.
    With ``swap`` (default) stage 2 also runs with the responses swapped: when the two
    verdicts agree that is the verdict, otherwise ``"tie"`` and ``consistent`` is False.

    Args:
        threshold, max_rounds, seeds, critic_lm, keep, seed_match, leave_one_out, use_reference:
            as for :class:`spri_dspy.SPRIJudge`.
        swap: also judge the swapped order (position-bias control; twice the comparison calls).

    Calling it with ``(instruction=..., response_a=..., response_b=..., reference_answer=None,
    system_prompt=None, capability=None)`` returns a Prediction with ``rubric``, ``verdict``,
    ``feedback`` (of the A-first comparison), ``verdicts`` (``{"ab": ..., "ba": ...}``, the second
    mapped back to the original labels; only ``"ab"`` without ``swap``), ``consistent``,
    ``trace`` (stages ``"rubric"``, ``"verdict"`` and ``"verdict_swapped"``) and ``seeds``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        judge = spri_dspy.SPRIPairwiseJudge(max_rounds=2)
        result = judge(instruction="Name three prime numbers.", response_a="2, 3 and 9.", response_b="2, 3 and 5.")
        print(result.verdict, result.consistent, result.feedback)
        ```
    """

    def __init__(self, *, swap: bool = True, **settings: Any):
        if not isinstance(swap, bool):
            raise TypeError(f"swap must be True or False, got {swap!r}")
        super().__init__(**settings)
        self.swap = swap

    def second_stage(self) -> None:
        """The comparer, its critic and refiner, and a loop over them for each order of the responses."""
        self.comparer = Comparer()
        self.comparison_critic = ComparisonCritic()
        self.comparison_refiner = ComparisonRefiner()
        options = {"field": "judgement", "draft_field": "judgement", "output": None, "render": render_verdict}
        self.verdict_stage = self.critique_refine("verdict", self.comparison_critic, self.comparison_refiner, **options)
        self.swapped_stage = self.critique_refine("verdict_swapped", self.comparison_critic, self.comparison_refiner,
                                                  **options)

    stages = ("write_rubric", "write_verdict")
    outputs = ("rubric", "verdict", "feedback", "verdicts", "consistent", "trace", "seeds")

    async def write_rubric(self, instruction: str, response_a: str, response_b: str,
                           reference_answer: str | None = None, system_prompt: str | None = None,
                           capability: str | None = None) -> dspy.Prediction:
        """Stage 1: a rubric for the instruction, critiqued and refined."""
        instruction = check_text("instruction", instruction)
        responses = {"response_a": check_text("response_a", response_a),
                     "response_b": check_text("response_b", response_b)}
        reference = check_text("reference_answer", reference_answer, optional=True) if self.use_reference else None
        rubric = await self.situated_rubric(instruction, reference, system_prompt, capability)
        return dspy.Prediction(instruction=instruction, reference_answer=reference, **responses, rubric=rubric.rubric,
                               trace=rubric.trace, seeds=rubric.seeds)

    async def write_verdict(self, instruction: str, reference_answer: str | None, response_a: str, response_b: str,
                            rubric: str) -> dspy.Prediction:
        """Stage 2: the comparison under the final rubric, critiqued and refined, in both orders with ``swap``."""
        context = {"instruction": instruction, "reference_answer": reference_answer, "rubric": rubric}
        first = await self._compare(self.verdict_stage, context, response_a, response_b)
        verdicts, trace = {"ab": first.final.verdict}, first.trace
        if self.swap:
            second = await self._compare(self.swapped_stage, context, response_b, response_a)
            verdicts["ba"] = _SWAPPED[second.final.verdict]
            trace = trace + second.trace
        consistent = len(set(verdicts.values())) == 1
        return dspy.Prediction(verdict=verdicts["ab"] if consistent else "tie", feedback=first.final.feedback,
                               verdicts=verdicts, consistent=consistent, trace=trace)

    async def _compare(self, stage, context: dict, response_a: str, response_b: str) -> dspy.Prediction:
        shown = {**context, "response_a": response_a, "response_b": response_b}
        return await call(stage, await call(self.comparer, **shown), **shown)
