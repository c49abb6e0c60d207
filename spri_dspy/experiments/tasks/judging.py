"""Instance-specific rubrics for LLM-as-a-judge: BiGGen-Bench instances and human-scored judgements."""

from __future__ import annotations

from collections.abc import Mapping

import dspy

from spri_dspy.core.data import RowError, TableSource, load_table, text_field
from spri_dspy.experiments.tasks.task import Task
from spri_dspy.core.rubric import format_rubric

# Example field -> column of a judgement dataset; human_score is read as a number.
JUDGEMENT_COLUMNS = {
    "instruction": "instruction",
    "response": "response",
    "reference_answer": "reference_answer",
    "rubric": "rubric",
    "capability": "capability",
    "system_prompt": "system_prompt",
    "human_score": "human_score",
}


def load_biggen(source: TableSource) -> list[dspy.Example]:
    """BiGGen-Bench instances (``instances.jsonl``): ``instruction`` (the input),
    ``reference_answer``, ``rubric`` (the gold rubric as text, i.e. the oracle),
    ``capability``, ``task``, ``id`` and ``system_prompt``."""
    examples = []
    for index, row in enumerate(load_table(source)):
        try:
            rubric = format_rubric(row.get("score_rubric"))
        except ValueError as exc:
            raise RowError(f"row {index + 1}: field 'score_rubric': {exc}") from None
        examples.append(
            dspy.Example(
                id=text_field(row, "id", index),
                capability=text_field(row, "capability", index),
                task=text_field(row, "task", index, optional=True),
                system_prompt=text_field(row, "system_prompt", index, optional=True),
                instruction=text_field(row, "input", index),
                reference_answer=text_field(row, "reference_answer", index, optional=True),
                rubric=rubric,
            ).with_inputs("instruction", "reference_answer")
        )
    return examples


def load_judgements(source: TableSource, columns: Mapping[str, str] | None = None) -> list[dspy.Example]:
    """Responses to judge with their human scores: inputs ``instruction``, ``response`` and
    (optional) ``reference_answer``, ``system_prompt`` and ``capability`` (which
    ``seed_match="capability"`` reads); labels ``human_score`` (a number) and
    optional ``rubric``. ``columns`` maps these names to other columns."""
    mapping = {**JUDGEMENT_COLUMNS, **(columns or {})}
    examples = []
    for index, row in enumerate(load_table(source)):
        fields = {}
        for name in ("instruction", "response"):
            fields[name] = text_field(row, mapping[name], index)
        for name in ("reference_answer", "rubric", "capability", "system_prompt"):
            value = text_field(row, mapping[name], index, optional=True)
            if value is not None:
                fields[name] = value
        score = row.get(mapping["human_score"])
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise RowError(f"row {index + 1}: field {mapping['human_score']!r} must be a number, got {score!r:.60}")
        fields["human_score"] = score
        inputs = [name for name in ("instruction", "response", "reference_answer", "system_prompt", "capability")
                  if name in fields]
        examples.append(dspy.Example(**fields).with_inputs(*inputs))
    return examples


JUDGEMENTS = Task(
    name="judgements", kind="judge", load=lambda data, field=None: load_judgements(data), metrics=("agreement",),
    group_by="capability",
    labeled=lambda example: {"rubric_generator": {"instruction": example.instruction, "rubric": example.rubric}}
    if example.get("rubric") else {},
)
"""Judging responses (instruction, response, human_score rows): judges scored by agreement with humans."""
