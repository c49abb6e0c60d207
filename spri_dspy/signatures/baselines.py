"""Signatures of the baselines: answering or judging without situated principles."""

import dspy

from spri_dspy.signatures.score import Score

_QUERY = "The user's input to reply to."
_GOAL = "What the response should achieve for this user, when one is set."


class RespondDirectly(dspy.Signature):
    """Reply to the user's input as well as you can."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    response: str = dspy.OutputField(desc="The reply to the user.")


class CritiqueDirectly(dspy.Signature):
    """Review the reply to the user's input: point out what is wrong, missing or unhelpful, then score it:
    1 = does not help: off topic, wrong or harmful;
    2 = touches the input, but mostly unhelpful or inaccurate;
    3 = helpful in part, with clear gaps or errors;
    4 = accurate and helpful, with small lapses;
    5 = fully answers the input: accurate, specific and well judged."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    response: str = dspy.InputField(desc="The reply under review.")
    feedback: str = dspy.OutputField(desc="Concrete ways to improve the reply.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineDirectly(dspy.Signature):
    """Improve the draft reply to the user's input as the reviewer's feedback asks.

    Change only what the feedback asks for and keep the rest of the draft as it is."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    draft_response: str = dspy.InputField(desc="The reply to improve.")
    feedback: str = dspy.InputField(desc="The reviewer's feedback on it.")
    response: str = dspy.OutputField(desc="The improved reply.")


class JudgeDirectly(dspy.Signature):
    """Grade how well the response answers the instruction on a 1-5 scale: explain, then score."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    feedback: str = dspy.OutputField(desc="Why the response earns its score.")
    score: Score = dspy.OutputField(desc="Quality of the response, 1 (poor) to 5 (excellent).")


class CritiqueJudgementDirectly(dspy.Signature):
    """Check whether a grader's judgement of the response is accurate and its score justified.

    You grade the judgement, not the response. Say what it gets wrong, then score it:
    1 = misdescribes the response, or its score has no basis;
    2 = partly true, but the score is far from what the feedback supports;
    3 = mostly accurate, with one major flaw in its feedback or score;
    4 = accurate and justified, needing only small changes;
    5 = exactly right: true feedback and a score it fully supports."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    judgement: str = dspy.InputField(desc="The grader's feedback and score.")
    feedback: str = dspy.OutputField(desc="What the judgement gets wrong.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineJudgementDirectly(dspy.Signature):
    """Revise the judgement of the response using the critic's feedback."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    judgement: str = dspy.InputField(desc="The current feedback and score.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current judgement.")
    refined_feedback: str = dspy.OutputField(desc="The revised explanation.")
    refined_score: Score = dspy.OutputField(desc="The revised score of the response, 1 to 5.")
