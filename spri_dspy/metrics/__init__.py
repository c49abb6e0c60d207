"""Metrics: agreement with human scores, and LLM-judge metrics in DSPy's metric shape."""

from spri_dspy.metrics.agreement import agreement, agreement_by_group, krippendorff_alpha, mae, pearson, spearman

__all__ = ["agreement", "agreement_by_group", "pearson", "spearman", "mae", "krippendorff_alpha"]
