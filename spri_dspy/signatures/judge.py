"""Signatures of SPRI as a judge: an instance-specific rubric, then a judgement made with it."""

import dspy

from spri_dspy.signatures.score import Score

_INSTRUCTION = "The instruction the judged response answers."
_SYSTEM = "The system prompt the answering model was given, when there was one."
_REFERENCE = "A reference answer that would score 5, when one is available."
_RUBRIC = "Criteria for this instruction, then what a response scoring 1, 2, 3, 4 and 5 looks like (one line each)."
_RESPONSE = "The response being judged."


class WriteRubric(dspy.Signature):
    """Write a scoring rubric made for this instruction, to judge responses to it on a 1-5 scale.

    State the criteria that matter for this particular instruction, then describe
    concretely what a response at each score from 1 to 5 does. The rubric is a
    yardstick, not an answer: it must be able to grade any possible response.
    When the instruction holds worked examples before its question, write the
    rubric for the last question only."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    system_prompt: str | None = dspy.InputField(desc=_SYSTEM)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.OutputField(desc=_RUBRIC)


class CritiqueRubric(dspy.Signature):
    """Judge whether this rubric would let a grader score responses to the instruction fairly.

    A good rubric targets what this instruction (its last question, when it holds
    worked examples) really asks for, could grade any possible answer, and has
    five score descriptions that are distinct, ordered and concrete. Say what to
    fix, then score the rubric:
    1 = not about this instruction, or no usable score descriptions;
    2 = related, but its criteria miss what the instruction asks, or its levels overlap;
    3 = usable, but some levels are vague, out of order or not tied to this instruction;
    4 = criteria on target with distinct, ordered levels; only small vagueness;
    5 = exactly on target, with five distinct, ordered, concrete levels that fit any answer."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    system_prompt: str | None = dspy.InputField(desc=_SYSTEM)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric under review.")
    feedback: str = dspy.OutputField(desc="What the rubric gets wrong or misses, and how to fix it.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineRubric(dspy.Signature):
    """Revise the draft rubric as the critic's feedback asks, keeping the criteria-then-five-scores shape."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    system_prompt: str | None = dspy.InputField(desc=_SYSTEM)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    draft_rubric: str = dspy.InputField(desc="The rubric to revise.")
    feedback: str = dspy.InputField(desc="The critic's feedback on it.")
    rubric: str = dspy.OutputField(desc=_RUBRIC)


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

    You grade the judgement, not the response: does its feedback describe the
    response as it really is, and does its score match the rubric level that
    the feedback points to? Say where it departs, then score the judgement:
    1 = ignores the rubric, or misdescribes the response;
    2 = cites the rubric but misapplies it: the score is far from the level the feedback describes;
    3 = mostly follows the rubric, with one major flaw in its feedback or score;
    4 = follows the rubric closely; only small changes needed;
    5 = applies the rubric exactly: true feedback and the matching score."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric the grader was given.")
    response: str = dspy.InputField(desc=_RESPONSE)
    judgement: str = dspy.InputField(desc="The grader's feedback and score.")
    feedback: str = dspy.OutputField(desc="Where the judgement departs from the rubric or the response.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineJudgement(dspy.Signature):
    """Revise the judgement of the response so that it applies the rubric faithfully, using the critic's feedback.

    Where the critic's feedback conflicts with the rubric, follow the rubric."""

    instruction: str = dspy.InputField(desc=_INSTRUCTION)
    reference_answer: str | None = dspy.InputField(desc=_REFERENCE)
    rubric: str = dspy.InputField(desc="The rubric to grade with.")
    response: str = dspy.InputField(desc=_RESPONSE)
    judgement: str = dspy.InputField(desc="The current feedback and score.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the current judgement.")
    refined_feedback: str = dspy.OutputField(desc="The revised explanation, citing the rubric.")
    refined_score: Score = dspy.OutputField(desc="The revised rubric score of the response, 1 to 5.")
