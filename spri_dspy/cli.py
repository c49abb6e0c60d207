"""The ``spri`` command line: run SPRI on one input with the embedded model or any DSPy LM."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

EMBEDDED = "embedded"


class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``spri`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="spri",
        description="SPRI: write principles for each input, critique and refine them, then respond under them.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run SPRI on one query and print principles, response and rounds",
        description="Run SPRI on one query. Without --lm it runs the embedded SmolLM2-135M-Instruct model on CPU.",
    )
    run.add_argument("query", metavar="QUERY", help="the user input to write principles for and respond to")
    run.add_argument("--goal", help="response goal, e.g. an appraisal dimension's aim (flows into every stage)")
    run.add_argument("--lm", default=EMBEDDED, metavar="MODEL",
                     help="base model: 'embedded' (default) or a DSPy/LiteLLM model string, e.g. openai/gpt-4o-mini")
    run.add_argument("--critic-lm", metavar="MODEL", help="critic model (default: the base model)")
    run.add_argument("--api-base", metavar="URL",
                     help="base URL of an OpenAI-compatible server for --lm/--critic-lm (keys come from the environment)")
    run.add_argument("--threshold", type=int, default=4, metavar="N", help="critic score (1-5) that accepts a text (default 4)")
    run.add_argument("--max-rounds", type=int, default=4, metavar="N", help="most critiques per stage (default 4)")
    run.add_argument("--keep", choices=("latest", "best"), default="latest",
                     help="which text a stage keeps: the latest (paper) or the best-scored")
    run.add_argument("--seeds", metavar="FILE", help="JSONL seed examples (our format or any of the paper's three)")
    run.add_argument("--max-tokens", type=int, default=512, metavar="N", help="completion budget per LM call (default 512)")
    run.add_argument("--json", action="store_true", help="print the whole prediction with its trace as JSON")
    run.set_defaults(handler=cmd_run)

    reproduce = commands.add_parser(
        "reproduce",
        help="recompute the paper's tables from recorded runs",
        description="Recompute mean alignment/empathy (reappraisal) and agreement with human scores (judging) "
        "for every model and variant found under DIR (laid out like the released spri-paper data).",
    )
    reproduce.add_argument("dir", metavar="DIR", help="folder with reappraisal/ and/or biggen-judgements/")
    reproduce.add_argument("--json", action="store_true", help="print every figure, per capability too, as JSON")
    reproduce.set_defaults(handler=cmd_reproduce)
    return parser


def make_lm(model: str, *, api_base: str | None = None, max_tokens: int = 512):
    """A ``dspy.LM`` for a model name: ``embedded`` or a DSPy/LiteLLM model string (checked up front)."""
    import dspy

    if model == EMBEDDED:
        if api_base:
            raise CLIError("--api-base cannot be used with the embedded model")
        from spri_dspy.embedded import embedded_lm

        return embedded_lm(max_tokens=max_tokens)
    _check_model_name(model, api_base)
    return dspy.LM(model, api_base=api_base, max_tokens=max_tokens)


def _check_model_name(model: str, api_base: str | None) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of prices at start
    from litellm import get_llm_provider

    try:
        get_llm_provider(model, api_base=api_base)
    except Exception:
        raise CLIError(
            f"unknown model {model!r}: use 'embedded' or a DSPy/LiteLLM model string such as openai/gpt-4o-mini"
        ) from None


def cmd_run(args: argparse.Namespace) -> int:
    """``spri run``: one SPRI call, printed as text or JSON."""
    import dspy

    from spri_dspy.seeds import SeedError
    from spri_dspy.spri import SPRI, check_text

    for name, value in (("--threshold", args.threshold), ("--max-rounds", args.max_rounds), ("--max-tokens", args.max_tokens)):
        if name == "--threshold" and not 1 <= value <= 5:
            raise CLIError(f"{name} must be from 1 to 5, got {value}")
        if name != "--threshold" and value < 1:
            raise CLIError(f"{name} must be at least 1, got {value}")
    try:
        check_text("QUERY", args.query)
        check_text("--goal", args.goal, optional=True)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    lm = make_lm(args.lm, api_base=args.api_base, max_tokens=args.max_tokens)
    critic_lm = make_lm(args.critic_lm, api_base=args.api_base, max_tokens=args.max_tokens) if args.critic_lm else None
    try:
        program = SPRI(threshold=args.threshold, max_rounds=args.max_rounds, seeds=args.seeds,
                       critic_lm=critic_lm, keep=args.keep)
    except SeedError as exc:
        raise CLIError(f"--seeds: {exc}") from None
    # The embedded model is driven through JSON schemas; other models use DSPy's default adapter.
    adapter = dspy.JSONAdapter() if EMBEDDED in (args.lm, args.critic_lm) else None
    lms = [lm] + ([critic_lm] if critic_lm is not None else [])
    calls_before = [len(m.history) for m in lms]
    started = time.perf_counter()
    with dspy.context(lm=lm, adapter=adapter, track_usage=True):
        prediction = program(query=args.query, goal=args.goal)
    seconds = time.perf_counter() - started
    calls = {m.model if m is lm else f"{m.model} (critic)": len(m.history) - before for m, before in zip(lms, calls_before)}
    summary = {"lm_calls": calls, "usage": prediction.get_lm_usage() or {}, "seconds": round(seconds, 2)}
    if args.json:
        print(json.dumps({"principles": prediction.principles, "response": prediction.response,
                          "trace": prediction.trace, **summary}, indent=2, ensure_ascii=False))
    else:
        print(render(prediction, summary))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``spri reproduce``: the paper's figures from recorded runs."""
    from spri_dspy.reproduce import render as render_table
    from spri_dspy.reproduce import reproduce

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
    tokens = sum((u.get("total_tokens") or 0) for u in summary["usage"].values())
    lines += ["", f"LM calls: {sum(summary['lm_calls'].values())} ({calls}); tokens: {tokens}; "
                  f"time: {summary['seconds']:.1f} s"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spri`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as exc:
        print(f"spri: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spri: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an LM or runtime failure: one line, no traceback
        message = " ".join(str(exc).split())
        print(f"spri: error: {type(exc).__name__}: {message[:500]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
