"""Compiling a program's instructions and demos with DSPy's own optimizers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from spri_dspy.evaluation import evaluate

OPTIMIZERS = ("bootstrap", "mipro", "gepa")
Metric = Callable[..., Any]


@dataclass
class CompileReport:
    """The metric on the dev split before and after compiling."""

    optimizer: str
    before: float
    after: float
    train_size: int
    dev_size: int
    seconds: float
    failed_before: int = 0
    """Dev examples whose run failed (an LM error after retries, an unparseable answer) before compiling."""
    failed_after: int = 0
    """The same after compiling."""
    first_error: str = ""
    """The first failure's reason, when any failed."""


def _gepa_metric(metric: Metric) -> Callable[..., Any]:
    """GEPA calls metrics with (gold, pred, trace, pred_name, pred_trace); ours take (example, prediction, trace)."""

    def gepa_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return float(metric(gold, pred, None))

    return gepa_metric


def compile_program(
    program: dspy.Module,
    trainset: Sequence[dspy.Example],
    devset: Sequence[dspy.Example],
    metric: Metric,
    optimizer: str = "bootstrap",
    *,
    max_demos: int = 4,
    num_candidates: int = 3,
    num_trials: int = 6,
    max_metric_calls: int = 60,
    prompt_model: dspy.BaseLM | None = None,
    reflection_lm: dspy.BaseLM | None = None,
    num_threads: int = 1,
    seed: int = 0,
) -> tuple[dspy.Module, CompileReport]:
    """Compile a copy of ``program`` on ``trainset`` and measure ``metric`` on ``devset`` before and after.

    Args:
        optimizer: ``"bootstrap"`` (BootstrapFewShot: demos), ``"mipro"`` (MIPROv2: instructions and
            demos, searched with Optuna) or ``"gepa"`` (GEPA: instructions by reflection).
        max_demos: most bootstrapped and most labeled demos per predictor.
        num_candidates, num_trials: MIPROv2's instruction/demo candidates and search trials.
        max_metric_calls: GEPA's budget.
        prompt_model: the LM MIPROv2 proposes instructions with (default: the configured LM).
        reflection_lm: the LM GEPA reflects with (default: the configured LM).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not trainset or not devset:
        raise ValueError("compile needs a non-empty train split and dev split")
    started = time.perf_counter()
    before = evaluate(program, devset, metric, num_threads=num_threads)
    student = program.deepcopy()
    if optimizer == "bootstrap":
        compiled = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=max_demos,
                                         max_labeled_demos=max_demos).compile(student, trainset=list(trainset))
    elif optimizer == "mipro":
        mipro = dspy.MIPROv2(metric=metric, prompt_model=prompt_model, auto=None, num_candidates=num_candidates,
                             max_bootstrapped_demos=max_demos, max_labeled_demos=max_demos, num_threads=num_threads,
                             seed=seed, verbose=False)
        compiled = mipro.compile(student, trainset=list(trainset), valset=list(devset), num_trials=num_trials,
                                 minibatch=False)
    else:
        gepa = dspy.GEPA(metric=_gepa_metric(metric), reflection_lm=reflection_lm or dspy.settings.lm,
                         max_metric_calls=max_metric_calls, num_threads=num_threads, seed=seed,
                         track_stats=False)
        compiled = gepa.compile(student, trainset=list(trainset), valset=list(devset))
    after = evaluate(compiled, devset, metric, num_threads=num_threads)
    report = CompileReport(optimizer, before.score, after.score, len(trainset), len(devset),
                           round(time.perf_counter() - started, 2), before.failed, after.failed,
                           before.first_error or after.first_error)
    return compiled, report
