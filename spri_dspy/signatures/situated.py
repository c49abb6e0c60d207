"""Signatures of :class:`spri_dspy.Situated`: SPRI's steps for any task, built around the task's own fields.

Each base signature below holds only SPRI's own fields (principles, feedback,
score, drafts). :func:`for_task` puts the wrapped task's input fields in front of
them (and, for the refiner, its typed output fields after them) and states the task
in the instruction, so every step reads the input exactly as the task declares it.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import dspy

from spri_dspy.signatures.score import Score

_PRINCIPLES = "A short numbered list of principles, each one concrete to this input."


class WriteTaskPrinciples(dspy.Signature):
    """Write the principles that good outputs for this particular input must follow.

    Principles are rules for the outputs, not the outputs themselves. Read the
    input: what this case needs, what is easy to get wrong here, what a careful
    expert would check. Each principle names something the outputs should do or
    avoid for this input. Skip advice that would fit any input of the task."""

    principles: str = dspy.OutputField(desc=_PRINCIPLES)


class CritiqueTaskPrinciples(dspy.Signature):
    """Judge how well these principles would guide the outputs for this input.

    Good principles are rules for the outputs (not the outputs themselves),
    specific to this input, correct, and enough to tell a good output from a bad
    one. Say what is missing or wrong, then score them:
    1 = unrelated to the input, or an answer instead of rules for one;
    2 = loosely related, but vague or generic;
    3 = relevant and of some use, but important points are missing;
    4 = clear, relevant, concrete rules for this input, with small gaps;
    5 = complete, concrete and correct rules for this input."""

    principles: str = dspy.InputField(desc="The principles under review.")
    feedback: str = dspy.OutputField(desc="Concrete, actionable criticism of the principles.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineTaskPrinciples(dspy.Signature):
    """Revise the draft principles as the critic's feedback asks.

    Fix what the feedback objects to, keep what it did not, and keep every
    principle a rule for the outputs that is specific to this input."""

    draft_principles: str = dspy.InputField(desc="The principles to revise.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the draft.")
    principles: str = dspy.OutputField(desc=_PRINCIPLES)


class CritiqueOutputs(dspy.Signature):
    """Judge how well these outputs follow the principles for this input.

    Check each principle against the outputs, and check that every output is
    correct for the input and of the kind the task asks for. Say which principle
    is broken or which output is wrong, and how to fix it; then score them:
    1 = wrong for the input, or ignores the principles;
    2 = partly right, but breaks important principles;
    3 = acceptable, but misses some principles;
    4 = correct and follows the principles, with small lapses;
    5 = correct and follows every principle."""

    principles: str = dspy.InputField(desc="The principles the outputs must follow.")
    outputs: str = dspy.InputField(desc="The outputs under review, one field per line.")
    feedback: str = dspy.OutputField(desc="Concrete, actionable criticism of the outputs.")
    score: Score = dspy.OutputField(desc="1 to 5, by the levels above.")


class RefineOutputs(dspy.Signature):
    """Revise the draft outputs as the critic's feedback asks, following the principles.

    Fix what the feedback objects to, keep what it did not, and give every output
    field again, each of the type the task asks for."""

    principles: str = dspy.InputField(desc="The principles the outputs must follow.")
    draft_outputs: str = dspy.InputField(desc="The outputs to revise, one field per line.")
    feedback: str = dspy.InputField(desc="The critic's feedback on the draft.")


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is not None and get_origin(annotation).__name__ == "Literal":
        return "one of " + ", ".join(repr(value) for value in get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def describe_task(task: type[dspy.Signature]) -> str:
    """The task in words, for the steps' instructions: its instruction and what it produces."""
    produced = "; ".join(
        f"{name} ({_type_name(field.annotation)})" + (f": {field.json_schema_extra.get('desc')}"
                                                      if _own_desc(name, field) else "")
        for name, field in task.output_fields.items())
    return f"The task: {task.instructions.strip()}\nIt produces: {produced}."


def _own_desc(name: str, field: Any) -> bool:
    desc = (field.json_schema_extra or {}).get("desc")
    return bool(desc) and desc != f"${{{name}}}"  # DSPy's placeholder for a field without a description


def for_task(base: type[dspy.Signature], task: type[dspy.Signature], *, outputs: bool = False) -> type[dspy.Signature]:
    """``base`` for ``task``: the task's input fields first, the task stated after ``base``'s instruction, and
    with ``outputs`` the task's output fields (their own types and descriptions) as ``base``'s outputs."""
    signature = base.with_instructions(f"{base.instructions.rstrip()}\n\n{describe_task(task)}")
    for name, field in reversed(list(task.input_fields.items())):
        signature = signature.prepend(name, field, field.annotation)
    if outputs:
        for name, field in task.output_fields.items():
            signature = signature.append(name, field, field.annotation)
    return signature
