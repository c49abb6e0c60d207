"""The embedded SmolLM2-135M model through DSPy's LM layer, for real (a few seconds on CPU)."""

from __future__ import annotations

import json

import dspy
import pytest

from spri_dspy import SPRI, embedded_lm
from spri_dspy.embedded import LlamaCppEngine, default_model_path, schema_grammar
from spri_dspy.signatures import CritiquePrinciples


@pytest.fixture(scope="module")
def lm():
    model = embedded_lm(max_tokens=96, cache=False)
    yield model
    model.engine.close()


def test_model_ships_in_the_wheel():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_grammar_caps_free_text_and_keeps_the_score_enum():
    schema = {"type": "object", "properties": {"feedback": {"type": "string"}, "score": {"enum": [1, 2, 3, 4, 5], "type": "integer"}},
              "required": ["feedback", "score"]}
    gbnf = schema_grammar(schema, 300)
    assert 'string ::= "\\"" char{0,300} "\\"" space' in gbnf
    assert 'score ::= "1" | "2" | "3" | "4" | "5"' in gbnf


@pytest.mark.embedded
def test_spri_runs_end_to_end_and_every_call_parses(lm):
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), track_usage=True):
        prediction = SPRI(max_rounds=2)(query="How do I keep a basil plant alive indoors?")
    trace = prediction.trace
    assert {r["stage"] for r in trace} == {"principles", "response"}
    for stage in ("principles", "response"):
        rounds = [r for r in trace if r["stage"] == stage]
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        assert 1 <= len(rounds) <= 2
        assert rounds[-1]["accepted"] or len(rounds) == 2
    for r in trace:
        assert "error" not in r, r
        assert r["score"] in (1, 2, 3, 4, 5) and isinstance(r["feedback"], str) and isinstance(r["text"], str)
        assert r["accepted"] == (r["score"] >= 4)
    assert isinstance(prediction.principles, str) and isinstance(prediction.response, str)
    json.dumps(trace)
    usage = prediction.get_lm_usage()["embedded/smollm2-135m-instruct"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


@pytest.mark.embedded
def test_critic_calls_always_parse_to_a_valid_score(lm):
    critic = dspy.Predict(CritiquePrinciples)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        for query in ["I lost my job today.", "Explain recursion.", "Is coffee bad for me?", "Write a haiku.", "Hi"]:
            verdict = critic(query=query, principles="1. Be kind.\n2. Be specific.")
            assert verdict.score in (1, 2, 3, 4, 5)
            assert isinstance(verdict.feedback, str)


@pytest.mark.embedded
def test_query_longer_than_the_context_is_rejected_clearly():
    small = dspy.LM("embedded/smollm2-135m-instruct", engine=LlamaCppEngine(n_ctx=512), max_tokens=64, cache=False,
                    num_retries=0)
    with dspy.context(lm=small, adapter=dspy.JSONAdapter()), pytest.raises(Exception) as error:
        SPRI()(query="please read this " * 400)
    assert "context window is 512 tokens; shorten the input" in str(error.value)
    small.engine.close()


def test_engine_state_round_trips_without_weights():
    engine = LlamaCppEngine(n_ctx=1024, seed=7)
    assert LlamaCppEngine.load_state(engine.dump_state()).dump_state() == engine.dump_state()
    assert json.dumps(engine.dump_state())
