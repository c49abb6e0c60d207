"""Signatures of the response stage: respond under principles, critique, refine."""

import dspy

from spri_dspy.signatures.score import Score

_QUERY = "The user's input to reply to."
_GOAL = "What the response should achieve for this user, when one is set."
_PRINCIPLES = "The principles written for this input; the response must follow them."


class Respond(dspy.Signature):
    """Reply to the input, following every one of the given principles."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc=_PRINCIPLES)
    response: str = dspy.OutputField(desc="The reply to the user.")


class CritiqueResponse(dspy.Signature):
    """Check how faithfully the response follows the principles written for this input.

    Go through the principles one by one, say which ones the response honours
    and which it misses or violates, then rate its adherence from 1 (ignores
    them) to 5 (follows all of them)."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc=_PRINCIPLES)
    response: str = dspy.InputField(desc="The response under review.")
    feedback: str = dspy.OutputField(desc="Which principles the response follows or misses, and how to fix it.")
    score: Score = dspy.OutputField(desc="Adherence to the principles: 1 (ignores them) to 5 (follows all).")


class RefineResponse(dspy.Signature):
    """Revise the response so that it follows the principles, using the critic's feedback."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc=_PRINCIPLES)
    response: str = dspy.InputField(desc="The current response.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current response.")
    refined_response: str = dspy.OutputField(desc="The revised reply to the user.")
