"""What each step is asked, read from the requests that reach the LM (not from the signature source)."""

from __future__ import annotations

import dspy
import pytest

from helpers import judge_script, spri_script
from spri_dspy import SPRI, SPRIJudge
from spri_dspy.experiments import metrics
from spri_dspy.core.baselines import SelfRefine, SelfRefineJudge, Vanilla
from spri_dspy.experiments.tasks import REAPPRAISAL_FRAMING

WRITERS = ("principle_generator", "principle_refiner", "responder", "response_refiner")
CRITICS = ("principle_critic", "response_critic")


def said(call) -> str:
    """The system message of a request (where DSPy's default adapter puts the instruction), whitespace folded."""
    return " ".join(call.instructions.split())


def run_spri(scripted, **settings):
    engine, lm = scripted(spri_script((2, 5), (2, 5)))
    with dspy.context(lm=lm):
        SPRI(**settings)(query="My dog barks at the mailman.", goal="Keep the dog calm.")
    assert {c.step for c in engine.calls} == set(WRITERS + CRITICS)
    return engine


def test_the_papers_word_limit_reaches_every_writer_and_refiner_and_each_critic_checks_it(scripted):
    engine = run_spri(scripted)
    for call in engine.calls:
        if call.step in WRITERS:
            assert "Use at most 128 words." in said(call), call.step
        else:
            assert "should use at most 128 words: count a longer one as a flaw" in said(call), call.step


def test_the_word_limit_follows_the_setting_and_none_removes_it(scripted):
    engine = run_spri(scripted, max_words=60)
    assert all("at most 60 words" in said(c) and "128" not in said(c) for c in engine.calls)
    engine = run_spri(scripted, max_words=None)
    assert not any("at most" in said(c) for c in engine.calls)


def test_response_baselines_share_the_word_limit(scripted):
    engine, lm = scripted({"direct_responder": [{"response": "r"}] * 2, "direct_critic": [{"feedback": "f", "score": 2},
                                                                                     {"feedback": "f", "score": 5}],
                           "direct_refiner": lambda call: {"response": call.inputs["draft_response"] + "+"}})
    with dspy.context(lm=lm):
        Vanilla(max_words=40)(query="Hi")
        SelfRefine(max_words=40)(query="Hi")
    assert len(engine.calls) == 5 and all("at most 40 words" in said(c) for c in engine.calls)


@pytest.mark.parametrize("max_words", [0, -3, 2.5, True, "128"])
def test_a_bad_word_limit_is_refused_naming_the_setting(max_words):
    with pytest.raises(ValueError, match="max_words"):
        SPRI(max_words=max_words)


def five_levels(text: str) -> bool:
    return all(f"{level} = " in text for level in range(1, 6))


def test_every_critic_describes_all_five_levels(scripted):
    engine = run_spri(scripted)
    critics = [c for c in engine.calls if c.step in CRITICS]
    assert len(critics) == 4 and all(five_levels(said(c)) for c in critics)
    assert not any(five_levels(said(c)) for c in engine.calls if c.step in WRITERS)

    engine, lm = scripted(judge_script((2, 5), (2, 5), judged=(3, 4)))
    with dspy.context(lm=lm):
        SPRIJudge()(instruction="Add 2 and 2.", response="4")
    critics = [c for c in engine.calls if c.step in ("rubric_critic", "judgement_critic")]
    assert len(critics) == 4 and all(five_levels(said(c)) for c in critics)
    judgement_critic = next(c for c in critics if c.step == "judgement_critic")
    assert "You grade the judgement, not the response" in said(judgement_critic)

    engine, lm = scripted({"direct_judge": [{"feedback": "ok", "score": 3}],
                           "direct_judgement_critic": [{"feedback": "fine", "score": 5}],
                           "direct_responder": [{"response": "r"}], "direct_critic": [{"feedback": "f", "score": 5}]})
    with dspy.context(lm=lm):
        SelfRefineJudge()(instruction="Add 2 and 2.", response="4")
        SelfRefine()(query="Hi")
    critics = [c for c in engine.calls if c.step.endswith("critic")]
    assert len(critics) == 2 and all(five_levels(said(c)) for c in critics)


def test_refiners_keep_the_draft_and_the_judgement_refiner_puts_the_rubric_first(scripted):
    engine = run_spri(scripted)
    response_refiner = next(c for c in engine.calls if c.step == "response_refiner")
    assert "Change only what the feedback asks for" in said(response_refiner)
    generator = next(c for c in engine.calls if c.step == "principle_generator")
    assert "Principles are rules for the reply, not the reply itself" in said(generator)
    engine, lm = scripted(judge_script((5,), (2, 5), judged=(3, 4)))
    with dspy.context(lm=lm):
        SPRIJudge()(instruction="Add 2 and 2.", response="4")
    refiner = next(c for c in engine.calls if c.step == "judgement_refiner")
    assert "Where the critic's feedback conflicts with the rubric, follow the rubric." in said(refiner)


def test_a_tasks_framing_reaches_the_response_stage_only(scripted):
    engine = run_spri(scripted, framing=REAPPRAISAL_FRAMING)
    for call in engine.calls:
        framed = REAPPRAISAL_FRAMING in said(call)
        assert framed == call.step.startswith("respon"), call.step
    assert not any(REAPPRAISAL_FRAMING in said(c) for c in run_spri(scripted).calls)


def test_the_rubric_writer_sees_the_system_prompt_and_the_rules_of_the_judge_task(scripted):
    engine, lm = scripted(judge_script((2, 5), (5,)))
    with dspy.context(lm=lm):
        SPRIJudge()(instruction="Q: 1+1? A: 2\nQ: 2+2? A:", response="4", system_prompt="You are a maths tutor.")
    rubric_steps = [c for c in engine.calls if c.step.startswith("rubric")]
    assert len(rubric_steps) == 4 and all(c.inputs["system_prompt"] == "You are a maths tutor." for c in rubric_steps)
    writer = rubric_steps[0]
    assert "write the rubric for the last question only" in said(writer)
    assert "it must be able to grade any possible response" in said(writer)
    assert not any("system_prompt" in c.inputs for c in engine.calls if not c.step.startswith("rubric"))


@pytest.mark.parametrize("use_reference", [True, False])
def test_use_reference_decides_whether_any_step_sees_the_reference(scripted, use_reference):
    engine, lm = scripted(judge_script((5,), (5,)))
    with dspy.context(lm=lm):
        SPRIJudge(use_reference=use_reference)(instruction="Add 2 and 2.", response="4", reference_answer="4, exactly")
    seen = [c.inputs.get("reference_answer") for c in engine.calls]
    assert len(seen) == 4
    assert seen == (["4, exactly"] * 4 if use_reference else [None] * 4)


def test_rubric_seeds_are_chosen_per_capability(scripted):
    seeds = [{"query": f"{capability} task {i}", "principles": f"{capability} rubric {i}", "capability": capability}
             for capability in ("reasoning", "safety") for i in range(3)]
    engine, lm = scripted(judge_script((5,), (5,)))
    with dspy.context(lm=lm):
        prediction = SPRIJudge(seeds=seeds, seed_match="capability")(
            instruction="Is it safe to mix bleach and vinegar?", response="No.", capability="safety")
    assert prediction.seeds == [3, 4, 5]
    assert engine.calls[0].step == "rubric_generator" and engine.calls[0].demos == 3
    _, lm = scripted(judge_script((5,), (5,)))
    with dspy.context(lm=lm):  # the default shows every seed, whatever the capability
        assert SPRIJudge(seeds=seeds)(instruction="Q", response="A", capability="safety").seeds == list(range(6))


def test_the_alignment_judge_sees_the_goal_and_weighs_tailored_advice(scripted):
    engine, lm = scripted({"alignment_judge": [{"rationale": "tailored", "score": 9}]})
    example = dspy.Example(query="I failed my exam.", goal="See that the outcome can change.",
                           standards="Point to what is in their control.")
    with dspy.context(lm=lm):
        assert metrics.reappraisal_alignment()(example, dspy.Prediction(response="Plan the retake.")) == 0.9
    [call] = engine.calls
    assert call.inputs["goal"] == "See that the outcome can change."
    assert "tailored" in said(call) and "generic" in said(call)
    assert all(level in said(call) for level in ("1-2 = ", "5-6 = ", "9-10 = "))
