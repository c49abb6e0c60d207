"""BiGGen-Bench instances and judgement datasets."""

import pytest

from spri_dspy.core.data import RowError
from spri_dspy.experiments.tasks import load_biggen, load_judgements


def test_biggen_instances_with_gold_rubrics(shared_paper):
    examples = load_biggen(shared_paper.parent / "benchmarks" / "biggen-bench" / "instances.jsonl")
    assert len(examples) == 765
    assert len({e.capability for e in examples}) == 9
    first = examples[0]
    assert first.rubric.startswith("Criteria: ") and first.rubric.count("\nScore ") == 5
    assert set(first.inputs().keys()) == {"instruction", "reference_answer"}


def test_judgements_with_column_mapping():
    rows = [{"prompt": "2+2?", "answer": "4", "human": 5, "capability": "math"}]
    examples = load_judgements(rows, columns={"instruction": "prompt", "response": "answer", "human_score": "human"})
    assert examples[0].human_score == 5 and set(examples[0].inputs().keys()) == {"instruction", "response", "capability"}


@pytest.mark.parametrize(
    "row, message",
    [
        ({"instruction": "q", "response": "r", "human_score": "five"}, "row 1: field 'human_score' must be a number, got 'five'"),
        ({"instruction": "q", "human_score": 3}, "row 1: missing field 'response'"),
        ({"instruction": 7, "response": "r", "human_score": 3}, "row 1: field 'instruction' must be a non-empty string, got 7"),
    ],
)
def test_bad_judgement_rows(row, message):
    with pytest.raises(RowError) as error:
        load_judgements([row])
    assert message in str(error.value)


def test_bad_biggen_rubric(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"id": "x", "capability": "c", "input": "q", "score_rubric": "{\'criteria\': \'c\'}"}\n')
    with pytest.raises(RowError, match="row 1: field 'score_rubric': rubric lacks non-empty text"):
        load_biggen(path)
