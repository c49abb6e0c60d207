"""spri-dspy: SPRI (Situated-PRInciples, ICML 2025) as a DSPy program.

>>> import dspy, spri_dspy
>>> dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
>>> program = spri_dspy.SPRI(threshold=4, max_rounds=4)
>>> prediction = program(query="How do I tell my team I'm leaving?")
>>> prediction.principles, prediction.response, prediction.trace
"""

from spri_dspy.runtime.adapters import CompactJSONAdapter
from spri_dspy.core.baselines import (
    FLASK_RUBRIC,
    MT_BENCH_RUBRIC,
    OraclePrinciples,
    RubricJudge,
    SeedPrinciples,
    SelfRefine,
    SelfRefineJudge,
    Vanilla,
    VanillaJudge,
)
from spri_dspy.core.critique import CritiqueRefine, Round
from spri_dspy.runtime.embedded import LlamaCppEngine, embedded_lm
from spri_dspy.core.situated import Situated
from spri_dspy.runtime.lms import Endpoint, EndpointError, LMSpec, openai_lm, resolve_endpoint
from spri_dspy.core.steps import (
    PrincipleCritic,
    PrincipleGenerator,
    PrincipleRefiner,
    Responder,
    ResponseCritic,
    ResponseRefiner,
)
from spri_dspy.core.judge import (
    Judge,
    JudgementCritic,
    JudgementRefiner,
    RubricCritic,
    RubricGenerator,
    RubricRefiner,
    SPRIJudge,
)
from spri_dspy.core.pairwise import Comparer, ComparisonCritic, ComparisonRefiner, SPRIPairwiseJudge
from spri_dspy.core.programs import PROGRAMS, build_program, load_program, save_program
from spri_dspy.core.seeds import SeedError, load_seeds, select_seeds
from spri_dspy.core.spri import SPRI

__version__ = "0.1.0"

__all__ = [
    "SPRI",
    "Situated",
    "SPRIJudge",
    "SPRIPairwiseJudge",
    "Comparer",
    "ComparisonCritic",
    "ComparisonRefiner",
    "Vanilla",
    "SelfRefine",
    "OraclePrinciples",
    "SeedPrinciples",
    "VanillaJudge",
    "SelfRefineJudge",
    "RubricJudge",
    "MT_BENCH_RUBRIC",
    "FLASK_RUBRIC",
    "PrincipleGenerator",
    "PrincipleCritic",
    "PrincipleRefiner",
    "Responder",
    "ResponseCritic",
    "ResponseRefiner",
    "RubricGenerator",
    "RubricCritic",
    "RubricRefiner",
    "Judge",
    "JudgementCritic",
    "JudgementRefiner",
    "PROGRAMS",
    "build_program",
    "save_program",
    "load_program",
    "CritiqueRefine",
    "Round",
    "load_seeds",
    "select_seeds",
    "SeedError",
    "LlamaCppEngine",
    "embedded_lm",
    "openai_lm",
    "LMSpec",
    "resolve_endpoint",
    "Endpoint",
    "EndpointError",
    "CompactJSONAdapter",
]
