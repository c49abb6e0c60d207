"""Prompt ablations: a grid of program variants over one dataset, as a table and plots.

:func:`ablate` runs each variant on every example, scores it with a DSPy metric
and writes to a folder ``ablation.csv`` and ``ablation.md`` (metric mean with a
95% bootstrap confidence interval, LM calls and tokens per input, failures) and
the plots ``metric_by_variant.png`` and ``quality_vs_cost.png``.
:func:`plot_study` adds an Optuna study's Pareto front and parameter importances.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dspy
import numpy as np

from spri_dspy.evaluation import Inputs, evaluate


@dataclass
class VariantResult:
    """One variant's row of the ablation table."""

    variant: str
    n: int
    failed: int
    metric: float
    ci_low: float
    ci_high: float
    lm_calls_per_input: float
    """LM calls the variant needed per input, DSPy's cache hits included (a warm cache does not change it)."""
    tokens_per_input: float
    """Tokens of the calls made (that reached a model) per input."""
    first_error: str = ""
    """The first failure's reason (empty when none failed)."""
    lm_calls_made_per_input: float = 0.0
    """LM calls that reached a model per input (the rest were answered by DSPy's cache)."""


def bootstrap_ci(scores: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap confidence interval of the mean (``scipy.stats.bootstrap``)."""
    from scipy import stats

    values = np.asarray(scores, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    if np.ptp(values) == 0:  # every resample has the same mean
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def run_variant(name: str, program: dspy.Module, devset: Sequence[dspy.Example], metric,
                inputs: Inputs | None = None) -> VariantResult:
    """Score one variant on every example (:func:`spri_dspy.evaluation.evaluate`); an example that raises
    counts as failed, not as a score."""
    result = evaluate(program, devset, metric, inputs=inputs)
    low, high = bootstrap_ci([score for score in result.scores if score is not None])
    n = len(devset)
    return VariantResult(name, n, result.failed, result.mean, low, high, result.usage.calls_needed / n,
                         result.usage.tokens / n, result.first_error, result.usage.calls / n)


def ablate(
    variants: Mapping[str, dspy.Module],
    devset: Sequence[dspy.Example],
    metric: Callable[..., Any],
    output: str | os.PathLike,
    inputs: Mapping[str, Inputs] | None = None,
) -> list[VariantResult]:
    """Run every variant over ``devset`` and write the table and plots to ``output``.

    ``inputs`` maps a variant to how it reads an example (default ``example.inputs()``),
    e.g. an oracle that takes ``principles=example.constitution``.
    """
    if not devset:
        raise ValueError("ablate needs a non-empty dataset")
    rows = [run_variant(name, program, devset, metric, (inputs or {}).get(name))
            for name, program in variants.items()]
    write_table(rows, output)
    plot_variants(rows, output)
    return rows


def write_table(rows: Sequence[VariantResult], output: str | os.PathLike) -> None:
    """``ablation.csv`` and ``ablation.md``."""
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ablation.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    lines = ["| variant | n | failed | metric (95% CI) | LM calls needed / input | made (not cached) | "
             "tokens made / input |",
             "|---|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {r.variant} | {r.n} | {r.failed} | {r.metric:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f}) | "
              f"{r.lm_calls_per_input:.2f} | {r.lm_calls_made_per_input:.2f} | {r.tokens_per_input:.0f} |"
              for r in rows]
    (folder / "ablation.md").write_text("\n".join(lines) + "\n")


def plot_variants(rows: Sequence[VariantResult], output: str | os.PathLike) -> None:
    """``metric_by_variant.png`` (bars with confidence intervals) and ``quality_vs_cost.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(output)
    names = [r.variant for r in rows]
    means = np.array([r.metric for r in rows])
    errors = np.array([[r.metric - r.ci_low for r in rows], [r.ci_high - r.metric for r in rows]])
    figure, axes = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.5))
    axes.bar(names, means, yerr=errors, capsize=4, color="#4c72b0")
    axes.set_ylabel("metric (mean, 95% CI)")
    axes.set_title("Metric by variant")
    axes.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(folder / "metric_by_variant.png", dpi=120)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(5, 4))
    axes.scatter([r.lm_calls_per_input for r in rows], means, color="#dd8452")
    for row in rows:
        axes.annotate(row.variant, (row.lm_calls_per_input, row.metric), fontsize=8, xytext=(3, 3),
                      textcoords="offset points")
    axes.set_xlabel("LM calls needed per input (cache hits included)")
    axes.set_ylabel("metric")
    axes.set_title("Quality versus cost")
    figure.tight_layout()
    figure.savefig(folder / "quality_vs_cost.png", dpi=120)
    plt.close(figure)


def plot_study(study, output: str | os.PathLike) -> list[Path]:
    """An Optuna study's ``pareto_front.png`` (two objectives) and ``param_importances.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as ov

    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    plots = []
    if len(study.directions) == 2:
        plots.append(("pareto_front.png", lambda: ov.plot_pareto_front(study, target_names=["metric", "LM calls / input"])))
    if len(complete) >= 2:
        # Optuna's default evaluator (PED-ANOVA) explains *low* targets; the metric is maximised, so negate it.
        plots.append(("param_importances.png", lambda: ov.plot_param_importances(
            study, target=lambda t: -t.values[0], target_name="metric")))
    for name, draw in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # PED-ANOVA's notes on tiny studies
            axes = draw()
        axes.figure.set_size_inches(6, 4)
        axes.figure.tight_layout()
        axes.figure.savefig(folder / name, dpi=120)
        plt.close(axes.figure)
        written.append(folder / name)
    return written
