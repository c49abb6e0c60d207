"""The critique-refine loop on plain callables, without any LM."""

import dspy
import pytest

from spri_dspy.critique import check_keep, check_max_rounds, check_threshold, critique_refine


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
