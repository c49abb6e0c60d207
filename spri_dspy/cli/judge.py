"""``spri judge``: a judge program over a dataset of responses (pairs of responses with ``--pairwise``)."""

from __future__ import annotations

import argparse

from spri_dspy.cli import batch, build
from spri_dspy.cli.options import CLIError, add_batch_options, add_lm_options, add_spri_options, given_options

DESCRIPTION = (
    "Judge every (instruction, response) row of INPUT into OUTPUT, like 'spri generate'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri judge``'s arguments."""
    from spri_dspy.core.programs import program_names

    add_batch_options(parser)
    fields = parser.add_argument_group("fields")
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
    add_lm_options(parser)
    add_spri_options(parser, evaluation=True)


def handle(args: argparse.Namespace) -> int:
    """``spri judge``: a judge program over a dataset of responses (pairs of responses with ``--pairwise``)."""
    given = given_options(args)
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
        if build.program_name(args.program) == "oracle":
            fields["rubric"] = args.rubric_field
    if args.reference_field:
        fields["reference_answer"] = args.reference_field
    if args.system_prompt_field:
        fields["system_prompt"] = args.system_prompt_field
    if args.capability_field:
        fields["capability"] = args.capability_field
    status = batch.run(args, "pairwise" if args.pairwise else "judge", fields, optional=("reference_answer", "system_prompt"))
    report = _preference_report(args) if args.pairwise else ""
    if report:
        print(report)
    return status


def _preference_report(args: argparse.Namespace) -> str:
    """Accuracy and Cohen's kappa of the run's verdicts against the label column, per group."""
    from spri_dspy.experiments.metrics import preference_agreement, preference_rows
    from spri_dspy.runtime.batch import read_output

    label = args.label_field or "label"
    records = read_output(args.output).records
    if not any(label in record.get("columns", {}) for record in records):
        return (f"  no '{label}' column: give --label-field COLUMN to score the verdicts against human preferences"
                if args.label_field else "")
    rows, problems = preference_rows(records, label)
    if problems:
        number, problem = problems[0]
        raise CLIError(f"--label-field {label}: result {number}: {problem}")
    result = preference_agreement(rows)
    lines = [f"  against '{label}': " + _figures(result["average"]) + (" (mean over groups)" if len(result["groups"]) > 1 else "")]
    if len(result["groups"]) > 1:
        lines += [f"    {group}: {_figures(figures)}" for group, figures in result["groups"].items()]
    return "\n".join(lines)


def _figures(figures: dict) -> str:
    def fmt(value):
        return "-" if value != value else f"{value:.3f}"
    return (f"accuracy {fmt(figures['accuracy'])}, Cohen's kappa {fmt(figures['kappa'])}, accuracy without ties "
            f"{fmt(figures['accuracy_without_ties'])}, n {figures['n']}")
