"""The ``spri`` command line: run SPRI on one input or a dataset, judge responses, compile, tune and ablate
programs, export fine-tuning data, write reports and reproduce the paper. See :mod:`spri_dspy.cli.main`."""

from spri_dspy.cli.main import COMMANDS, build_parser, entry, main
from spri_dspy.cli.options import CLIError

__all__ = ["main", "entry", "build_parser", "COMMANDS", "CLIError"]
