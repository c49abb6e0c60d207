"""Agreement between a judge's scores and human scores: Pearson, Spearman, MAE, Krippendorff's alpha;
and between pairwise verdicts and human preferences: accuracy and Cohen's kappa.

The paper's headline is Pearson computed per capability, then averaged over
capabilities; :func:`agreement_by_group` computes every figure that way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

FIGURES = ("pearson", "spearman", "mae", "krippendorff_alpha")


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """The pairs as arrays, or None when a correlation is undefined (fewer than two, or a side constant)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation (``scipy.stats.pearsonr``); NaN when either side is constant or has fewer than two values."""
    from scipy import stats

    pairs = _paired(x, y)
    return math.nan if pairs is None else float(stats.pearsonr(*pairs).statistic)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation, ties given their average rank (``scipy.stats.spearmanr``)."""
    from scipy import stats

    pairs = _paired(x, y)
    return math.nan if pairs is None else float(stats.spearmanr(*pairs).statistic)


def mae(x: Sequence[float], y: Sequence[float]) -> float:
    """Mean absolute error between paired scores."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.abs(a - b).mean()) if len(a) else math.nan


def krippendorff_alpha(x: Sequence[float], y: Sequence[float]) -> float:
    """Krippendorff's alpha (interval metric) for two raters who rated every unit (the ``krippendorff`` package);
    NaN with fewer than two units or no spread in the values."""
    import krippendorff

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pooled = np.concatenate([a, b])
    if len(a) < 2 or np.ptp(pooled) == 0:
        return math.nan
    return float(krippendorff.alpha(reliability_data=np.vstack([a, b]), level_of_measurement="interval"))


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


VERDICTS = ("A", "B", "tie")


def cohen_kappa(model: Sequence[str], human: Sequence[str]) -> float:
    """Cohen's kappa of two label sequences (chance-corrected agreement); NaN when chance agreement is 1."""
    if not model:
        return math.nan
    n = len(model)
    observed = sum(m == h for m, h in zip(model, human, strict=True)) / n
    labels = set(model) | set(human)
    expected = sum((model.count(k) / n) * (human.count(k) / n) for k in labels)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def preference_agreement(rows: Iterable[tuple[str, str | None, str]]) -> dict[str, dict]:
    """Agreement of pairwise verdicts with human preference labels (``"A"``, ``"B"``, ``"tie"``), per
    group and averaged over groups (unweighted, as :func:`agreement_by_group`).

    ``rows`` are (group, verdict, label); a None verdict (a failed judgement) counts as wrong,
    so failures lower accuracy instead of vanishing. Each group has ``n``, ``accuracy``,
    ``kappa`` (Cohen's, over the three labels), ``accuracy_without_ties`` (over the rows whose
    label is not a tie) and ``failed``.
    """
    by_group: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for group, verdict, label in rows:
        if label not in VERDICTS:
            raise ValueError(f"a preference label must be one of {VERDICTS}, got {label!r}")
        by_group[group].append((verdict, label))
    per_group = {}
    for group, pairs in sorted(by_group.items()):
        decisive = [(v, h) for v, h in pairs if h != "tie"]
        per_group[group] = {
            "n": len(pairs),
            "accuracy": sum(v == h for v, h in pairs) / len(pairs),
            "kappa": cohen_kappa([v or "failed" for v, _ in pairs], [h for _, h in pairs]),
            "accuracy_without_ties": sum(v == h for v, h in decisive) / len(decisive) if decisive else math.nan,
            "failed": sum(v is None for v, _ in pairs),
        }
    figures = ("accuracy", "kappa", "accuracy_without_ties")
    average = {figure: float(np.nanmean([g[figure] for g in per_group.values()]))
               if per_group and not all(math.isnan(g[figure]) for g in per_group.values()) else math.nan
               for figure in figures}
    average.update(n=sum(g["n"] for g in per_group.values()), failed=sum(g["failed"] for g in per_group.values()))
    return {"groups": per_group, "average": average}


def preference_rows(records: Iterable[Mapping[str, Any]], label: str = "label"
                    ) -> tuple[list[tuple[str, str | None, str]], list[tuple[int, str]]]:
    """The (group, verdict, label) rows of a pairwise run for :func:`preference_agreement`, and the
    (record number from 1, problem) of the records that cannot be used.

    One rule for every reader (``spri judge --pairwise``'s report and ``spri reproduce``). A record is a
    flat row (``verdict``, ``label``, ``capability``) or a ``results.jsonl`` record of ``spri judge
    --pairwise`` (the verdict in ``output``, the label a carried column). The label is the record's
    ``label`` field, else its carried column; the group is its ``capability``: the record's own, else a
    carried column, else its input's; ``"all"`` when it has none. A missing verdict (a failed
    judgement) is kept, to count as wrong; a label or verdict outside ``A``/``B``/``tie`` is a problem.
    """
    rows, problems = [], []
    for number, record in enumerate(records, start=1):
        output, columns, inputs = record.get("output", {}), record.get("columns", {}), record.get("input", {})
        value = record.get(label, columns.get(label))
        verdict = record.get("verdict", output.get("verdict") if isinstance(output, dict) else None)
        group = record.get("capability", columns.get("capability", inputs.get("capability"))) or "all"
        if value not in VERDICTS:
            problems.append((number, f"field {label!r} must be one of {', '.join(VERDICTS)}, got {value!r}"))
        elif verdict is not None and verdict not in VERDICTS:
            problems.append((number, f"field 'verdict' must be one of {', '.join(VERDICTS)} or null, got {verdict!r}"))
        else:
            rows.append((group, verdict, value))
    return rows, problems
