"""``spri compile``: optimise a program's prompts and demos with a DSPy optimizer and save it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spri_dspy.cli import build
from spri_dspy.cli.options import (add_data_options, add_lm_options, add_spri_options, add_tracking_option, check_settings,
                                   check_tracking, check_writable)

DESCRIPTION = (
    "Compile SPRI, SPRIJudge or a baseline on a train split of DATA against a metric with "
        "BootstrapFewShot, MIPROv2 or GEPA; print the metric on the dev split before and after; save the program "
        "(DSPy's JSON state) for 'spri run/generate --program FILE'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri compile``'s arguments."""
    add_data_options(parser)
    parser.add_argument("--optimizer", choices=("bootstrap", "mipro", "gepa"), default="bootstrap",
                          help="DSPy's BootstrapFewShot (demos; default), MIPROv2 (instructions and demos) or GEPA "
                               "(instructions, from reflection on the metric's feedback)")
    parser.add_argument("--output", "--save", dest="save", required=True, metavar="FILE",
                          help="where to save the compiled program (.json)")
    parser.add_argument("--max-demos", type=int, default=4, metavar="N", help="most demos per step (default 4)")
    parser.add_argument("--trials", type=int, default=6, metavar="N", help="MIPROv2 search trials (default 6)")
    parser.add_argument("--budget", type=int, default=60, metavar="N", help="GEPA metric calls (default 60)")
    add_tracking_option(parser)
    add_lm_options(parser)
    add_spri_options(parser, evaluation=True)


def handle(args: argparse.Namespace) -> int:
    """``spri compile``: optimise a program's prompts and demos and save it."""
    check_settings(args)
    check_tracking(args)
    check_writable("--save", args.save)
    task, examples, metric = build.task_data(args)
    trainset, devset = build.split(examples, args.dev_fraction)
    lm, critic_lm, adapter = build.models(args)
    program = build.program(task.kind, args.program, args, critic_lm)
    from spri_dspy.runtime.progress import WorkProgress

    progress = WorkProgress("spri compile")  # on the real stderr: the optimizers' own output is hidden below
    with build.tracker(args, str(Path(args.save).resolve().parent), f"compile {args.optimizer}") as tracker:
        status = _compile(args, task, program, trainset, devset, metric, lm, adapter, progress, tracker)
    build.tracked(tracker)
    return status


def _compile(args, task, program, trainset, devset, metric, lm, adapter, progress, tracker) -> int:
    """Compile, save and report; with ``tracker``, the report as metrics and the saved program as an artefact."""
    import dspy

    from spri_dspy.core.programs import save_program
    from spri_dspy.optimizers import compile_program

    with dspy.context(lm=lm, adapter=adapter), build.unless_verbose(args.verbose):
        compiled, report = compile_program(program, trainset, devset, metric, optimizer=args.optimizer,
                                           max_demos=args.max_demos, num_trials=args.trials,
                                           max_metric_calls=args.budget, labeled=task.labeled, progress=progress)
    if tracker is not None:
        tracker.log_metrics({"metric_before": report.before, "metric_after": report.after,
                             "failed_before": report.failed_before, "failed_after": report.failed_after,
                             "train_size": report.train_size, "dev_size": report.dev_size, "seconds": report.seconds,
                             "lm_calls_needed": report.lm_calls, "lm_calls_made": report.lm_calls_made,
                             "demos_dropped": report.dropped,
                             **{f"demos.{step}.{source}": count for step, counts in report.demos.items()
                                for source, count in counts.items()}})
    if report.failed_before == report.failed_after == report.dev_size:
        print(f"spri: error: every dev example failed before and after compiling, so nothing was measured and "
              f"{args.save} was not written; the first error: {report.first_error}", file=sys.stderr)
        return 1
    save_program(compiled, args.save)
    if tracker is not None:
        tracker.log_artifacts([args.save])
    print(f"{args.optimizer}: metric on {report.dev_size} dev examples {report.before:.3f} -> {report.after:.3f} "
          f"(trained on {report.train_size}, {report.seconds:.1f} s); saved {args.save}")
    print(f"  LM calls: {report.lm_calls} needed, {report.lm_calls_made} made")
    for step, counts in report.demos.items():
        print(f"  {step}: {sum(counts.values())} demos ({counts['bootstrapped']} bootstrapped, {counts['seeds']} seeds, "
              f"{counts['labeled']} labeled from the data)")
    if report.dropped:
        print(f"  dropped {report.dropped} demos that lacked their step's fields")
    if report.failed_before or report.failed_after:
        print(f"  failed dev examples: {report.failed_before} before, {report.failed_after} after (scored 0); "
              f"the first error: {report.first_error}")
    return 0
