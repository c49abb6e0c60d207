"""CompactJSONAdapter: what reaches the LM, read from the requests a capturing engine receives."""

from __future__ import annotations

import copy
import inspect
import json
import os
import types
import typing

import dspy
import pytest

import spri_dspy

from helpers import spri_script
from spri_dspy import SPRI, CompactJSONAdapter
from spri_dspy.adapters import SYSTEM
from spri_dspy.testing import ScriptedEngine
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


def test_instruction_last_prompt_is_inputs_then_task_with_a_fixed_system_line():
    engine = Capture()
    verdict = critique(engine, CompactJSONAdapter(instruction="last"), query="My dog barks.", principles="1. Be calm.")
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
    prefix = "## query\nMy dog barks at the mailman.\n\n## goal\nKeep the dog calm."
    assert all(r.system.startswith(f"{SYSTEM}\n\n## task\n") and r.messages[-1].text.startswith(prefix) for r in captured)
    assert prediction.principles == "principles v0+" and prediction.response == "response v0+"


def test_seed_demos_are_user_and_assistant_turns(scripted):
    engine, lm = scripted(spri_script())
    seeds = [{"query": "Seed question?", "principles": "1. Seed principle."}]
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        SPRI(seeds=seeds)(query="Real question?")
    first = engine.calls[0]
    assert first.step == "principle_generator" and first.demos == 1
    assert first.inputs == {"query": "Real question?"}


# --- spri_dspy.ChatAdapter / JSONAdapter: DSPy's messages, byte for byte, over every step of every program ---

STAGED_INPUTS = {"query": "My dog barks at the mailman.", "goal": "Keep the dog calm.", "principles": "1. Be calm.",
                 "instruction": "Write a haiku about rain.", "response": "Rain falls. It is wet.",
                 "response_a": "Rain falls softly.", "response_b": "Water, sky, again.",
                 "reference_answer": "Soft rain on the roof.", "system_prompt": "You are a poet.",
                 "rubric": "Score 5 if it is a haiku.", "capability": "instruction_following"}


class Recorder(ScriptedEngine):
    """The scripted engine, recording what each request sends: system text, turns and response format.
    Every critic scores 2, then 5 (so every refiner runs)."""

    def __init__(self):
        super().__init__(default=self.answer)
        self.sent, self.counts = [], {}

    def answer(self, call):
        self.counts[call.step] = self.counts.get(call.step, 0) + 1
        low = self.counts[call.step] % 2 == 1
        typed = {"score": 2 if low else 5, "verdict": "A"}  # the typed outputs: scores, a pairwise verdict
        return {name: next((value for key, value in typed.items() if key in name),
                           f"{call.step} {name} {self.counts[call.step]}") for name in call.outputs}

    def complete(self, request):
        response_format = request.config.response_format
        self.sent.append((request.system, [(m.role, m.text) for m in request.messages],
                          json.dumps(response_format, sort_keys=True, default=repr)))
        return super().complete(request)


def program_inputs(program, round_):
    from spri_dspy.core.flow import _stage_signature

    parameters = (_stage_signature(type(program), program.stages[0]).parameters if getattr(program, "stages", ())
                  else inspect.signature(program.run).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):  # Situated("query -> response")
        return {"query": f" {STAGED_INPUTS['query']} ({round_})\n"}
    return {name: f" {STAGED_INPUTS[name]} ({round_})\n" for name in parameters if name in STAGED_INPUTS}


def with_demos(program):
    """Every predictor shows a complete demo and an incomplete one (typed values: scores are integers)."""
    for predictor in program.predictors():
        fields = predictor.signature.fields
        full = {name: (typing.get_args(f.annotation)[0] if typing.get_origin(f.annotation) is typing.Literal
                       else f"demo {name}") for name, f in fields.items()}
        partial = {name: value for i, (name, value) in enumerate(full.items()) if i != 0}
        predictor.demos = [*predictor.demos, dspy.Example(**full), dspy.Example(**partial)]
    return program


def sent(adapter, kind, name):
    engine = Recorder()
    seeds = [{"query": "Seed question?", "principles": "1. Seed principle.", "goal": "Keep the dog calm.",
              "instruction": "Seed instruction", "rubric": "Seed rubric"}]
    program = with_demos(spri_dspy.build_program(name, kind, seeds=seeds, threshold=4, max_rounds=2,
                                                 module="query -> response"))
    with dspy.context(lm=dspy.LM("scripted/model", engine=engine, cache=False), adapter=adapter):
        for round_ in (1, 2):  # the second time on warm per-signature caches
            program(**program_inputs(program, round_))
    return engine.sent


class Uncached(CompactJSONAdapter):
    """CompactJSONAdapter computing every per-signature value anew on each call."""

    def __init__(self, **options):
        super().__init__(**options)
        self.per_signature = types.SimpleNamespace(get=lambda signature, name, build: build())


@pytest.mark.parametrize("kind, name", list(spri_dspy.PROGRAMS))
def test_our_adapters_send_dspys_messages_byte_for_byte_on_every_step_of_every_program(kind, name):
    chat = sent(dspy.ChatAdapter(), kind, name)
    assert len(chat) >= 2 and any(turns[0][0] == "user" and len(turns) > 1 for _, turns, _ in chat)  # demos shown
    assert sent(spri_dspy.ChatAdapter(), kind, name) == chat
    assert sent(None, kind, name) == chat  # no adapter configured: the programs' default, the same messages
    json_sent = sent(dspy.JSONAdapter(), kind, name)
    assert all('"schema"' in response_format for _, _, response_format in json_sent)
    assert sent(spri_dspy.JSONAdapter(), kind, name) == json_sent
    assert sent(spri_dspy.CompactJSONAdapter(), kind, name) == sent(Uncached(), kind, name)
    last = sent(spri_dspy.CompactJSONAdapter(instruction="last"), kind, name)
    assert last == sent(Uncached(instruction="last"), kind, name) != sent(Uncached(), kind, name)


@pytest.mark.parametrize("adapter", [spri_dspy.ChatAdapter(), spri_dspy.JSONAdapter(), spri_dspy.CompactJSONAdapter(),
                                     spri_dspy.CompactJSONAdapter(instruction="last")])
def test_a_signature_changed_in_place_is_formatted_anew(adapter):
    signature = CritiquePrinciples.with_instructions("Judge the principles.")
    inputs = {"query": "Hi", "principles": "1. Be kind."}

    def text():
        return "\n".join(m["content"] for m in adapter.format(signature, [], inputs))

    assert "Judge the principles." in text()
    signature.instructions = "Grade the principles."  # DSPy's setter: the same class, new instructions
    assert "Grade the principles." in text() and "Judge the principles." not in text()
    signature.model_fields["principles"] = dspy.InputField(desc="The rules to grade.")  # a field replaced in place
    fresh = copy.deepcopy(adapter)  # the same settings, its per-signature values computed anew
    assert text() == "\n".join(m["content"] for m in fresh.format(signature, [], inputs))


# --- CompactJSONAdapter's instruction first (its default): where a step's later rounds can reuse it ---


def test_instruction_first_is_the_default_and_puts_the_instruction_and_keys_in_the_system_message():
    engine = Capture()
    verdict = critique(engine, CompactJSONAdapter(), query="My dog barks.", principles="1. Be calm.")
    request = engine.requests[0]
    assert request.system == (f"{SYSTEM}\n\n## task\n{CritiquePrinciples.instructions.strip()}\n"
                              'Keys of your answer: "feedback" (text); "score" (one of 1, 2, 3, 4, 5).')
    assert [m.text for m in request.messages] == ["## query\nMy dog barks.\n\n## principles\n1. Be calm."]
    assert request.config.response_format["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert verdict.score == 3 and verdict.feedback == "Name the dog."


def test_instruction_first_lets_a_steps_later_rounds_share_everything_but_the_new_draft(scripted):
    """What the embedded engine's state reuse needs: the second critique of a stage differs from the first only
    where the new draft starts; with the instruction last they part there too, but the instruction comes after it."""
    shared = {}
    for instruction in ("first", "last"):
        engine, lm = scripted(spri_script((2, 5), (2, 5)))
        captured = []
        complete = engine.complete
        engine.complete = lambda request, complete=complete, captured=captured: captured.append(request) or complete(request)
        with dspy.context(lm=lm, adapter=CompactJSONAdapter(instruction=instruction)):
            prediction = SPRI()(query="My dog barks at the mailman.")
        assert engine.steps() == ["principle_generator", "principle_critic", "principle_refiner", "principle_critic",
                                  "responder", "response_critic", "response_refiner", "response_critic"]
        assert prediction.response == "response v0+"
        first, second = (r.system + "\n" + r.messages[-1].text for r, step in zip(captured, engine.steps())
                         if step == "response_critic")
        common = os.path.commonprefix([first, second])
        shared[instruction] = (common, first[len(common):])
    # the first critique's whole prompt is where the second one's starts: only the new draft's end is new
    assert shared["first"] == (shared["first"][0], "") and shared["first"][0].endswith("## response\nresponse v0")
    assert shared["last"][0].endswith("## response\nresponse v0") and shared["last"][1].startswith("\n\n## task\n")


def test_instruction_must_be_first_or_last():
    with pytest.raises(ValueError, match="'first' or 'last'"):
        CompactJSONAdapter(instruction="middle")
