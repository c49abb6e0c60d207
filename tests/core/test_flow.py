"""The async path (aforward / acall) against the sync one: same calls, order, trace and Prediction."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from helpers import judge_script, spri_script
from spri_dspy import (
    SPRI,
    OraclePrinciples,
    RubricJudge,
    SeedPrinciples,
    SelfRefine,
    SelfRefineJudge,
    SPRIJudge,
    SPRIPairwiseJudge,
    Vanilla,
    VanillaJudge,
)
from spri_dspy.core.flow import call, run_sync
from test_pairwise import pairwise_script

QUERY = {"query": "I failed my driving test again."}
JUDGED = {"instruction": "Name three primes.", "response": "2, 3 and 9."}
SEEDS = [{"query": "I lost my job.", "principles": "1. Acknowledge the loss."}]
DIRECT = {"direct_responder": lambda call: {"response": "plain"},
          "direct_critic": [{"feedback": "thin", "score": 2}, {"feedback": "ok", "score": 5}],
          "direct_refiner": lambda call: {"response": call.inputs["draft_response"] + "+"},
          "direct_judge": lambda call: {"feedback": "judged", "score": 2},
          "direct_judgement_critic": [{"feedback": "off", "score": 1}, {"feedback": "ok", "score": 4}],
          "direct_judgement_refiner": lambda call: {"refined_feedback": "fixed", "refined_score": 4}}

CASES = {
    "spri": (lambda: SPRI(), lambda: spri_script((2, 5), (3, 4)), QUERY),
    "vanilla": (lambda: Vanilla(), lambda: DIRECT, QUERY),
    "self-refine": (lambda: SelfRefine(), lambda: DIRECT, QUERY),
    "oracle": (lambda: OraclePrinciples(), lambda: spri_script((5,), (2, 5)), {**QUERY, "principles": "Be kind."}),
    "seed-principles": (lambda: SeedPrinciples(SEEDS), lambda: spri_script((5,), (2, 5)), QUERY),
    "spri-judge": (lambda: SPRIJudge(), lambda: judge_script((2, 5), (1, 4), (3, 2)), JUDGED),
    "vanilla-judge": (lambda: VanillaJudge(), lambda: DIRECT, JUDGED),
    "self-refine-judge": (lambda: SelfRefineJudge(), lambda: DIRECT, JUDGED),
    "rubric-judge": (lambda: RubricJudge(rubric="Score 5: all prime."), lambda: judge_script(), JUDGED),
    "pairwise": (lambda: SPRIPairwiseJudge(), lambda: pairwise_script((2, 5), (2, 4, 5), ("A", "A")),
                 {"instruction": "Name a prime.", "response_a": "4", "response_b": "7"}),
}


@pytest.mark.parametrize("name", CASES)
def test_acall_makes_the_same_calls_and_returns_the_same_prediction(scripted, name):
    build, script, inputs = CASES[name]
    sync_engine, sync_lm = scripted(script())
    with dspy.context(lm=sync_lm):
        expected = build()(**inputs)
    async_engine, async_lm = scripted(script())

    async def serve():
        with dspy.context(lm=async_lm):
            return await build().acall(**inputs)

    got = asyncio.run(serve())
    assert async_engine.steps() == sync_engine.steps() and len(sync_engine.steps()) >= 1
    assert [c.inputs for c in async_engine.calls] == [c.inputs for c in sync_engine.calls]
    assert got.toDict() == expected.toDict()


def test_requests_served_concurrently_each_get_their_own_answer(scripted):
    """Eight acall()s in one event loop, as an asyncio server runs them: each input keeps its own texts."""
    script = {**spri_script(), "principle_critic": lambda c: {"feedback": "ok", "score": 5},
              "response_critic": lambda c: {"feedback": "ok", "score": 5},
              "responder": lambda c: {"response": f"answer to {c.inputs['query']}"}}
    engine, lm = scripted(script)
    program = SPRI()

    async def serve():
        with dspy.context(lm=lm):
            return await asyncio.gather(*(program.acall(query=f"q{i}") for i in range(8)))

    results = asyncio.run(serve())
    assert [r.response for r in results] == [f"answer to q{i}" for i in range(8)]
    assert len(engine.calls) == 8 * 4


def test_the_sync_path_needs_no_event_loop_and_refuses_foreign_awaits():
    class Echo(dspy.Module):
        def forward(self, text):
            return text.upper()

    async def algorithm():
        return await call(Echo(), text="hi")

    assert run_sync(algorithm()) == "HI"

    async def sleeps():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than spri_dspy.core.flow.call"):
        run_sync(sleeps())
