"""Signatures of the LLM judges behind the evaluation metrics; every score is a typed, ranged output."""

from typing import Literal

import dspy

from spri_dspy.signatures.score import Score

TenPointScore = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


class JudgeReappraisalAlignment(dspy.Signature):
    """Rate how well a reappraisal response to an emotional-support post meets the expert's standards.

    Read the standards, check the response against each, then rate its
    alignment from 1 (contradicts them) to 10 (meets every one)."""

    post: str = dspy.InputField(desc="The person's post.")
    standards: str = dspy.InputField(desc="Expert standards a good reappraisal response meets.")
    response: str = dspy.InputField(desc="The response under evaluation.")
    rationale: str = dspy.OutputField(desc="Which standards the response meets or misses.")
    score: TenPointScore = dspy.OutputField(desc="Alignment with the standards: 1 to 10.")


class JudgeEmpathy(dspy.Signature):
    """Rate how empathetic the response to this post is: does it understand and validate what the
    person feels, in a warm and respectful way? 1 (cold or dismissive) to 5 (deeply empathetic)."""

    post: str = dspy.InputField(desc="The person's post.")
    response: str = dspy.InputField(desc="The response under evaluation.")
    rationale: str = dspy.OutputField(desc="What in the response shows or lacks empathy.")
    score: Score = dspy.OutputField(desc="Empathy: 1 to 5.")


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
