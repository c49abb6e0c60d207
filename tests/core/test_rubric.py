"""Rubric parsing and rendering."""

import pytest

from spri_dspy.core.rubric import format_rubric, parse_rubric

RUBRIC = {"criteria": " Is it kind? ", **{f"score{n}_description": f"kindness {n}" for n in range(1, 6)}, "extra": 1}


def test_parse_accepts_mapping_json_and_python_literal():
    expected = {"criteria": "Is it kind?", **{f"score{n}_description": f"kindness {n}" for n in range(1, 6)}}
    import json

    assert parse_rubric(RUBRIC) == expected
    assert parse_rubric(json.dumps(RUBRIC)) == expected
    assert parse_rubric(repr(RUBRIC)) == expected


def test_format_lists_criteria_then_scores():
    assert format_rubric(RUBRIC).splitlines() == ["Criteria: Is it kind?"] + [f"Score {n}: kindness {n}" for n in range(1, 6)]


@pytest.mark.parametrize(
    "value, message",
    [
        ({"criteria": "c"}, "rubric lacks non-empty text for ['score1_description'"),
        ({**RUBRIC, "score3_description": ""}, "rubric lacks non-empty text for ['score3_description']"),
        (["criteria"], "rubric must be a mapping, got list"),
        ("__import__('os')", "neither a JSON object nor a Python dict literal"),
    ],
)
def test_bad_rubrics(value, message):
    with pytest.raises(ValueError) as error:
        parse_rubric(value)
    assert message in str(error.value)
