"""Paired comparisons of ablation variants against a baseline: are the differences real?

Every variant of an ablation runs on the same inputs, so each variant is compared with the baseline
input by input. Only the inputs both finished are paired; the others are counted and listed, never
dropped silently. For each variant (and each group of inputs, e.g. an appraisal dimension or a
capability, when the data has one) :func:`compare` gives the mean difference from the baseline, a
95% paired-bootstrap interval of it, a two-sided p-value from a paired sign-flip permutation test
(``scipy.stats.permutation_test``; exact for up to 13 pairs), that p-value Holm-Bonferroni adjusted over
the variants compared within the group, and an effect size (Cohen's d_z: the mean difference over the
standard deviation of the differences).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ALL = "all"
"""The group of every input."""


@dataclass
class Comparison:
    """One variant against the baseline, over one group of inputs."""

    variant: str
    baseline: str
    group: str
    n: int
    """Inputs paired: both the variant and the baseline have a score."""
    mean_difference: float
    """Mean of (variant - baseline) over the paired inputs."""
    ci_low: float
    ci_high: float
    """95% paired-bootstrap interval of the mean difference."""
    p_value: float
    """Two-sided, paired sign-flip permutation test of a zero mean difference."""
    p_holm: float
    """``p_value`` Holm-Bonferroni adjusted over the variants compared in this group."""
    effect_size: float
    """Cohen's d_z: mean difference / standard deviation of the differences (NaN when they do not vary)."""
    unpaired: list[int] = field(default_factory=list)
    """Indexes of the group's inputs left out: the variant or the baseline has no score for them."""
    repeat_spread: float = math.nan
    """With repeated runs: the standard deviation, over the repeats, of each repeat's mean difference."""


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (NaN stays NaN and is not counted)."""
    order = sorted((p, index) for index, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[index] = running
    return adjusted


def bootstrap_ci(scores: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap confidence interval of the mean (``scipy.stats.bootstrap``): of a variant's scores,
    or of its paired differences from the baseline."""
    from scipy import stats

    values = np.asarray(scores, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    if np.ptp(values) == 0:  # every resample has the same mean: the mean itself, as computed (0.7 * 3 / 3 != 0.7)
        return float(values.mean()), float(values.mean())
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _sign_flip_p(differences: np.ndarray, resamples: int, seed: int) -> float:
    if len(differences) == 0 or not differences.any():
        return math.nan if len(differences) == 0 else 1.0
    from scipy import stats

    result = stats.permutation_test((differences,), np.mean, permutation_type="samples", alternative="two-sided",
                                    n_resamples=resamples, random_state=np.random.default_rng(seed))
    return float(result.pvalue)


def compare(scores: Mapping[str, Sequence[float | None]], baseline: str, groups: Sequence[str] | None = None, *,
            resamples: int = 9999, seed: int = 0) -> list[Comparison]:
    """Every variant of ``scores`` (name -> one score per input, None where it failed) against ``baseline``,
    over all inputs and, with ``groups`` (one group name per input), over each group.

    Rows come variant by variant in ``scores``' order, the group of all inputs first, then the groups sorted.
    """
    if baseline not in scores:
        raise ValueError(f"the baseline {baseline!r} is not one of the variants ({', '.join(scores)})")
    sizes = {name: len(values) for name, values in scores.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every variant needs one score per input; got {sizes}")
    total = sizes[baseline]
    if groups is not None and len(groups) != total:
        raise ValueError(f"groups names {len(groups)} inputs, the scores {total}")
    members = {ALL: list(range(total))}
    for index, group in enumerate(groups or ()):
        members.setdefault(str(group), []).append(index)
    rows: list[Comparison] = []
    for group, indexes in members.items():
        if group != ALL and len(members) == 2:  # one group only: the same as all
            continue
        group_rows = []
        for variant, values in scores.items():
            if variant == baseline:
                continue
            paired = [i for i in indexes if values[i] is not None and scores[baseline][i] is not None]
            differences = np.array([values[i] - scores[baseline][i] for i in paired], dtype=float)
            low, high = bootstrap_ci(differences, min(resamples, 2000), seed)
            spread = float(differences.std(ddof=1)) if len(differences) > 1 else math.nan
            group_rows.append(Comparison(
                variant=variant, baseline=baseline, group=group, n=len(paired),
                mean_difference=float(differences.mean()) if len(differences) else math.nan,
                ci_low=low, ci_high=high, p_value=_sign_flip_p(differences, resamples, seed), p_holm=math.nan,
                effect_size=float(differences.mean() / spread) if spread and not math.isnan(spread) else math.nan,
                unpaired=[i for i in indexes if i not in set(paired)]))
        for row, adjusted in zip(group_rows, holm([row.p_value for row in group_rows]), strict=True):
            row.p_holm = adjusted
        rows += group_rows
    groups_sorted = {ALL: 0, **{name: rank + 1 for rank, name in enumerate(sorted(g for g in members if g != ALL))}}
    order = {name: rank for rank, name in enumerate(scores)}
    return sorted(rows, key=lambda row: (order[row.variant], groups_sorted[row.group]))


def add_repeat_spread(rows: Sequence[Comparison], repeats: Sequence[Mapping[str, Sequence[float | None]]],
                      groups: Sequence[str] | None = None) -> None:
    """Set each row's ``repeat_spread`` from the scores of each repeat (name -> one score per input)."""
    for row in rows:
        indexes = [i for i in range(len(repeats[0][row.baseline]))
                   if row.group == ALL or (groups is not None and str(groups[i]) == row.group)]
        means = []
        for scores in repeats:
            differences = [scores[row.variant][i] - scores[row.baseline][i] for i in indexes
                           if scores[row.variant][i] is not None and scores[row.baseline][i] is not None]
            if differences:
                means.append(sum(differences) / len(differences))
        row.repeat_spread = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan


def comparison_table(rows: Sequence[Comparison], metric_label: str = "metric") -> str:
    """The comparisons as a Markdown table, with how to read it."""
    if not rows:
        return ""
    lines = [f"Paired against the baseline **{rows[0].baseline}** ({metric_label}): mean difference (variant - "
             "baseline) over the inputs both finished, its 95% paired-bootstrap interval, a two-sided sign-flip "
             "permutation p-value, the same Holm-adjusted over the variants, and Cohen's d_z.", "",
             "| variant | group | n paired | difference (95% CI) | p | p (Holm) | d_z | left out |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    repeated = any(not math.isnan(r.repeat_spread) for r in rows)
    if repeated:
        lines[0] += " With repeated runs, the difference is of the per-input means over the repeats, and ± is the "\
                    "standard deviation of the repeats' own mean differences."
    for r in rows:
        spread = f" ± {r.repeat_spread:.3f}" if repeated else ""
        lines.append(f"| {r.variant} | {r.group} | {r.n} | {r.mean_difference:+.3f}{spread} ({r.ci_low:+.3f} to "
                     f"{r.ci_high:+.3f}) | {r.p_value:.3f} | {r.p_holm:.3f} | {r.effect_size:.2f} | "
                     f"{len(r.unpaired)}" + (f" (inputs {', '.join(map(str, r.unpaired[:10]))}"
                                             + (", ..." if len(r.unpaired) > 10 else "") + ")" if r.unpaired else "")
                     + " |")
    return "\n".join(lines)
