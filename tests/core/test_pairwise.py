"""SPRIPairwiseJudge driven by a scripted LM: the rubric stage, the verdict stage in both orders, the trace."""

from __future__ import annotations

import dspy
import pytest

from spri_dspy.runtime.stages import stage_functions
from helpers import critic_answers, numbered
from spri_dspy import SPRIPairwiseJudge, build_program

INSTRUCTION = "Name three prime numbers."
A, B = "2, 3 and 9.", "2, 3 and 5."


def pairwise_script(rubric_scores=(5,), comparison_scores=(5, 5), verdicts=("B", "A")):
    """Versioned rubrics; the comparer answers ``verdicts`` in turn (one per order); given critic scores.
    The refiner keeps the verdict it is shown unless the critic's feedback says 'flip'."""
    verdicts = iter(verdicts)

    def refine(call):
        verdict = call.inputs["judgement"].rsplit("Verdict: ", 1)[1]
        return {"refined_feedback": "revised", "refined_verdict": {"A": "B", "B": "A"}.get(verdict, verdict)}

    return {
        "rubric_generator": numbered("rubric", "rubric"),
        "rubric_refiner": lambda call: {"rubric": f"{call.inputs['draft_rubric']}+"},
        "rubric_critic": critic_answers(rubric_scores, "rubric"),
        "comparer": lambda call: {"feedback": f"A is {call.inputs['response_a']}", "verdict": next(verdicts)},
        "comparison_critic": critic_answers(comparison_scores, "comparison"),
        "comparison_refiner": refine,
    }


def run(scripted, script, **options):
    engine, lm = scripted(script)
    with dspy.context(lm=lm):
        prediction = SPRIPairwiseJudge(**options)(instruction=INSTRUCTION, response_a=A, response_b=B)
    return prediction, engine


def test_both_orders_agree_so_the_verdict_stands(scripted):
    prediction, engine = run(scripted, pairwise_script(verdicts=("B", "A")))
    assert engine.steps() == ["rubric_generator", "rubric_critic", "comparer", "comparison_critic",
                              "comparer", "comparison_critic"]
    first, second = [c for c in engine.calls if c.step == "comparer"]
    assert (first.inputs["response_a"], first.inputs["response_b"]) == (A, B)
    assert (second.inputs["response_a"], second.inputs["response_b"]) == (B, A)
    assert (prediction.verdict, prediction.consistent, prediction.verdicts) == ("B", True, {"ab": "B", "ba": "B"})
    assert prediction.feedback == f"A is {A}" and prediction.rubric == "rubric v0"
    assert [(r["stage"], r["round"], r["score"]) for r in prediction.trace] == [
        ("rubric", 1, 5), ("verdict", 1, 5), ("verdict_swapped", 1, 5)]
    assert prediction.trace[1]["text"] == f"A is {A}\nVerdict: B"


def test_a_verdict_that_follows_the_position_is_a_tie(scripted):
    prediction, _ = run(scripted, pairwise_script(verdicts=("A", "A")))  # always the first shown
    assert (prediction.verdict, prediction.consistent, prediction.verdicts) == ("tie", False, {"ab": "A", "ba": "B"})


def test_a_low_scored_comparison_is_refined(scripted):
    prediction, engine = run(scripted, pairwise_script((2, 5), (2, 4, 5), verdicts=("A", "A")))
    assert engine.steps() == ["rubric_generator", "rubric_critic", "rubric_refiner", "rubric_critic",
                              "comparer", "comparison_critic", "comparison_refiner", "comparison_critic",
                              "comparer", "comparison_critic"]
    refiner = next(c for c in engine.calls if c.step == "comparison_refiner")
    assert refiner.inputs["judgement"] == f"A is {A}\nVerdict: A" and refiner.inputs["rubric"] == "rubric v0+"
    # the refined A-first verdict flipped to B; the swapped order said A (= B in the original labels)
    assert (prediction.verdict, prediction.consistent, prediction.feedback) == ("B", True, "revised")
    assert [(r["stage"], r["round"], r["accepted"]) for r in prediction.trace][2:] == [
        ("verdict", 1, False), ("verdict", 2, True), ("verdict_swapped", 1, True)]


def test_without_swap_one_order_is_judged(scripted):
    prediction, engine = run(scripted, pairwise_script(verdicts=("tie",)), swap=False)
    assert engine.steps().count("comparer") == 1
    assert (prediction.verdict, prediction.verdicts, prediction.consistent) == ("tie", {"ab": "tie"}, True)


def test_stages_are_the_rubric_then_the_verdict(scripted):
    whole, _ = run(scripted, pairwise_script())
    engine, lm = scripted(pairwise_script())
    program = build_program("spri", "pairwise")
    first, second = stage_functions(program)
    with dspy.context(lm=lm):
        middle = first({"instruction": INSTRUCTION, "response_a": A, "response_b": B})
        assert engine.steps() == ["rubric_generator", "rubric_critic"]
        staged = second(middle)
    assert staged.toDict() == whole.toDict()


def test_critics_run_on_the_critic_lm(scripted):
    _, critic_lm = scripted(pairwise_script(), model="scripted/critic")
    program = SPRIPairwiseJudge(critic_lm=critic_lm)
    assert program.comparison_critic.predict.lm is critic_lm and program.rubric_critic.predict.lm is critic_lm
    assert program.comparer.predict.lm is None


@pytest.mark.parametrize("field", ["instruction", "response_a", "response_b"])
def test_empty_inputs_name_the_field(scripted, field):
    engine, lm = scripted(pairwise_script())
    inputs = {"instruction": INSTRUCTION, "response_a": A, "response_b": B, field: " "}
    with dspy.context(lm=lm), pytest.raises(ValueError, match=f"{field} must not be empty"):
        SPRIPairwiseJudge()(**inputs)
    assert not engine.calls


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "examples" / "preferences.jsonl"


def quality_script(wrong=("p04", "p10"), first_always=False):
    """A comparer that knows each labelled pair's answer (read from the example file), except it gets the
    pairs in ``wrong`` backwards; ``first_always`` makes it prefer whichever response it is shown first."""
    import json

    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    better = {}
    for row in rows:
        label = {"A": "B", "B": "A"}.get(row["label"], "tie") if row["id"] in wrong else row["label"]
        better[(row["response_a"], row["response_b"])] = label
        better[(row["response_b"], row["response_a"])] = {"A": "B", "B": "A"}.get(label, "tie")

    def compare(call):
        verdict = "A" if first_always else better[(call.inputs["response_a"], call.inputs["response_b"])]
        return {"feedback": "compared", "verdict": verdict}

    return {**pairwise_script(), "rubric_critic": lambda call: {"feedback": "ok", "score": 5},
            "comparison_critic": lambda call: {"feedback": "ok", "score": 5}, "comparer": compare}


@pytest.mark.parametrize("first_always", [False, True])
def test_cli_judge_pairwise_scores_the_labelled_file(monkeypatch, scripted, capsys, tmp_path, first_always):
    from spri_dspy import cli
    from spri_dspy.cli import build as cli_build

    monkeypatch.setattr(cli_build, "make_lm", lambda model, **o: scripted(quality_script(first_always=first_always))[1])
    status = cli.main(["judge", str(EXAMPLES), str(tmp_path / "out"), "--pairwise", "--capability-field", "capability",
                       "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    records = [__import__("json").loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["columns"]["label"] in ("A", "B", "tie") for r in records)
    report = out[out.index("  against 'label'"):].splitlines()
    if not first_always:
        # facts: p04 wrong (3/4); advice: all right; reasoning: p10 wrong (3/4); kappa 7/11, 1, 7/11
        assert report[0] == ("  against 'label': accuracy 0.833, Cohen's kappa 0.758, accuracy without ties 0.778, "
                             "n 12 (mean over groups)")
        assert report[1].startswith("    advice: accuracy 1.000, Cohen's kappa 1.000")
        assert report[2].startswith("    facts: accuracy 0.750")
    else:
        # a judge that always prefers the first response shown flips with the order: every verdict is a tie
        assert all(r["output"]["verdict"] == "tie" and not r["output"]["consistent"] for r in records)
        assert report[0].startswith("  against 'label': accuracy 0.250, Cohen's kappa 0.000")


def test_ablate_preferences_compares_one_order_with_both(monkeypatch, scripted, capsys, tmp_path):
    """A judge that always prefers the first response: one order is right only where A is the answer
    (4 of 12); both orders turn every verdict into a tie, right on the 3 ties."""
    import csv

    from spri_dspy import cli
    from spri_dspy.cli import build as cli_build

    monkeypatch.setattr(cli_build, "make_lm", lambda model, **o: scripted(quality_script(first_always=True))[1])
    status = cli.main(["ablate", str(EXAMPLES), "--task", "preferences", "--output", str(tmp_path / "ab")])
    assert status == 0, capsys.readouterr().err
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "ab" / "ablation.csv").open())}
    assert float(rows["spri_one_order"]["metric"]) == pytest.approx(4 / 12)
    assert float(rows["spri_both_orders"]["metric"]) == pytest.approx(3 / 12)


@pytest.mark.parametrize("flags, message", [
    (["--label-field", "label"], "--label-field only applies with --pairwise"),
    (["--label-field", "l", "--response-a-field", "a"], "--label-field, --response-a-field only apply with --pairwise"),
    (["--pairwise", "--response-field", "r"], "--pairwise compares --response-a-field with --response-b-field"),
])
def test_pairwise_flags_out_of_place_are_named(capsys, tmp_path, flags, message):
    from spri_dspy import cli

    assert cli.main(["judge", str(EXAMPLES), str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"spri: error: {message}")
