"""The options several commands share (models, SPRI's settings, batch runs, data and metric) and the checks
on them that need no model: each bad value is one line naming the flag, before any work."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status 2."""


def given_options(args: argparse.Namespace) -> set[str]:
    """The options given on the command line, as argument names (recorded while parsing:
    :class:`spri_dspy.cli.main.Parser`)."""
    return getattr(args, "given", set())


def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """The models: ``--lm``, ``--critic-lm``, where their requests go and how they are sent."""
    from spri_dspy.runtime.lms import ADAPTERS, EMBEDDED

    group = parser.add_argument_group("models")
    group.add_argument("--lm", default=EMBEDDED, metavar="MODEL",
                       help="base model: 'embedded' (default) or a DSPy/LiteLLM model string, e.g. openai/gpt-4o-mini")
    group.add_argument("--critic-lm", metavar="MODEL", help="critic model (default: the base model)")
    group.add_argument("--api-base", metavar="URL",
                       help="base URL of an OpenAI-compatible server for --lm/--critic-lm (default for openai/ models: "
                            "$OPENAI_BASE_URL, else $OPENAI_API_BASE, else OpenAI's; keys come from the environment)")
    group.add_argument("--adapter", choices=ADAPTERS, metavar="{" + ",".join(ADAPTERS) + "}",
                       help="prompt format: chat (DSPy's ChatAdapter), json (DSPy's JSONAdapter: schema-constrained "
                            "output through the server's response_format where the model supports it), compact "
                            "(a short JSON prompt for small models, each step's instruction before its inputs, where a "
                            "prompt cache keeps it across rounds; compact-first names the same) or compact-last (the "
                            "instruction after the inputs: the embedded model's format before December 2026, about "
                            "1.8x slower); default compact for the embedded model, else chat. Resuming an OUTPUT "
                            "folder without --adapter uses the format it was written with")
    group.add_argument("--response-format", choices=("auto", "json_schema", "json_object", "none"), default="auto",
                       help="openai/ models: what the json and compact adapters ask the server for: json_schema "
                            "(output constrained to each step's schema: OpenAI, vLLM, llama-server, Ollama), "
                            "json_object (any JSON: llama-cpp-python's server), none, or auto (DSPy's catalogue for "
                            "known model names, else none; default)")
    group.add_argument("--max-tokens", type=int, default=512, metavar="N", help="completion budget per LM call (default 512)")
    group.add_argument("--temperature", type=float, metavar="T",
                       help="sampling temperature of --lm and --critic-lm (default: the server's; the embedded model: 0)")
    group.add_argument("--no-cache", action="store_true", help="turn off DSPy's LM cache")


def add_spri_options(parser: argparse.ArgumentParser, *, evaluation: bool, judges: bool = True) -> None:
    """SPRI's settings; ``judges=False`` keeps what only judges read (--no-reference, --seed-match capability) out
    of the help, while still refusing it in one line (see :func:`check_settings`)."""
    group = parser.add_argument_group("SPRI settings")
    group.add_argument("--threshold", type=int, default=4, metavar="N", help="critic score (1-5) that accepts a text (default 4)")
    group.add_argument("--max-rounds", type=int, default=4, metavar="N", help="most critiques per stage (default 4)")
    group.add_argument("--keep", choices=("latest", "best"), default="latest",
                       help="which text a stage keeps: the latest (paper) or the best-scored")
    group.add_argument("--seeds", metavar="FILE", help="JSONL seed examples (our format or any of the paper's three)")
    group.add_argument("--seed-match", choices=("all", "goal", "capability"), default="all",
                       metavar=None if judges else "{all,goal}",
                       help="show all seeds, only those whose goal is the input's (per appraisal dimension)"
                            + (", or only those of the input's capability (judging)" if judges else ""))
    group.add_argument("--max-words", type=_max_words, default=128, metavar="N|none",
                       help="word limit stated to every writer and refiner and checked by the critics "
                            "(default 128, the paper's; 'none' for no limit; judges have none)")
    group.add_argument("--no-reference", dest="use_reference", action="store_false",
                       help="judges: never show a reference answer (the paper's SPRI condition)" if judges
                       else argparse.SUPPRESS)
    group.add_argument("--leave-one-out", action="boolean", default=evaluation,
                       help="never show a seed whose input is the current input "
                            f"(default: {'on' if evaluation else 'off'})")


def _max_words(value: str) -> int | None:
    if value.strip().lower() == "none":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of words or 'none', got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (or 'none' for no limit), got {number}")
    return number


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """INPUT, OUTPUT and how a batch runs (ids, threads, Ray, errors, resume)."""
    parser.add_argument("input", metavar="INPUT", help="a .jsonl/.json/.csv/.parquet file or a saved dataset folder")
    parser.add_argument("output", metavar="OUTPUT", help="results folder (created; rerun to resume)")
    group = parser.add_argument_group("batch")
    group.add_argument("--split", metavar="NAME",
                       help="the split of a saved DatasetDict folder (default: every split, named in a 'split' column)")
    group.add_argument("--id-field", metavar="COLUMN",
                       help="column of unique ids (default: the 'id' column when there is one, else a hash of the inputs)")
    group.add_argument("--hash-ids", action="store_true", help="ids from a hash of the inputs even when there is an 'id' column")
    group.add_argument("--drop-columns", dest="keep_columns", action="store_false",
                       help="leave out the input columns the program does not read (kept by default, under their "
                            "own names, so results join back to the input)")
    group.add_argument("--threads", type=int, default=8, metavar="N",
                       help="threads, each running one input's stage at a time (default 8; 1 when every model is the "
                            "embedded one, whose one llama.cpp context runs one call at a time: more threads only "
                            "interleave inputs and lose its reuse of earlier prompts)")
    group.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="run on a Ray cluster (pip install 'spri-dspy[ray]'): ADDRESS such as auto, HOST:6379 or "
                            "ray://HOST:10001; without one, RAY_ADDRESS or a Ray started on this machine. Each actor "
                            "builds the program and its LMs itself (keys from its node's environment); --threads "
                            "counts stages in flight over all actors")
    group.add_argument("--actors", type=int, metavar="N", help="with --ray: actors in the pool, one CPU each "
                                                                 "(default one per node)")
    group.add_argument("--max-errors", type=int, metavar="N", help="stop early once N inputs failed")
    group.add_argument("--skip-bad-rows", action="store_true",
                       help="record rows with a missing/empty/mistyped field as failed instead of stopping")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    group.add_argument("--restart", action="store_true",
                       help="when OUTPUT holds a different run, move its files aside (OUTPUT/previous-N/) and start over")


def add_tracking_option(parser: argparse.ArgumentParser) -> None:
    """``--mlflow [URI]``: track the command in MLflow (:mod:`spri_dspy.experiments.tracking`)."""
    parser.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                        help="track the command in MLflow: a parent run with the options, metrics and artefacts, and "
                             "a child run per variant or trial; URI: any MLflow tracking URI (default "
                             "$MLFLOW_TRACKING_URI, else OUTPUT's mlflow.db); after pip install 'spri-dspy[mlflow]'")


def check_tracking(args: argparse.Namespace) -> None:
    """``--mlflow``'s URI looks like one and MLflow is installed, before any model is built."""
    import importlib.util

    uri = getattr(args, "mlflow", None)
    if uri is None:
        return
    if uri and "://" not in uri and not uri.startswith("databricks"):
        raise CLIError(f"--mlflow {uri}: not a tracking URI (e.g. http://HOST:5000 or sqlite:///mlflow.db); for the "
                       "default store, put --mlflow after DATA or write --mlflow=")
    if importlib.util.find_spec("mlflow") is None:
        from spri_dspy.experiments.tracking import INSTALL

        raise CLIError(f"--mlflow needs MLflow, which is not installed: {INSTALL}")


def add_data_options(parser: argparse.ArgumentParser, *, data_optional: bool = False) -> None:
    """DATA (``data_optional``: may be left out, for a command that can run without it), its task and metric,
    and the program compile starts from."""
    from spri_dspy.experiments.metrics import METRICS
    from spri_dspy.experiments.tasks import TASKS

    parser.add_argument("data", metavar="DATA", nargs="?" if data_optional else None,
                        help="a dataset file or folder that the 'datasets' library reads")
    group = parser.add_argument_group("data and metric")
    group.add_argument("--split", metavar="NAME", help="the split of a saved DatasetDict folder (default: all splits)")
    group.add_argument("--task", choices=list(TASKS), default="reappraisal",
                       help="reappraisal (RESORT-style rows), instructions (one text column), judgements "
                            "(instruction, response, human_score) or preferences (instruction, response_a, "
                            "response_b, label: A, B or tie); default reappraisal")
    group.add_argument("--field", default="instruction", metavar="COLUMN", help="text column for --task instructions")
    group.add_argument("--metric", choices=list(METRICS), help="default: "
                       + ", ".join(f"{task.metrics[0]} ({name})" for name, task in TASKS.items()))
    group.add_argument("--judge-lm", metavar="MODEL", help="LM of the metric's judge (default: the base model)")
    group.add_argument("--program", default="spri", metavar="NAME",
                       help="program to compile or tune from (default spri)")
    group.add_argument("--limit", type=int, metavar="N", help="use the first N examples")
    group.add_argument("--dev-fraction", type=float, default=0.5, metavar="F", help="dev share of DATA (default 0.5)")


def batch_threads(args: argparse.Namespace) -> int:
    """The threads a batch runs on: ``--threads`` when given; else 1 when every model is the embedded one (run here:
    its one llama.cpp context answers one call at a time, and inputs interleaved on it lose the prompt states it
    reuses: 1.8x slower on 8 threads), else ``--threads``'s default."""
    from spri_dspy.runtime.lms import EMBEDDED

    alone = args.lm == EMBEDDED and getattr(args, "critic_lm", None) in (None, EMBEDDED)
    if "threads" in given_options(args) or getattr(args, "ray", None) is not None or not alone:
        return args.threads
    return 1


def check_settings(args: argparse.Namespace) -> None:
    """Refuse bad values and flags that do not combine, before any model is loaded (:class:`CLIError`)."""
    from spri_dspy.core.critique import check_threshold

    try:
        check_threshold(args.threshold)
    except ValueError:
        raise CLIError(f"--threshold must be from 1 to 5, got {args.threshold}") from None
    for name in ("max_rounds", "max_tokens", "threads", "actors", "max_errors", "n_trials", "limit", "max_demos", "trials",
                 "budget", "heartbeat", "repeats"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        raise CLIError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if getattr(args, "hash_ids", False) and args.id_field:
        raise CLIError("--hash-ids and --id-field both choose the ids; give one")
    given = given_options(args)
    if "program" in given and args.command in ("tune", "ablate"):
        raise CLIError(f"--program is for spri compile; spri {args.command} "
                       + ("searches SPRI's settings" if args.command == "tune" else "runs the task's grid of programs"))
    if "use_reference" in given and not judges(args):
        raise CLIError("--no-reference is for judges (spri judge, or --task judgements); "
                       "these programs never see a reference answer")
    if "max_words" in given and judges(args):
        raise CLIError("--max-words limits principle and response writers; judges have no word limit")
    if getattr(args, "seed_match", None) == "capability":
        if not getattr(args, "seeds", None):
            raise CLIError("--seed-match capability selects seed rubrics by capability; give --seeds FILE")
        if args.command == "judge" and not args.capability_field:
            raise CLIError("--seed-match capability needs each input's capability: give --capability-field COLUMN")
        if not judges(args):
            raise CLIError("--seed-match capability is for judges; use --seed-match all or goal")
    if getattr(args, "seed_match", None) == "goal":
        if not getattr(args, "seeds", None):
            raise CLIError("--seed-match goal selects seeds by goal; give --seeds FILE")
        if args.command == "run":
            has_goal, remedy = bool(args.goal), "give --goal TEXT or use --seed-match all"
        elif args.command == "generate":
            has_goal, remedy = bool(args.goal_field), "give --goal-field COLUMN or use --seed-match all"
        elif args.command == "judge":
            has_goal, remedy = False, "use --seed-match all"
        else:
            from spri_dspy.experiments.tasks import TASKS

            has_goal = TASKS[args.task].has_goal
            with_goals = " or ".join(f"--task {name}" for name, task in TASKS.items() if task.has_goal)
            remedy = f"give {with_goals} or use --seed-match all"
        if not has_goal:
            raise CLIError(f"--seed-match goal shows only seeds with the input's goal, and these inputs have none: "
                           f"{remedy}")


def judges(args: argparse.Namespace) -> bool:
    """Whether the command runs judge programs (``spri judge``, or ``--task judgements/preferences``)."""
    from spri_dspy.experiments.tasks import TASKS

    return args.command == "judge" or "task" in args and TASKS[args.task].kind in ("judge", "pairwise")


def check_writable(option: str, path: str) -> None:
    """Fail before any LM call when ``path`` cannot be written (its folder is missing or read-only)."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path}: the folder {folder} is not writable")
    if Path(path).is_dir():
        raise CLIError(f"{option} {path}: is a folder; give a file name")
