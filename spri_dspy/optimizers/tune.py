"""Tuning SPRI's settings with an Optuna study: quality against LM calls per input.

The search space: ``threshold`` (3-5), ``max_rounds`` (1-4), ``keep`` (latest/best),
``max_words`` (64, 128 (the paper's), 256 or no limit), the number of seeds shown and how they are matched (when seeds are given), a
sampling temperature per kind of step (generators (the responder too), critics, refiners),
and whether the critics run on ``critic_lm`` (when one is given).

By default the study has two objectives, the task metric (maximised) and LM calls
needed per input (minimised; DSPy's cache hits count, so a warm cache or a repeated
setting cannot move the Pareto front), so ``study.best_trials`` is the quality-versus-cost Pareto
front. Optuna cannot prune multi-objective trials; with ``cost=False`` the study
optimises the metric alone and prunes trials whose running mean falls behind
(``MedianPruner``).

Studies live in an Optuna RDB storage: an SQLite file by default (one worker at a
time: a second process on the same file is refused), or a PostgreSQL/MySQL URL that
any number of workers on any machines share. ``n_trials`` is the study's budget of
complete trials, whoever runs them: each worker starts trials only while complete,
running and waiting trials leave room, and a trial that finds the budget already
claimed by trials numbered before it ends as PRUNED without running (user attribute
``budget``), so racing workers never overshoot. Every worker sends Optuna's heartbeat;
a trial whose worker died (no heartbeat for ``grace_period`` seconds) is marked FAIL
by the next worker to look and retried from its parameters
(``RetryHeartbeatStaleTrialCallback``), and workers wait for running trials before they stop,
so a dead worker's share of the budget is run by the others. Rerunning with the same
storage, name and budget resumes the study; a larger budget extends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import optuna

from spri_dspy.experiments.evaluation import Progress, evaluate
from spri_dspy.runtime.locks import LockHeld, take_lock
from spri_dspy.core.steps import Step
from spri_dspy.core.seeds import SeedSource, load_seeds
from spri_dspy.core.spri import SPRI

WORD_LIMITS = (64, 128, 256, None)
"""The word limits a study tries; None is no limit."""
STEP_KINDS = ("generator", "critic", "refiner")
"""The kinds of step (:attr:`spri_dspy.core.steps.Step.kind`) that each get their own temperature."""


@dataclass
class TuneResult:
    """A finished (or resumed) study and its best trials."""

    study: optuna.Study
    best: list[dict[str, Any]]


def suggest_spri(trial: optuna.Trial, seeds: Sequence[dspy.Example] = (), critic_lm: dspy.BaseLM | None = None,
                 framing: str | None = None) -> SPRI:
    """A SPRI program with the settings ``trial`` suggests (the search space above) and the task's ``framing``."""
    program = SPRI(
        framing=framing,
        threshold=trial.suggest_int("threshold", 3, 5),
        max_rounds=trial.suggest_int("max_rounds", 1, 4),
        keep=trial.suggest_categorical("keep", ["latest", "best"]),
        max_words=trial.suggest_categorical("max_words", WORD_LIMITS),
        seeds=list(seeds[: trial.suggest_int("n_seeds", 0, len(seeds))]) if seeds else None,
        seed_match=trial.suggest_categorical("seed_match", ["all", "goal"]) if seeds else "all",
        critic_lm=critic_lm if critic_lm is not None and trial.suggest_categorical("separate_critic", [True, False])
        else None,
    )
    temperatures = {kind: trial.suggest_float(f"temperature_{kind}", 0.0, 1.0) for kind in STEP_KINDS}
    for _, step in program.named_sub_modules(Step):
        step.predict.config["temperature"] = temperatures[step.kind]
    return program


SETUP = "setup"
"""The study's user attribute that records :func:`study_setup`."""


class StudyMismatchError(ValueError):
    """The study was run with other models or another prompt format: this worker's trials would not be comparable
    with its earlier ones."""


def study_setup(critic_lm: dspy.BaseLM | None = None) -> dict[str, Any]:
    """What every trial of a study shares (JSON data): the model names of the configured LM and of ``critic_lm``,
    and the configured adapter as ``run.json`` records it. Endpoints are left out: workers on several machines may
    reach the same model at different addresses."""
    from spri_dspy.runtime.lms import adapter_record

    return {"lm": getattr(dspy.settings.lm, "model", None), "critic_lm": getattr(critic_lm, "model", None),
            "adapter": adapter_record(dspy.settings.adapter)}


def check_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    """Record ``setup`` on a study that has none (a new one, or one from before it was recorded); refuse one that
    was run with another (:class:`StudyMismatchError`)."""
    if SETUP not in study.user_attrs:
        study.set_user_attr(SETUP, setup)  # two workers at once: one insert wins, the other is ignored
    recorded = study.user_attrs[SETUP]
    differences = [f"{key} {json.dumps(recorded.get(key))} -> {json.dumps(value)}" for key, value in setup.items()
                   if recorded.get(key) != value]
    if differences:
        raise StudyMismatchError(
            f"study {study.study_name!r} was run with another setup ({'; '.join(differences)}); its trials would not "
            "compare with this worker's: resume it with the same --lm, --critic-lm and --adapter, or give another --study")


class StorageBusyError(RuntimeError):
    """An SQLite study file already in use by another tuning process."""


class TrialFailed(RuntimeError):
    """A trial in which an example failed (an LM error after DSPy's retries, an unparseable answer):
    Optuna records the trial as failed with this message, and the study goes on."""


WORKER = f"{os.uname().nodename}:{os.getpid()}"
"""This process, as the ``worker`` user attribute of the trials it runs names it."""
_HOLDING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def _objective(devset, metric, build, cost: bool, report_every: int, retries: int,
               budget: int | None, progress: Progress | None = None) -> Callable[[optuna.Trial], Any]:
    def objective(trial: optuna.Trial):
        trial.set_user_attr("worker", WORKER)
        if budget is not None:  # the trials numbered before this one may already hold the whole budget
            earlier = [t for t in trial.study.get_trials(deepcopy=False, states=_HOLDING) if t.number < trial.number]
            if len(earlier) >= budget:
                trial.set_user_attr("budget", f"spent: {len(earlier)} earlier trials hold the study's {budget}")
                raise optuna.TrialPruned()
        program = build(trial)
        # The whole dev set at once, or (single objective) in chunks whose running mean can prune the trial.
        chunks = [devset] if cost else [devset[i:i + report_every] for i in range(0, len(devset), report_every)]
        scores, calls, made = [], 0, 0
        for chunk in chunks:
            chunk_scores: list[float | None] = [None] * len(chunk)
            for _attempt in range(1 + retries):  # a failed example is tried again (a transient error, often)
                failed = [i for i, score in enumerate(chunk_scores) if score is None]
                result = evaluate(program, [chunk[i] for i in failed], metric, progress=progress,
                                  label=f"trial {trial.number}")
                calls += result.usage.calls_needed
                made += result.usage.calls
                for i, score in zip(failed, result.scores, strict=True):
                    chunk_scores[i] = score
                if not result.failed:
                    break
            else:  # a score with holes would not be comparable with the other trials'
                error = (f"{result.failed} of {len(chunk)} examples failed {1 + retries} times; the first: "
                         f"{result.first_error}")
                trial.set_user_attr("error", error)
                raise TrialFailed(error)
            scores += chunk_scores
            if not cost:
                trial.report(sum(scores) / len(scores), len(scores))
                if trial.should_prune():
                    raise optuna.TrialPruned()
        trial.set_user_attr("lm_calls_per_input", calls / len(devset))  # needed: a warm cache cannot move it
        trial.set_user_attr("lm_calls_made_per_input", made / len(devset))
        quality = sum(scores) / len(scores)
        return (quality, calls / len(devset)) if cost else quality

    return objective


def tune(
    devset: Sequence[dspy.Example],
    metric: Callable[..., Any],
    *,
    storage: str = "sqlite:///study.db",
    study_name: str = "spri",
    n_trials: int | None = 20,
    timeout: float | None = None,
    seeds: SeedSource | None = None,
    critic_lm: dspy.BaseLM | None = None,
    cost: bool = True,
    sampler_seed: int = 0,
    build: Callable[[optuna.Trial], dspy.Module] | None = None,
    framing: str | None = None,
    retries: int = 2,
    heartbeat: int = 30,
    poll: float = 1.0,
    progress: Progress | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> TuneResult:
    """Run the study ``study_name`` in ``storage`` until it has ``n_trials`` complete trials (the study's
    budget, shared by every worker; None: until ``timeout``), or for ``timeout`` seconds.

    ``build(trial)`` may replace the default search space (:func:`suggest_spri`, given the task's ``framing``).
    Returns the study and its best trials: the Pareto front, or the single best trial with ``cost=False``.
    An example that fails is tried ``retries`` more times; a trial in which one still fails is recorded as failed
    (Optuna's FAIL state, its error in the user attribute ``error``) and another trial takes its place;
    :class:`TrialFailed` is raised when every trial this worker ran failed. ``heartbeat``: seconds between
    heartbeats (a trial without one for twice that is taken for dead, failed and retried); ``poll``: seconds
    between looks at the study while other workers' trials hold the rest of the budget. ``progress(what,
    done, total)`` is called as each example of a trial is scored (``"trial N"``). ``callbacks`` are Optuna's,
    called as each trial this worker runs finishes (e.g. :func:`spri_dspy.experiments.tracking.trial_runs`).
    """
    if not devset:
        raise ValueError("tune needs a non-empty dev set")
    if n_trials is None and timeout is None:
        raise ValueError("give n_trials (the study's budget) or a timeout")
    seed_examples = load_seeds(seeds) if seeds is not None else []
    build = build or (lambda trial: suggest_spri(trial, seed_examples, critic_lm, framing))
    with one_sqlite_worker(storage):
        study = open_study(storage, study_name, cost=cost, heartbeat=heartbeat)
        check_setup(study, study_setup(critic_lm))
        # Reproducible, yet a resumed study does not replay the random start-up trials it already ran.
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
        objective = _objective(list(devset), metric, build, cost, max(1, len(devset) // 4), retries, n_trials,
                               progress)
        ran = _work(study, objective, n_trials, timeout, poll, list(callbacks))
    if ran and all(trial.state == optuna.trial.TrialState.FAIL for trial in ran):
        raise TrialFailed(f"every one of the {len(ran)} trials failed; the first: "
                          f"{ran[0].user_attrs.get('error', '?')}")
    return TuneResult(study, pareto_front(study))


def open_study(storage: str, study_name: str, *, cost: bool = True, heartbeat: int = 30) -> optuna.Study:
    """Create or load the study on an RDB storage with heartbeats and retries of dead workers' trials, safe
    when many workers start at once (Optuna's schema and the study are created by whoever comes first; the
    others' creation errors are retried a few times, then they load what was made)."""
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(
                    storage, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
            return optuna.create_study(
                storage=rdb, study_name=study_name, load_if_exists=True,
                directions=["maximize", "minimize"] if cost else ["maximize"],
                pruner=None if cost else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        except Exception as exc:  # sqlalchemy's errors of a concurrent CREATE TYPE/TABLE or INSERT of the study
            if attempt == 5 or type(exc).__module__.split(".")[0] != "sqlalchemy":
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _work(study: optuna.Study, objective, budget: int | None, timeout: float | None, poll: float,
          callbacks: list | None = None) -> list:
    """Run trials one at a time while the budget has room; wait while running trials hold the rest (they may
    die and be retried); stop at the budget, at the timeout, or after ``budget`` failed trials of this worker."""
    started, mine, failures = time.monotonic(), [], 0
    while timeout is None or time.monotonic() - started < timeout:
        with warnings.catch_warnings():  # Optuna marks the heartbeat API experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: FAIL, and a retry WAITING
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        holding = sum(t.state in _HOLDING for t in trials)
        if budget is not None and (complete >= budget or failures >= budget):
            break
        if budget is not None and holding >= budget and not any(t.state == optuna.trial.TrialState.WAITING
                                                                 for t in trials):
            time.sleep(poll)
            continue
        finished_before = {t.number for t in trials if t.state.is_finished()}  # a retry WAITING now is not
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        study.optimize(objective, n_trials=1, timeout=remaining, catch=(TrialFailed,), callbacks=callbacks)
        ours = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in finished_before
                and t.user_attrs.get("worker") == WORKER and "budget" not in t.user_attrs]
        mine += ours
        failures += sum(t.state == optuna.trial.TrialState.FAIL for t in ours)
    return mine


@contextlib.contextmanager
def one_sqlite_worker(storage: str) -> Iterator[None]:
    """Hold a lock beside an SQLite study file for the whole run: a second worker on it is refused (SQLite
    serializes writers and its heartbeats would time out), pointing to a server database instead."""
    if not storage.startswith("sqlite:///") or storage == "sqlite:///:memory:":
        yield
        return
    path = Path(storage[len("sqlite:///"):])
    try:
        fd = take_lock(path.with_name(path.name + ".lock"))
    except LockHeld as exc:
        raise StorageBusyError(
            f"{storage} is in use by another tuning process (pid {exc.holder or '?'}); an SQLite "
            "file serves one worker at a time: to tune with several, give every worker the same "
            "PostgreSQL URL as --storage (postgresql://HOST/DB) and the same --study") from None
    try:
        yield
    finally:
        os.close(fd)


def pareto_front(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's best trials as plain data: number, metric, LM calls per input, settings."""
    front = []
    for trial in sorted(study.best_trials, key=lambda t: t.values[0], reverse=True):
        front.append({"trial": trial.number, "metric": trial.values[0],
                      "lm_calls_per_input": trial.user_attrs.get("lm_calls_per_input"), "params": trial.params})
    return front
