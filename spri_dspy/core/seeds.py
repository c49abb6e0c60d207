"""Seed examples for few-shot principle generation.

A seed is a ``dspy.Example`` with inputs ``query`` (and ``goal`` when it has
one) and the label ``principles``. Seeds load from Examples, dicts or a JSONL
file in our own shape (``query``, ``principles``, optional ``goal``) or in any
of the three shapes released with the SPRI paper:

========================  ==============================================  ==========================
paper file                fields read                                     becomes
========================  ==============================================  ==========================
seed-principles           question, principle                             query, principles
seed-reappraisal          reddit_post, appraisal_dimension_aim,           query, goal, principles
                          constitution
seed-rubrics              input, rubric (dict or dict string)             query, principles (text)
========================  ==============================================  ==========================

Other fields of a row (e.g. ``appraisal_dimension_id``, ``capability``) are kept
on the Example as metadata for seed selection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args

import dspy

from spri_dspy.core.data import jsonl_lines
from spri_dspy.core.rubric import format_rubric

SeedSource = Union[str, os.PathLike, Iterable[Union[dspy.Example, Mapping[str, Any]]]]

# (required fields, field -> seed field); the first format whose required fields are present wins.
_FORMATS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("spri-dspy", ("query", "principles"), {"query": "query", "principles": "principles", "goal": "goal"}),
    ("seed-principles", ("question", "principle"), {"question": "query", "principle": "principles"}),
    (
        "seed-reappraisal",
        ("reddit_post", "appraisal_dimension_aim", "constitution"),
        {"reddit_post": "query", "appraisal_dimension_aim": "goal", "constitution": "principles"},
    ),
    ("seed-rubrics", ("input", "rubric"), {"input": "query", "rubric": "principles"}),
)


class SeedError(ValueError):
    """A seed source that is missing, malformed or of an unknown format."""


def load_seeds(source: SeedSource) -> list[dspy.Example]:
    """Load seeds from a JSONL path or an iterable of Examples/dicts, in any supported format.

    Raises SeedError naming the file (or ``seeds``), the row and the field at fault.
    """
    if isinstance(source, (str, os.PathLike)):
        return [_seed(row, f"seeds file {os.fspath(source)} line {line}") for line, row in _read_jsonl(Path(source))]
    if isinstance(source, (Mapping, dspy.Example)):
        raise SeedError("seeds must be a JSONL path or a list of examples, not a single example")
    try:
        rows = list(source)
    except TypeError:
        raise SeedError(f"seeds must be a JSONL path or a list of examples, got {type(source).__name__}") from None
    return [_seed(row, f"seeds[{index}]") for index, row in enumerate(rows)]


def _read_jsonl(path: Path) -> Iterable[tuple[int, Any]]:
    if not path.is_file():
        raise SeedError(f"seeds file not found: {path}")
    rows = []
    for line, value in jsonl_lines(path):
        if isinstance(value, json.JSONDecodeError):
            raise SeedError(f"seeds file {path} line {line}: not valid JSON ({value.msg})")
        rows.append((line, value))
    if not rows:
        raise SeedError(f"seeds file {path} holds no seeds")
    return rows


def _seed(row: Any, where: str) -> dspy.Example:
    if isinstance(row, dspy.Example):
        row = row.toDict()
    if not isinstance(row, Mapping):
        raise SeedError(f"{where}: a seed must be a JSON object, got {type(row).__name__}")
    for name, required, mapping in _FORMATS:
        if all(key in row for key in required):
            break
    else:
        known = "; ".join(f"{name} ({', '.join(required)})" for name, required, _ in _FORMATS)
        raise SeedError(f"{where}: unknown seed format with fields {sorted(row)}; expected one of: {known}")
    fields = {key: value for key, value in row.items() if key not in mapping}
    for source_key, seed_key in mapping.items():
        if source_key not in row or (source_key == "goal" and row[source_key] is None):
            continue
        value = row[source_key]
        if name == "seed-rubrics" and source_key == "rubric":
            try:
                value = format_rubric(value)
            except ValueError as exc:
                raise SeedError(f"{where}: field 'rubric': {exc}") from None
        if not isinstance(value, str) or not value.strip():
            raise SeedError(f"{where}: field {source_key!r} must be a non-empty string, got {value!r:.60}")
        fields[seed_key] = value.strip()
    inputs = ("query", "goal") if "goal" in fields else ("query",)
    return dspy.Example(**fields).with_inputs(*inputs)


SeedMatch = Literal["all", "goal", "capability"]


def _normalised(text: object) -> str | None:
    return " ".join(text.split()) if isinstance(text, str) else None


def select_seeds(
    seeds: Sequence[dspy.Example],
    *,
    query: str,
    goal: str | None = None,
    capability: str | None = None,
    match: SeedMatch = "all",
    leave_one_out: bool = False,
) -> list[int]:
    """Indexes of the seeds to show for one input.

    ``match="goal"`` keeps only seeds whose goal equals the input's (for
    reappraisal the goal is the appraisal dimension's aim, so this picks the
    seed of the input's dimension, the paper's best condition); ``match="capability"``
    keeps the seeds whose ``capability`` equals the input's (for judging: the
    paper's seed rubrics of the input's capability).
    ``leave_one_out`` drops any seed whose query equals the input's, so a seed
    taken from a test set never shows the model its own answer. Texts are
    compared with whitespace normalised.
    """
    matches = get_args(SeedMatch)
    if match not in matches:
        raise ValueError(f"seed_match must be {', '.join(map(repr, matches[:-1]))} or {matches[-1]!r}, got {match!r}")
    own_query = _normalised(query)
    own = _normalised({"goal": goal, "capability": capability}.get(match))  # the field that must match, if any
    chosen = []
    for index, seed in enumerate(seeds):
        if leave_one_out and _normalised(seed.get("query")) == own_query:
            continue
        if match != "all" and _normalised(seed.get(match)) != own:
            continue
        chosen.append(index)
    return chosen
