"""Seed loading: our format, the paper's three released formats, and clear errors."""

from __future__ import annotations

import json

import dspy
import pytest

from spri_dspy.core.seeds import SeedError, load_seeds


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_paper_principle_seeds(shared_paper):
    seeds = load_seeds(shared_paper / "seeds" / "seed-principles-6.jsonl")
    assert len(seeds) == 6
    first = seeds[0]
    assert first.query == "Should sex education be mandatory in American public schools?"
    assert first.principles.startswith("Sex education covers a range of topics")
    assert set(first.inputs().keys()) == {"query"}
    assert first.question_type == "Questions that require understanding cultural context"


def test_paper_reappraisal_seeds_carry_goal_and_dimension(shared_paper):
    seeds = load_seeds(shared_paper / "seeds" / "seed-reappraisal_constitutions-6.jsonl")
    assert len(seeds) == 6
    first = seeds[0]
    assert first.query.startswith("Even when people are clearly joking")
    assert first.goal == "To guide the narrator over their perception of their responsibility for causing the situation."
    assert first.principles.startswith("If the narrator is stressing over things")
    assert first.appraisal_dimension == "self-responsibility" and first.appraisal_dimension_id == "1"
    assert set(first.inputs().keys()) == {"query", "goal"}
    assert sorted(s.appraisal_dimension_id for s in seeds) == ["1", "23", "4", "6", "7", "8"]


def test_paper_rubric_seeds_become_rubric_text(shared_paper):
    seeds = load_seeds(shared_paper / "seeds" / "seed-rubrics-24.jsonl")
    assert len(seeds) == 24
    first = seeds[0]
    assert first.query.startswith("I've read that multitasking can actually reduce productivity")
    lines = first.principles.splitlines()
    assert lines[0].startswith("Criteria: Does the response accurately address the impact of multitasking")
    assert [line.split(":")[0] for line in lines[1:]] == [f"Score {n}" for n in range(1, 6)]
    assert first.capability == "instruction_following"
    assert len({s.capability for s in seeds}) == 8


def test_rubric_given_as_python_dict_string(tmp_path):
    rubric = {"criteria": "Is it right?", **{f"score{n}_description": f"level {n}" for n in range(1, 6)}}
    path = write_jsonl(tmp_path / "s.jsonl", [{"input": "2+2?", "rubric": repr(rubric)}])
    assert load_seeds(path)[0].principles == "Criteria: Is it right?\n" + "\n".join(
        f"Score {n}: level {n}" for n in range(1, 6))


def test_our_format_from_examples_dicts_and_file(tmp_path):
    rows = [{"query": "q1", "principles": "p1"}, {"query": "q2", "goal": "g2", "principles": "p2", "tag": "x"}]
    from_file = load_seeds(write_jsonl(tmp_path / "s.jsonl", rows))
    from_dicts = load_seeds(rows)
    from_examples = load_seeds([dspy.Example(**r) for r in rows])
    for seeds in (from_file, from_dicts, from_examples):
        assert [s.toDict() for s in seeds] == rows
        assert set(seeds[1].inputs().keys()) == {"query", "goal"}
        assert set(seeds[0].labels().keys()) == {"principles"}


@pytest.mark.parametrize(
    "rows, message",
    [
        (['{"query": "q", "principles": "p"}', "{not json"], "line 2: not valid JSON"),
        ([{"prompt": "q", "answer": "a"}], "line 1: unknown seed format with fields ['answer', 'prompt']"),
        ([{"query": "q"}], "line 1: unknown seed format"),
        ([{"question": "q", "principle": 3}], "line 1: field 'principle' must be a non-empty string"),
        ([{"query": "  ", "principles": "p"}], "line 1: field 'query' must be a non-empty string"),
        ([{"input": "q", "rubric": {"criteria": "c"}}], "line 1: field 'rubric': rubric lacks non-empty text for"),
        ([{"input": "q", "rubric": "not a dict"}], "line 1: field 'rubric': rubric is neither"),
        (["[1, 2]"], "line 1: a seed must be a JSON object, got list"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SeedError) as error:
        load_seeds(path)
    assert f"seeds file {path}" in str(error.value)
    assert message in str(error.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SeedError, match="seeds file not found: .*nope.jsonl"):
        load_seeds(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(SeedError, match="holds no seeds"):
        load_seeds(tmp_path / "empty.jsonl")


def test_bad_python_sources_name_the_index():
    with pytest.raises(SeedError, match=r"seeds\[1\]: unknown seed format"):
        load_seeds([{"query": "q", "principles": "p"}, {"x": 1}])
    with pytest.raises(SeedError, match="not a single example"):
        load_seeds({"query": "q", "principles": "p"})
    with pytest.raises(SeedError, match="got int"):
        load_seeds(5)
