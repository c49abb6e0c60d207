"""Reappraisal loading, per-dimension seeds and leave-one-out on the paper's data."""

import json

import dspy
import pytest

from helpers import spri_script
from spri_dspy import SPRI, load_seeds, select_seeds
from spri_dspy.core.data import RowError
from spri_dspy.experiments.tasks import load_reappraisal


def test_loads_the_resort_eval_set(shared_paper):
    examples = load_reappraisal(shared_paper / "reappraisal" / "resort_eval_30.json")
    assert len(examples) == 30
    first = examples[0]
    assert first.id == "Anger_20" and first.dimension == "self-responsibility" and first.dimension_id == "1"
    assert first.goal == "To guide the narrator over their perception of their responsibility for causing the situation."
    assert first.constitution.startswith("If the narrator is stressing") and "a good response" in first.standards
    assert set(first.inputs().keys()) == {"query", "goal"}


def test_per_dimension_seed_with_leave_one_out(shared_paper):
    examples = load_reappraisal(shared_paper / "reappraisal" / "resort_eval_30.json")
    seeds = load_seeds(shared_paper / "seeds" / "seed-reappraisal_constitutions-6.jsonl")
    per_dimension = [select_seeds(seeds, query=e.query, goal=e.goal, match="goal") for e in examples]
    assert all(len(s) == 1 and seeds[s[0]].appraisal_dimension_id == e.dimension_id
               for s, e in zip(per_dimension, examples))
    left_out = [select_seeds(seeds, query=e.query, goal=e.goal, match="goal", leave_one_out=True) for e in examples]
    # Five test posts are the very seed of their dimension: leave-one-out leaves them without a seed.
    assert sum(not s for s in left_out) == 5
    assert examples[0].query != seeds[0].query and " ".join(examples[0].query.split()) == " ".join(seeds[0].query.split())


def test_spri_reports_the_seeds_it_showed(scripted, shared_paper):
    examples = load_reappraisal(shared_paper / "reappraisal" / "resort_eval_30.json")
    engine, lm = scripted(spri_script((5, 5), (5, 5)))
    program = SPRI(seeds=shared_paper / "seeds" / "seed-reappraisal_constitutions-6.jsonl", seed_match="goal",
                   leave_one_out=True)
    with dspy.context(lm=lm):
        own_seed = program(**examples[0].inputs())
        other = program(**examples[1].inputs())
    assert own_seed.seeds == [] and len(other.seeds) == 1
    assert [c.demos for c in engine.calls if c.step == "principle_generator"] == [0, 1]


def test_any_datasets_format_with_column_mapping(tmp_path):
    rows = [{"post": "I am stressed.", "aim": "Help them cope.", "standards": "s"}]
    path = tmp_path / "data.csv"
    import datasets

    datasets.Dataset.from_list(rows).to_csv(str(path))
    examples = load_reappraisal(path, columns={"query": "post", "goal": "aim"})
    assert examples[0].query == "I am stressed." and examples[0].goal == "Help them cope." and examples[0].standards == "s"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"Reddit Post": "ok", "appraisal_dimension_aim": "a"}, {"Reddit Post": "", "appraisal_dimension_aim": "a"}],
         "row 2: field 'Reddit Post' must be a non-empty string"),
        ([{"Reddit Post": "ok"}], "row 1: missing field 'appraisal_dimension_aim'"),
        ([{"Reddit Post": "ok", "appraisal_dimension_aim": "a", "standards": 5}], "row 1: field 'standards' must be a non-empty string, got 5"),
    ],
)
def test_bad_rows_name_row_and_field(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RowError) as error:
        load_reappraisal(path)
    assert message in str(error.value)
