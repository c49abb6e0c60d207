"""``spri tune``: an Optuna study over SPRI's settings (quality against LM calls)."""

from __future__ import annotations

import argparse
import sys

from spri_dspy.cli import build
from spri_dspy.cli.options import CLIError, add_data_options, add_lm_options, add_tracking_option, check_settings, check_tracking

DESCRIPTION = (
    "Optuna study over threshold, max_rounds, keep, seeds, per-step temperature and a separate "
        "critic, maximising the metric and minimising LM calls per input on DATA. Rerun to resume the study."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri tune``'s arguments."""
    add_data_options(parser)
    parser.add_argument("--storage", default="sqlite:///study.db", metavar="URL",
                      help="Optuna storage: an SQLite file (default sqlite:///study.db; one worker at a time) or a "
                           "PostgreSQL URL (postgresql://USER:PASSWORD@HOST/DB, after pip install 'spri-dspy[postgres]') "
                           "that any number of workers share")
    parser.add_argument("--study", default="spri", metavar="NAME", help="study name (default spri)")
    parser.add_argument("--n-trials", type=int, default=20, metavar="N",
                      help="the study's budget of complete trials, shared by every worker on it (default 20); "
                           "rerun with a larger N to extend a finished study")
    parser.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                      help="seconds between a worker's heartbeats; a trial silent for twice that is taken for dead, "
                           "failed and retried by another worker (default 30)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="stop adding trials after this long")
    parser.add_argument("--quality-only", action="store_true", help="one objective (the metric), with pruning")
    parser.add_argument("--output", "--plots", dest="plots", metavar="DIR",
                      help="write pareto_front.png and param_importances.png here")
    add_tracking_option(parser)
    add_lm_options(parser)
    parser.add_argument("--seeds", metavar="FILE", help="seed examples the study may use")


def handle(args: argparse.Namespace) -> int:
    """``spri tune``: an Optuna study over SPRI's settings."""
    args.threshold, args.max_rounds = 4, 4  # tuned, not set
    check_settings(args)
    check_tracking(args)
    task, examples, metric = build.task_data(args)
    if task.kind != "response":
        raise CLIError("spri tune tunes SPRI; use --task reappraisal or instructions")
    from spri_dspy.optimizers.tune import WORKER, StorageBusyError, one_sqlite_worker

    try:  # a busy SQLite file is refused before any model is loaded (tune holds the lock for the run itself)
        with one_sqlite_worker(args.storage):
            pass
    except StorageBusyError as exc:
        raise CLIError(f"--storage: {exc}") from None
    lm, critic_lm, adapter = build.models(args)
    if not args.verbose:  # a failed trial's traceback: in the study (its "error"), not on the screen
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    from spri_dspy.secrets import register_url

    register_url(args.storage)  # a database password is printed as *** (here and in any error)
    print(f"spri tune: worker {WORKER} on study {args.study!r}, budget {args.n_trials} complete trials; watch it "
          f"live with: optuna-dashboard '{args.storage}'", file=sys.stderr, flush=True)
    with build.tracker(args, args.plots or ".", f"tune {args.study}", exclude=("threshold", "max_rounds")) as tracker:
        _tune(args, task, examples, metric, lm, critic_lm, adapter, tracker)
    build.tracked(tracker)
    return 0


def _tune(args, task, examples, metric, lm, critic_lm, adapter, tracker) -> None:
    """The study, its report, and with ``tracker`` a child run per trial and the front and plots on the parent."""
    import dspy

    from spri_dspy.optimizers import tune
    from spri_dspy.optimizers.tune import StorageBusyError, StudyMismatchError

    try:
        with dspy.context(lm=lm, adapter=adapter):
            from spri_dspy.runtime.progress import WorkProgress
            from spri_dspy.experiments.tracking import trial_runs

            result = tune(examples, metric, storage=args.storage, study_name=args.study, n_trials=args.n_trials,
                          timeout=args.timeout, seeds=args.seeds, critic_lm=critic_lm, cost=not args.quality_only,
                          framing=task.framing, heartbeat=args.heartbeat, progress=WorkProgress("spri tune"),
                          callbacks=[trial_runs(tracker, ("metric", "lm_calls_per_input") if not args.quality_only
                                                else ("metric",))] if tracker else ())
    except StorageBusyError as exc:
        raise CLIError(f"--storage: {exc}") from None
    except StudyMismatchError as exc:
        raise CLIError(f"--study: {exc}") from None
    except ImportError as exc:
        raise CLIError(f"--storage {args.storage}: {exc} (for PostgreSQL: pip install 'spri-dspy[postgres]')") from None
    import optuna

    trials = result.study.trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    surplus = sum("budget" in t.user_attrs for t in trials)
    print(f"study {args.study!r} in {args.storage}: {complete} complete trials of {len(trials)}"
          + (f"; {len(failed)} failed (e.g. trial {failed[0].number}: "
             f"{failed[0].user_attrs.get('error', 'its worker stopped sending heartbeats; retried')[:200]})"
             if failed else "")
          + (f"; {surplus} started after the budget was claimed, not run" if surplus else "") + "; best:")
    for row in result.best:
        calls = row["lm_calls_per_input"]
        print(f"  trial {row['trial']}: metric {row['metric']:.3f}, {calls:.2f} LM calls/input, {row['params']}")
    plots = []
    if args.plots:
        from spri_dspy.experiments.ablate import plot_study

        plots = plot_study(result.study, args.plots)
        for path in plots:
            print(f"  wrote {path}")
    if tracker is not None:
        import json

        tracker.log_metrics({"complete_trials": complete, "trials": len(trials), "failed_trials": len(failed),
                             "best_metric": max((row["metric"] for row in result.best), default=None)})
        tracker.log_text(json.dumps(result.best, indent=2, default=str), "pareto_front.json")
        tracker.log_artifacts(plots)
