"""Compiling a program's instructions and demos with DSPy's own optimizers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from spri_dspy.experiments.evaluation import Progress, evaluate
from spri_dspy.runtime.usage import StepUsage

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
    demos: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per step, the demos the compiled program holds by where they came from: ``bootstrapped`` (traces of
    that step that passed the metric), ``seeds`` (given to the program) and ``labeled`` (mapped from the
    task's data, e.g. a reappraisal row's expert constitution as the principle generator's ``principles``)."""
    dropped: int = 0
    """Demos the optimizer set that lacked their step's fields (raw data rows) and were removed."""
    lm_calls: int = 0
    """LM calls the whole compile needed (both evaluations, the optimizer's runs and proposals, an LLM-judge
    metric's calls), DSPy's cache hits included."""
    lm_calls_made: int = 0
    """Those of them that reached a model."""


Labeled = Callable[[dspy.Example], dict[str, dict[str, Any]]]
"""A task's mapping of a data row to labeled demos: step name -> the demo's fields."""


def own_demos(compiled: dspy.Module, original: dspy.Module, trainset: Sequence[dspy.Example],
              labeled: Labeled | None, max_demos: int) -> tuple[dict[str, dict[str, int]], int]:
    """Leave each predictor of ``compiled`` only demos with its step's inputs and outputs, then top it up
    with its seeds from ``original`` and up to ``max_demos`` labeled demos that ``labeled`` maps from
    ``trainset`` (as DSPy caps bootstrapped and labeled demos separately). Returns the per-step counts by source and the number of demos dropped."""
    seeds = {name: list(predictor.demos) for name, predictor in original.named_predictors()}
    mapped: dict[str, list[dspy.Example]] = {}
    for example in trainset if labeled is not None else ():
        for step, fields in labeled(example).items():
            demos = mapped.setdefault(f"{step}.predict", [])
            outputs = {k: v for k, v in fields.items() if k not in example.inputs()}
            if all(outputs != {k: d.get(k) for k in outputs} for d in demos):  # one demo per distinct label
                demos.append(dspy.Example(**fields))
    counts, dropped = {}, 0
    for name, predictor in compiled.named_predictors():
        signature = predictor.signature
        kept = [_projected(demo, signature) for demo in predictor.demos if _belongs(demo, signature)]
        dropped += len(predictor.demos) - len(kept)
        bootstrapped = [demo for demo in kept if demo.get("augmented")]
        own_seeds = [demo for demo in seeds.get(name, []) if _belongs(demo, signature)]
        extra = [_projected(demo, signature) for demo in mapped.get(name, []) if _belongs(demo, signature)][:max_demos]
        predictor.demos = bootstrapped + own_seeds + extra
        step = name.removesuffix(".predict")
        counts[step] = {"bootstrapped": len(bootstrapped), "seeds": len(own_seeds), "labeled": len(extra)}
    return counts, dropped


def _projected(demo: Any, signature: type[dspy.Signature]) -> dspy.Example:
    """``demo`` with only its step's fields (and DSPy's ``augmented`` mark): no other column of a data row."""
    keep = {*signature.input_fields, *signature.output_fields, "augmented"}
    return dspy.Example(**{key: value for key, value in demo.items() if key in keep})


def _belongs(demo: Any, signature: type[dspy.Signature]) -> bool:
    """Whether ``demo`` holds every output of ``signature`` and at least one of its inputs."""
    def has(name):
        value = demo.get(name) if hasattr(demo, "get") else None
        return value is not None and value != ""

    return all(has(name) for name in signature.output_fields) and any(has(name) for name in signature.input_fields)


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
    labeled: Labeled | None = None,
    progress: Progress | None = None,
) -> tuple[dspy.Module, CompileReport]:
    """Compile a copy of ``program`` on ``trainset`` and measure ``metric`` on ``devset`` before and after.

    Args:
        optimizer: ``"bootstrap"`` (BootstrapFewShot: demos), ``"mipro"`` (MIPROv2: instructions and
            demos, searched with Optuna) or ``"gepa"`` (GEPA: instructions by reflection).
        max_demos: most bootstrapped and most labeled demos per predictor (besides its seeds).
        labeled: the task's mapping of a training row to labeled demos per step (see
            :attr:`spri_dspy.experiments.tasks.Task.labeled`); without it only bootstrapped demos (and seeds) are kept.

    Every compiled predictor holds only demos with its step's inputs and outputs (:func:`own_demos`):
    never a raw data row.
        num_candidates, num_trials: MIPROv2's instruction/demo candidates and search trials.
        max_metric_calls: GEPA's budget.
        prompt_model: the LM MIPROv2 proposes instructions with (default: the configured LM).
        reflection_lm: the LM GEPA reflects with (default: the configured LM).
        progress: ``progress(what, done, total)`` as the dev split is scored before ("dev, before") and
            after ("dev, after") and when the optimizer starts ("compiling", 0, 1) and ends ("compiling", 1, 1).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not trainset or not devset:
        raise ValueError("compile needs a non-empty train split and dev split")
    started = time.perf_counter()
    usage = StepUsage()  # the optimizer's and the metric's calls; each evaluation counts its program's own
    with usage.context(program):
        compiled, before, after, demos, dropped = _compile(
            program, trainset, devset, metric, optimizer, max_demos=max_demos, num_candidates=num_candidates,
            num_trials=num_trials, max_metric_calls=max_metric_calls, prompt_model=prompt_model,
            reflection_lm=reflection_lm, num_threads=num_threads, seed=seed, labeled=labeled, progress=progress)
    report = CompileReport(optimizer, before.score, after.score, len(trainset), len(devset),
                           round(time.perf_counter() - started, 2), before.failed, after.failed,
                           before.first_error or after.first_error, demos, dropped,
                           usage.calls_needed + before.usage.calls_needed + after.usage.calls_needed,
                           usage.calls + before.usage.calls + after.usage.calls)
    return compiled, report


def _compile(program, trainset, devset, metric, optimizer, *, max_demos, num_candidates, num_trials, max_metric_calls,
             prompt_model, reflection_lm, num_threads, seed, labeled, progress=None):
    progress = progress or (lambda what, done, total: None)
    before = evaluate(program, devset, metric, num_threads=num_threads, progress=progress, label="dev, before")
    progress(f"compiling ({optimizer})", 0, 1)
    student = program.deepcopy()
    if optimizer == "bootstrap":
        # No labeled demos from DSPy: it would give every step the raw training rows, which hold none of
        # most steps' fields; the task's own mapping (``labeled``) supplies them below.
        compiled = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=max_demos,
                                         max_labeled_demos=0).compile(student, trainset=list(trainset))
    elif optimizer == "mipro":
        mipro = dspy.MIPROv2(metric=metric, prompt_model=prompt_model, auto=None, num_candidates=num_candidates,
                             max_bootstrapped_demos=max_demos, max_labeled_demos=0, num_threads=num_threads,
                             seed=seed, verbose=False)
        compiled = mipro.compile(student, trainset=list(trainset), valset=list(devset), num_trials=num_trials,
                                 minibatch=False)
    else:
        gepa = dspy.GEPA(metric=_gepa_metric(metric), reflection_lm=reflection_lm or dspy.settings.lm,
                         max_metric_calls=max_metric_calls, num_threads=num_threads, seed=seed,
                         track_stats=False)
        compiled = gepa.compile(student, trainset=list(trainset), valset=list(devset))
    # DSPy's optimizers reset the student's predictors, dropping each step's own LM (a critic_lm): put them back.
    own_lms = {name: predictor.lm for name, predictor in program.named_predictors()}
    for name, predictor in compiled.named_predictors():
        if predictor.lm is None and own_lms.get(name) is not None:
            predictor.lm = own_lms[name]
    demos, dropped = own_demos(compiled, program, trainset, labeled, max_demos)
    progress(f"compiling ({optimizer})", 1, 1)
    after = evaluate(compiled, devset, metric, num_threads=num_threads, progress=progress, label="dev, after")
    return compiled, before, after, demos, dropped
