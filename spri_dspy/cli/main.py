"""The ``spri`` command: one module per subcommand (``spri_dspy/cli/<command>.py``, each with ``DESCRIPTION``,
``add_arguments(parser)`` and ``handle(args)``), listed in :data:`COMMANDS`.

Only the subcommand being run is imported and given its arguments, so ``spri --help`` and ``spri --version``
import neither DSPy nor any other heavy library. The parser records which options were given
(``args.given``): a compiled program's saved settings yield to flags given explicitly, and only to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

from spri_dspy.cli.options import CLIError
from spri_dspy.compat import installed_version

COMMANDS: dict[str, str] = {
    "run": "run SPRI on one query and print principles, response and rounds",
    "generate": "run SPRI or a baseline over a dataset (resumable, parallel)",
    "judge": "judge responses with SPRIJudge or a judge baseline over a dataset (resumable, parallel)",
    "compile": "compile a program's prompts and demos with a DSPy optimizer",
    "tune": "tune SPRI's settings with an Optuna study (quality vs LM calls)",
    "ablate": "run a grid of variants and write a table and plots",
    "export": "turn a 'spri generate' run into a fine-tuning dataset (chat SFT or DPO pairs) with a dataset card",
    "report": "write one self-contained HTML page to browse a batch run or an ablation",
    "reproduce": "recompute the paper's tables from recorded runs",
    "serve": "serve the programs as OpenAI-compatible models, with a live playground page",
}
"""Subcommand -> its one-line help; its module is ``spri_dspy.cli.<subcommand>``."""


def _recording(action_class: type[argparse.Action]) -> type[argparse.Action]:
    """``action_class`` that also adds its destination to the namespace's ``given`` set when used."""
    class Recording(action_class):
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            if option_string is not None:
                namespace.given = {*getattr(namespace, "given", ()), self.dest}

    return Recording


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose options record that they were given (``args.given``), abbreviations too;
    ``action="boolean"`` is argparse's BooleanOptionalAction (``--x``/``--no-x``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        probe = argparse.ArgumentParser(add_help=False)
        for name in (None, "store", "store_true", "store_false", "store_const", "append"):
            self.register("action", name, _recording(type(probe.add_argument(f"--{name}", action=name))))
        self.register("action", "boolean", _recording(argparse.BooleanOptionalAction))


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``spri``: ``command``'s subparser with its arguments, the others with their one-line help
    only (``""``: none with arguments); None gives every subcommand its arguments."""
    parser = Parser(prog="spri", description="SPRI: write principles for each input, critique and refine them, "
                                             "then respond under them.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version('spri-dspy') or 'unknown'}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if command is not None and name != command:
            commands.add_parser(name, help=summary)
            continue
        module = import_module(f"spri_dspy.cli.{name}")
        subparser = commands.add_parser(name, help=summary, description=module.DESCRIPTION)
        module.add_arguments(subparser)
        subparser.add_argument("--verbose", action="store_true", help="also show the libraries' own logs and progress "
                               "bars (DSPy, LiteLLM, datasets, Optuna)")
    return parser


def quiet(verbose: bool) -> None:
    """Keep the libraries' own chatter (DSPy's warnings, the datasets library's bars, Optuna's
    trial lines, LiteLLM's banners) off the screen unless ``--verbose``."""
    import logging

    if "datasets" in sys.modules:  # already imported (in-process use): its switch; otherwise its variable below
        bars = sys.modules["datasets"].utils.logging
        bars.enable_progress_bar() if verbose else bars.disable_progress_bar()
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    for name in ("LiteLLM", "litellm", "httpx", "datasets", "optuna", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # DSPy logs each failed example of a parallel run or an evaluation as a screen-long ERROR; the commands
    # report failures themselves (failures.jsonl, the compile and ablation reports).
    logging.getLogger("dspy").setLevel(logging.CRITICAL)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import warnings

    warnings.filterwarnings("ignore", module="dspy")
    warnings.filterwarnings("ignore", module="optuna")


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Arguments that are not valid UTF-8 (the shell passed raw bytes) are named, not crashed on."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                label = name.upper() if name in ("query", "input", "output", "data", "dir") else "--" + name.replace("_", "-")
                raise CLIError(f"{label} is not valid UTF-8 text") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spri`` console script; returns the exit status.

    Everything it prints passes through :func:`spri_dspy.secrets.redact`, so API keys
    echoed by a provider's error or held in a URL never reach the screen or a log.
    """
    from spri_dspy.secrets import RedactingStream

    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv) or "").parse_args(argv)  # "": no subcommand gets its arguments
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # DSPy's model catalogue: no network fetch
    quiet(args.verbose)
    try:
        _check_text_arguments(args)
        return import_module(f"spri_dspy.cli.{args.command}").handle(args)
    except CLIError as exc:
        print(f"spri: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        import signal

        # A second Ctrl-C exits at once, quietly (no traceback from threads still finishing their LM calls).
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        print(f"spri: interrupted{_interrupted_run(args)}", file=sys.stderr)
        return 130
    except Exception as exc:  # an LM or runtime failure: one line, no traceback, no library's advice glued on
        message = " ".join(str(exc).split("To fix:")[0].split())  # batch.failure_reason's rule, without importing DSPy
        lms = sys.modules.get("spri_dspy.runtime.lms")  # loaded whenever an LM was built
        if lms is not None and isinstance(exc, lms.EndpointError):  # it names the endpoint and the model itself
            print(f"spri: error: {message[:500]}", file=sys.stderr)
            return 1
        print(f"spri: error: {type(exc).__name__}: {message[:500]}", file=sys.stderr)
        return 1


def _interrupted_run(args: argparse.Namespace) -> str:
    """What an interrupted batch finished and how to resume it (from the summary.json it wrote on the way out)."""
    output = getattr(args, "output", None)
    if args.command not in ("generate", "judge") or not output:
        return ""
    try:
        summary = json.loads((Path(output) / "summary.json").read_text())
    except (OSError, ValueError):
        return "; rerun the same command to resume"
    return (f": {summary.get('done', 0)} done and {summary.get('failed', 0)} failed in this run, "
            f"{summary.get('pending', '?')} of {summary.get('rows', '?')} pending in {output}; rerun the same "
            "command to resume")


def entry() -> None:
    """The ``spri`` console script: :func:`main`, then exit. After Ctrl-C it exits at once: the inputs still
    under way (an LM call cannot be cut short) stay pending for the rerun, and their threads are not waited for."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
