"""``spri reproduce``: the paper's figures from recorded runs."""

from __future__ import annotations

import argparse
import json

from spri_dspy.cli.options import CLIError

DESCRIPTION = (
    "Recompute mean alignment/empathy (reappraisal) and agreement with human scores (judging) "
        "for every model and variant found under DIR (laid out like the released spri-paper data)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri reproduce``'s arguments."""
    parser.add_argument("dir", metavar="DIR", help="folder with reappraisal/ and/or biggen-judgements/")
    parser.add_argument("--json", action="store_true", help="print every figure, per capability too, as JSON")


def handle(args: argparse.Namespace) -> int:
    """``spri reproduce``: the paper's figures from recorded runs."""
    from spri_dspy.experiments.reproduce import render as render_table
    from spri_dspy.experiments.reproduce import reproduce

    try:
        rows = reproduce(args.dir)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(render_table(rows))
    return 0
