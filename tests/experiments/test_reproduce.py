"""Recomputing the paper's tables from the released runs, and malformed rows."""

import json

import pytest

from spri_dspy import cli
from spri_dspy.experiments.reproduce import reproduce

EXPECTED = {
    ("reappraisal", "spri_seed_constitution_per_dimension"): {"alignment": 8.00, "empathy": 4.73},
    ("reappraisal", "spri_no_seeds"): {"alignment": 7.67, "empathy": 4.73},
    ("judge", "vanilla"): {"pearson": 0.376},
    ("judge", "self_refine"): {"pearson": 0.397},
    ("judge", "flask_rubric"): {"pearson": 0.358},
    ("judge", "oracle_rubric"): {"pearson": 0.550},
}


def test_reproduces_the_papers_figures(shared_paper):
    rows = {(r.task, r.variant): r for r in reproduce(shared_paper)}
    for key, figures in EXPECTED.items():
        for name, value in figures.items():
            assert rows[key].figures[name] == pytest.approx(value, abs=0.005), (key, name)
    vanilla = rows[("judge", "vanilla")]
    assert vanilla.n == 2780 and len(vanilla.per_capability) == 8
    assert vanilla.counts == {"rows": 2780, "dropped_missing_model_score": 0, "kept_human_score_outside_1_5": 4,
                              "malformed": 0}
    assert rows[("reappraisal", "spri_no_seeds")].counts == {
        "alignment_malformed": 0, "alignment_scored": 30, "empathy_malformed": 0, "empathy_scored": 30}


def test_cli_prints_one_row_per_model_and_variant(shared_paper, capsys):
    assert cli.main(["reproduce", str(shared_paper)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:8]]
    assert [r[:3] for r in rows] == [
        ["reappraisal", "gpt-4o-mini", "spri_no_seeds"],
        ["reappraisal", "gpt-4o-mini", "spri_seed_constitution_per_dimension"],
        ["judge", "gpt-4o-mini", "flask_rubric"], ["judge", "gpt-4o-mini", "oracle_rubric"],
        ["judge", "gpt-4o-mini", "seed_principles_as_rubrics"], ["judge", "gpt-4o-mini", "self_refine"],
        ["judge", "gpt-4o-mini", "vanilla"]]
    assert rows[0][4:6] == ["7.67", "4.73"] and rows[1][4:6] == ["8.00", "4.73"]
    assert rows[6][6] == "0.376" and rows[3][6] == "0.550"


def test_cli_json(shared_paper, capsys):
    assert cli.main(["reproduce", str(shared_paper), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {(d["task"], d["variant"]) for d in data} >= set(EXPECTED)


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_malformed_rows_are_counted_and_reported(tmp_path):
    run = tmp_path / "reappraisal" / "m1" / "v1"
    key = "evaluation_raw_output-[dim_1]-[1_standard_alignment]"
    write(run / "eval-1_standard_alignment.jsonl",
          [{key: "<score>6</score><rationale>x</rationale>"}, {key: "no score here"}, "{broken", {key: "<score>[10]</score>"},
           {key: "<score>11</score>"}, {"other": 1}])
    write(run / "eval-2_empathy.jsonl", [{"evaluation_raw_output-[dim_1]-[2_empathy]": "4"},
                                         {"evaluation_raw_output-[dim_1]-[2_empathy]": "4 because"}])
    write(tmp_path / "biggen-judgements" / "m2" / "v2.jsonl",
          [{"capability": "a", "human_score": 1, "evaluator_LM-score": 1},
           {"capability": "a", "human_score": 2, "evaluator_LM-score": 3},
           {"capability": "a", "human_score": 3, "evaluator_LM-score": None},
           {"capability": "a", "human_score": "x", "evaluator_LM-score": 2},
           {"human_score": 2, "evaluator_LM-score": 2}])
    reappraisal, judge = reproduce(tmp_path)
    assert reappraisal.figures == {"alignment": 8.0, "empathy": 4.0}
    assert reappraisal.counts["alignment_malformed"] == 4 and reappraisal.counts["empathy_malformed"] == 1
    assert any("eval-1_standard_alignment.jsonl:3: not valid JSON" in p for p in reappraisal.problems)
    assert any("eval-1_standard_alignment.jsonl:5: no alignment score in 1..10" in p for p in reappraisal.problems)
    assert judge.counts == {"rows": 3, "dropped_missing_model_score": 1, "kept_human_score_outside_1_5": 0,
                            "malformed": 2}
    assert judge.figures["pearson"] == pytest.approx(1.0)
    assert any("v2.jsonl:4: field 'human_score' must be a number" in p for p in judge.problems)


def test_empty_or_missing_dir(tmp_path, capsys):
    assert cli.main(["reproduce", str(tmp_path)]) == 2
    assert "no reappraisal/<model>/<variant>/" in capsys.readouterr().err


# Every judge figure as the hand-written statistics computed them before scipy and krippendorff took over.
HAND_WRITTEN = {
    "flask_rubric": (0.3575384177, 0.3344748847, 1.1260003153, 0.2466095256),
    "oracle_rubric": (0.550458834, 0.5027090434, 0.8581693454, 0.5233744074),
    "seed_principles_as_rubrics": (0.176194151, 0.1700998431, 1.7114874905, -0.0790365957),
    "self_refine": (0.3968668456, 0.3666901742, 1.0483244801, 0.3650920454),
    "vanilla": (0.37647952, 0.3465595687, 1.0670991958, 0.3182110524),
}


def test_library_statistics_give_the_same_figures_as_before(shared_paper):
    rows = {r.variant: r for r in reproduce(shared_paper) if r.task == "judge"}
    for variant, expected in HAND_WRITTEN.items():
        figures = rows[variant].figures
        got = tuple(figures[name] for name in ("pearson", "spearman", "mae", "krippendorff_alpha"))
        assert got == pytest.approx(expected, abs=1e-9), variant


def test_pairwise_runs_give_accuracy_and_kappa_per_capability(tmp_path, capsys):
    """A flat recorded run and a ``spri judge --pairwise`` results.jsonl, side by side."""
    folder = tmp_path / "pairwise" / "m"
    folder.mkdir(parents=True)
    flat = [("facts", "A", "A"), ("facts", "B", "A"), ("advice", "tie", "tie"), ("advice", None, "B")]
    (folder / "flat.jsonl").write_text("".join(json.dumps({"capability": c, "verdict": v, "label": h}) + "\n"
                                               for c, v, h in flat) + '{"capability": "x", "verdict": "C", "label": "A"}\n')
    (folder / "results.jsonl").write_text("".join(json.dumps(
        {"id": str(i), "input": {"capability": "facts"}, "output": {"verdict": v}, "columns": {"label": h}}) + "\n"
        for i, (v, h) in enumerate([("A", "A"), ("B", "B"), ("A", "B")])))
    assert cli.main(["reproduce", str(tmp_path), "--json"]) == 0
    rows = {r["variant"]: r for r in json.loads(capsys.readouterr().out)}
    # flat: facts 1/2 right, advice 1/2 (the failed verdict counts as wrong): mean accuracy 0.5
    assert rows["flat"]["figures"]["accuracy"] == 0.5 and rows["flat"]["n"] == 4
    assert rows["flat"]["counts"] == {"rows": 4, "kept_failed_as_wrong": 1, "malformed": 1}
    assert "field 'verdict' must be one of A, B, tie or null, got 'C'" in rows["flat"]["problems"][0]
    assert rows["results"]["per_capability"]["facts"]["accuracy"] == 2 / 3
    assert cli.main(["reproduce", str(tmp_path)]) == 0
    assert "pairwise    m               flat" in capsys.readouterr().out
