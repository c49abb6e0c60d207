"""LLM-judge metrics with a scripted judge: typed scores, scaling, bootstrapping mode, judge LM."""

import dspy
import pytest

from spri_dspy.experiments.metrics import empathy, human_agreement, principle_usefulness, reappraisal_alignment, response_adherence

EXAMPLE = dspy.Example(query="I keep failing my driving test.", standards="Tell them it is in their control.")
PREDICTION = dspy.Prediction(principles="1. Be kind.", response="You can practise more.")


@pytest.mark.parametrize(
    "metric, step, score, expected",
    [(reappraisal_alignment, "alignment_judge", 8, 0.8), (empathy, "empathy_judge", 4, 0.8),
     (principle_usefulness, "usefulness_judge", 3, 0.6), (response_adherence, "adherence_judge", 5, 1.0)],
)
def test_metric_scales_the_typed_score(scripted, metric, step, score, expected):
    engine, lm = scripted({step: [{"rationale": "ok", "score": score}] * 2})
    judge = metric(lm=lm)
    assert judge(EXAMPLE, PREDICTION) == pytest.approx(expected)
    assert judge(EXAMPLE, PREDICTION, trace=[]) is (score >= judge.pass_score)
    assert engine.steps() == [step, step]


def test_alignment_judge_sees_post_standards_and_response(scripted):
    engine, lm = scripted({"alignment_judge": [{"rationale": "ok", "score": 7}]})
    reappraisal_alignment(lm=lm)(EXAMPLE, PREDICTION)
    assert engine.calls[0].inputs == {"post": EXAMPLE.query, "standards": EXAMPLE.standards,
                                      "response": PREDICTION.response}


def test_alignment_score_outside_1_10_is_rejected(scripted):
    engine, lm = scripted({"alignment_judge": [{"rationale": "ok", "score": 11}] * 2})
    with pytest.raises(dspy.utils.exceptions.AdapterParseError):
        reappraisal_alignment(lm=lm)(EXAMPLE, PREDICTION)


def test_metric_works_with_dspy_evaluate(scripted):
    engine, lm = scripted({"empathy_judge": lambda call: {"rationale": "r", "score": 5 if "kind" in call.inputs["response"] else 1},
                           "direct_responder": lambda call: {"response": "kind words" if "a" in call.inputs["query"] else "meh"}})
    from spri_dspy import Vanilla

    devset = [dspy.Example(query=q).with_inputs("query") for q in ("sad", "blue", "alone", "hurt")]
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=devset, metric=empathy(), num_threads=1, display_progress=False)(Vanilla())
    assert result.score == pytest.approx(100 * (1 + 0.2 + 1 + 0.2) / 4)


def test_human_agreement():
    example = dspy.Example(human_score=4)
    assert human_agreement(example, dspy.Prediction(score=4)) == 1.0
    assert human_agreement(example, dspy.Prediction(score=2)) == 0.5
    assert human_agreement(example, dspy.Prediction(score=3), trace=[]) is False
