"""The critique-refine stage (CritiqueRefine) on plain callables, without any LM."""

import dspy
import pytest

from spri_dspy.core.critique import CritiqueRefine, check_keep, check_max_rounds, check_threshold


def critique_refine(stage, draft, *, critique, refine, threshold, max_rounds, keep="latest"):
    """The stage module driven by plain callables: critique(text) and refine(text, feedback)."""
    module = CritiqueRefine(stage, lambda text: critique(text), lambda draft_text, feedback: dspy.Prediction(
        text=refine(draft_text, feedback)), field="text", output="text", threshold=threshold,
        max_rounds=max_rounds, keep=keep)
    result = module(draft)
    return result.final, result.trace


def scripted_loop(scores, **options):
    calls = []
    verdicts = iter(scores)

    def critique(text):
        calls.append(("critique", text))
        return dspy.Prediction(score=next(verdicts), feedback=f"fix {text}")

    def refine(text, feedback):
        calls.append(("refine", feedback))
        return text + "'"

    options = {"threshold": 4, "max_rounds": 4, **options}
    text, rounds = critique_refine("principles", "t", critique=critique, refine=refine, **options)
    return text, rounds, calls


def test_accept_on_first_round():
    text, rounds, calls = scripted_loop([4])
    assert (text, calls) == ("t", [("critique", "t")])
    assert rounds == [{"stage": "principles", "round": 1, "text": "t", "score": 4, "feedback": "fix t", "accepted": True}]


def test_refine_uses_the_latest_feedback_until_accepted():
    text, rounds, calls = scripted_loop([1, 2, 5])
    assert text == "t''"
    assert calls == [("critique", "t"), ("refine", "fix t"), ("critique", "t'"), ("refine", "fix t'"), ("critique", "t''")]
    assert [r["round"] for r in rounds] == [1, 2, 3]


def test_no_refinement_after_the_last_critique():
    text, rounds, calls = scripted_loop([1, 1, 1], max_rounds=3)
    assert [c[0] for c in calls] == ["critique", "refine", "critique", "refine", "critique"]
    assert text == "t''"


def test_keep_best_with_no_scored_round_keeps_the_text():
    def critique(text):
        raise dspy.utils.exceptions.AdapterParseError(adapter_name="X", signature=dspy.Signature("a -> b"),
                                                      lm_response="??")

    text, rounds = critique_refine("response", "t", critique=critique, refine=None, threshold=4, max_rounds=4,
                                   keep="best")
    assert text == "t" and rounds[0]["score"] is None and rounds[0]["error"].startswith("AdapterParseError")


def test_missing_feedback_is_a_critic_failure():
    text, rounds = critique_refine("principles", "t", critique=lambda t: dspy.Prediction(score=3),
                                   refine=None, threshold=4, max_rounds=4)
    assert rounds[0]["error"] == "CriticOutputError: critic feedback must be a string, got NoneType"


def test_checks():
    assert check_threshold(1) == 1 and check_threshold(5) == 5 and check_max_rounds(1) == 1
    assert check_keep("best") == "best"
    for bad in (0, 6, "4", None):
        with pytest.raises(ValueError, match="threshold"):
            check_threshold(bad)
    with pytest.raises(ValueError, match="max_rounds"):
        check_max_rounds(1.5)


def test_programs_run_their_loops_on_their_own_steps(scripted):
    """A stage is a module over the program's steps: same objects, flat step names, one critic placement."""
    from spri_dspy import SPRI, SPRIJudge, SelfRefine

    _, critic = scripted({}, model="scripted/critic")
    program = SPRI(critic_lm=critic)
    assert program.principles_stage.critic is program.principle_critic
    assert program.response_stage.refiner is program.response_refiner
    assert [name for name, _ in program.named_predictors()] == [
        "principle_generator.predict", "principle_critic.predict", "principle_refiner.predict",
        "responder.predict", "response_critic.predict", "response_refiner.predict"]
    assert [p.lm for p in program.predictors()] == [None, critic, None, None, critic, None]
    judge = SPRIJudge()
    assert judge.judgement_stage.critic is judge.judgement_critic and judge.rubric_stage.field == "rubric"
    assert SelfRefine().response_stage.max_rounds == 4


def test_a_copy_keeps_its_stages_on_its_own_steps_and_shares_the_lms(scripted):
    """Optimizers copy programs; a copy whose stages called the original's steps would ignore compiled demos."""
    from spri_dspy import SPRI

    _, critic = scripted({}, model="scripted/critic")  # its engine holds a lock: not deep-copyable
    program = SPRI(critic_lm=critic)
    for copy_ in (program.deepcopy(), program.reset_copy()):
        assert copy_.principle_critic is not program.principle_critic
        assert copy_.principles_stage.critic is copy_.principle_critic
        assert copy_.response_stage.refiner is copy_.response_refiner
    assert program.deepcopy().principle_critic.predict.lm is critic  # (reset_copy drops per-step LMs: DSPy's rule)


def test_stage_settings_are_checked():
    with pytest.raises(ValueError, match="threshold"):
        CritiqueRefine("response", print, print, field="response", threshold=0)
    with pytest.raises(ValueError, match="keep"):
        CritiqueRefine("response", print, print, field="response", keep="first")
