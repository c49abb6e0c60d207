"""``spri report``: one self-contained HTML page for a batch run or an ablation."""

from __future__ import annotations

import argparse

from spri_dspy.cli.options import CLIError, check_writable

DESCRIPTION = (
    "Write FOLDER/report.html for a 'spri generate/judge' OUTPUT or a 'spri ablate' --output: a "
        "sortable results table whose rows expand to each input's texts and rounds, score and rounds histograms, "
        "LM calls and tokens per stage and model. The page needs no network to view."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri report``'s arguments."""
    parser.add_argument("folder", metavar="FOLDER", help="an OUTPUT of spri generate/judge, or of spri ablate")
    parser.add_argument("--output", "--to", dest="to", metavar="FILE",
                        help="where to write the page (default FOLDER/report.html)")
    parser.add_argument("--max-rows", type=int, default=2000, metavar="N",
                        help="list at most N inputs (default 2000; the figures count them all)")


def handle(args: argparse.Namespace) -> int:
    """``spri report``: an HTML page for a batch run or an ablation."""
    from spri_dspy.experiments.report import write_report

    if args.max_rows < 1:
        raise CLIError(f"--max-rows must be at least 1, got {args.max_rows}")
    if args.to:
        check_writable("--to", args.to)
    try:
        path = write_report(args.folder, args.to, max_rows=args.max_rows)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {path}: open it in a browser (it needs no network)")
    return 0
