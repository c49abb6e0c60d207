"""The ``spri`` command line: run SPRI on one input or a dataset, judge responses, reproduce the paper."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

EMBEDDED = "embedded"  # spri_dspy.runtime.lms.EMBEDDED, without importing DSPy at start


class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status 2."""


def _add_lm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models")
    group.add_argument("--lm", default=EMBEDDED, metavar="MODEL",
                       help="base model: 'embedded' (default) or a DSPy/LiteLLM model string, e.g. openai/gpt-4o-mini")
    group.add_argument("--critic-lm", metavar="MODEL", help="critic model (default: the base model)")
    group.add_argument("--api-base", metavar="URL",
                       help="base URL of an OpenAI-compatible server for --lm/--critic-lm (default for openai/ models: "
                            "$OPENAI_BASE_URL, else $OPENAI_API_BASE, else OpenAI's; keys come from the environment)")
    group.add_argument("--adapter", choices=("chat", "json", "compact"), metavar="{chat,json,compact}",
                       help="prompt format: chat (DSPy's ChatAdapter), json (DSPy's JSONAdapter: schema-constrained "
                            "output through the server's response_format where the model supports it) or compact "
                            "(a short JSON prompt for small models); default compact for the embedded model, else chat")
    group.add_argument("--response-format", choices=("auto", "json_schema", "json_object", "none"), default="auto",
                       help="openai/ models: what the json and compact adapters ask the server for: json_schema "
                            "(output constrained to each step's schema: OpenAI, vLLM, llama-server, Ollama), "
                            "json_object (any JSON: llama-cpp-python's server), none, or auto (DSPy's catalogue for "
                            "known model names, else none; default)")
    group.add_argument("--max-tokens", type=int, default=512, metavar="N", help="completion budget per LM call (default 512)")
    group.add_argument("--temperature", type=float, metavar="T",
                       help="sampling temperature of --lm and --critic-lm (default: the server's; the embedded model: 0)")
    group.add_argument("--no-cache", action="store_true", help="turn off DSPy's LM cache")


def _add_spri_options(parser: argparse.ArgumentParser, *, evaluation: bool, judges: bool = True) -> None:
    """SPRI's settings; ``judges=False`` keeps what only judges read (--no-reference, --seed-match capability) out
    of the help, while still refusing it in one line (see :func:`_check_settings`)."""
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
    group.add_argument("--leave-one-out", action=argparse.BooleanOptionalAction, default=evaluation,
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


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
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
                       help="threads, each running one input's stage at a time (default 8)")
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


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from spri_dspy.experiments.metrics import METRICS
    from spri_dspy.experiments.tasks import TASKS

    parser.add_argument("data", metavar="DATA", help="a dataset file or folder that the 'datasets' library reads")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``spri`` and its subcommands."""
    from spri_dspy.core.programs import _version, program_names

    parser = argparse.ArgumentParser(
        prog="spri",
        description="SPRI: write principles for each input, critique and refine them, then respond under them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run SPRI on one query and print principles, response and rounds",
        description="Run SPRI on one query. Without --lm it runs the embedded SmolLM2-135M-Instruct model on CPU.",
    )
    run.add_argument("query", metavar="QUERY", help="the user input to write principles for and respond to")
    run.add_argument("--goal", help="response goal, e.g. an appraisal dimension's aim (flows into every stage)")
    run.add_argument("--json", action="store_true", help="print the whole prediction with its trace as JSON")
    run.add_argument("--program", metavar="FILE", help="a program saved by 'spri compile' (default: SPRI)")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr while it runs")
    _add_lm_options(run)
    _add_spri_options(run, evaluation=False, judges=False)
    run.set_defaults(handler=cmd_run)

    generate = commands.add_parser(
        "generate",
        help="run SPRI or a baseline over a dataset (resumable, parallel)",
        description="Run SPRI or a response baseline over every row of INPUT into OUTPUT: results.jsonl as inputs "
        "finish, failures.jsonl, summary.json and results.parquet. Rerun the same command to resume.",
    )
    _add_batch_options(generate)
    fields = generate.add_argument_group("fields")
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
    _add_lm_options(generate)
    _add_spri_options(generate, evaluation=True, judges=False)
    generate.set_defaults(handler=cmd_generate)

    judge = commands.add_parser(
        "judge",
        help="judge responses with SPRIJudge or a judge baseline over a dataset (resumable, parallel)",
        description="Judge every (instruction, response) row of INPUT into OUTPUT, like 'spri generate'.",
    )
    _add_batch_options(judge)
    fields = judge.add_argument_group("fields")
    fields.add_argument("--program", default="spri", metavar="NAME|FILE",
                        help=f"which judge: {', '.join(program_names('judge'))} (default spri), or a file saved by 'spri compile'")
    fields.add_argument("--instruction-field", default="instruction", metavar="COLUMN", help="default instruction")
    fields.add_argument("--response-field", default="response", metavar="COLUMN", help="default response")
    fields.add_argument("--pairwise", action="store_true",
                        help="compare two responses per row (SPRIPairwiseJudge: verdict A, B or tie, judged in both "
                             "orders) instead of grading one")
    fields.add_argument("--response-a-field", default="response_a", metavar="COLUMN",
                        help="with --pairwise: the first response (default response_a)")
    fields.add_argument("--response-b-field", default="response_b", metavar="COLUMN",
                        help="with --pairwise: the second response (default response_b)")
    fields.add_argument("--label-field", metavar="COLUMN",
                        help="with --pairwise: human preferences (A, B or tie); accuracy and Cohen's kappa against "
                             "them are printed per --capability-field group (default: the 'label' column if any)")
    fields.add_argument("--reference-field", metavar="COLUMN", help="column of reference answers (optional)")
    fields.add_argument("--rubric-field", default="rubric", metavar="COLUMN",
                        help="column of gold rubrics, for --program oracle (default rubric)")
    fields.add_argument("--system-prompt-field", metavar="COLUMN",
                        help="column of the system prompts the answering model had; the rubric writer sees them")
    fields.add_argument("--capability-field", metavar="COLUMN",
                        help="column of capabilities, for --seed-match capability")
    _add_lm_options(judge)
    _add_spri_options(judge, evaluation=True)
    judge.set_defaults(handler=cmd_judge)

    compile_ = commands.add_parser(
        "compile",
        help="compile a program's prompts and demos with a DSPy optimizer",
        description="Compile SPRI, SPRIJudge or a baseline on a train split of DATA against a metric with "
        "BootstrapFewShot, MIPROv2 or GEPA; print the metric on the dev split before and after; save the program "
        "(DSPy's JSON state) for 'spri run/generate --program FILE'.",
    )
    _add_data_options(compile_)
    compile_.add_argument("--optimizer", choices=("bootstrap", "mipro", "gepa"), default="bootstrap",
                          help="DSPy's BootstrapFewShot (demos; default), MIPROv2 (instructions and demos) or GEPA "
                               "(instructions, from reflection on the metric's feedback)")
    compile_.add_argument("--output", "--save", dest="save", required=True, metavar="FILE",
                          help="where to save the compiled program (.json)")
    compile_.add_argument("--max-demos", type=int, default=4, metavar="N", help="most demos per step (default 4)")
    compile_.add_argument("--trials", type=int, default=6, metavar="N", help="MIPROv2 search trials (default 6)")
    compile_.add_argument("--budget", type=int, default=60, metavar="N", help="GEPA metric calls (default 60)")
    _add_lm_options(compile_)
    _add_spri_options(compile_, evaluation=True)
    compile_.set_defaults(handler=cmd_compile)

    tune = commands.add_parser(
        "tune",
        help="tune SPRI's settings with an Optuna study (quality vs LM calls)",
        description="Optuna study over threshold, max_rounds, keep, seeds, per-step temperature and a separate "
        "critic, maximising the metric and minimising LM calls per input on DATA. Rerun to resume the study.",
    )
    _add_data_options(tune)
    tune.add_argument("--storage", default="sqlite:///study.db", metavar="URL",
                      help="Optuna storage: an SQLite file (default sqlite:///study.db; one worker at a time) or a "
                           "PostgreSQL URL (postgresql://USER:PASSWORD@HOST/DB, after pip install 'spri-dspy[postgres]') "
                           "that any number of workers share")
    tune.add_argument("--study", default="spri", metavar="NAME", help="study name (default spri)")
    tune.add_argument("--n-trials", type=int, default=20, metavar="N",
                      help="the study's budget of complete trials, shared by every worker on it (default 20); "
                           "rerun with a larger N to extend a finished study")
    tune.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                      help="seconds between a worker's heartbeats; a trial silent for twice that is taken for dead, "
                           "failed and retried by another worker (default 30)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS", help="stop adding trials after this long")
    tune.add_argument("--quality-only", action="store_true", help="one objective (the metric), with pruning")
    tune.add_argument("--output", "--plots", dest="plots", metavar="DIR",
                      help="write pareto_front.png and param_importances.png here")
    _add_lm_options(tune)
    tune.add_argument("--seeds", metavar="FILE", help="seed examples the study may use")
    tune.set_defaults(handler=cmd_tune)

    ablate = commands.add_parser(
        "ablate",
        help="run a grid of variants and write a table and plots",
        description="Run SPRI (no seeds / seeds / per-dimension seed), the baselines and the oracle over DATA and "
        "write ablation.csv, ablation.md, metric_by_variant.png and quality_vs_cost.png to OUTPUT (with --study, "
        "also the study's pareto_front.png and param_importances.png).",
    )
    _add_data_options(ablate)
    ablate.add_argument("--output", required=True, metavar="DIR", help="folder for the table and plots")
    ablate.add_argument("--variants", metavar="NAMES", help="comma-separated subset of the variants to run")
    ablate.add_argument("--study", metavar="NAME", help="also plot this 'spri tune' study's Pareto front and "
                        "parameter importances (with --storage)")
    ablate.add_argument("--storage", default="sqlite:///study.db", metavar="URL", help="the study's Optuna storage")
    _add_lm_options(ablate)
    _add_spri_options(ablate, evaluation=True)
    ablate.set_defaults(handler=cmd_ablate)

    export = commands.add_parser(
        "export",
        help="turn a 'spri generate' run into a fine-tuning dataset (chat SFT or DPO pairs) with a dataset card",
        description="Write the results in OUTPUT as a dataset folder that datasets.load_dataset reads and TRL's "
        "trainers take: sft (a 'messages' column) or dpo (prompt/chosen/rejected, the rejected text being the "
        "lowest-scored response draft the critic turned down). Failed inputs are left out and counted.",
    )
    export.add_argument("output", metavar="OUTPUT", help="the folder a 'spri generate' run wrote")
    export.add_argument("--format", choices=("sft", "dpo"), default="sft", help="default sft")
    export.add_argument("--output", "--to", dest="to", metavar="DIR",
                        help="where to write the dataset (default OUTPUT/sft or OUTPUT/dpo)")
    export.add_argument("--system-prompt", metavar="TEXT", help="a system message put first in every conversation")
    export.add_argument("--principles-as-system", action="store_true",
                        help="put each input's principles in its system message (after --system-prompt)")
    export.add_argument("--push-to-hub", metavar="REPO", help="also upload it to the Hugging Face Hub as REPO "
                        "(a private dataset; the token comes from HF_TOKEN or 'huggingface-cli login')")
    export.add_argument("--public", action="store_true", help="with --push-to-hub: make the dataset public")
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page to browse a batch run or an ablation",
        description="Write FOLDER/report.html for a 'spri generate/judge' OUTPUT or a 'spri ablate' --output: a "
        "sortable results table whose rows expand to each input's texts and rounds, score and rounds histograms, "
        "LM calls and tokens per stage and model. The page needs no network to view.",
    )
    report.add_argument("folder", metavar="FOLDER", help="an OUTPUT of spri generate/judge, or of spri ablate")
    report.add_argument("--output", "--to", dest="to", metavar="FILE",
                        help="where to write the page (default FOLDER/report.html)")
    report.add_argument("--max-rows", type=int, default=2000, metavar="N",
                        help="list at most N inputs (default 2000; the figures count them all)")
    report.set_defaults(handler=cmd_report)

    reproduce = commands.add_parser(
        "reproduce",
        help="recompute the paper's tables from recorded runs",
        description="Recompute mean alignment/empathy (reappraisal) and agreement with human scores (judging) "
        "for every model and variant found under DIR (laid out like the released spri-paper data).",
    )
    reproduce.add_argument("dir", metavar="DIR", help="folder with reappraisal/ and/or biggen-judgements/")
    reproduce.add_argument("--json", action="store_true", help="print every figure, per capability too, as JSON")
    reproduce.set_defaults(handler=cmd_reproduce)
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="also show the libraries' own logs and progress bars (DSPy, LiteLLM, datasets, Optuna)")
    return parser


def make_lm(model: str, *, api_base: str | None = None, max_tokens: int = 512, cache: bool = True,
            max_connections: int = 1024, response_format: str = "auto", temperature: float | None = None):
    """A ``dspy.LM`` for a model name: ``embedded`` or a DSPy/LiteLLM model string (checked up front);
    ``openai/...`` models get :func:`spri_dspy.runtime.lms.openai_lm` (no cap of 100 requests in flight)."""
    return _lm_spec(model, api_base=api_base, max_tokens=max_tokens, cache=cache, max_connections=max_connections,
                    response_format=response_format, temperature=temperature).build()


def _lm_spec(model: str, *, api_base: str | None, max_tokens: int, cache: bool, max_connections: int,
             response_format: str = "auto", temperature: float | None = None):
    """The checked :class:`~spri_dspy.runtime.lms.LMSpec` of ``--lm``/``--critic-lm``/``--judge-lm``, with the base URL
    that ``--api-base`` or the environment names written in (:meth:`~spri_dspy.runtime.lms.LMSpec.resolved`)."""
    from spri_dspy.runtime.lms import LMSpec, check_model_name
    from spri_dspy.secrets import register_url

    if model == EMBEDDED:
        if api_base:
            raise CLIError("--api-base cannot be used with the embedded model")
    elif not model.startswith("openai/"):  # openai/ models are always openai_lm's: nothing to look up
        try:
            check_model_name(model, api_base)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    spec = LMSpec(model, api_base=api_base, max_tokens=max_tokens, cache=cache,
                  max_connections=max(1024, max_connections), response_format=response_format,
                  temperature=temperature).resolved()
    register_url(spec.api_base)  # credentials inside a URL from the environment are secrets too
    return spec


def _check_settings(args: argparse.Namespace) -> None:
    from spri_dspy.core.critique import check_threshold

    try:
        check_threshold(args.threshold)
    except ValueError:
        raise CLIError(f"--threshold must be from 1 to 5, got {args.threshold}") from None
    for name in ("max_rounds", "max_tokens", "threads", "actors", "max_errors", "n_trials", "limit", "max_demos", "trials",
                 "budget", "heartbeat"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        raise CLIError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if getattr(args, "hash_ids", False) and args.id_field:
        raise CLIError("--hash-ids and --id-field both choose the ids; give one")
    given = getattr(args, "given", set())
    if "program" in given and args.command in ("tune", "ablate"):
        raise CLIError(f"--program is for spri compile; spri {args.command} "
                       + ("searches SPRI's settings" if args.command == "tune" else "runs the task's grid of programs"))
    if "use_reference" in given and not _judges(args):
        raise CLIError("--no-reference is for judges (spri judge, or --task judgements); "
                       "these programs never see a reference answer")
    if "max_words" in given and _judges(args):
        raise CLIError("--max-words limits principle and response writers; judges have no word limit")
    if getattr(args, "seed_match", None) == "capability":
        if not getattr(args, "seeds", None):
            raise CLIError("--seed-match capability selects seed rubrics by capability; give --seeds FILE")
        if args.command == "judge" and not args.capability_field:
            raise CLIError("--seed-match capability needs each input's capability: give --capability-field COLUMN")
        if not _judges(args):
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


def _judges(args: argparse.Namespace) -> bool:
    """Whether the command runs judge programs (``spri judge``, or ``--task judgements/preferences``)."""
    from spri_dspy.experiments.tasks import TASKS

    return args.command == "judge" or "task" in args and TASKS[args.task].kind in ("judge", "pairwise")


def _check_writable(option: str, path: str) -> None:
    """Fail before any LM call when ``path`` cannot be written (its folder is missing or read-only)."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path}: the folder {folder} is not writable")
    if Path(path).is_dir():
        raise CLIError(f"{option} {path}: is a folder; give a file name")


def _lm_options(args: argparse.Namespace) -> dict:
    """The model flags (``--api-base``, ``--max-tokens`` ...) as the settings of :func:`make_lm`/:func:`_lm_spec`,
    pooled for ``--threads`` calls in flight."""
    return {"api_base": args.api_base, "max_tokens": args.max_tokens, "cache": not args.no_cache,
            "max_connections": _pool(args), "response_format": args.response_format, "temperature": args.temperature}


def _lm_specs(args: argparse.Namespace):
    """The checked specs of ``--lm`` and ``--critic-lm`` (None without one)."""
    return tuple(_lm_spec(model, **_lm_options(args)) if model else None for model in (args.lm, args.critic_lm))


def _pool(args: argparse.Namespace) -> int:
    return getattr(args, "threads", None) or 0  # calls in flight: one per thread of a batch


def _models(args: argparse.Namespace):
    """(base LM, critic LM or None, adapter) of ``--lm``/``--critic-lm``/``--adapter``: by default the embedded
    model is driven through JSON schemas with a short prompt, other models through DSPy's ChatAdapter.
    ``--verbose`` says where each model's requests go and why."""
    from spri_dspy.runtime.lms import adapter_for, make_adapter, resolve_endpoint
    from spri_dspy.secrets import register_url

    register_url(args.api_base)
    if args.verbose:
        for model in dict.fromkeys(m for m in (args.lm, args.critic_lm) if m):
            print(f"spri: {resolve_endpoint(model, args.api_base).describe(model)}", file=sys.stderr)
    lm, critic = (make_lm(model, **_lm_options(args)) if model else None for model in (args.lm, args.critic_lm))
    return lm, critic, make_adapter(args.adapter) if args.adapter else adapter_for(args.lm, args.critic_lm)


def _settings(args: argparse.Namespace, critic_lm) -> dict:
    """The command's program settings, for :func:`spri_dspy.core.programs.build_program`; ``--seeds`` is read here,
    once, so a missing or malformed file is an error even when no program built afterwards reads seeds."""
    from spri_dspy.core.seeds import load_seeds

    with _program_errors("spri"):
        seeds = load_seeds(args.seeds) if args.seeds else None
    return {"threshold": args.threshold, "max_rounds": args.max_rounds, "keep": args.keep, "critic_lm": critic_lm,
            "seeds": seeds, "seed_match": args.seed_match, "leave_one_out": args.leave_one_out,
            "max_words": args.max_words, "framing": _framing(args), "use_reference": args.use_reference}


def _build(kind: str, name: str, settings: dict):
    """``build_program`` with its errors as one-line CLI errors naming the flag."""
    from spri_dspy.core.programs import build_program

    with _program_errors(name):
        return build_program(name, kind, **settings)


@contextlib.contextmanager
def _program_errors(name: str):
    """A program's build errors as one-line CLI errors naming the flag at fault."""
    from spri_dspy.core.programs import MissingSeedsError
    from spri_dspy.core.seeds import SeedError

    try:
        yield
    except SeedError as exc:
        raise CLIError(f"--seeds: {exc}") from None
    except MissingSeedsError:
        raise CLIError(f"--program {name} needs --seeds FILE") from None


def _built_variant(variant, kind: str, settings: dict):
    """An ablation variant's program (:meth:`spri_dspy.experiments.tasks.Variant.build`), errors as for :func:`_build`."""
    with _program_errors(variant.program):
        return variant.build(kind, settings)


def _framing(args: argparse.Namespace) -> str | None:
    """The task's framing of the response stage (for ``--task``), else none."""
    from spri_dspy.experiments.tasks import TASKS

    task = getattr(args, "task", None)
    return TASKS[task].framing if task else None


def _metadata(path: str) -> dict:
    from spri_dspy.core.programs import read_metadata

    try:
        return read_metadata(path)
    except ValueError as exc:
        raise CLIError(f"--program {exc}") from None


def _program_name(value: str) -> str:
    """The program name behind ``--program``: the name itself, or the one recorded in a compiled file."""
    return _metadata(value)["program"] if os.path.isfile(value) else value


def _program(kind: str, value: str, args: argparse.Namespace, critic_lm):
    """``--program``: a program name, or a file saved by ``spri compile`` (its settings and compiled state)."""
    from spri_dspy.core.programs import PROGRAMS, load_program, program_names

    if not os.path.isfile(value):
        if (kind, value) not in PROGRAMS:
            raise CLIError(f"--program must be one of {', '.join(program_names(kind))} or a file saved by "
                           f"'spri compile', got {value!r}")
        return _build(kind, value, _settings(args, critic_lm))
    metadata = _metadata(value)
    if metadata["kind"] != kind:
        raise CLIError(f"--program {value}: a compiled {metadata['kind']} program cannot run here")
    given = getattr(args, "given", set())
    flags = {key: saved for key, saved in metadata.get("settings", {}).items() if hasattr(args, key)}
    for key, saved in sorted(flags.items()):  # args end up holding what really runs
        if key not in given:
            setattr(args, key, saved)
        elif getattr(args, key) != saved:  # an explicit flag wins, and says so
            print(f"spri: --{key.replace('_', '-')} {getattr(args, key)} overrides {saved!r} saved in {value}",
                  file=sys.stderr)
            args.overrides = {**getattr(args, "overrides", {}), key: {"saved": saved, "used": getattr(args, key)}}
    try:
        return load_program(value, critic_lm=critic_lm, **{key: getattr(args, key) for key in flags if key in given})
    except (ValueError, KeyError) as exc:
        raise CLIError(f"--program {value}: {exc}") from None


def _task_data(args: argparse.Namespace):
    """(task, examples, metric) for --task/--metric, with the metric's judge on --judge-lm."""
    from spri_dspy.experiments.metrics import METRICS
    from spri_dspy.experiments.tasks import TASKS

    from spri_dspy.core.data import load_table

    task = TASKS[args.task]
    try:
        data = load_table(args.data, args.split) if args.split else args.data
        examples = task.load(data, args.field)
    except (ValueError, FileNotFoundError) as exc:
        message = str(exc)
        raise CLIError(message if message.startswith(str(args.data)) else f"{args.data}: {message}") from None
    examples = examples[: args.limit] if args.limit else examples
    if len(examples) < 2:
        raise CLIError(f"{args.data}: needs at least 2 examples, found {len(examples)}")
    name = args.metric or task.metrics[0]
    if name not in task.metrics:
        raise CLIError(f"--metric {name} does not fit --task {args.task} (it takes {', '.join(task.metrics)})")
    if name in ("usefulness", "adherence", "constitution-overlap") and _program_name(args.program) in (
            "vanilla", "self-refine"):
        raise CLIError(f"--metric {name} scores principles; --program {args.program} writes none")
    judge = (make_lm(args.judge_lm, api_base=args.api_base, max_tokens=args.max_tokens,
                     response_format=args.response_format) if args.judge_lm else None)
    return task, examples, METRICS[name](lm=judge)


def _split(examples, fraction: float):
    if not 0 < fraction < 1:
        raise CLIError(f"--dev-fraction must be between 0 and 1, got {fraction}")
    cut = max(1, min(len(examples) - 1, round(len(examples) * (1 - fraction))))
    return examples[:cut], examples[cut:]


def cmd_compile(args: argparse.Namespace) -> int:
    """``spri compile``: optimise a program's prompts and demos and save it."""
    import dspy

    from spri_dspy.optimizers import compile_program
    from spri_dspy.core.programs import save_program

    _check_settings(args)
    _check_writable("--save", args.save)
    task, examples, metric = _task_data(args)
    trainset, devset = _split(examples, args.dev_fraction)
    lm, critic_lm, adapter = _models(args)
    program = _program(task.kind, args.program, args, critic_lm)
    from spri_dspy.runtime.progress import WorkProgress

    progress = WorkProgress("spri compile")  # on the real stderr: the optimizers' own output is hidden below
    with dspy.context(lm=lm, adapter=adapter), _unless_verbose(args.verbose):
        compiled, report = compile_program(program, trainset, devset, metric, optimizer=args.optimizer,
                                           max_demos=args.max_demos, num_trials=args.trials,
                                           max_metric_calls=args.budget, labeled=task.labeled, progress=progress)
    if report.failed_before == report.failed_after == report.dev_size:
        print(f"spri: error: every dev example failed before and after compiling, so nothing was measured and "
              f"{args.save} was not written; the first error: {report.first_error}", file=sys.stderr)
        return 1
    save_program(compiled, args.save)
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


def cmd_tune(args: argparse.Namespace) -> int:
    """``spri tune``: an Optuna study over SPRI's settings."""
    import dspy

    from spri_dspy.optimizers import tune

    args.threshold, args.max_rounds = 4, 4  # tuned, not set
    _check_settings(args)
    task, examples, metric = _task_data(args)
    if task.kind != "response":
        raise CLIError("spri tune tunes SPRI; use --task reappraisal or instructions")
    from spri_dspy.optimizers.tune import WORKER, StorageBusyError, one_sqlite_worker

    try:  # a busy SQLite file is refused before any model is loaded (tune holds the lock for the run itself)
        with one_sqlite_worker(args.storage):
            pass
    except StorageBusyError as exc:
        raise CLIError(f"--storage: {exc}") from None
    lm, critic_lm, adapter = _models(args)
    if not args.verbose:  # a failed trial's traceback: in the study (its "error"), not on the screen
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    from spri_dspy.secrets import register_url

    register_url(args.storage)  # a database password is printed as *** (here and in any error)
    print(f"spri tune: worker {WORKER} on study {args.study!r}, budget {args.n_trials} complete trials; watch it "
          f"live with: optuna-dashboard '{args.storage}'", file=sys.stderr, flush=True)
    try:
        with dspy.context(lm=lm, adapter=adapter):
            from spri_dspy.runtime.progress import WorkProgress

            result = tune(examples, metric, storage=args.storage, study_name=args.study, n_trials=args.n_trials,
                          timeout=args.timeout, seeds=args.seeds, critic_lm=critic_lm, cost=not args.quality_only,
                          framing=task.framing, heartbeat=args.heartbeat, progress=WorkProgress("spri tune"))
    except StorageBusyError as exc:
        raise CLIError(f"--storage: {exc}") from None
    except ImportError as exc:
        raise CLIError(f"--storage {args.storage}: {exc} (for PostgreSQL: pip install 'spri-dspy[postgres]')") from None
    import optuna

    trials = result.study.trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    surplus = sum("budget" in t.user_attrs for t in trials)
    print(f"study {args.study!r} in {args.storage}: {complete} complete trials of {len(trials)}"
          + (f"; {len(failed)} failed (e.g. trial {failed[0].number}: "
             f"{failed[0].user_attrs.get('error', 'its worker stopped sending heartbeats; retried')[:200]})"
             if failed else "")
          + (f"; {surplus} started after the budget was claimed, not run" if surplus else "") + "; best:")
    for row in result.best:
        calls = row["lm_calls_per_input"]
        print(f"  trial {row['trial']}: metric {row['metric']:.3f}, {calls:.2f} LM calls/input, {row['params']}")
    if args.plots:
        from spri_dspy.experiments.ablate import plot_study

        for path in plot_study(result.study, args.plots):
            print(f"  wrote {path}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    """``spri ablate``: the variant grid over a dataset."""
    import dspy

    from spri_dspy.experiments.ablate import ablate
    from spri_dspy.experiments.metrics import METRIC_LABELS

    _check_settings(args)
    task, examples, metric = _task_data(args)
    if task.variants is None:
        raise CLIError(f"spri ablate compares response programs; --task {args.task} has no ablation grid")
    lm, critic_lm, adapter = _models(args)
    settings = _settings(args, critic_lm)
    grid = task.variants(settings)
    chosen = args.variants.split(",") if args.variants else list(grid)
    unknown = sorted(set(chosen) - set(grid))
    if unknown:
        raise CLIError(f"--variants: unknown {unknown}; available: {', '.join(grid)}")
    variants = {name: _built_variant(grid[name], task.kind, settings) for name in chosen}
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
                      metric_label=METRIC_LABELS[args.metric or task.metrics[0]], progress=WorkProgress("spri ablate"))
    print((Path(args.output) / "ablation.md").read_text().rstrip())
    print(f"wrote {args.output}/ablation.csv, ablation.md, metric_by_variant.png, quality_vs_cost.png")
    if study is not None:
        from spri_dspy.experiments.ablate import plot_study

        for path in plot_study(study, args.output):
            print(f"wrote {path}")
    if rows and all(row.failed == row.n for row in rows):
        print(f"spri: error: every input of every variant failed; the first error: {rows[0].first_error}",
              file=sys.stderr)
        return 1
    return 0 if rows else 1


def cmd_run(args: argparse.Namespace) -> int:
    """``spri run``: one SPRI call, printed as text or JSON."""
    from collections import Counter

    import dspy

    from spri_dspy.core.data import check_text
    from spri_dspy.runtime.usage import StepUsage

    _check_settings(args)
    try:
        check_text("QUERY", args.query)
        check_text("--goal", args.goal, optional=True)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    lm, critic_lm, adapter = _models(args)
    program = _program("response", args.program or "spri", args, critic_lm)
    usage = StepUsage()
    started = time.perf_counter()
    from spri_dspy.runtime.progress import StepProgress

    callbacks = [] if args.quiet else [StepProgress(getattr(program, "threshold", None),
                                                    getattr(program, "max_rounds", None))]
    with dspy.context(lm=lm, adapter=adapter, callbacks=callbacks), usage.context(program):
        prediction = program(query=args.query, goal=args.goal)
    seconds = time.perf_counter() - started
    lms = [lm] + ([critic_lm] if critic_lm is not None and critic_lm.model != lm.model else [])
    label = {m.model: m.model if m is lm else f"{m.model} (critic)" for m in lms}
    needed, made = Counter(), Counter()
    for (_step, _stage, model), counter in usage.by_step.items():
        needed[label.get(model, model)] += counter["calls_needed"]
        made[label.get(model, model)] += counter["calls"]
    from spri_dspy.runtime.lms import endpoint_of

    summary = {"lm_calls": dict(needed), "lm_calls_made": dict(made), "usage": usage.get_total_tokens(),
               "seconds": round(seconds, 2),
               "endpoints": {label[m.model]: endpoint_of(m).host if endpoint_of(m) else "in process" for m in lms}}
    engines = {id(m.engine): m.engine for m in lms if hasattr(getattr(m, "engine", None), "stats")}
    if engines:  # the embedded engine: calls that reached it, answered by its memo, prompt tokens evaluated
        summary["engine"] = {key: sum(e.stats[key] for e in engines.values()) for key in next(iter(engines.values())).stats}
        summary["engine"]["lm_calls"] = sum(needed[label[m.model]] for m in lms if id(getattr(m, "engine", None)) in engines)
    if args.json:
        print(json.dumps({"principles": prediction.principles, "response": prediction.response,
                          "trace": prediction.trace, "seeds": prediction.seeds, **summary}, indent=2, ensure_ascii=False))
    else:
        print(render(prediction, summary))
    return 0


def _batch(args: argparse.Namespace, kind: str, fields: dict[str, str], optional: tuple[str, ...],
           program=None) -> int:
    """Run a batch command: ``program`` (its critics placed on ``--critic-lm`` here), else the one ``--program``
    names."""
    import dspy

    from spri_dspy.runtime.batch import OutputBusyError, RunMismatchError, run_batch
    from spri_dspy.core.data import RowError
    from spri_dspy.runtime.distributed import ClusterError

    _check_settings(args)
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise CLIError(f"OUTPUT {args.output}: is a file; OUTPUT is a folder (created when missing)")
    lm, critic_lm, adapter = _models(args)
    ray = _ray_cluster(args)
    if program is None:
        program = _program(kind, args.program, args, critic_lm)
    else:
        program.place_critics(critic_lm)
    info = {"program": args.program, "lm": args.lm, "critic_lm": args.critic_lm, "threshold": args.threshold,
            "max_rounds": args.max_rounds, "keep": args.keep, "seeds": args.seeds, "seed_match": args.seed_match,
            "leave_one_out": args.leave_one_out, "max_words": args.max_words, "use_reference": args.use_reference,
            "fields": fields, "overrides": getattr(args, "overrides", {})}
    try:
        with dspy.context(lm=lm, adapter=adapter):
            summary = run_batch(program, args.input, args.output, split=args.split, fields=fields, optional=optional,
                                id_field=args.id_field, hash_ids=args.hash_ids, keep_columns=args.keep_columns,
                                restart=args.restart, require_columns=True, threads=args.threads,
                                max_errors=args.max_errors, skip_bad_rows=args.skip_bad_rows,
                                progress=not args.no_progress, info=info, ray=ray)
    except (OutputBusyError, RunMismatchError) as exc:
        raise CLIError(str(exc)) from None
    except (ClusterError, ConnectionError) as exc:  # ConnectionError: Ray's own, e.g. for 'auto' without a cluster
        raise CLIError(f"--ray {args.ray or '(RAY_ADDRESS or a local Ray)'}: {' '.join(str(exc).split())[:300]}") from None
    except (RowError, FileNotFoundError, ValueError) as exc:
        message = str(exc)
        raise CLIError(message if message.startswith(str(args.input)) else f"{args.input}: {message}") from None
    print(render_batch(summary, args.output))
    left_out = summary.info.get("columns_left_out")
    if left_out:
        print(f"  columns left out of the results (JSON cannot hold their values; join on id or index): "
              f"{', '.join(left_out)}")
    return 1 if summary.failed or summary.stopped_early else 0


def _ray_cluster(args: argparse.Namespace):
    """``--ray``/``--actors`` as a :class:`~spri_dspy.runtime.distributed.RayCluster` (None without ``--ray``)."""
    import importlib.util

    if args.ray is None:
        if args.actors is not None:
            raise CLIError("--actors sizes the pool of Ray actors; give --ray [ADDRESS] too")
        return None
    if importlib.util.find_spec("ray") is None:
        from spri_dspy.runtime.distributed import RAY_MISSING

        raise CLIError(f"--ray: {RAY_MISSING}")
    from spri_dspy.runtime.distributed import RayCluster

    lm, critic_lm = _lm_specs(args)
    return RayCluster(lm, critic_lm, address=args.ray or None, actors=args.actors, logs=args.verbose,
                      adapter=args.adapter)


def cmd_generate(args: argparse.Namespace) -> int:
    """``spri generate``: a response program over a dataset, or Situated around a signature or module."""
    situated = _situated(args)
    if situated is not None:  # built once (a FILE.py:NAME runs once); its critics are placed when the LMs are made
        return _batch(args, "situated", {name: name for name in situated.task.input_fields}, optional=(),
                      program=situated)
    fields = {"query": args.query_field}
    if args.goal_field:
        fields["goal"] = args.goal_field
    if _program_name(args.program) == "oracle":
        fields["principles"] = args.principles_field
    return _batch(args, "response", fields, optional=("goal",))


def _situated(args: argparse.Namespace):
    """``--signature SIG`` or ``--program FILE.py:NAME`` (or a compiled Situated file): the
    :class:`~spri_dspy.Situated` program, its critics not placed yet; None for SPRI and its baselines."""
    from spri_dspy.core.situated import is_object_path

    source = args.signature
    compiled = os.path.isfile(args.program) and not args.program.endswith(".py") and \
        _metadata(args.program)["kind"] == "situated"
    if source is None and is_object_path(args.program):
        source = args.program
    elif source is not None and "program" in getattr(args, "given", set()):
        raise CLIError("--signature and --program both choose what runs; give one")
    if source is None and not compiled:
        return None
    for flag in ("goal_field", "principles_field"):
        if flag in getattr(args, "given", set()):
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
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise CLIError(f"--seeds {path}: line {number} is not JSON ({exc.msg})") from None
    except OSError as exc:
        raise CLIError(f"--seeds {path}: {exc.strerror}") from None
    return rows


def cmd_judge(args: argparse.Namespace) -> int:
    """``spri judge``: a judge program over a dataset of responses (pairs of responses with ``--pairwise``)."""
    given = getattr(args, "given", set())
    if args.pairwise:
        if "response_field" in given or "rubric_field" in given:
            raise CLIError("--pairwise compares --response-a-field with --response-b-field; --response-field and "
                           "--rubric-field are for grading one response")
        fields = {"instruction": args.instruction_field, "response_a": args.response_a_field,
                  "response_b": args.response_b_field}
    else:
        pairwise_only = sorted(f"--{n.replace('_', '-')}" for n in ("response_a_field", "response_b_field",
                                                                      "label_field") if n in given)
        if pairwise_only:
            raise CLIError(f"{', '.join(pairwise_only)} only appl{'ies' if len(pairwise_only) == 1 else 'y'} with --pairwise")
        fields = {"instruction": args.instruction_field, "response": args.response_field}
        if _program_name(args.program) == "oracle":
            fields["rubric"] = args.rubric_field
    if args.reference_field:
        fields["reference_answer"] = args.reference_field
    if args.system_prompt_field:
        fields["system_prompt"] = args.system_prompt_field
    if args.capability_field:
        fields["capability"] = args.capability_field
    status = _batch(args, "pairwise" if args.pairwise else "judge", fields, optional=("reference_answer", "system_prompt"))
    report = _preference_report(args) if args.pairwise else ""
    if report:
        print(report)
    return status


def _preference_report(args: argparse.Namespace) -> str:
    """Accuracy and Cohen's kappa of the run's verdicts against the label column, per group."""
    from spri_dspy.runtime.batch import read_output
    from spri_dspy.experiments.metrics import preference_agreement

    label = args.label_field or "label"
    rows = []
    for record in read_output(args.output).records:
        columns = record.get("columns", {})
        if label not in columns:
            return (f"  no '{label}' column: give --label-field COLUMN to score the verdicts against human preferences"
                    if args.label_field else "")
        group = record["input"].get("capability") or "all"
        rows.append((group, record["output"].get("verdict"), columns[label]))
    try:
        result = preference_agreement(rows)
    except ValueError as exc:
        raise CLIError(f"--label-field {label}: {exc}") from None
    lines = [f"  against '{label}': " + _figures(result["average"]) + (" (mean over groups)" if len(result["groups"]) > 1 else "")]
    if len(result["groups"]) > 1:
        lines += [f"    {group}: {_figures(figures)}" for group, figures in result["groups"].items()]
    return "\n".join(lines)


def _figures(figures: dict) -> str:
    def fmt(value):
        return "-" if value != value else f"{value:.3f}"
    return (f"accuracy {fmt(figures['accuracy'])}, Cohen's kappa {fmt(figures['kappa'])}, accuracy without ties "
            f"{fmt(figures['accuracy_without_ties'])}, n {figures['n']}")


def cmd_export(args: argparse.Namespace) -> int:
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


def cmd_report(args: argparse.Namespace) -> int:
    """``spri report``: an HTML page for a batch run or an ablation."""
    from spri_dspy.experiments.report import write_report

    if args.max_rows < 1:
        raise CLIError(f"--max-rows must be at least 1, got {args.max_rows}")
    if args.to:
        _check_writable("--to", args.to)
    try:
        path = write_report(args.folder, args.to, max_rows=args.max_rows)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {path}: open it in a browser (it needs no network)")
    return 0


def render_batch(summary, output: str) -> str:
    """The run summary: counts, LM calls and tokens per stage and model, time."""
    lines = [f"{output}: {summary.done} done, {summary.failed} failed, {summary.already_done} already done, "
             f"{summary.bad_rows} bad rows, {summary.pending} pending of {summary.rows}"
             + (" (stopped early: --max-errors reached)" if summary.stopped_early else "")]
    for title, table in (("stage", summary.by_stage), ("model", summary.by_model)):
        for key, counts in table.items():
            lines.append(f"  {title} {key}: {counts.get('calls_needed', 0)} LM calls needed, {counts.get('calls', 0)} "
                         f"made: {counts.get('prompt_tokens', 0)} prompt + {counts.get('completion_tokens', 0)} "
                         "completion tokens")
    reasons = list(summary.failure_reasons.items())
    for reason, count in reasons[:5]:  # why inputs failed, most frequent first (failures.jsonl has each one)
        lines.append(f"  failed: {count} x {reason}")
    if len(reasons) > 5:
        lines.append(f"  failed: {sum(count for _, count in reasons[5:])} more, for {len(reasons) - 5} other reasons "
                     "(failures.jsonl)")
    cached = summary.lm_calls_needed - summary.lm_calls
    lines.append(f"  {summary.lm_calls_needed} LM calls needed, {summary.lm_calls} made"
                 + (f" ({cached} answered by DSPy's cache)" if cached else "") + f", in {summary.seconds:.1f} s")
    return "\n".join(lines)


def cmd_reproduce(args: argparse.Namespace) -> int:
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


def render(prediction, summary: dict) -> str:
    """Human-readable output: principles, response, then a compact table of rounds."""
    lines = ["== Principles", prediction.principles.strip(), "", "== Response", prediction.response.strip(), "",
             "== Rounds", f"{'stage':<11} {'round':>5} {'score':>5}  accepted  feedback"]
    for r in prediction.trace:
        score = "-" if r["score"] is None else str(r["score"])
        note = r.get("error") or r["feedback"] or ""
        note = " ".join(note.split())
        lines.append(f"{r['stage']:<11} {r['round']:>5} {score:>5}  {'yes' if r['accepted'] else 'no':<8}  "
                     f"{note[:60] + ('...' if len(note) > 60 else '')}")
    calls = ", ".join(f"{model}: {n}" for model, n in summary["lm_calls"].items())
    needed = sum(summary["lm_calls"].values())
    made = sum(summary.get("lm_calls_made", summary["lm_calls"]).values())
    tokens = sum((u.get("prompt_tokens") or 0) + (u.get("completion_tokens") or 0) for u in summary["usage"].values())
    lines += ["", f"LM calls: {needed} ({calls}), "
                  + ("all made" if made == needed else f"{made} made, {needed - made} answered by DSPy's cache")
                  + f"; tokens of the calls made: {tokens}; time: {summary['seconds']:.1f} s"]
    if summary.get("endpoints"):
        lines.append("endpoint: " + ", ".join(f"{model} at {host}" for model, host in summary["endpoints"].items()))
    if "engine" in summary:
        engine = summary["engine"]
        cached = engine["lm_calls"] - engine["requests"]
        lines.append(f"embedded model: {engine['requests']} of its {engine['lm_calls']} calls reached it"
                     + (f" ({cached} answered by DSPy's cache)" if cached else "")
                     + f", {engine['memo_hits']} of those repeated an earlier one (answered from memory); "
                     f"{engine['prompt_tokens_evaluated']} of {engine['prompt_tokens']} prompt tokens evaluated "
                     "(the rest reused from earlier calls)")
    return "\n".join(lines)


def _quiet(verbose: bool) -> None:
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


def _unless_verbose(verbose: bool):
    """Hide what DSPy's optimizers print themselves (progress bars, "Bootstrapped N full traces") unless
    ``--verbose``; the command prints its own report after."""
    import io

    if verbose:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


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


_UNSET = object()


def _given_options(argv: Sequence[str] | None) -> set[str]:
    """The options given on the command line (abbreviations too), as argument names."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in commands.choices.values():
        for action in command._actions:
            if action.option_strings:
                action.default = _UNSET
        command._defaults = dict.fromkeys(command._defaults, _UNSET)  # set_defaults(...) values are not given either
    return {name for name, value in vars(parser.parse_args(argv)).items() if value is not _UNSET}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    args.given = _given_options(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # DSPy's model catalogue: no network fetch
    _quiet(args.verbose)
    try:
        _check_text_arguments(args)
        return args.handler(args)
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
