"""Signatures of the LLM judges behind the evaluation metrics; every score is a typed, ranged output."""

from typing import Literal

import dspy

from spri_dspy.signatures.score import Score

TenPointScore = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


class JudgeReappraisalAlignment(dspy.Signature):
    """Rate how well a reappraisal response to an emotional-support post meets the expert's standards.

    The response should pursue the stated aim. Check it against each standard,
    judging how it conforms to them rather than your overall impression. Advice
    tailored to what this person describes, so that they feel listened to, ranks
    above generic or templated advice (such as "talk to a professional") that
    would fit any post. Then score its alignment:
    1-2 = ignores or contradicts the standards;
    3-4 = touches a few standards, mostly generic;
    5-6 = meets some standards, partly tailored and partly generic;
    7-8 = meets most standards with advice tailored to the post;
    9-10 = meets every standard with advice tailored to the post."""

    post: str = dspy.InputField(desc="The person's post.")
    goal: str | None = dspy.InputField(desc="The aim of the reappraisal response (its appraisal dimension).")
    standards: str = dspy.InputField(desc="Expert standards a good reappraisal response meets.")
    response: str = dspy.InputField(desc="The response under evaluation.")
    rationale: str = dspy.OutputField(desc="Which standards the response meets or misses, and how tailored it is.")
    score: TenPointScore = dspy.OutputField(desc="Alignment with the standards: 1 to 10, by the levels above.")


class JudgeEmpathy(dspy.Signature):
    """Rate how empathetic the response to this post is: does the person feel cared for,
    understood and valued? Then score it:
    1 = cold, dismissive or off topic;
    2 = polite but distant; little sign of understanding;
    3 = acknowledges the feelings, in a generic way;
    4 = warm and understanding, tied to what the person wrote;
    5 = deeply empathetic: shows it understands and values this person throughout."""

    post: str = dspy.InputField(desc="The person's post.")
    response: str = dspy.InputField(desc="The response under evaluation.")
    rationale: str = dspy.OutputField(desc="What in the response shows or lacks empathy.")
    score: Score = dspy.OutputField(desc="Empathy: 1 to 5, by the levels above.")


class JudgePrincipleUsefulness(dspy.Signature):
    """Rate how useful these principles are for responding well to this input: specific to it,
    correct, and covering what matters. 1 (useless) to 5 (excellent)."""

    query: str = dspy.InputField(desc="The user's input.")
    principles: str = dspy.InputField(desc="The principles under evaluation.")
    rationale: str = dspy.OutputField(desc="Why the principles help or not.")
    score: Score = dspy.OutputField(desc="Usefulness: 1 to 5.")


class JudgeResponseAdherence(dspy.Signature):
    """Rate how closely the response follows the principles written for this input.
    1 (ignores them) to 5 (follows every one)."""

    query: str = dspy.InputField(desc="The user's input.")
    principles: str = dspy.InputField(desc="The principles the response should follow.")
    response: str = dspy.InputField(desc="The response under evaluation.")
    rationale: str = dspy.OutputField(desc="Which principles are followed or missed.")
    score: Score = dspy.OutputField(desc="Adherence: 1 to 5.")
