"""Cognitive reappraisal: an emotional-support post plus a response goal (an appraisal dimension's aim)."""

from __future__ import annotations

from collections.abc import Mapping

import dspy

from spri_dspy.core.data import TableSource, load_table, text_field
from spri_dspy.experiments.tasks.task import Task, response_variants

# Example field -> column in the RESORT-style files released with the paper.
REAPPRAISAL_COLUMNS = {
    "id": "Reddit ID",
    "query": "Reddit Post",
    "goal": "appraisal_dimension_aim",
    "dimension": "appraisal_dimension",
    "dimension_id": "appraisal_dimension_id",
    "constitution": "constitution",
    "standards": "standards",
}
_REQUIRED = ("query", "goal")

REAPPRAISAL_FRAMING = (
    "The response is a cognitive reappraisal: help the person see their situation differently, through the "
    "goal's appraisal, with suggestions tied to what they wrote rather than generic comfort or stock advice."
)
"""What the reappraisal task asks of SPRI's response stage (``SPRI(framing=REAPPRAISAL_FRAMING)``)."""


def load_reappraisal(source: TableSource, columns: Mapping[str, str] | None = None) -> list[dspy.Example]:
    """Reappraisal examples from ``resort_eval_30.json`` or any file ``datasets`` reads.

    Each Example has inputs ``query`` (the post) and ``goal`` (the dimension's
    aim), and when present ``id``, ``dimension``, ``dimension_id`` (a string),
    ``constitution`` (the expert principles, i.e. the oracle) and ``standards``
    (the expert judging standards the alignment metric needs). ``columns`` maps
    these names to other column names. Raises RowError naming the row and column.
    """
    mapping = {**REAPPRAISAL_COLUMNS, **(columns or {})}
    examples = []
    for index, row in enumerate(load_table(source)):
        fields = {}
        for name, column in mapping.items():
            if name == "dimension_id" and row.get(column) is not None:
                fields[name] = str(row[column])
                continue
            value = text_field(row, column, index, optional=name not in _REQUIRED)
            if value is not None:
                fields[name] = value
        examples.append(dspy.Example(**fields).with_inputs("query", "goal"))
    return examples


REAPPRAISAL = Task(
    name="reappraisal",
    kind="response",
    load=lambda data, field=None: load_reappraisal(data),
    metrics=("alignment", "empathy", "usefulness", "adherence", "constitution-overlap"),
    framing=REAPPRAISAL_FRAMING,
    has_goal=True,
    group_by="dimension",
    grid="reappraisal.toml",
    variants=lambda settings: response_variants(
        settings, per_goal=True, oracle=lambda example: {**example.inputs(), "principles": example.constitution}),
    labeled=lambda example: {"principle_generator": {"query": example.query, "goal": example.goal,
                                                     "principles": example.constitution}}
    if example.get("constitution") else {},
)
"""Cognitive reappraisal on RESORT-style rows: SPRI under the reappraisal framing, judged for alignment."""
