"""spri-dspy: SPRI (Situated-PRInciples, ICML 2025) as a DSPy program.

>>> import dspy, spri_dspy
>>> dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
>>> program = spri_dspy.SPRI(threshold=4, max_rounds=4)
>>> prediction = program(query="How do I tell my team I'm leaving?")
>>> prediction.principles, prediction.response, prediction.trace

Every name below is imported on first use, so ``import spri_dspy`` (and the ``spri`` command's start)
loads neither DSPy nor any model library until a name is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "SPRI": "spri_dspy.core.spri",
    "Situated": "spri_dspy.core.situated",
    "SPRIJudge": "spri_dspy.core.judge",
    "SPRIPairwiseJudge": "spri_dspy.core.pairwise",
    "Comparer": "spri_dspy.core.pairwise",
    "ComparisonCritic": "spri_dspy.core.pairwise",
    "ComparisonRefiner": "spri_dspy.core.pairwise",
    "Vanilla": "spri_dspy.core.baselines",
    "SelfRefine": "spri_dspy.core.baselines",
    "OraclePrinciples": "spri_dspy.core.baselines",
    "SeedPrinciples": "spri_dspy.core.baselines",
    "VanillaJudge": "spri_dspy.core.baselines",
    "SelfRefineJudge": "spri_dspy.core.baselines",
    "RubricJudge": "spri_dspy.core.baselines",
    "MT_BENCH_RUBRIC": "spri_dspy.core.baselines",
    "FLASK_RUBRIC": "spri_dspy.core.baselines",
    "PrincipleGenerator": "spri_dspy.core.steps",
    "PrincipleCritic": "spri_dspy.core.steps",
    "PrincipleRefiner": "spri_dspy.core.steps",
    "Responder": "spri_dspy.core.steps",
    "ResponseCritic": "spri_dspy.core.steps",
    "ResponseRefiner": "spri_dspy.core.steps",
    "RubricGenerator": "spri_dspy.core.judge",
    "RubricCritic": "spri_dspy.core.judge",
    "RubricRefiner": "spri_dspy.core.judge",
    "Judge": "spri_dspy.core.judge",
    "JudgementCritic": "spri_dspy.core.judge",
    "JudgementRefiner": "spri_dspy.core.judge",
    "PROGRAMS": "spri_dspy.core.programs",
    "build_program": "spri_dspy.core.programs",
    "save_program": "spri_dspy.core.programs",
    "load_program": "spri_dspy.core.programs",
    "CritiqueRefine": "spri_dspy.core.critique",
    "Round": "spri_dspy.core.critique",
    "load_seeds": "spri_dspy.core.seeds",
    "select_seeds": "spri_dspy.core.seeds",
    "SeedError": "spri_dspy.core.seeds",
    "LlamaCppEngine": "spri_dspy.runtime.embedded",
    "embedded_lm": "spri_dspy.runtime.embedded",
    "openai_lm": "spri_dspy.runtime.lms",
    "LMSpec": "spri_dspy.runtime.lms",
    "resolve_endpoint": "spri_dspy.runtime.lms",
    "Endpoint": "spri_dspy.runtime.lms",
    "EndpointError": "spri_dspy.runtime.lms",
    "CompactJSONAdapter": "spri_dspy.adapters",
    "ChatAdapter": "spri_dspy.adapters",
    "JSONAdapter": "spri_dspy.adapters",
    "run_batch": "spri_dspy.runtime.batch",
    "RayCluster": "spri_dspy.runtime.distributed",
    "TASKS": "spri_dspy.experiments.tasks",
    "load_reappraisal": "spri_dspy.experiments.tasks",
    "load_biggen": "spri_dspy.experiments.tasks",
    "generate_sft": "spri_dspy.experiments.tasks",
    "REAPPRAISAL_FRAMING": "spri_dspy.experiments.tasks",
    "METRICS": "spri_dspy.experiments.metrics",
    "reappraisal_alignment": "spri_dspy.experiments.metrics",
    "empathy": "spri_dspy.experiments.metrics",
    "agreement_by_group": "spri_dspy.experiments.metrics",
    "preference_agreement": "spri_dspy.experiments.metrics",
    "StagedModule": "spri_dspy.core.flow",
}
"""Public name -> the module that defines it."""

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'spri_dspy' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
