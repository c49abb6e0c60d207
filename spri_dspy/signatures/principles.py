"""Signatures of the principles stage: generate, critique, refine."""

import dspy

from spri_dspy.signatures.score import Score

_QUERY = "The user's input that the principles are written for."
_GOAL = "What the eventual response should achieve for this user, when one is set."
_PRINCIPLES = "A short numbered list of principles, each one concrete to this input."


class GeneratePrinciples(dspy.Signature):
    """Write the principles that a good reply to this particular input must follow.

    Study the input closely: who is asking, what they need, what could go wrong.
    Each principle names something specific to this situation that the reply
    should do or avoid. Skip generic advice that would fit any input."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.OutputField(desc=_PRINCIPLES)


class CritiquePrinciples(dspy.Signature):
    """Judge how useful these principles are for replying to this input.

    Useful principles are specific to the input, correct, cover what matters
    most, and pursue the goal when one is set. Explain what is missing or
    wrong, then rate them from 1 (useless) to 5 (excellent)."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc="The principles under review.")
    feedback: str = dspy.OutputField(desc="Concrete, actionable criticism of the principles.")
    score: Score = dspy.OutputField(desc="Usefulness of the principles: 1 (useless) to 5 (excellent).")


class RefinePrinciples(dspy.Signature):
    """Rewrite the principles so that they address the critic's feedback.

    Keep what the feedback did not object to, fix what it did, and keep every
    principle specific to this input."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc="The current principles.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current principles.")
    refined_principles: str = dspy.OutputField(desc=_PRINCIPLES)
