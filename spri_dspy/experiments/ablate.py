"""Prompt ablations: a grid of program variants over one dataset, as a table and plots.

:func:`ablate` runs each variant on every example, scores it with a DSPy metric
and writes to a folder ``ablation.csv`` and ``ablation.md`` (metric mean with a
95% bootstrap confidence interval, LM calls and tokens per input, failures) and
the plots ``metric_by_variant.png`` and ``quality_vs_cost.png``. Given a baseline, it also compares
every variant with it input by input (:mod:`spri_dspy.experiments.compare`): ``comparison.csv`` and
the paired table in ``ablation.md`` and its forest plot ``comparison.png``.
:func:`plot_study` adds an Optuna study's Pareto front and parameter importances.
"""

from __future__ import annotations

import contextlib
import csv
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy
import numpy as np

from spri_dspy.experiments.compare import Comparison, add_repeat_spread, bootstrap_ci, compare, comparison_table
from spri_dspy.experiments.evaluation import Inputs, Progress, evaluate

if TYPE_CHECKING:
    from spri_dspy.experiments.tracking import Tracker


@dataclass
class VariantResult:
    """One variant's row of the ablation table."""

    variant: str
    n: int
    failed: int
    metric: float
    ci_low: float
    ci_high: float
    lm_calls_needed_per_input: float
    """LM calls the variant needed per input, DSPy's cache hits included (a warm cache does not change it)."""
    tokens_per_input: float
    """Tokens of the calls made (that reached a model) per input."""
    first_error: str = ""
    """The first failure's reason (empty when none failed)."""
    lm_calls_made_per_input: float = 0.0
    """LM calls that reached a model per input (the rest were answered by DSPy's cache)."""
    failure_reasons: str = ""
    """Every distinct failure with its count ("2 x ValueError: ...; 1 x ..."), empty when none failed."""
    scores: list[float | None] = field(default_factory=list, repr=False)
    """The score of each input in order, None where it failed (not written to ``ablation.csv``); with repeats,
    each input's mean over the repeats that scored it."""
    repeats: int = 1
    repeat_spread: float = float("nan")
    """With repeats: the standard deviation of the repeats' metric means (NaN for one run)."""


def run_variant(name: str, program: dspy.Module, devset: Sequence[dspy.Example], metric,
                inputs: Inputs | None = None, *, progress: Progress | None = None, label: str | None = None) -> VariantResult:
    """Score one variant on every example (:func:`spri_dspy.experiments.evaluation.evaluate`); an example that raises
    counts as failed, not as a score."""
    result = evaluate(program, devset, metric, inputs=inputs, progress=progress, label=label or name)
    low, high = bootstrap_ci([score for score in result.scores if score is not None])
    n = len(devset)
    reasons = "; ".join(f"{count} x {reason}" for reason, count in result.failure_reasons.items())
    return VariantResult(name, n, result.failed, result.mean, low, high, result.usage.calls_needed / n,
                         result.usage.tokens / n, result.first_error, result.usage.calls / n, reasons,
                         list(result.scores))


def resampled(program: dspy.Module, repeat: int) -> dspy.Module:
    """``program`` for repeat ``repeat``: the program itself for repeat 0, else a copy whose every predictor
    asks for sampling seed ``repeat`` (``seed``, and DSPy's ``rollout_id`` so its cache is not reused).
    Repeats differ only where the LM samples (temperature above 0)."""
    if repeat == 0:
        return program
    copy = program.deepcopy()
    for predictor in copy.predictors():
        predictor.config = {**predictor.config, "rollout_id": repeat, "seed": repeat}
    return copy


def merged(runs: Sequence[VariantResult]) -> VariantResult:
    """One row for a variant run several times: each input's mean score over the repeats that scored it
    (failed when none did), costs averaged, and the spread of the repeats' metric means."""
    if len(runs) == 1:
        return runs[0]
    n = runs[0].n
    per_input = [[run.scores[i] for run in runs if run.scores[i] is not None] for i in range(n)]
    scores = [sum(values) / len(values) if values else None for values in per_input]
    low, high = bootstrap_ci([score for score in scores if score is not None])
    first = next((run for run in runs if run.failed), runs[0])
    mean = lambda attribute: sum(getattr(run, attribute) for run in runs) / len(runs)  # noqa: E731
    return VariantResult(runs[0].variant, n, sum(score is None for score in scores),
                         sum(score or 0.0 for score in scores) / n, low, high, mean("lm_calls_needed_per_input"),
                         mean("tokens_per_input"), first.first_error, mean("lm_calls_made_per_input"),
                         first.failure_reasons, scores, len(runs), float(np.std([run.metric for run in runs], ddof=1)))


def ablate(
    variants: Mapping[str, dspy.Module],
    devset: Sequence[dspy.Example],
    metric: Callable[..., Any],
    output: str | os.PathLike,
    inputs: Mapping[str, Inputs] | None = None,
    metric_label: str = "metric",
    progress: Progress | None = None,
    baseline: str | None = None,
    groups: Sequence[str] | None = None,
    repeats: int = 1,
    tracker: Tracker | None = None,
    variant_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[VariantResult]:
    """Run every variant over ``devset`` and write the table and plots to ``output``.

    ``inputs`` maps a variant to how it reads an example (default ``example.inputs()``),
    e.g. an oracle that takes ``principles=example.constitution``. ``metric_label`` names the
    metric and its scale on the plots' axes and in the table (see :data:`spri_dspy.experiments.metrics.METRIC_LABELS`).
    ``progress(f"variant k/n NAME", done, total)`` is called as each input of each variant finishes.
    With ``baseline`` (a variant's name), every other variant is compared with it input by input
    (:func:`spri_dspy.experiments.compare.compare`), per group too when ``groups`` names one per example.
    ``repeats`` runs every variant that many times with different sampling seeds (:func:`resampled`): rows
    and comparisons are of each input's mean over the repeats, with the spread between repeats beside them.
    With ``tracker`` (:class:`spri_dspy.experiments.tracking.Tracker`, entered), each variant runs in a child run
    of MLflow with ``variant_params[name]`` as its parameters and its row (and paired comparison) as metrics; the
    tables and plots become the parent run's artefacts.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}")
    if not devset:
        raise ValueError("ablate needs a non-empty dataset")
    if baseline is not None and baseline not in variants:
        raise ValueError(f"the baseline {baseline!r} is not one of the variants ({', '.join(variants)})")
    runs: dict[str, list[VariantResult]] = {}
    rows: list[VariantResult] = []
    child_runs: dict[str, str] = {}
    for number, (name, program) in enumerate(variants.items(), start=1):
        with tracker.child(name, (variant_params or {}).get(name)) if tracker else contextlib.nullcontext() as run_id:
            runs[name] = []
            for repeat in range(repeats):
                runs[name].append(run_variant(name, resampled(program, repeat), devset, metric,
                                              (inputs or {}).get(name), progress=progress,
                                              label=f"variant {number}/{len(variants)} {name}"
                                              + (f" repeat {repeat + 1}/{repeats}" if repeats > 1 else "")))
                if tracker and repeats > 1:
                    tracker.log_metrics({"repeat_metric": runs[name][-1].metric}, run_id, step=repeat)
            rows.append(merged(runs[name]))
            if tracker:
                child_runs[name] = run_id
                tracker.log_metrics(_row_metrics(rows[-1]), run_id)
    comparisons = compare({row.variant: row.scores for row in rows}, baseline, groups) if baseline else []
    if comparisons and repeats > 1:
        add_repeat_spread(comparisons, [{name: runs[name][r].scores for name in variants} for r in range(repeats)],
                          groups)
    write_table(rows, output, metric_label, comparisons)
    plot_variants(rows, output, metric_label, comparisons)
    if tracker:
        for comparison in comparisons:
            tracker.log_metrics(_comparison_metrics(comparison), child_runs[comparison.variant])
        tracker.log_metrics({"variants": len(rows), "inputs": len(devset), "repeats": repeats,
                             "lm_calls_needed": sum(r.lm_calls_needed_per_input * r.n for r in rows),
                             "lm_calls_made": sum(r.lm_calls_made_per_input * r.n for r in rows)})
        folder = Path(output)
        tracker.log_artifacts(folder / name for name in ("ablation.csv", "ablation.md", "comparison.csv",
                                                          "metric_by_variant.png", "quality_vs_cost.png",
                                                          "comparison.png"))
    return rows


def _row_metrics(row: VariantResult) -> dict[str, float]:
    """A variant's row as MLflow metrics (its child run's)."""
    return {"metric": row.metric, "ci_low": row.ci_low, "ci_high": row.ci_high, "n": row.n, "failed": row.failed,
            "lm_calls_needed_per_input": row.lm_calls_needed_per_input,
            "lm_calls_made_per_input": row.lm_calls_made_per_input, "tokens_per_input": row.tokens_per_input,
            "repeat_spread": row.repeat_spread}


def _comparison_metrics(comparison: Comparison) -> dict[str, float]:
    """A paired comparison as MLflow metrics of the variant's run, suffixed by its group (none for all inputs)."""
    suffix = "" if comparison.group == "all" else f".{comparison.group}"
    values = {"difference": comparison.mean_difference, "difference_ci_low": comparison.ci_low,
              "difference_ci_high": comparison.ci_high, "difference_repeat_spread": comparison.repeat_spread,
              "p_value": comparison.p_value, "p_holm": comparison.p_holm, "d_z": comparison.effect_size,
              "n_paired": comparison.n, "n_unpaired": len(comparison.unpaired)}
    return {f"{name}{suffix}": value for name, value in values.items()}


def write_table(rows: Sequence[VariantResult], output: str | os.PathLike, metric_label: str = "metric",
                comparisons: Sequence[Comparison] = ()) -> None:
    """``ablation.csv`` and ``ablation.md`` (with each variant's failure reasons under the table), and with
    ``comparisons`` ``comparison.csv`` and the paired table in ``ablation.md``."""
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ablation.csv").open("w", newline="") as handle:
        columns = [name for name in asdict(rows[0]) if name != "scores"]
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    if comparisons:
        with (folder / "comparison.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(comparisons[0])))
            writer.writeheader()
            writer.writerows({**asdict(row), "unpaired": " ".join(map(str, row.unpaired))} for row in comparisons)
    lines = [f"Metric: {metric_label}; mean over the inputs that ran, with its 95% bootstrap CI.", "",
             "| variant | n | failed | metric (95% CI) | LM calls needed / input | made (not cached) | "
             "tokens made / input |",
             "|---|---:|---:|---|---:|---:|---:|"]
    if any(r.repeats > 1 for r in rows):
        lines[0] += (f" {rows[0].repeats} repeats with different sampling seeds: each input's mean over them; "
                     "± is the standard deviation of the repeats' means.")
    lines += [f"| {r.variant} | {r.n} | {r.failed} | {r.metric:.3f}"
              + (f" ± {r.repeat_spread:.3f}" if r.repeats > 1 else "") + f" ({r.ci_low:.3f}-{r.ci_high:.3f}) | "
              f"{r.lm_calls_needed_per_input:.2f} | {r.lm_calls_made_per_input:.2f} | {r.tokens_per_input:.0f} |"
              for r in rows]
    failed = [r for r in rows if r.failed]
    if failed:
        lines += ["", "## Failures", ""]
        for r in failed:
            lines.append(f"- **{r.variant}**: {r.failed} of {r.n} inputs failed")
            lines += [f"  - {reason.strip()}" for reason in r.failure_reasons.split("; ") if reason.strip()]
    if comparisons:
        lines += ["", "## Against the baseline", "", comparison_table(comparisons, metric_label)]
    (folder / "ablation.md").write_text("\n".join(lines) + "\n")


def _label(row: VariantResult) -> str:
    return f"{row.variant} (n={row.n}" + (f", {row.failed} failed)" if row.failed else ")")


def _bars(errors) -> np.ndarray:
    """Error-bar lengths for matplotlib: no NaN, and never below 0 (an interval a rounding error away from
    its mean, e.g. given by a caller, must not crash the plot)."""
    return np.clip(np.nan_to_num(np.asarray(errors, dtype=float)), 0.0, None)


def metric_figure(rows: Sequence[VariantResult], metric_label: str = "metric"):
    """The bars of ``metric_by_variant.png``: one row per variant (names never collide), its mean with
    the 95% CI, and n and failures in its label."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.45 * len(rows)))
    positions = np.arange(len(rows))[::-1]
    means = np.array([r.metric for r in rows])
    errors = np.array([[r.metric - r.ci_low for r in rows], [r.ci_high - r.metric for r in rows]])
    axes.barh(positions, np.nan_to_num(means), xerr=_bars(errors), capsize=3, color="#4c72b0")
    axes.set_yticks(positions, [_label(r) for r in rows])
    for position, row in zip(positions, rows, strict=True):
        axes.annotate("no score" if np.isnan(row.metric) else f"{row.metric:.3f}", (0, position),
                      xytext=(3, 0), textcoords="offset points", va="center", fontsize=8, color="white")
    if np.nanmin(np.append(means, 0)) >= 0 and np.nanmax(np.append(means, 0)) <= 1:
        axes.set_xlim(0, 1)  # the metric's whole 0-1 scale, so bars of different runs compare by eye
    axes.set_xlabel(f"{metric_label}: mean, 95% CI")
    axes.set_title("Metric by variant")
    figure.tight_layout()
    return figure


def cost_figure(rows: Sequence[VariantResult], metric_label: str = "metric"):
    """The scatter of ``quality_vs_cost.png``: a marker per variant, named in a legend beside the plot (so
    variants at the same cost never overprint), with the 95% CI as a vertical bar."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    markers = "osD^vP*Xh<>p"
    costs = [r.lm_calls_needed_per_input for r in rows]
    spread = (max(costs) - min(costs)) or 1.0
    for index, row in enumerate(rows):
        same = [i for i, c in enumerate(costs) if c == row.lm_calls_needed_per_input]
        dodge = (same.index(index) - (len(same) - 1) / 2) * 0.02 * spread  # side by side where costs coincide
        errors = [[row.metric - row.ci_low], [row.ci_high - row.metric]]
        axes.errorbar(row.lm_calls_needed_per_input + dodge, row.metric, yerr=_bars(errors), fmt=markers[index % 12],
                      markersize=7, capsize=3, label=_label(row), color=plt.get_cmap("tab10")(index % 10))
    axes.set_xlabel("LM calls needed per input (cache hits included)")
    axes.set_ylabel(f"{metric_label}\n(mean, 95% CI)")
    axes.set_title("Quality versus cost")
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def forest_figure(comparisons: Sequence[Comparison], metric_label: str = "metric"):
    """The forest plot of ``comparison.png``: one row per variant (and group), its mean difference from the
    baseline with the 95% paired interval, the baseline at zero; n paired and the Holm p in each label."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 1.3 + 0.4 * len(comparisons)))
    positions = np.arange(len(comparisons))[::-1]
    means = np.array([c.mean_difference for c in comparisons], dtype=float)
    errors = np.array([[c.mean_difference - c.ci_low for c in comparisons],
                       [c.ci_high - c.mean_difference for c in comparisons]], dtype=float)
    axes.errorbar(np.nan_to_num(means), positions, xerr=_bars(errors), fmt="o", color="#4c72b0", capsize=3)
    axes.axvline(0.0, color="#555", linewidth=1, linestyle="--")
    labels = [f"{c.variant}" + (f" [{c.group}]" if c.group != "all" else "") + f" (n={c.n}, p Holm {c.p_holm:.3f})"
              for c in comparisons]
    axes.set_yticks(positions, labels)
    axes.set_xlabel(f"difference from {comparisons[0].baseline}: {metric_label} (mean, 95% paired CI)")
    axes.set_title(f"Each variant against the baseline ({comparisons[0].baseline} at 0)")
    figure.tight_layout()
    return figure


def plot_variants(rows: Sequence[VariantResult], output: str | os.PathLike, metric_label: str = "metric",
                  comparisons: Sequence[Comparison] = ()) -> None:
    """``metric_by_variant.png`` (:func:`metric_figure`), ``quality_vs_cost.png`` (:func:`cost_figure`) and with
    ``comparisons`` ``comparison.png`` (:func:`forest_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(output)
    for name, draw in (("metric_by_variant.png", metric_figure), ("quality_vs_cost.png", cost_figure)):
        figure = draw(rows, metric_label)
        figure.savefig(folder / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
    if comparisons:  # over all inputs; the groups' rows are in the table
        figure = forest_figure([c for c in comparisons if c.group == "all"], metric_label)
        figure.savefig(folder / "comparison.png", dpi=120, bbox_inches="tight")
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
