"""Metrics: agreement with human scores, and LLM-judge metrics in DSPy's metric shape."""

from spri_dspy.experiments.metrics.agreement import (
    agreement,
    agreement_by_group,
    cohen_kappa,
    krippendorff_alpha,
    mae,
    pearson,
    preference_agreement,
    preference_rows,
    spearman,
)

from spri_dspy.experiments.metrics.llm import (
    JudgeMetric,
    empathy,
    human_agreement,
    preference_accuracy,
    principle_usefulness,
    reappraisal_alignment,
    response_adherence,
)

from spri_dspy.experiments.metrics.overlap import ConstitutionOverlap, constitution_overlap, token_f1

METRICS = {"alignment": reappraisal_alignment, "empathy": empathy, "usefulness": principle_usefulness,
           "adherence": response_adherence, "agreement": lambda lm=None: human_agreement,
           "constitution-overlap": constitution_overlap, "preference-accuracy": lambda lm=None: preference_accuracy}
"""--metric name -> a factory taking the judge's LM (None: the configured LM) and returning a DSPy metric."""

READS_PRINCIPLES = frozenset({"usefulness", "adherence", "constitution-overlap"})
"""The metrics that score a prediction's ``principles``: they fit only programs that write principles."""

METRIC_LABELS = {
    "alignment": "alignment with the expert standards (judge's 1-10 / 10)",
    "empathy": "empathy (judge's 1-5 / 5)",
    "usefulness": "usefulness of the principles (judge's 1-5 / 5)",
    "adherence": "adherence to the principles (judge's 1-5 / 5)",
    "agreement": "agreement with the human score (1 - |difference| / 4)",
    "constitution-overlap": "content-word F1 with the expert constitution (0-1)",
    "preference-accuracy": "accuracy against human preferences (0-1)",
}
"""--metric name -> what the metric measures and its scale, for plot axes and tables."""

__all__ = [
    "METRICS",
    "METRIC_LABELS",
    "READS_PRINCIPLES",
    "ConstitutionOverlap",
    "constitution_overlap",
    "token_f1",
    "JudgeMetric",
    "reappraisal_alignment",
    "empathy",
    "principle_usefulness",
    "response_adherence",
    "human_agreement", "preference_accuracy", "preference_agreement", "preference_rows", "cohen_kappa", "agreement", "agreement_by_group", "pearson", "spearman", "mae", "krippendorff_alpha"]
