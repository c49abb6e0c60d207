"""``spri generate``: a response program over a dataset, or Situated around a signature or module."""

from __future__ import annotations

import argparse
import json
import os

from spri_dspy.cli import batch, build
from spri_dspy.cli.options import CLIError, add_batch_options, add_lm_options, add_spri_options, given_options

DESCRIPTION = (
    "Run SPRI or a response baseline over every row of INPUT into OUTPUT: results.jsonl as inputs "
        "finish, failures.jsonl, summary.json and results.parquet. Rerun the same command to resume."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri generate``'s arguments."""
    from spri_dspy.core.programs import program_names

    add_batch_options(parser)
    fields = parser.add_argument_group("fields")
    fields.add_argument("--program", default="spri", metavar="NAME|FILE",
                        help=f"what to run: {', '.join(program_names('response'))} (default spri), a file saved by "
                             "'spri compile', or FILE.py:NAME, a DSPy module of your own run inside Situated (SPRI "
                             "around any module) over the columns named like its input fields")
    fields.add_argument("--signature", metavar="SIG",
                        help="run Situated around dspy.Predict(SIG), e.g. 'question, context -> answer', over the "
                             "columns named like its input fields")
    fields.add_argument("--query-field", default="query", metavar="COLUMN", help="column of the inputs (default query)")
    fields.add_argument("--goal-field", metavar="COLUMN", help="column of response goals (optional)")
    fields.add_argument("--principles-field", default="principles", metavar="COLUMN",
                        help="column of given principles, for --program oracle (default principles)")
    add_lm_options(parser)
    add_spri_options(parser, evaluation=True, judges=False)


def handle(args: argparse.Namespace) -> int:
    """``spri generate``: a response program over a dataset, or Situated around a signature or module."""
    situated = _situated(args)
    if situated is not None:  # built once (a FILE.py:NAME runs once); its critics are placed when the LMs are made
        return batch.run(args, "situated", {name: name for name in situated.task.input_fields}, optional=(),
                      program=situated)
    fields = {"query": args.query_field}
    if args.goal_field:
        fields["goal"] = args.goal_field
    if build.program_name(args.program) == "oracle":
        fields["principles"] = args.principles_field
    return batch.run(args, "response", fields, optional=("goal",))


def _situated(args: argparse.Namespace):
    """``--signature SIG`` or ``--program FILE.py:NAME`` (or a compiled Situated file): the
    :class:`~spri_dspy.Situated` program, its critics not placed yet; None for SPRI and its baselines."""
    from spri_dspy.core.situated import is_object_path

    source = args.signature
    compiled = os.path.isfile(args.program) and not args.program.endswith(".py") and \
        build.saved_metadata(args.program)["kind"] == "situated"
    if source is None and is_object_path(args.program):
        source = args.program
    elif source is not None and "program" in given_options(args):
        raise CLIError("--signature and --program both choose what runs; give one")
    if source is None and not compiled:
        return None
    for flag in ("goal_field", "principles_field"):
        if flag in given_options(args):
            raise CLIError(f"--{flag.replace('_', '-')} is for SPRI's query/goal inputs; Situated reads the columns "
                           "named like its signature's input fields")
    seeds = _situated_seeds(args.seeds) if args.seeds else None
    from spri_dspy.core.programs import load_program
    from spri_dspy.core.situated import Situated

    settings = {"threshold": args.threshold, "max_rounds": args.max_rounds, "keep": args.keep,
                "max_words": args.max_words}
    try:
        if compiled:
            return load_program(args.program, **settings)
        return Situated(source, seeds=seeds, **settings)
    except (ValueError, TypeError, SyntaxError) as exc:
        flag = "--signature" if args.signature else "--program"
        raise CLIError(f"{flag} {source or args.program}: {' '.join(str(exc).split())[:300]}") from None


def _situated_seeds(path: str) -> list[dict]:
    """Situated's seeds: a JSONL file of rows holding the task's input fields and ``principles``."""
    from spri_dspy.core.data import jsonl_lines

    rows = []
    try:
        for number, row in jsonl_lines(path):
            if isinstance(row, json.JSONDecodeError):
                raise CLIError(f"--seeds {path}: line {number} is not JSON ({row.msg})")
            rows.append(row)
    except OSError as exc:
        raise CLIError(f"--seeds {path}: {exc.strerror}") from None
    return rows
