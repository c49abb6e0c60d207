"""CompactJSONAdapter: what reaches the LM, read from the requests a capturing engine receives."""

from __future__ import annotations

import dspy
import pytest

from helpers import spri_script
from spri_dspy import SPRI, CompactJSONAdapter
from spri_dspy.runtime.adapters import SYSTEM
from spri_dspy.signatures import CritiquePrinciples


class Capture:
    """An engine that records each request and answers a fixed critic verdict."""

    supports_response_schema = True
    supported_params = frozenset({"temperature", "max_tokens", "response_format"})

    def __init__(self, answer='{"feedback": "Name the dog.", "score": 3}'):
        self.requests, self.answer = [], answer

    def complete(self, request):
        from dspy.lm15 import Message, Response, Usage

        self.requests.append(request)
        return Response(id=None, model=request.model, message=Message.assistant(self.answer), finish_reason="stop",
                        usage=Usage(input_tokens=1, output_tokens=1))


def critique(engine, adapter, **inputs):
    lm = dspy.LM("capture/model", engine=engine, cache=False)
    with dspy.context(lm=lm, adapter=adapter):
        return dspy.Predict(CritiquePrinciples)(**inputs)


def test_prompt_is_inputs_then_task_with_a_fixed_system_line():
    engine = Capture()
    verdict = critique(engine, CompactJSONAdapter(), query="My dog barks.", principles="1. Be calm.")
    request = engine.requests[0]
    assert request.system == SYSTEM
    [user] = [m.text for m in request.messages]
    assert user.startswith("## query\nMy dog barks.\n\n## principles\n1. Be calm.\n\n## task\nJudge how well these principles")
    # keys and types only: the field descriptions were copied back by the embedded model as answers
    assert user.endswith('Keys of your answer: "feedback" (text); "score" (one of 1, 2, 3, 4, 5).')
    assert "actionable" not in user
    assert "## goal" not in user and "None" not in user  # an absent optional input is left out
    assert "{" not in user and "[[" not in user  # no template, no placeholders
    assert verdict.score == 3 and verdict.feedback == "Name the dog."


def test_scores_stay_typed_and_ranged_in_the_requested_schema():
    engine = Capture()
    critique(engine, CompactJSONAdapter(), query="Hi", principles="1. Be kind.")
    schema = engine.requests[0].config.response_format["schema"]
    assert schema["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert schema["required"] == ["feedback", "score"]


def test_an_out_of_range_score_is_a_parse_error_not_a_score():
    engine = Capture('{"feedback": "fine", "score": 9}')
    with pytest.raises(Exception, match="score"):
        critique(engine, CompactJSONAdapter(), query="Hi", principles="1. Be kind.")


def test_prompt_is_much_shorter_than_dspy_json_adapters():
    compact, json_ = Capture(), Capture()
    critique(compact, CompactJSONAdapter(), query="Hi", principles="1. Be kind.")
    critique(json_, dspy.JSONAdapter(), query="Hi", principles="1. Be kind.")

    def framing(request):  # every word but the instruction, which both adapters send whole
        text = str(request.system) + " " + " ".join(m.text for m in request.messages)
        return len(text.split()) - len(CritiquePrinciples.instructions.split())

    assert framing(compact.requests[0]) < 0.5 * framing(json_.requests[0])


def test_every_spri_step_shares_the_system_line_and_the_query(scripted):
    engine, lm = scripted(spri_script((2, 5), (3, 5)))
    captured = []
    complete = engine.complete
    engine.complete = lambda request: captured.append(request) or complete(request)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        prediction = SPRI()(query="My dog barks at the mailman.", goal="Keep the dog calm.")
    assert engine.steps() == ["principle_generator", "principle_critic", "principle_refiner", "principle_critic",
                              "responder", "response_critic", "response_refiner", "response_critic"]
    prefix = "## query\nMy dog barks at the mailman.\n\n## goal\nKeep the dog calm.\n\n"
    assert all(r.system == SYSTEM and r.messages[-1].text.startswith(prefix) for r in captured)
    assert prediction.principles == "principles v0+" and prediction.response == "response v0+"


def test_seed_demos_are_user_and_assistant_turns(scripted):
    engine, lm = scripted(spri_script())
    seeds = [{"query": "Seed question?", "principles": "1. Seed principle."}]
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        SPRI(seeds=seeds)(query="Real question?")
    first = engine.calls[0]
    assert first.step == "principle_generator" and first.demos == 1
    assert first.inputs == {"query": "Real question?"}
