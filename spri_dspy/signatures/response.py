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

    Go through the principles one by one and say which ones the response
    honours and which it misses or breaks, and whether it serves the goal when
    one is set. Then score its adherence:
    1 = ignores the principles;
    2 = follows one or two of them and misses or breaks most;
    3 = follows about half of them, with clear misses;
    4 = follows nearly all of them, with small lapses;
    5 = follows every principle fully."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc=_PRINCIPLES)
    response: str = dspy.InputField(desc="The response under review.")
    feedback: str = dspy.OutputField(desc="Which principles the response follows or misses, and how to fix it.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineResponse(dspy.Signature):
    """Revise the draft response as the critic's feedback asks, so that it follows the principles.

    Change only what the feedback asks for and keep the rest of the draft as it is."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    principles: str = dspy.InputField(desc=_PRINCIPLES)
    draft_response: str = dspy.InputField(desc="The response to revise.")
    feedback: str = dspy.InputField(desc="The critic's feedback on it.")
    response: str = dspy.OutputField(desc="The reply to the user.")
