"""load_preferences: labelled pairs, with errors that name the row and field."""

from __future__ import annotations

import pytest

from spri_dspy.core.data import RowError
from spri_dspy.experiments.tasks import load_preferences


def test_rows_become_examples_with_the_label_kept_out_of_the_inputs():
    (example,) = load_preferences([{"instruction": "i", "response_a": "a", "response_b": "b", "label": "tie",
                                    "capability": "facts"}])
    assert example.inputs().toDict() == {"instruction": "i", "response_a": "a", "response_b": "b",
                                         "capability": "facts"}
    assert example.label == "tie"


@pytest.mark.parametrize("row, message", [
    ({"instruction": "i", "response_a": "a", "response_b": "b", "label": "C"}, "row 1: field 'label' must be one of A, B, tie, got 'C'"),
    ({"instruction": "i", "response_a": "a", "label": "A"}, "row 1: missing field 'response_b'"),
])
def test_bad_rows_name_row_and_field(row, message):
    with pytest.raises(RowError, match=message):
        load_preferences([row])
