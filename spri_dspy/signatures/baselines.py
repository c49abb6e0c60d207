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
    """Review the reply to the user's input: point out what is wrong, missing or unhelpful,
    then rate its overall quality from 1 (poor) to 5 (excellent)."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    response: str = dspy.InputField(desc="The reply under review.")
    feedback: str = dspy.OutputField(desc="Concrete ways to improve the reply.")
    score: Score = dspy.OutputField(desc="Overall quality of the reply: 1 (poor) to 5 (excellent).")


class RefineDirectly(dspy.Signature):
    """Improve the reply to the user's input using the reviewer's feedback."""

    query: str = dspy.InputField(desc=_QUERY)
    goal: str | None = dspy.InputField(desc=_GOAL)
    response: str = dspy.InputField(desc="The current reply.")
    feedback: str = dspy.InputField(desc="The reviewer's feedback on the current reply.")
    refined_response: str = dspy.OutputField(desc="The improved reply.")


class JudgeDirectly(dspy.Signature):
    """Grade how well the response answers the instruction on a 1-5 scale: explain, then score."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    feedback: str = dspy.OutputField(desc="Why the response earns its score.")
    score: Score = dspy.OutputField(desc="Quality of the response, 1 (poor) to 5 (excellent).")


class CritiqueJudgementDirectly(dspy.Signature):
    """Check whether a grader's judgement of the response is accurate and its score justified;
    rate the judgement from 1 (wrong) to 5 (exactly right)."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    judgement: str = dspy.InputField(desc="The grader's feedback and score.")
    feedback: str = dspy.OutputField(desc="What the judgement gets wrong.")
    score: Score = dspy.OutputField(desc="Accuracy of the judgement: 1 to 5.")


class RefineJudgementDirectly(dspy.Signature):
    """Revise the judgement of the response using the critic's feedback."""

    instruction: str = dspy.InputField(desc="The instruction the judged response answers.")
    reference_answer: str | None = dspy.InputField(desc="A reference answer that would score 5, when available.")
    response: str = dspy.InputField(desc="The response being judged.")
    judgement: str = dspy.InputField(desc="The current feedback and score.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current judgement.")
    refined_feedback: str = dspy.OutputField(desc="The revised explanation.")
    refined_score: Score = dspy.OutputField(desc="The revised score of the response, 1 to 5.")
