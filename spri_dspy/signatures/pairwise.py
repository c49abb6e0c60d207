"""Signatures of pairwise SPRI judging: two responses compared under one instance-specific rubric."""

from typing import Literal

import dspy

from spri_dspy.signatures.score import Score

Verdict = Literal["A", "B", "tie"]
"""Which response is better: ``"A"``, ``"B"`` or ``"tie"``; its JSON schema is an enum of the three."""

_INSTRUCTION = "The instruction both responses answer."
_REFERENCE = "A reference answer that would score 5, when one is available."
_RUBRIC = "The rubric written for this instruction."
_A = "Response A."
_B = "Response B."


class CompareWithRubric(dspy.Signature):
    """Compare two responses to the same instruction by the rubric and say which is better.

    Place each response at a rubric level, explaining why, then give the verdict: the
    response at the higher level, or "tie" when both sit at the same level. Judge the
    content only: the order of the responses and their length are no reason to prefer one."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc=_RUBRIC)
    response_a: str = dspy.InputField(desc=_A)
    response_b: str = dspy.InputField(desc=_B)
    feedback: str = dspy.OutputField(desc="Each response's rubric level and why.")
    verdict: Verdict = dspy.OutputField(desc='"A", "B" or "tie".')


class CritiqueComparison(dspy.Signature):
    """Check whether a comparison of two responses applies the rubric faithfully.

    You grade the comparison, not the responses: does its feedback describe both
    responses as they really are, place them at the right rubric levels, and does the
    verdict follow from those levels? Say where it departs, then score the comparison:
    1 = ignores the rubric, or misdescribes a response;
    2 = cites the rubric but the verdict contradicts the levels it names;
    3 = mostly sound, with one major flaw in a level or in the verdict;
    4 = follows the rubric closely; only small changes needed;
    5 = both levels right and the verdict follows from them."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc=_RUBRIC)
    response_a: str = dspy.InputField(desc=_A)
    response_b: str = dspy.InputField(desc=_B)
    judgement: str = dspy.InputField(desc="The comparison's feedback and verdict.")
    feedback: str = dspy.OutputField(desc="Where the comparison departs from the rubric or the responses.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineComparison(dspy.Signature):
    """Revise the comparison of the two responses so that it applies the rubric faithfully, using the
    critic's feedback. Where the critic's feedback conflicts with the rubric, follow the rubric."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc=_RUBRIC)
    response_a: str = dspy.InputField(desc=_A)
    response_b: str = dspy.InputField(desc=_B)
    judgement: str = dspy.InputField(desc="The current feedback and verdict.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current comparison.")
    refined_feedback: str = dspy.OutputField(desc="The revised explanation, citing the rubric.")
    refined_verdict: Verdict = dspy.OutputField(desc='The revised verdict: "A", "B" or "tie".')
