"""SPRIJudge driven by a scripted LM: the rubric stage, the judgement stage and their trace."""

from __future__ import annotations

import dspy
import pytest

from spri_dspy.runtime.stages import stage_functions
from helpers import judge_script
from spri_dspy import SPRIJudge

INSTRUCTION = "Explain why the sky is blue to a ten-year-old."


def judge(scripted, *script_args, reference_answer=None, **options):
    engine, lm = scripted(judge_script(*script_args))
    with dspy.context(lm=lm):
        prediction = SPRIJudge(**options)(instruction=INSTRUCTION, response="Because of the ocean.",
                                          reference_answer=reference_answer)
    return prediction, engine


def test_both_stages_follow_algorithm_1(scripted):
    prediction, engine = judge(scripted, (2, 5), (1, 4), (3, 2))
    assert engine.steps() == ["rubric_generator", "rubric_critic", "rubric_refiner", "rubric_critic",
                              "judge", "judgement_critic", "judgement_refiner", "judgement_critic"]
    assert prediction.rubric == "rubric v0+"
    assert (prediction.feedback, prediction.score) == ("judged v0+", 2)
    assert [(r["stage"], r["round"], r["score"], r["accepted"]) for r in prediction.trace] == [
        ("rubric", 1, 2, False), ("rubric", 2, 5, True), ("judgement", 1, 1, False), ("judgement", 2, 4, True)]
    assert prediction.trace[2]["text"] == "judged v0\nScore: 3"
    assert prediction.trace[3]["text"] == "judged v0+\nScore: 2"


def test_stages_run_one_after_another_are_forward(scripted):
    prediction, engine = judge(scripted, (2, 5), (1, 4), (3, 2))
    staged_engine, lm = scripted(judge_script((2, 5), (1, 4), (3, 2)))
    program = SPRIJudge()
    assert program.stages == ("write_rubric", "write_judgement")
    first, second = stage_functions(program)
    with dspy.context(lm=lm):
        middle = first({"instruction": INSTRUCTION, "response": "Because of the ocean."})
        assert staged_engine.steps() == ["rubric_generator", "rubric_critic", "rubric_refiner", "rubric_critic"]
        staged = second(middle)
    assert staged_engine.steps() == engine.steps()
    assert staged.toDict() == prediction.toDict()


def test_judgement_steps_see_rubric_response_and_judgement(scripted):
    _, engine = judge(scripted, (5,), (1, 5), (3, 4), reference_answer="Rayleigh scattering.")
    critic, refiner = [c for c in engine.calls if c.step in ("judgement_critic", "judgement_refiner")][:2]
    assert critic.inputs == {"instruction": INSTRUCTION, "reference_answer": "Rayleigh scattering.",
                             "rubric": "rubric v0", "response": "Because of the ocean.",
                             "judgement": "judged v0\nScore: 3"}
    assert refiner.inputs["feedback"] == "judgement feedback 1"
    assert engine.calls[0].inputs == {"instruction": INSTRUCTION, "reference_answer": "Rayleigh scattering."}


def test_no_reference_answer_leaves_the_field_out(scripted):
    _, engine = judge(scripted)
    assert all("reference_answer" not in c.inputs for c in engine.calls)


def test_keep_best_judgement(scripted):
    prediction, _ = judge(scripted, (5,), (3, 1), (2, 5), max_rounds=2, keep="best")
    assert (prediction.feedback, prediction.score) == ("judged v0", 2)


def test_critics_on_critic_lm(scripted):
    engine, base = scripted(judge_script((2, 5), (2, 5), (3, 3)), model="scripted/base")
    critic_engine, critic = scripted(judge_script((2, 5), (2, 5)), model="scripted/critic")
    with dspy.context(lm=base):
        SPRIJudge(critic_lm=critic)(instruction="Say hi.", response="hi")
    assert critic_engine.steps() == ["rubric_critic"] * 2 + ["judgement_critic"] * 2
    assert engine.steps() == ["rubric_generator", "rubric_refiner", "judge", "judgement_refiner"]


def test_seed_rubrics_are_demos_with_leave_one_out(scripted, shared_paper):
    seeds = shared_paper / "seeds" / "seed-rubrics-24.jsonl"
    from spri_dspy import load_seeds

    first = load_seeds(seeds)[0]
    engine, lm = scripted(judge_script((5, 5), (5, 5), (3, 3)))
    with dspy.context(lm=lm):
        kept = SPRIJudge(seeds=seeds, leave_one_out=True)(instruction=first.query, response="r")
        every = SPRIJudge(seeds=seeds)(instruction=first.query, response="r")
    assert kept.seeds == list(range(1, 24)) and every.seeds == list(range(24))
    assert [c.demos for c in engine.calls if c.step == "rubric_generator"] == [23, 24]


@pytest.mark.parametrize("field", ["instruction", "response"])
def test_empty_inputs_name_the_field(scripted, field):
    engine, lm = scripted(judge_script())
    kwargs = {"instruction": "x", "response": "y", field: " "}
    with dspy.context(lm=lm), pytest.raises(ValueError, match=f"{field} must not be empty"):
        SPRIJudge()(**kwargs)
    assert engine.calls == []
