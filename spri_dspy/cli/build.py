"""From flags to objects: the LMs of ``--lm``/``--critic-lm``, a program's settings, the program ``--program``
names (a registry name or a compiled file, whose saved settings yield to flags given explicitly), and a
task's examples and metric. Errors are one line naming the flag (:class:`~spri_dspy.cli.options.CLIError`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from spri_dspy.cli.options import CLIError, given_options
from spri_dspy.runtime import lms
from spri_dspy.runtime.lms import EMBEDDED


def lm_spec(model: str, **options):
    """:func:`spri_dspy.runtime.lms.lm_spec`, its errors as one-line CLI errors naming the model or flag."""
    if model == EMBEDDED and options.get("api_base"):
        raise CLIError("--api-base cannot be used with the embedded model")
    try:
        return lms.lm_spec(model, **options)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def make_lm(model: str, **options):
    """The ``dspy.LM`` of :func:`lm_spec` (the one place commands build their LMs)."""
    return lm_spec(model, **options).build()


def lm_options(args: argparse.Namespace) -> dict:
    """The model flags (``--api-base``, ``--max-tokens`` ...) as the settings of :func:`make_lm`/:func:`lm_spec`,
    pooled for ``--threads`` calls in flight."""
    return {"api_base": args.api_base, "max_tokens": args.max_tokens, "cache": not args.no_cache,
            "max_connections": pool(args), "response_format": args.response_format, "temperature": args.temperature}


def lm_specs(args: argparse.Namespace):
    """The checked specs of ``--lm`` and ``--critic-lm`` (None without one)."""
    return tuple(lm_spec(model, **lm_options(args)) if model else None for model in (args.lm, args.critic_lm))


def pool(args: argparse.Namespace) -> int:
    return getattr(args, "threads", None) or 0  # calls in flight: one per thread of a batch


def models(args: argparse.Namespace):
    """(base LM, critic LM or None, adapter) of ``--lm``/``--critic-lm``/``--adapter``: by default the embedded
    model is driven through JSON schemas with a short prompt, other models through DSPy's ChatAdapter.
    ``--verbose`` says where each model's requests go and why."""
    from spri_dspy.runtime.lms import adapter_for, make_adapter, resolve_endpoint
    from spri_dspy.secrets import register_url

    register_url(args.api_base)
    if args.verbose:
        for model in dict.fromkeys(m for m in (args.lm, args.critic_lm) if m):
            print(f"spri: {resolve_endpoint(model, args.api_base).describe(model)}", file=sys.stderr)
    lm, critic = (make_lm(model, **lm_options(args)) if model else None for model in (args.lm, args.critic_lm))
    return lm, critic, make_adapter(args.adapter) if args.adapter else adapter_for(args.lm, args.critic_lm)


def program_settings(args: argparse.Namespace, critic_lm) -> dict:
    """The command's program settings, for :func:`spri_dspy.core.programs.build_program`; ``--seeds`` is read here,
    once, so a missing or malformed file is an error even when no program built afterwards reads seeds."""
    from spri_dspy.core.seeds import load_seeds

    with program_errors("spri"):
        seeds = load_seeds(args.seeds) if args.seeds else None
    return {"threshold": args.threshold, "max_rounds": args.max_rounds, "keep": args.keep, "critic_lm": critic_lm,
            "seeds": seeds, "seed_match": args.seed_match, "leave_one_out": args.leave_one_out,
            "max_words": args.max_words, "framing": framing(args), "use_reference": args.use_reference}


def build(kind: str, name: str, settings: dict):
    """``build_program`` with its errors as one-line CLI errors naming the flag."""
    from spri_dspy.core.programs import build_program

    with program_errors(name):
        return build_program(name, kind, **settings)


@contextlib.contextmanager
def program_errors(name: str):
    """A program's build errors as one-line CLI errors naming the flag at fault."""
    from spri_dspy.core.programs import MissingSeedsError
    from spri_dspy.core.seeds import SeedError

    try:
        yield
    except SeedError as exc:
        raise CLIError(f"--seeds: {exc}") from None
    except MissingSeedsError:
        raise CLIError(f"--program {name} needs --seeds FILE") from None


def built_variant(variant, kind: str, settings: dict):
    """An ablation variant's program (:meth:`spri_dspy.experiments.tasks.Variant.build`), errors as for :func:`_build`."""
    with program_errors(variant.program):
        return variant.build(kind, settings)


def framing(args: argparse.Namespace) -> str | None:
    """The task's framing of the response stage (for ``--task``), else none."""
    from spri_dspy.experiments.tasks import TASKS

    task = getattr(args, "task", None)
    return TASKS[task].framing if task else None


def saved_metadata(path: str) -> dict:
    from spri_dspy.core.programs import read_metadata

    try:
        return read_metadata(path)
    except ValueError as exc:
        raise CLIError(f"--program {exc}") from None


def program_name(value: str) -> str:
    """The program name behind ``--program``: the name itself, or the one recorded in a compiled file."""
    return saved_metadata(value)["program"] if os.path.isfile(value) else value


def program(kind: str, value: str, args: argparse.Namespace, critic_lm):
    """``--program``: a program name, or a file saved by ``spri compile`` (its settings and compiled state)."""
    from spri_dspy.core.programs import PROGRAMS, load_program, program_names

    if not os.path.isfile(value):
        if (kind, value) not in PROGRAMS:
            raise CLIError(f"--program must be one of {', '.join(program_names(kind))} or a file saved by "
                           f"'spri compile', got {value!r}")
        return build(kind, value, program_settings(args, critic_lm))
    metadata = saved_metadata(value)
    if metadata["kind"] != kind:
        raise CLIError(f"--program {value}: a compiled {metadata['kind']} program cannot run here")
    given = given_options(args)
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


def task_data(args: argparse.Namespace):
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
    try:
        name = task.metric_name(args.metric, program_name(args.program))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    judge = (make_lm(args.judge_lm, api_base=args.api_base, max_tokens=args.max_tokens,
                     response_format=args.response_format) if args.judge_lm else None)
    return task, examples, METRICS[name](lm=judge)


def split(examples, fraction: float):
    if not 0 < fraction < 1:
        raise CLIError(f"--dev-fraction must be between 0 and 1, got {fraction}")
    cut = max(1, min(len(examples) - 1, round(len(examples) * (1 - fraction))))
    return examples[:cut], examples[cut:]


def unless_verbose(verbose: bool):
    """Hide what DSPy's optimizers print themselves (progress bars, "Bootstrapped N full traces") unless
    ``--verbose``; the command prints its own report after."""
    import io

    if verbose:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def tracker(args: argparse.Namespace, folder: str, run_name: str, exclude: tuple[str, ...] = ()):
    """With ``--mlflow``, the command's MLflow parent run (not yet entered), holding its options (less
    ``exclude``) as parameters; without, a context that does nothing and yields None."""
    if getattr(args, "mlflow", None) is None:
        return contextlib.nullcontext()
    from spri_dspy.experiments.tracking import Tracker

    options = {key: value for key, value in vars(args).items() if key not in ("given", "mlflow", "command", *exclude)}
    return Tracker(args.mlflow or None, run_name, params={"command": f"spri {args.command}", **options},
                   folder=folder, tags={"spri.command": args.command})


def tracked(tracker) -> None:
    """Say on stderr where the command's MLflow run is (nothing without one)."""
    if tracker is not None:
        from spri_dspy.secrets import redact

        uri = redact(tracker.uri)
        see = f"open {uri}" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri '{uri}'"
        print(f"spri: tracked in MLflow as run {tracker.run_id} in {uri} (to look: {see})", file=sys.stderr)
