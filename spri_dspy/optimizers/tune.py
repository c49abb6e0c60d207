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
(``MedianPruner``). Studies live in any Optuna storage: an SQLite file by default,
or a PostgreSQL/MySQL URL shared by several machines; rerunning with the same
storage and name resumes the study.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
import optuna

from spri_dspy.evaluation import evaluate
from spri_dspy.modules import Step
from spri_dspy.seeds import SeedSource, load_seeds
from spri_dspy.spri import SPRI

WORD_LIMITS = (64, 128, 256, None)
"""The word limits a study tries; None is no limit."""
STEP_KINDS = ("generator", "critic", "refiner")
"""The kinds of step (:attr:`spri_dspy.modules.Step.kind`) that each get their own temperature."""


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


class TrialFailed(RuntimeError):
    """A trial in which an example failed (an LM error after DSPy's retries, an unparseable answer):
    Optuna records the trial as failed with this message, and the study goes on."""


def _objective(devset, metric, build, cost: bool, report_every: int, retries: int) -> Callable[[optuna.Trial], Any]:
    def objective(trial: optuna.Trial):
        program = build(trial)
        # The whole dev set at once, or (single objective) in chunks whose running mean can prune the trial.
        chunks = [devset] if cost else [devset[i:i + report_every] for i in range(0, len(devset), report_every)]
        scores, calls, made = [], 0, 0
        for chunk in chunks:
            chunk_scores: list[float | None] = [None] * len(chunk)
            for _attempt in range(1 + retries):  # a failed example is tried again (a transient error, often)
                failed = [i for i, score in enumerate(chunk_scores) if score is None]
                result = evaluate(program, [chunk[i] for i in failed], metric)
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
) -> TuneResult:
    """Run (or resume) the study ``study_name`` in ``storage`` for ``n_trials`` more trials or ``timeout`` seconds.

    ``build(trial)`` may replace the default search space (:func:`suggest_spri`, given the task's ``framing``).
    Returns the study and its best trials: the Pareto front, or the single best trial with ``cost=False``.
    An example that fails is tried ``retries`` more times; a trial in which one still fails is recorded as failed (Optuna's FAIL state, its error in the user
    attribute ``error``) and the study goes on; :class:`TrialFailed` is raised only when every trial of this
    call failed.
    """
    if not devset:
        raise ValueError("tune needs a non-empty dev set")
    seed_examples = load_seeds(seeds) if seeds is not None else []
    build = build or (lambda trial: suggest_spri(trial, seed_examples, critic_lm, framing))
    study = optuna.create_study(
        storage=storage, study_name=study_name, load_if_exists=True,
        directions=["maximize", "minimize"] if cost else ["maximize"],
        pruner=None if cost else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    # Reproducible, yet a resumed study does not replay the random start-up trials it already ran.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    report_every = max(1, len(devset) // 4)
    before = len(study.trials)
    study.optimize(_objective(list(devset), metric, build, cost, report_every, retries), n_trials=n_trials, timeout=timeout,
                   catch=(TrialFailed,))
    added = study.trials[before:]
    if added and all(trial.state == optuna.trial.TrialState.FAIL for trial in added):
        raise TrialFailed(f"every one of the {len(added)} trials failed; the first: "
                          f"{added[0].user_attrs.get('error', '?')}")
    return TuneResult(study, pareto_front(study))


def pareto_front(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's best trials as plain data: number, metric, LM calls per input, settings."""
    front = []
    for trial in sorted(study.best_trials, key=lambda t: t.values[0], reverse=True):
        front.append({"trial": trial.number, "metric": trial.values[0],
                      "lm_calls_per_input": trial.user_attrs.get("lm_calls_per_input"), "params": trial.params})
    return front
