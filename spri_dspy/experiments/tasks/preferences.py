"""Pairwise judging: which of two responses is better, scored against human preference labels."""

from __future__ import annotations

import dspy

from spri_dspy.core.data import RowError, TableSource, load_table, text_field
from spri_dspy.experiments.metrics.agreement import VERDICTS
from spri_dspy.experiments.tasks.task import Task, Variant


def load_preferences(source: TableSource) -> list[dspy.Example]:
    """Pairs of responses with a human preference: inputs ``instruction``, ``response_a``,
    ``response_b`` and (optional) ``reference_answer``, ``system_prompt`` and ``capability``
    (the group the figures are computed per); the label ``label`` is ``"A"``, ``"B"`` or ``"tie"``."""
    examples = []
    for index, row in enumerate(load_table(source)):
        fields = {name: text_field(row, name, index) for name in ("instruction", "response_a", "response_b")}
        for name in ("reference_answer", "system_prompt", "capability"):
            value = text_field(row, name, index, optional=True)
            if value is not None:
                fields[name] = value
        label = row.get("label")
        if label not in VERDICTS:
            raise RowError(f"row {index + 1}: field 'label' must be one of {', '.join(VERDICTS)}, got {label!r:.60}")
        inputs = [name for name in ("instruction", "response_a", "response_b", "reference_answer", "system_prompt",
                                    "capability") if name in fields]
        examples.append(dspy.Example(**fields, label=label).with_inputs(*inputs))
    return examples


PREFERENCES = Task(
    name="preferences", kind="pairwise", load=lambda data, field=None: load_preferences(data),
    metrics=("preference-accuracy",),
    variants=lambda settings: {"spri_both_orders": Variant("spri"),
                               "spri_one_order": Variant("spri", {"swap": False}, baseline=True)},
    group_by="capability",
    grid="preferences.toml",
)
"""Pairwise judging (instruction, response_a, response_b, label rows): judged by accuracy against the labels."""
