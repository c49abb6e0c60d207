"""``spri ablate``: a task's grid of variants over a dataset, as a table and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spri_dspy.cli import build
from spri_dspy.cli.options import (CLIError, add_data_options, add_lm_options, add_spri_options, add_tracking_option,
                                   check_settings, check_tracking)

DESCRIPTION = (
    "Run a grid of variants (--grid FILE, or the task's own: SPRI with and without seeds, the baselines, the "
    "oracle) over DATA, compare each with the grid's baseline input by input, and write ablation.csv, "
    "ablation.md, comparison.csv and the plots to OUTPUT (with --study, also the study's pareto_front.png and "
    "param_importances.png). --print-grid writes the task's grid file, a starting point for your own."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri ablate``'s arguments."""
    add_data_options(parser, data_optional=True)
    parser.add_argument("--output", metavar="DIR", help="folder for the table and plots (required to run)")
    parser.add_argument("--grid", metavar="FILE", help="a TOML grid file of variants (see spri ablate --print-grid); "
                        "default: the task's")
    parser.add_argument("--print-grid", action="store_true", help="print the task's grid file and exit")
    parser.add_argument("--repeats", type=int, default=1, metavar="N",
                        help="run every variant N times with sampling seeds 0..N-1 and report the spread between "
                             "repeats (meaningful with --temperature above 0)")
    parser.add_argument("--variants", metavar="NAMES", help="comma-separated subset of the variants to run")
    parser.add_argument("--baseline", metavar="NAME", help="the variant every other is compared with, input by "
                        "input (default: the grid's, e.g. vanilla for the response tasks)")
    parser.add_argument("--study", metavar="NAME", help="also plot this 'spri tune' study's Pareto front and "
                        "parameter importances (with --storage)")
    parser.add_argument("--storage", default="sqlite:///study.db", metavar="URL", help="the study's Optuna storage")
    add_tracking_option(parser)
    add_lm_options(parser)
    add_spri_options(parser, evaluation=True)


def handle(args: argparse.Namespace) -> int:
    """``spri ablate``: the variant grid over a dataset."""
    import dspy

    from spri_dspy.experiments.ablate import ablate
    from spri_dspy.experiments.metrics import METRIC_LABELS
    from spri_dspy.experiments.tasks import TASKS

    task = TASKS[args.task]
    if args.print_grid:
        if task.grid_path is None:
            raise CLIError(f"--task {args.task} has no grid file")
        print(task.grid_path.read_text(encoding="utf-8").rstrip())
        return 0
    check_tracking(args)  # first: --mlflow may have taken DATA for its URI
    if args.data is None or args.output is None:
        raise CLIError("spri ablate needs DATA and --output DIR (or --print-grid)")
    check_settings(args)
    grid = _grid(args, task)  # checked before any model is built
    task, examples, metric = build.task_data(args)
    if grid is None and task.variants is None:
        raise CLIError(f"spri ablate compares programs; --task {args.task} has no ablation grid: give --grid FILE")
    lm, critic_lm, adapter = build.models(args)
    settings = build.program_settings(args, critic_lm)
    if grid is not None:
        from spri_dspy.experiments.grid import GridError, build_variant, variant_inputs

        available = {variant.name: variant for variant in grid.chosen(settings)}
        names, default_baseline = list(available), grid.baseline
    else:
        table = task.variants(settings)
        names, default_baseline = list(table), next((n for n, v in table.items() if v.baseline), None)
    chosen = args.variants.split(",") if args.variants else names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise CLIError(f"--variants: unknown {unknown}; available: {', '.join(names)}")
    baseline = args.baseline or default_baseline
    if args.baseline and args.baseline not in chosen:
        raise CLIError(f"--baseline {args.baseline}: not among the variants run ({', '.join(chosen)})")
    if baseline not in chosen:
        baseline = None  # the grid's baseline was left out by --variants: no paired table
    if grid is not None:
        def make_lm(model):
            return build.make_lm(model, **build.lm_options(args))

        try:
            variants = {name: build_variant(available[name], task.kind, settings, grid.path, make_lm)
                        for name in chosen}
        except GridError as exc:
            raise CLIError(str(exc)) from None
        inputs = {name: variant_inputs(available[name]) for name in chosen}  # None: the example's inputs
        described = {name: {k: v for k, v in vars(available[name]).items() if k != "name"} for name in chosen}
    else:
        variants = {name: build.built_variant(table[name], task.kind, settings) for name in chosen}
        inputs = {name: table[name].inputs for name in chosen if table[name].inputs is not None}
        described = {name: {"program": table[name].program, "settings": dict(table[name].settings),
                            "baseline": table[name].baseline} for name in chosen}
    study = None
    if args.study:  # checked before the grid spends any LM call
        import optuna

        try:
            study = optuna.load_study(study_name=args.study, storage=args.storage)
        except KeyError:
            raise CLIError(f"--study {args.study!r} not found in {args.storage}") from None
    from spri_dspy.runtime.progress import WorkProgress

    Path(args.output).mkdir(parents=True, exist_ok=True)
    with build.tracker(args, args.output, f"ablate {args.task}") as tracker, dspy.context(lm=lm, adapter=adapter):
        rows = ablate(variants, examples, metric, args.output, inputs=inputs,
                      metric_label=METRIC_LABELS[args.metric or task.metrics[0]], progress=WorkProgress("spri ablate"),
                      baseline=baseline, repeats=args.repeats, groups=[str(example.get(task.group_by) or "none") for example in examples]
                      if task.group_by else None, tracker=tracker, variant_params=described)
        print((Path(args.output) / "ablation.md").read_text().rstrip())
        print(f"wrote {args.output}/ablation.csv, ablation.md, metric_by_variant.png, quality_vs_cost.png"
              + (", comparison.csv" if baseline else ""))
        plots = []
        if study is not None:
            from spri_dspy.experiments.ablate import plot_study

            plots = plot_study(study, args.output)
            for path in plots:
                print(f"wrote {path}")
        if tracker is not None:
            from spri_dspy.experiments.report import write_report

            tracker.log_artifacts([*plots, write_report(args.output), *([grid.path] if grid is not None else [])])
    build.tracked(tracker)
    if rows and all(row.failed == row.n for row in rows):
        print(f"spri: error: every input of every variant failed; the first error: {rows[0].first_error}",
              file=sys.stderr)
        return 1
    return 0 if rows else 1


def _grid(args: argparse.Namespace, task):
    """``--grid FILE``, else the task's own grid file, checked (None when the task has none)."""
    from spri_dspy.experiments.grid import GridError, load_grid

    path = args.grid or task.grid_path
    if path is None:
        return None
    try:
        return load_grid(path, task.kind)
    except GridError as exc:
        raise CLIError(str(exc)) from None
