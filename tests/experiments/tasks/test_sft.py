"""Synthetic SFT data: generation with a scripted SPRI, chat export, JSONL and Parquet."""

import json

import datasets
import dspy

from helpers import spri_script
from spri_dspy import SPRI, Vanilla
from spri_dspy.experiments.tasks import generate_sft, load_instructions, save_sft


def test_generate_and_export(scripted, tmp_path):
    engine, lm = scripted(spri_script((5,) * 3, (5,) * 3))
    instructions = ["Name a prime.", "Define entropy.", "Say hello in French."]
    with dspy.context(lm=lm):
        data = generate_sft(SPRI(), instructions)
    assert data.num_rows == 3 and engine.steps().count("principle_generator") == 3
    row = data[1]
    assert row["instruction"] == "Define entropy."
    assert row["messages"] == [{"role": "user", "content": "Define entropy."},
                               {"role": "assistant", "content": row["response"]}]
    assert row["principles"].startswith("principles v") and len(json.loads(row["trace"])) == 2
    jsonl = save_sft(data, tmp_path / "sft.jsonl")
    assert [json.loads(line)["instruction"] for line in jsonl.read_text().splitlines()] == instructions
    parquet = save_sft(data, tmp_path / "sft.parquet")
    assert datasets.Dataset.from_parquet(str(parquet))["messages"] == data["messages"]
    folder = save_sft(data, tmp_path / "sft")
    assert datasets.load_from_disk(str(folder)).num_rows == 3


def test_baselines_export_too(scripted):
    engine, lm = scripted({"direct_responder": lambda call: {"response": "answer"}})
    with dspy.context(lm=lm):
        data = generate_sft(Vanilla(), ["Q1"])
    assert data[0]["principles"] is None and data[0]["response"] == "answer"


def test_load_instructions(shared_paper):
    benchmarks = shared_paper.parent / "benchmarks"
    assert len(load_instructions(benchmarks / "dolly" / "sample.jsonl")) == 7
    mt_bench = load_instructions(benchmarks / "mt-bench" / "question.jsonl", field="turns")
    assert len(mt_bench) == 80 and all(isinstance(t, str) and t for t in mt_bench)


def test_bad_instructions_fail_before_any_call(scripted):
    import pytest

    engine, lm = scripted(spri_script())
    with dspy.context(lm=lm), pytest.raises(Exception) as error:
        generate_sft(SPRI(), ["ok", "", None])
    assert str(error.value) == "row 2: field 'instruction' must be a non-empty string, got ''"
    assert engine.calls == []


def test_failed_inputs_are_left_out_and_counted(scripted, caplog):
    script = {"direct_responder": lambda call: "garbage" if "fails" in call.inputs["query"] else {"response": "fine"}}
    engine, lm = scripted(script)
    with dspy.context(lm=lm):
        data = generate_sft(Vanilla(), ["This one works.", "This one fails.", "Works too."])
    assert data["instruction"] == ["This one works.", "Works too."] and data["response"] == ["fine", "fine"]
    assert "1 of 3 inputs failed and are left out" in caplog.text


def test_other_columns_of_a_row_are_carried_into_its_record(scripted):
    """Users join SFT records back to their data by these columns."""
    _, lm = scripted({})
    rows = [{"id": "a1", "instruction": "Q1", "source": "forum", "turn": 1},
            {"id": "a2", "instruction": "Q2", "source": "mail", "turn": 2}]
    with dspy.context(lm=lm):
        data = generate_sft(Vanilla(), rows)
    assert data["id"] == ["a1", "a2"] and data["source"] == ["forum", "mail"] and data["turn"] == [1, 2]
    assert data["instruction"] == ["Q1", "Q2"] and data[0]["messages"][0] == {"role": "user", "content": "Q1"}
