"""Baselines driven by a scripted LM: exact calls, outputs and traces."""

from __future__ import annotations

import dspy
import pytest

from helpers import critic_answers, numbered
from spri_dspy import (
    FLASK_RUBRIC,
    MT_BENCH_RUBRIC,
    OraclePrinciples,
    RubricJudge,
    SeedPrinciples,
    SelfRefine,
    SelfRefineJudge,
    Vanilla,
    VanillaJudge,
)

def direct_script():
    return {
        "direct_responder": numbered("direct", "response"),
        "direct_refiner": lambda call: {"response": call.inputs["draft_response"] + "+"},
        "direct_judge": lambda call: {"feedback": "direct judgement", "score": 2},
        "direct_judgement_refiner": lambda call: {"refined_feedback": "refined judgement", "refined_score": 4},
        "responder": numbered("response", "response"),
        "response_refiner": lambda call: {"response": call.inputs["draft_response"] + "+"},
        "judge": lambda call: {"feedback": f"graded with {call.inputs['rubric'][:12]}", "score": 3},
    }


def run(scripted, program, critic_scores=(), **inputs):
    script = direct_script()
    for step in ("direct_critic", "response_critic", "direct_judgement_critic"):
        script[step] = critic_answers(critic_scores, step)
    engine, lm = scripted(script)
    with dspy.context(lm=lm):
        return program(**inputs), engine


def test_vanilla_is_one_call(scripted):
    prediction, engine = run(scripted, Vanilla(), query="hi", goal="be warm")
    assert engine.steps() == ["direct_responder"]
    assert engine.calls[0].inputs == {"query": "hi", "goal": "be warm"}
    assert (prediction.principles, prediction.response, prediction.trace) == (None, "direct v0", [])


def test_self_refine_loops_without_principles(scripted):
    prediction, engine = run(scripted, SelfRefine(max_rounds=3), (2, 3, 1), query="hi")
    assert engine.steps() == ["direct_responder", "direct_critic", "direct_refiner", "direct_critic",
                              "direct_refiner", "direct_critic"]
    assert prediction.response == "direct v0++"
    assert [r["score"] for r in prediction.trace] == [2, 3, 1]
    assert all("principles" not in c.inputs for c in engine.calls)


def test_oracle_principles_runs_only_the_response_stage(scripted):
    prediction, engine = run(scripted, OraclePrinciples(), (2, 4), query="hi", principles="Be brief.")
    assert engine.steps() == ["responder", "response_critic", "response_refiner", "response_critic"]
    assert {c.inputs["principles"] for c in engine.calls} == {"Be brief."}
    assert (prediction.principles, prediction.response) == ("Be brief.", "response v0+")


def test_seed_principles_uses_the_matching_seed_directly(scripted):
    seeds = [{"query": "other post", "goal": "aim A", "principles": "A-principles"},
             {"query": "other post 2", "goal": "aim B", "principles": "B-principles"},
             {"query": "the post", "goal": "aim B", "principles": "own answer"}]
    program = SeedPrinciples(seeds, seed_match="goal", leave_one_out=True)
    prediction, engine = run(scripted, program, (5,), query="the  post", goal="aim B")
    assert engine.steps() == ["responder", "response_critic"]
    assert prediction.principles == "B-principles" and prediction.seeds == [1]


def test_seed_principles_with_no_matching_seed_is_a_clear_error(scripted):
    program = SeedPrinciples([{"query": "q", "goal": "aim A", "principles": "p"}], seed_match="goal")
    with pytest.raises(ValueError, match="no seed matches this input"):
        run(scripted, program, query="x", goal="aim B")


def test_vanilla_judge_is_one_call(scripted):
    prediction, engine = run(scripted, VanillaJudge(), instruction="Add 2+2.", response="4")
    assert engine.steps() == ["direct_judge"]
    assert (prediction.rubric, prediction.feedback, prediction.score) == (None, "direct judgement", 2)


def test_self_refine_judge_critiques_the_judgement(scripted):
    prediction, engine = run(scripted, SelfRefineJudge(), (1, 5), instruction="Add 2+2.", response="4")
    assert engine.steps() == ["direct_judge", "direct_judgement_critic", "direct_judgement_refiner",
                              "direct_judgement_critic"]
    assert engine.calls[1].inputs["judgement"] == "direct judgement\nScore: 2"
    assert (prediction.feedback, prediction.score) == ("refined judgement", 4)


@pytest.mark.parametrize("rubric", [MT_BENCH_RUBRIC, FLASK_RUBRIC])
def test_fixed_rubric_judges(scripted, rubric):
    prediction, engine = run(scripted, RubricJudge(rubric=rubric), instruction="Add 2+2.", response="4")
    assert engine.steps() == ["judge"]
    assert engine.calls[0].inputs["rubric"] == rubric
    assert prediction.score == 3 and prediction.rubric == rubric


def test_oracle_rubric_comes_with_the_call(scripted):
    prediction, engine = run(scripted, RubricJudge(rubric=MT_BENCH_RUBRIC), instruction="Add 2+2.", response="4",
                             rubric="Criteria: gold")
    assert engine.calls[0].inputs["rubric"] == "Criteria: gold"


def test_rubric_judge_without_any_rubric_is_a_clear_error(scripted):
    with pytest.raises(ValueError, match="rubric is required"):
        run(scripted, RubricJudge(), instruction="Add 2+2.", response="4")


def test_rubric_texts_have_criteria_and_five_scores():
    for rubric in (MT_BENCH_RUBRIC, FLASK_RUBRIC):
        lines = rubric.splitlines()
        assert lines[0].startswith("Criteria: ")
        assert [line.split(":")[0] for line in lines[1:]] == [f"Score {n}" for n in range(1, 6)]
