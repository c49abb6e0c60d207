"""DSPy signatures for the two SPRI stages (principles, then the response they guide),
for SPRI as a judge (rubric, then judgement) and for the baselines.

Each signature's docstring is its instruction. Scores are typed outputs whose
type, :data:`Score`, carries the 1..5 range into the JSON schema, so an LM
can only answer with a valid score and the text of an input can never forge one.
"""

from spri_dspy.signatures.baselines import (
    CritiqueDirectly,
    CritiqueJudgementDirectly,
    JudgeDirectly,
    RefineDirectly,
    RefineJudgementDirectly,
    RespondDirectly,
)
from spri_dspy.signatures.judge import (
    CritiqueJudgement,
    CritiqueRubric,
    JudgeWithRubric,
    RefineJudgement,
    RefineRubric,
    WriteRubric,
)
from spri_dspy.signatures.pairwise import CompareWithRubric, CritiqueComparison, RefineComparison, Verdict
from spri_dspy.signatures.principles import CritiquePrinciples, GeneratePrinciples, RefinePrinciples
from spri_dspy.signatures.response import CritiqueResponse, RefineResponse, Respond
from spri_dspy.signatures.score import Score

__all__ = [
    "Score",
    "GeneratePrinciples",
    "CritiquePrinciples",
    "RefinePrinciples",
    "Respond",
    "CritiqueResponse",
    "RefineResponse",
    "WriteRubric",
    "CritiqueRubric",
    "RefineRubric",
    "JudgeWithRubric",
    "CritiqueJudgement",
    "RefineJudgement",
    "Verdict",
    "CompareWithRubric",
    "CritiqueComparison",
    "RefineComparison",
    "RespondDirectly",
    "CritiqueDirectly",
    "RefineDirectly",
    "JudgeDirectly",
    "CritiqueJudgementDirectly",
    "RefineJudgementDirectly",
]
