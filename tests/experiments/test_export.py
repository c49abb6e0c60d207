"""spri export: SFT and DPO datasets from a batch run, loaded back with datasets.load_dataset."""

from __future__ import annotations

import json

import datasets
import dspy
import pytest

from helpers import critic_answers, numbered
from spri_dspy import SPRI, cli
from spri_dspy.runtime.batch import run_batch
from spri_dspy.experiments.export import ExportError, export, preference_pair


def _script(response_scores):
    """Principles accepted at once; the response critic answers ``response_scores`` in turn."""
    return {
        "principle_generator": numbered("principles", "principles"),
        "principle_critic": lambda call: {"feedback": "fine", "score": 5},
        "responder": lambda call: {"response": f"answer to {call.inputs['query']}"},
        "response_refiner": lambda call: {"response": f"{call.inputs['draft_response']} (better)"},
        "response_critic": critic_answers(response_scores, "response"),
    }


@pytest.fixture
def run(scripted, tmp_path):
    """A batch run over three queries: q1 refined once (2 then 5), q2 accepted at once, q3 failing."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "query": q, "topic": t}) + "\n"
                            for i, q, t in (("a", "q1", "pets"), ("b", "q2", "money"), ("c", "q3", "work"))))
    script = _script([2, 5, 4, "not json at all"])
    _, lm = scripted(script, model="scripted/gen")
    with dspy.context(lm=lm):
        summary = run_batch(SPRI(max_rounds=2), path, tmp_path / "out", fields={"query": "query"}, threads=1,
                            progress=False)
    assert (summary.done, summary.failed) == (2, 1)
    return tmp_path / "out"


def test_sft_export_loads_back_with_load_dataset_and_counts_failures(run):
    result = export(run, "sft")
    assert (result.rows, result.left_out) == (2, {"failed": 1})
    table = datasets.load_dataset(str(result.path), split="train")
    rows = sorted(table, key=lambda r: r["id"])
    assert [r["id"] for r in rows] == ["a", "b"] and [r["topic"] for r in rows] == ["pets", "money"]
    assert rows[0]["messages"] == [{"role": "user", "content": "q1"},
                                   {"role": "assistant", "content": "answer to q1 (better)"}]
    assert rows[1]["messages"][1]["content"] == "answer to q2"
    assert rows[0]["principles"].startswith("principles v")


def test_system_prompt_and_principles_as_system(run):
    result = export(run, "sft", run / "with-system", system_prompt="Be kind.", principles_as_system=True)
    row = next(r for r in datasets.load_dataset(str(result.path), split="train") if r["id"] == "a")
    assert row["messages"][0] == {"role": "system", "content": f"Be kind.\n\n{row['principles']}"}
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]


def test_dpo_pairs_the_final_response_with_the_rejected_draft(run):
    result = export(run, "dpo")
    assert (result.rows, result.left_out) == (1, {"no draft scored below the final response": 1, "failed": 1})
    (row,) = datasets.load_dataset(str(result.path), split="train")
    assert row["prompt"] == [{"role": "user", "content": "q1"}]
    assert row["chosen"] == [{"role": "assistant", "content": "answer to q1 (better)"}]
    assert row["rejected"] == [{"role": "assistant", "content": "answer to q1"}]
    assert (row["score_chosen"], row["score_rejected"]) == (5, 2)


def test_preference_pair_takes_the_lowest_scored_draft_below_the_final():
    trace = [{"stage": "principles", "round": 1, "text": "p", "score": 1},
             {"stage": "response", "round": 1, "text": "r1", "score": 3},
             {"stage": "response", "round": 2, "text": "r2", "score": 2},
             {"stage": "response", "round": 3, "text": "r3", "score": 5}]
    assert preference_pair(trace, "r3") == ("r2", 2, 5)
    # keep="best" may keep an earlier draft: nothing scored below it but r2
    assert preference_pair(trace, "r1") == ("r2", 2, 3)
    assert preference_pair(trace[:2], "r1") is None


def test_the_dataset_card_names_program_models_settings_and_counts(run):
    card = (export(run, "sft").path / "README.md").read_text()
    assert card.startswith("---\nlicense: unknown")
    assert "**SPRI**" in card and "- lm: `scripted/gen`" in card and '- max_rounds: `2`' in card
    assert "- rows: 2" in card and "- failed: 1" in card


def test_a_judge_run_or_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(ExportError, match="holds no results.jsonl"):
        export(tmp_path, "sft")
    (tmp_path / "results.jsonl").write_text(json.dumps(
        {"id": "x", "input": {"instruction": "i", "response": "r"}, "output": {"score": 3}}) + "\n")
    with pytest.raises(ExportError, match="line 1: not a response record"):
        export(tmp_path, "sft")


def test_cli_export_and_push_to_hub_through_datasets(run, monkeypatch, capsys):
    pushed = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub",
                        lambda self, repo, **kw: pushed.append(("data", repo, kw, self["train"].num_rows)))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.DatasetCard, "push_to_hub",
                        lambda self, repo, **kw: pushed.append(("card", repo, kw, self.data.license)))
    assert cli.main(["export", str(run), "--format", "sft", "--push-to-hub", "me/spri-sft"]) == 0
    assert pushed == [("data", "me/spri-sft", {"private": True, "token": None}, 2),
                      ("card", "me/spri-sft", {"token": None}, "unknown")]
    out = capsys.readouterr().out
    assert out.startswith(f"{run / 'sft'}: 2 sft rows; left out: 1 failed\n")


def test_cli_export_errors_are_one_line(run, capsys, tmp_path):
    assert cli.main(["export", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"spri: error: {tmp_path / 'nothing'} holds no results.jsonl: export reads the " \
                                      "folder a 'spri generate' run wrote\n"
    assert cli.main(["export", str(run), "--public"]) == 2
    assert "--public only applies with --push-to-hub" in capsys.readouterr().err


def test_a_re_export_or_another_folder_of_the_same_name_never_loads_stale_rows(run, tmp_path):
    """datasets caches a folder whose card declares configs by the folder's name: a second export to
    another folder named 'sft' once loaded the first one's rows."""
    first = export(run, "sft", tmp_path / "one" / "sft")
    assert datasets.load_dataset(str(first.path), split="train").num_rows == 2
    other = tmp_path / "two"
    other.mkdir()
    (other / "results.jsonl").write_text(json.dumps({"id": "z", "input": {"query": "only"}, "output": {
        "response": "one row", "principles": "p", "trace": []}}) + "\n")
    second = export(other, "sft", tmp_path / "two" / "sft")
    (row,) = datasets.load_dataset(str(second.path), split="train")
    assert row["messages"][0]["content"] == "only"
    # the same folder again, after more results arrived
    with (other / "results.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "y", "input": {"query": "more"}, "output": {"response": "r", "trace": []}}) + "\n")
    assert datasets.load_dataset(str(export(other, "sft", second.path).path), split="train").num_rows == 2


def test_no_pair_when_the_only_other_draft_scored_higher():
    """keep='latest' can end on a worse text: a draft the critic scored above it is no 'rejected' answer."""
    from spri_dspy.experiments.export import preference_pair

    trace = [{"stage": "response", "round": 1, "text": "first", "score": 4},
             {"stage": "response", "round": 2, "text": "last", "score": 2}]
    assert preference_pair(trace, "last") is None
    trace.insert(0, {"stage": "response", "round": 0, "text": "worst", "score": 1})
    assert preference_pair(trace, "last") == ("worst", 1, 2)
