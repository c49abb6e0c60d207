"""``spri export``: a batch run's results as an SFT or DPO dataset folder with a dataset card."""

from __future__ import annotations

import argparse

from spri_dspy.cli.options import CLIError

DESCRIPTION = (
    "Write the results in OUTPUT as a dataset folder that datasets.load_dataset reads and TRL's "
        "trainers take: sft (a 'messages' column) or dpo (prompt/chosen/rejected, the rejected text being the "
        "lowest-scored response draft the critic turned down). Failed inputs are left out and counted."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri export``'s arguments."""
    parser.add_argument("output", metavar="OUTPUT", help="the folder a 'spri generate' run wrote")
    parser.add_argument("--format", choices=("sft", "dpo"), default="sft", help="default sft")
    parser.add_argument("--output", "--to", dest="to", metavar="DIR",
                        help="where to write the dataset (default OUTPUT/sft or OUTPUT/dpo)")
    parser.add_argument("--system-prompt", metavar="TEXT", help="a system message put first in every conversation")
    parser.add_argument("--principles-as-system", action="store_true",
                        help="put each input's principles in its system message (after --system-prompt)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload it to the Hugging Face Hub as REPO "
                        "(a private dataset; the token comes from HF_TOKEN or 'huggingface-cli login')")
    parser.add_argument("--public", action="store_true", help="with --push-to-hub: make the dataset public")


def handle(args: argparse.Namespace) -> int:
    """``spri export``: a batch run's results as an SFT or DPO dataset folder."""
    from spri_dspy.experiments.export import ExportError, export, push_to_hub

    if args.public and not args.push_to_hub:
        raise CLIError("--public only applies with --push-to-hub")
    try:
        result = export(args.output, args.format, args.to, system_prompt=args.system_prompt,
                        principles_as_system=args.principles_as_system)
    except ExportError as exc:
        raise CLIError(str(exc)) from None
    left_out = ", ".join(f"{n} {reason}" for reason, n in result.left_out.items())
    print(f"{result.path}: {result.rows} {args.format} rows" + (f"; left out: {left_out}" if left_out else "")
          + f"\n  load it with datasets.load_dataset({str(result.path)!r}, split='train')")
    if args.push_to_hub:
        push_to_hub(result.path, args.push_to_hub, private=not args.public)
        print(f"  pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return 0
