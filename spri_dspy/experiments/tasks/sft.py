"""Synthetic SFT data: SPRI over instructions, exported as chat-format (instruction, response) pairs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from spri_dspy.core.data import TableSource, load_table, text_field
from spri_dspy.experiments.export import messages
from spri_dspy.experiments.tasks.task import Task, response_variants

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


def load_instructions(source: TableSource, field: str = "instruction") -> list[str]:
    """The ``field`` column of any table ``datasets`` reads, each a non-empty string.

    A list-valued column (MT-Bench's ``turns``) contributes its first turn.
    """
    instructions = []
    for index, row in enumerate(load_table(source)):
        value = row.get(field)
        if isinstance(value, list) and value:
            row = {field: value[0]}
        instructions.append(text_field(row, field, index))
    return instructions


def sft_row(instruction: str, prediction: dspy.Prediction) -> dict:
    """One SFT record: the chat pair in ``messages`` (ready for TRL's SFTTrainer), the
    plain ``instruction``/``response``, and SPRI's principles and trace as metadata."""
    return {
        "messages": messages(instruction, prediction.response),
        "instruction": instruction,
        "response": prediction.response,
        "principles": prediction.get("principles"),
        "trace": json.dumps(prediction.get("trace") or []),
    }


def generate_sft(program: dspy.Module, instructions: Sequence[str | Mapping[str, Any]], num_threads: int = 1,
                 field: str = "instruction") -> datasets.Dataset:
    """Run ``program`` (SPRI or a baseline) over ``instructions`` with DSPy's parallel
    executor and return the SFT records as a ``datasets.Dataset``.

    An instruction is a string, or a row (a mapping, e.g. from ``load_table``) holding it
    in ``field``; the row's other columns (an id, a source, a category ...) are carried into
    its record unchanged, so the data joins back to its origin.
    Every instruction must be a non-empty string (RowError naming the first that is
    not, before any LM call). Inputs whose run fails (after DSPy's retries) are left out
    of the dataset and counted in a warning; if every input fails, RuntimeError.
    """
    rows = [item if isinstance(item, Mapping) else {field: item} for item in instructions]
    texts = [text_field(row, field, index) for index, row in enumerate(rows)]
    examples = [dspy.Example(query=text).with_inputs("query") for text in texts]
    predictions, _, errors = program.batch(examples, num_threads=num_threads, disable_progress_bar=True,
                                           max_errors=len(examples) + 1, return_failed_examples=True,
                                           provide_traceback=False)
    records = [{**{k: v for k, v in row.items() if k != field}, **sft_row(text, p)}
               for row, text, p in zip(rows, texts, predictions, strict=True) if p is not None]
    if errors and not records:
        raise RuntimeError(f"all {len(examples)} inputs failed; the first error: {type(errors[0]).__name__}: {errors[0]}")
    if errors:
        logger.warning("generate_sft: %d of %d inputs failed and are left out", len(errors), len(examples))
    import datasets  # imported when records are built, not by every command that loads the tasks (0.6 s)

    return datasets.Dataset.from_list(records)


def save_sft(dataset: datasets.Dataset, path: str | os.PathLike) -> Path:
    """Write SFT records as JSONL (``.jsonl``), Parquet (``.parquet``) or a dataset folder (any other path)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        dataset.to_json(str(path), lines=True, force_ascii=False)
    elif path.suffix == ".parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.save_to_disk(str(path))
    return path


INSTRUCTIONS = Task(
    name="instructions",
    kind="response",
    load=lambda data, field="instruction": [dspy.Example(query=text).with_inputs("query")
                                            for text in load_instructions(data, field or "instruction")],
    metrics=("adherence", "usefulness", "alignment", "empathy"),
    variants=response_variants,
    grid="instructions.toml",
)
"""Instructions (one text column), e.g. for synthetic SFT data: SPRI judged by the response's adherence."""
