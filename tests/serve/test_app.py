"""``spri serve``'s API with the official ``openai`` client (sync, async, streaming) against a server started in the
test, on the scripted engine or the fake OpenAI-compatible upstream: replies, events, settings, errors, limits,
auth and cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import dspy
import httpx
import openai
import pytest

from spri_dspy import SPRI
from spri_dspy.core.programs import save_program
from spri_dspy.serve import Limits, create_app, served_programs
from spri_dspy.serve.app import jsonable
from spri_dspy.testing import FakeOpenAIServer, ScriptedEngine, scripted_lm


def script():
    """A stateless script: principles are accepted after one refinement, responses at once; judges score 4."""
    return {
        "principle_generator": lambda call: {"principles": f"principles for {call.inputs['query']}"},
        "principle_critic": lambda call: {"feedback": "name the person", "score": 5 if "+" in call.inputs["principles"] else 2},
        "principle_refiner": lambda call: {"principles": call.inputs["draft_principles"] + "+"},
        "responder": lambda call: {"response": f"answer under {call.inputs['principles']}"},
        "response_critic": lambda call: {"feedback": "clear", "score": 5},
        "rubric_generator": lambda call: {"rubric": "Score 5 if correct."},
        "rubric_critic": lambda call: {"feedback": "good rubric", "score": 5},
        "judge": lambda call: {"feedback": "mostly right", "score": 4},
        "judgement_critic": lambda call: {"feedback": "fair", "score": 5},
        "comparer": lambda call: {"feedback": "the first is right", "verdict": "A"},
    }


@pytest.fixture
def scripted_app():
    """(app, engine) over a fresh scripted engine."""
    engine = ScriptedEngine(script())
    return create_app(served_programs({}), scripted_lm(engine)), engine


def client(url, **options):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=options.pop("api_key", "unused"), max_retries=0, **options)


def test_a_completion_is_the_programs_prediction_for_the_same_answers(scripted_app, serve):
    app, engine = scripted_app
    with serve(app) as url:
        reply = client(url).chat.completions.create(
            model="spri", messages=[{"role": "system", "content": "cheer them up"}, {"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}, {"role": "user", "content": "I failed"}])
    with dspy.context(lm=scripted_lm(ScriptedEngine(script()))):
        direct = SPRI()(query="I failed", goal="cheer them up")
    assert reply.model_extra["spri"] == jsonable(dict(direct.items()))
    assert reply.choices[0].message.content == direct.response == "answer under principles for I failed+"
    assert reply.choices[0].finish_reason == "stop" and reply.model == "spri" and reply.object == "chat.completion"
    assert [call.step for call in engine.calls] == ["principle_generator", "principle_critic", "principle_refiner",
                                                    "principle_critic", "responder", "response_critic"]
    assert engine.calls[0].inputs["goal"] == "cheer them up"  # the system message is the goal
    assert reply.usage.model_extra["lm_calls"] == 6 and reply.usage.total_tokens == (
        reply.usage.prompt_tokens + reply.usage.completion_tokens) > 0


def test_the_async_client_runs_requests_concurrently(scripted_app, serve):
    app, engine = scripted_app

    async def ask(url):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as async_client:
            return await asyncio.gather(*(async_client.chat.completions.create(
                model="spri", messages=[{"role": "user", "content": f"q{i}"}], extra_body={"goal": "g"})
                for i in range(8)))

    with serve(app) as url:
        replies = asyncio.run(ask(url))
    assert [r.choices[0].message.content for r in replies] == [f"answer under principles for q{i}+" for i in range(8)]
    assert len(engine.calls) == 8 * 6 and {c.inputs.get("goal") for c in engine.calls} == {"g"}


def test_a_stream_sends_each_step_as_it_ends_then_the_response(scripted_app, serve):
    app, _ = scripted_app
    with serve(app) as url:
        chunks = list(client(url).chat.completions.create(
            model="spri", messages=[{"role": "user", "content": "I failed"}], stream=True,
            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    events = [c.model_extra["spri"] for c in chunks if c.model_extra.get("spri", {}).get("event") == "step"]
    assert [(e["step"], e["kind"], e["round"]) for e in events] == [
        ("principle_generator", "generator", 1), ("principle_critic", "critic", 1),
        ("principle_refiner", "refiner", 1), ("principle_critic", "critic", 2), ("responder", "generator", 1),
        ("response_critic", "critic", 1)]
    assert events[1]["outputs"] == {"feedback": "name the person", "score": 2}
    assert events[2]["outputs"] == {"principles": "principles for I failed+"}
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "answer under principles for I failed+"
    done = next(c for c in chunks if c.model_extra.get("spri", {}).get("event") == "done")
    assert done.choices[0].finish_reason == "stop" and done.model_extra["spri"]["principles"] == "principles for I failed+"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_extra["lm_calls"] == 6
    order = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content]
    assert max(i for i, c in enumerate(chunks) if c.model_extra.get("spri", {}).get("event") == "step") < order[0]


def test_stage_events_arrive_while_the_program_runs(serve):
    with FakeOpenAIServer(latency=0.3) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        with serve(create_app(served_programs({}), lm)) as url:
            started, arrivals = time.monotonic(), []
            for piece in client(url).chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}],
                                                             stream=True):
                arrivals.append((time.monotonic() - started, (piece.model_extra.get("spri") or {}).get("step")))
    steps = [(t, step) for t, step in arrivals if step]
    assert steps[0][1] == "principle_generator" and steps[0][0] < 0.9  # one LM call in, not at the end
    assert arrivals[-1][0] - steps[0][0] > 0.5  # the rest arrived later, as the program went on


def test_a_request_sets_threshold_rounds_and_word_limit_within_the_servers_bounds(scripted_app, serve):
    app, engine = scripted_app
    with serve(app) as url:
        api = client(url)
        reply = api.chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}],
                                            extra_body={"threshold": 1, "max_words": 40})
        assert [r["round"] for r in reply.model_extra["spri"]["trace"]] == [1, 1]  # accepted at once
        assert "40 words" in engine.calls[0].instructions
        reply = api.chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}],
                                            extra_body={"max_rounds": 1})
        assert [(r["stage"], r["round"]) for r in reply.model_extra["spri"]["trace"]] == [("principles", 1), ("response", 1)]
        for extra, param, text in (({"max_rounds": 9}, "max_rounds", "between 1 and 4"),
                                   ({"threshold": 0}, "threshold", "between 1 and 5"),
                                   ({"threshold": "4"}, "threshold", "whole number")):
            with pytest.raises(openai.BadRequestError) as error:
                api.chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}], extra_body=extra)
            assert error.value.body["param"] == param and text in error.value.body["message"]
        with pytest.raises(openai.BadRequestError) as error:
            api.chat.completions.create(model="vanilla", messages=[{"role": "user", "content": "q"}],
                                        extra_body={"threshold": 3})
        assert error.value.body["message"] == "threshold: the model vanilla takes no threshold"


@pytest.mark.parametrize("body, status, param, message", [
    ({"model": "spri"}, 400, "messages", "messages: must be a non-empty list"),
    ({"model": "spri", "messages": [{"role": "system", "content": "x"}]}, 400, "messages", "holds no user message"),
    ({"model": "spri", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", "string or a list"),
    ({"model": "spri", "messages": [{"role": "user", "content": "  "}]}, 400, "query", "non-empty string"),
    ({"model": "spri", "messages": ["hi"]}, 400, "messages[0]", "role and content"),
    ({"model": "spri", "messages": [{"role": "user", "content": "q"}], "stream": "yes"}, 400, "stream", "true or false"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]}, 404, "model", "'gpt-4o' is not served"),
    ({"messages": [{"role": "user", "content": "q"}]}, 400, "model", "None is not served"),
    ({"model": "spri-judge", "instruction": "2+2?"}, 400, "response", "is required by the judge model"),
    ({"model": "spri-pairwise", "instruction": "2+2?", "response_a": "4"}, 400, "response_b", "is required"),
    (["not", "an", "object"], 400, "body", "must be a JSON object"),
])
def test_a_bad_request_is_a_4xx_naming_the_field(scripted_app, serve, body, status, param, message):
    app, engine = scripted_app
    with serve(app) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert reply.status_code == status and reply.json()["error"]["param"] == param
    assert message in reply.json()["error"]["message"] and engine.calls == []


def test_a_body_that_is_not_json_is_a_400(scripted_app, serve):
    app, _ = scripted_app
    with serve(app) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "body: is not JSON"


def test_judges_answer_with_rubric_feedback_and_score(scripted_app, serve):
    app, _ = scripted_app
    with serve(app) as url:
        api = client(url)
        reply = api.chat.completions.create(model="spri-judge", messages=[],
                                            extra_body={"instruction": "2+2?", "response": "4"})
        assert json.loads(reply.choices[0].message.content) == {"feedback": "mostly right", "score": 4}
        assert reply.model_extra["spri"]["rubric"] == "Score 5 if correct."
        pairwise = api.chat.completions.create(model="spri-pairwise", messages=[],
                                               extra_body={"instruction": "2+2?", "response_a": "4", "response_b": "5"})
        verdict = json.loads(pairwise.choices[0].message.content)
        assert verdict["verdict"] in ("A", "B", "tie") and pairwise.model_extra["spri"]["rubric"] == "Score 5 if correct."
        assert {m.id for m in api.models.list().data} >= {"spri", "vanilla", "self-refine", "spri-judge",
                                                           "vanilla-judge", "mt-bench-judge", "spri-pairwise"}


def test_a_compiled_program_is_served_by_its_file_name_with_its_settings(tmp_path, serve):
    path = tmp_path / "strict.json"
    save_program(SPRI(threshold=5, max_rounds=2), path)
    engine = ScriptedEngine(script() | {"principle_critic": lambda call: {"feedback": "f", "score": 4}})
    with serve(create_app(served_programs({}, [str(path)]), scripted_lm(engine))) as url:
        reply = client(url).chat.completions.create(model="strict", messages=[{"role": "user", "content": "q"}])
    rounds = [r for r in reply.model_extra["spri"]["trace"] if r["stage"] == "principles"]
    assert [r["score"] for r in rounds] == [4, 4]  # threshold 5, 2 rounds: from the file


def test_the_api_key_is_required_and_never_echoed(scripted_app, serve, caplog):
    engine = ScriptedEngine(script())
    key = "sk-serve-SECRET-0123456789"
    app = create_app(served_programs({}), scripted_lm(engine), api_key=key)
    caplog.set_level(logging.DEBUG)
    with serve(app) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
            reply = httpx.post(f"{url}/v1/chat/completions", headers=headers,
                               json={"model": "spri", "messages": [{"role": "user", "content": "q"}]})
            assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
            assert key not in reply.text
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200
        reply = client(url, api_key=key).chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}])
    assert reply.choices[0].message.content and key not in reply.model_dump_json()
    assert key not in caplog.text


def test_above_the_concurrency_limit_a_request_gets_429_with_retry_after(serve):
    with FakeOpenAIServer(latency=1.0) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        with serve(create_app(served_programs({}), lm, limits=Limits(max_concurrency=1))) as url:
            body = {"model": "vanilla", "messages": [{"role": "user", "content": "q"}]}
            first = threading.Thread(target=httpx.post, args=(f"{url}/v1/chat/completions",), kwargs={"json": body,
                                                                                                        "timeout": 10})
            first.start()
            time.sleep(0.3)
            refused = httpx.post(f"{url}/v1/chat/completions", json=body)
            first.join()
            again = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert again.status_code == 200  # the slot was released


@pytest.mark.parametrize("fault, status, code", [("500", 502, "upstream_failed"), ("429", 503, "upstream_unavailable"),
                                                 ("malformed", 502, None)])
def test_an_upstream_failure_is_an_openai_error_with_the_reason(serve, fault, status, code):
    with FakeOpenAIServer(faults={fault: 1.0}) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        with serve(create_app(served_programs({}), lm)) as url:
            reply = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                               json={"model": "spri", "messages": [{"role": "user", "content": "q"}]})
            with pytest.raises(openai.APIError) as streamed:
                list(client(url).chat.completions.create(model="spri", messages=[{"role": "user", "content": "q"}],
                                                         stream=True))
    error = reply.json()["error"]
    assert reply.status_code == status and error["type"] == "upstream_error" and "Traceback" not in reply.text
    assert code is None or error["code"] == code
    assert ("injected" in error["message"]) if fault != "malformed" else error["message"]
    if status == 503:
        assert reply.headers["Retry-After"] == "1"
    assert "upstream" in str(streamed.value)


def test_a_program_past_the_timeout_is_cancelled_with_504(serve):
    with FakeOpenAIServer(latency=3.0) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        with serve(create_app(served_programs({}), lm, limits=Limits(timeout=0.5))) as url:
            started = time.monotonic()
            reply = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                               json={"model": "vanilla", "messages": [{"role": "user", "content": "q"}]})
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 2
            while upstream.counts["cancelled"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert reply.status_code == 504 and reply.json()["error"]["type"] == "timeout" and elapsed < 2
    assert upstream.counts["cancelled"] == 1  # its LM call was cancelled too


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
def test_a_client_that_disconnects_cancels_its_programs_lm_calls(serve, stream):
    with FakeOpenAIServer(latency=3.0) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        app = create_app(served_programs({}), lm)
        with serve(app) as url:
            body = {"model": "spri", "messages": [{"role": "user", "content": "q"}], "stream": stream}
            with pytest.raises(httpx.ReadTimeout):
                with httpx.Client(timeout=httpx.Timeout(10, read=0.5)) as http:
                    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as reply:
                        for _ in reply.iter_bytes():
                            pass
            deadline = time.monotonic() + 2.0  # well before the upstream's 3 s answer
            while (upstream.counts["cancelled"] < 1 or app.state.server.in_flight) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert upstream.counts["cancelled"] == 1 and upstream.in_flight == 0
            assert app.state.server.in_flight == 0
            assert upstream.counts["requests"] == 1  # the program stopped: no later step was called


def test_a_server_keeps_no_history_of_its_requests(scripted_app, serve):
    app, engine = scripted_app
    lm = app.state.server.lm
    with serve(app) as url:
        client(url).chat.completions.create(model="spri", messages=[{"role": "user", "content": "private text"}])
    assert len(engine.calls) == 6 and lm.history == []  # memory stays flat, and users' texts are not held


def test_a_request_cancelled_by_the_server_cancels_its_program(serve):
    from spri_dspy.serve.app import SPRIServer

    class Connected:  # a request whose client never leaves
        async def receive(self):
            await asyncio.Event().wait()

    async def cancelled_midway(server):
        request = asyncio.create_task(server.execute(Connected(), server.program("vanilla", ()), {"query": "q"}))
        await asyncio.sleep(0.5)
        request.cancel()  # e.g. the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.5)  # still in the loop: asyncio.run would cancel a leftover task itself on exit
        return dict(upstream.counts), upstream.in_flight

    with FakeOpenAIServer(latency=3.0) as upstream:
        lm = dspy.LM("openai/fake", api_base=upstream.url, api_key="unused", cache=False, num_retries=0)
        counts, in_flight = asyncio.run(cancelled_midway(SPRIServer(served_programs({}), lm)))
    assert counts["requests"] == 1 and counts.get("cancelled") == 1 and in_flight == 0
