"""Agreement between a judge's scores and human scores: Pearson, Spearman, MAE, Krippendorff's alpha.

The paper's headline is Pearson computed per capability, then averaged over
capabilities; :func:`agreement_by_group` computes every figure that way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

FIGURES = ("pearson", "spearman", "mae", "krippendorff_alpha")


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant or has fewer than two values."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson on average-tie ranks)."""
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def mae(x: Sequence[float], y: Sequence[float]) -> float:
    """Mean absolute error between paired scores."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.abs(a - b).mean()) if len(a) else math.nan


def krippendorff_alpha(x: Sequence[float], y: Sequence[float]) -> float:
    """Krippendorff's alpha (interval metric) for two raters who rated every unit.

    With n = 2N pooled values: alpha = 1 - (n - 1) * sum((x - y)^2) / (n * sum((v - mean(v))^2)).
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pooled = np.concatenate([a, b])
    n = len(pooled)
    spread = float(((pooled - pooled.mean()) ** 2).sum())
    if n < 4 or spread == 0:
        return math.nan
    return 1 - (n - 1) * float(((a - b) ** 2).sum()) / (n * spread)


def agreement(model: Sequence[float], human: Sequence[float]) -> dict[str, float]:
    """All four figures for one set of paired scores, plus the pair count ``n``."""
    return {
        "n": len(model),
        "pearson": pearson(model, human),
        "spearman": spearman(model, human),
        "mae": mae(model, human),
        "krippendorff_alpha": krippendorff_alpha(model, human),
    }


def agreement_by_group(rows: Iterable[tuple[str, float | None, float]]) -> dict[str, dict]:
    """Agreement per group (capability) and averaged over groups (``"average"``).

    ``rows`` are (group, model_score, human_score); rows whose model score is
    None are dropped, every other row is kept as it is (the paper's rule).
    The average is the unweighted mean of the per-group figures.
    """
    pairs: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for group, model_score, human_score in rows:
        if model_score is None:
            continue
        pairs[group][0].append(model_score)
        pairs[group][1].append(human_score)
    per_group = {group: agreement(m, h) for group, (m, h) in sorted(pairs.items())}
    average = {figure: float(np.mean([g[figure] for g in per_group.values()])) if per_group else math.nan
               for figure in FIGURES}
    average["n"] = sum(g["n"] for g in per_group.values())
    return {"groups": per_group, "average": average}
