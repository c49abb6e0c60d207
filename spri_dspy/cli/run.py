"""``spri run``: SPRI (or a compiled response program) on one query, printed as text or JSON."""

from __future__ import annotations

import argparse
import json
import time

from spri_dspy.cli import build
from spri_dspy.cli.options import CLIError, add_lm_options, add_spri_options, check_settings

DESCRIPTION = "Run SPRI on one query. Without --lm it runs the embedded SmolLM2-135M-Instruct model on CPU."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri run``'s arguments."""
    parser.add_argument("query", metavar="QUERY", help="the user input to write principles for and respond to")
    parser.add_argument("--goal", help="response goal, e.g. an appraisal dimension's aim (flows into every stage)")
    parser.add_argument("--json", action="store_true", help="print the whole prediction with its trace as JSON")
    parser.add_argument("--program", metavar="FILE", help="a program saved by 'spri compile' (default: SPRI)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr while it runs")
    add_lm_options(parser)
    add_spri_options(parser, evaluation=False, judges=False)


def handle(args: argparse.Namespace) -> int:
    """One call of the program, with what it cost."""
    import dspy

    from spri_dspy.core.data import check_text
    from spri_dspy.runtime.progress import StepProgress
    from spri_dspy.runtime.usage import StepUsage, run_summary

    check_settings(args)
    try:
        check_text("QUERY", args.query)
        check_text("--goal", args.goal, optional=True)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    lm, critic_lm, adapter = build.models(args)
    program = build.program("response", args.program or "spri", args, critic_lm)
    usage = StepUsage()
    started = time.perf_counter()
    callbacks = [] if args.quiet else [StepProgress(getattr(program, "threshold", None),
                                                    getattr(program, "max_rounds", None))]
    with dspy.context(lm=lm, adapter=adapter, callbacks=callbacks), usage.context(program):
        prediction = program(query=args.query, goal=args.goal)
    summary = run_summary(usage, lm, critic_lm, time.perf_counter() - started)
    if args.json:
        print(json.dumps({"principles": prediction.principles, "response": prediction.response,
                          "trace": prediction.trace, "seeds": prediction.seeds, **summary}, indent=2, ensure_ascii=False))
    else:
        print(render(prediction, summary))
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
