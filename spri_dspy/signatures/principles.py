"""Signatures of the principles stage: generate, critique, refine."""

import dspy

from spri_dspy.signatures.score import Score

_QUERY = "The user's input that the principles are written for."
_GOAL = "What the eventual response should achieve for this user, when one is set."
_PRINCIPLES = "A short numbered list of principles, each one concrete to this input."


class GeneratePrinciples(dspy.Signature):
    """Write the principles that a good reply to this particular input must follow.

    Principles are rules for the reply, not the reply itself. Study the input:
    who is asking, what they need, what could go wrong. Each principle names
    something this reply should do or avoid, and would still hold for similar
    inputs. Skip generic advice that fits any input; serve the goal when one is set."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.OutputField(desc=_PRINCIPLES)


class CritiquePrinciples(dspy.Signature):
    """Judge how well these principles would guide a reply to this input.

    Good principles are rules for the reply (not the reply itself), specific to
    this input yet sound for similar ones, correct, and aimed at the goal when
    one is set. Say what is missing or wrong, then score them:
    1 = unrelated to the input, or the reply itself instead of rules for it;
    2 = loosely related, but vague or generic and hard to act on;
    3 = relevant and of some use, but important points are missing;
    4 = clear, relevant, concrete guidance that would serve similar inputs, with small gaps;
    5 = complete, concrete and correct guidance for this input and inputs like it."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc="The principles under review.")
    feedback: str = dspy.OutputField(desc="Concrete, actionable criticism of the principles.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefinePrinciples(dspy.Signature):
    """Revise the draft principles as the critic's feedback asks.

    Fix what the feedback objects to, keep what it did not, and keep every
    principle a rule for the reply that is specific to this input."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    draft_principles: str = dspy.InputField(desc="The principles to revise.")
    feedback: str = dspy.InputField(desc="The critic's feedback on them.")
    principles: str = dspy.OutputField(desc=_PRINCIPLES)
