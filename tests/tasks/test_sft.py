"""Synthetic SFT data: generation with a scripted SPRI, chat export, JSONL and Parquet."""

import json

import datasets
import dspy

from conftest import spri_script
from spri_dspy import SPRI, Vanilla
from spri_dspy.tasks import generate_sft, load_instructions, save_sft


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
