"""Signatures of SPRI as a judge: an instance-specific rubric, then a judgement made with it."""

import dspy

from spri_dspy.signatures.score import Score

_INSTRUCTION = "The instruction the judged response answers."
_REFERENCE = "A reference answer that would score 5, when one is available."
_RUBRIC = "Criteria for this instruction, then what a response scoring 1, 2, 3, 4 and 5 looks like (one line each)."
_RESPONSE = "The response being judged."


class WriteRubric(dspy.Signature):
    """Write a scoring rubric made for this instruction, to judge responses to it on a 1-5 scale.

    State the criteria that matter for this particular instruction, then describe
    concretely what a response at each score from 1 to 5 does."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.OutputField(desc=_RUBRIC)


class CritiqueRubric(dspy.Signature):
    """Judge whether this rubric would let a grader score responses to the instruction fairly.

    A good rubric targets what this instruction really asks for, and its five
    score descriptions are distinct, ordered and concrete. Say what to fix, then
    rate the rubric from 1 (unusable) to 5 (excellent)."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric under review.")
    feedback: str = dspy.OutputField(desc="What the rubric gets wrong or misses, and how to fix it.")
    score: Score = dspy.OutputField(desc="Quality of the rubric: 1 (unusable) to 5 (excellent).")


class RefineRubric(dspy.Signature):
    """Rewrite the rubric to address the critic's feedback, keeping the criteria-then-five-scores shape."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The current rubric.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current rubric.")
    refined_rubric: str = dspy.OutputField(desc=_RUBRIC)


class JudgeWithRubric(dspy.Signature):
    """Grade the response strictly by the rubric: explain which score description it matches, then give that score."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric to grade with.")
    response: str = dspy.InputField(desc=_RESPONSE)
    feedback: str = dspy.OutputField(desc="Why the response earns its score, citing the rubric.")
    score: Score = dspy.OutputField(desc="The rubric score of the response, 1 to 5.")


class CritiqueJudgement(dspy.Signature):
    """Check whether a grader's judgement applies the rubric faithfully.

    Does the feedback reflect the response as it is, and does the score match
    the rubric description the feedback points to? Rate the judgement from 1
    (ignores the rubric) to 5 (applies it exactly)."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric the grader was given.")
    response: str = dspy.InputField(desc=_RESPONSE)
    judgement: str = dspy.InputField(desc="The grader's feedback and score.")
    feedback: str = dspy.OutputField(desc="Where the judgement departs from the rubric or the response.")
    score: Score = dspy.OutputField(desc="Faithfulness of the judgement to the rubric: 1 to 5.")


class RefineJudgement(dspy.Signature):
    """Revise the judgement of the response so that it applies the rubric faithfully, using the critic's feedback."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric to grade with.")
    response: str = dspy.InputField(desc=_RESPONSE)
    judgement: str = dspy.InputField(desc="The current feedback and score.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current judgement.")
    refined_feedback: str = dspy.OutputField(desc="The revised explanation, citing the rubric.")
    refined_score: Score = dspy.OutputField(desc="The revised rubric score of the response, 1 to 5.")
