"""``spri ablate``: a task's grid of variants over a dataset, as a table and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spri_dspy.cli import build
from spri_dspy.cli.options import CLIError, add_data_options, add_lm_options, add_spri_options, check_settings

DESCRIPTION = (
    "Run SPRI (no seeds / seeds / per-dimension seed), the baselines and the oracle over DATA and "
        "write ablation.csv, ablation.md, metric_by_variant.png and quality_vs_cost.png to OUTPUT (with --study, "
        "also the study's pareto_front.png and param_importances.png)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri ablate``'s arguments."""
    add_data_options(parser)
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the table and plots")
    parser.add_argument("--variants", metavar="NAMES", help="comma-separated subset of the variants to run")
    parser.add_argument("--baseline", metavar="NAME", help="the variant every other is compared with, input by "
                        "input (default: the grid's, e.g. vanilla for the response tasks)")
    parser.add_argument("--study", metavar="NAME", help="also plot this 'spri tune' study's Pareto front and "
                        "parameter importances (with --storage)")
    parser.add_argument("--storage", default="sqlite:///study.db", metavar="URL", help="the study's Optuna storage")
    add_lm_options(parser)
    add_spri_options(parser, evaluation=True)


def handle(args: argparse.Namespace) -> int:
    """``spri ablate``: the variant grid over a dataset."""
    import dspy

    from spri_dspy.experiments.ablate import ablate
    from spri_dspy.experiments.metrics import METRIC_LABELS

    check_settings(args)
    task, examples, metric = build.task_data(args)
    if task.variants is None:
        raise CLIError(f"spri ablate compares response programs; --task {args.task} has no ablation grid")
    lm, critic_lm, adapter = build.models(args)
    settings = build.program_settings(args, critic_lm)
    grid = task.variants(settings)
    chosen = args.variants.split(",") if args.variants else list(grid)
    unknown = sorted(set(chosen) - set(grid))
    if unknown:
        raise CLIError(f"--variants: unknown {unknown}; available: {', '.join(grid)}")
    baseline = args.baseline or next((name for name, variant in grid.items() if variant.baseline), None)
    if args.baseline and args.baseline not in chosen:
        raise CLIError(f"--baseline {args.baseline}: not among the variants run ({', '.join(chosen)})")
    if baseline not in chosen:
        baseline = None  # the grid's baseline was left out by --variants: no paired table
    variants = {name: build.built_variant(grid[name], task.kind, settings) for name in chosen}
    inputs = {name: grid[name].inputs for name in chosen if grid[name].inputs is not None}
    study = None
    if args.study:  # checked before the grid spends any LM call
        import optuna

        try:
            study = optuna.load_study(study_name=args.study, storage=args.storage)
        except KeyError:
            raise CLIError(f"--study {args.study!r} not found in {args.storage}") from None
    from spri_dspy.runtime.progress import WorkProgress

    with dspy.context(lm=lm, adapter=adapter):
        rows = ablate(variants, examples, metric, args.output, inputs=inputs,
                      metric_label=METRIC_LABELS[args.metric or task.metrics[0]], progress=WorkProgress("spri ablate"),
                      baseline=baseline, groups=[str(example.get(task.group_by) or "none") for example in examples]
                      if task.group_by else None)
    print((Path(args.output) / "ablation.md").read_text().rstrip())
    print(f"wrote {args.output}/ablation.csv, ablation.md, metric_by_variant.png, quality_vs_cost.png"
          + (", comparison.csv" if baseline else ""))
    if study is not None:
        from spri_dspy.experiments.ablate import plot_study

        for path in plot_study(study, args.output):
            print(f"wrote {path}")
    if rows and all(row.failed == row.n for row in rows):
        print(f"spri: error: every input of every variant failed; the first error: {rows[0].first_error}",
              file=sys.stderr)
        return 1
    return 0 if rows else 1
