"""Scoring rubrics in the BiGGen-Bench shape: criteria plus one description per score 1..5."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping

RUBRIC_KEYS = ("criteria", *(f"score{n}_description" for n in range(1, 6)))


def parse_rubric(value: object) -> dict[str, str]:
    """Read a rubric given as a mapping, a JSON object string or a Python-dict string.

    Raises ValueError naming what is missing or malformed.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as exc:
                raise ValueError("rubric is neither a JSON object nor a Python dict literal") from exc
    if not isinstance(value, Mapping):
        raise ValueError(f"rubric must be a mapping, got {type(value).__name__}")
    missing = [key for key in RUBRIC_KEYS if not isinstance(value.get(key), str) or not value[key].strip()]
    if missing:
        raise ValueError(f"rubric lacks non-empty text for {missing}")
    return {key: value[key].strip() for key in RUBRIC_KEYS}


def format_rubric(value: object) -> str:
    """Render a rubric as the plain text a model reads: the criteria, then one line per score."""
    rubric = parse_rubric(value)
    lines = [f"Criteria: {rubric['criteria']}"]
    lines += [f"Score {n}: {rubric[f'score{n}_description']}" for n in range(1, 6)]
    return "\n".join(lines)
