"""spri against a real OpenAI-compatible server someone else wrote: llama.cpp's own (llama-cpp-python's app),
serving the embedded GGUF; and the fake server checked against it on what both do."""

from __future__ import annotations

import asyncio
import json

import dspy
import pytest

from spri_dspy import SPRI, CompactJSONAdapter, cli, openai_lm
from spri_dspy.testing import FakeOpenAIServer

pytestmark = pytest.mark.llama_server

MODEL = "openai/smollm2"
SMALL_MODEL = ["--lm", MODEL, "--adapter", "compact", "--response-format", "json_schema", "--no-cache", "--temperature", "0"]


@pytest.fixture(autouse=True)
def no_variables(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")


def _check_trace(trace):
    """Every round critiqued a text and holds a typed score in 1..5 with its feedback (which this server lets
    the 135M model leave empty: only the embedded engine's grammar makes a text start with a letter), or, where the 135M model
    broke the critic's JSON through this server (it rambles past max_tokens, or writes a raw newline inside
    a string, which llama-cpp-python's schema grammar lets through), the loop's error round naming the
    parse failure. Returns the typed scores, of which each test needs at least one."""
    assert trace and all(r["text"].strip() for r in trace)
    for r in trace:
        if r["score"] is None:
            assert "AdapterParseError" in r["error"] and not r["accepted"]
        else:
            assert isinstance(r["score"], int) and 1 <= r["score"] <= 5 and isinstance(r["feedback"], str)
    return [r["score"] for r in trace if r["score"] is not None]


def test_spri_run(llama_server, capsys):
    status = cli.main(["run", "I failed my driving test again and feel stupid.", *SMALL_MODEL, "--api-base",
                       llama_server, "--max-rounds", "2", "--json", "--quiet"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["principles"].strip() and data["response"].strip()
    assert _check_trace(data["trace"])
    assert 4 <= sum(data["lm_calls_made"].values()) <= 8


def test_spri_generate_reaches_the_server_named_in_the_environment(llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)  # no --api-base: the variable alone
    source = tmp_path / "in.jsonl"
    queries = ["My cat ignores me.", "How do I ask for a raise?", "I can't sleep before exams."]
    source.write_text("".join(json.dumps({"id": f"q{i}", "query": q}) + "\n" for i, q in enumerate(queries)))
    status = cli.main(["generate", str(source), str(tmp_path / "out"), *SMALL_MODEL, "--max-rounds", "2",
                       "--threads", "2", "--no-progress"])
    assert status == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["q0", "q1", "q2"]
    scores = []
    for record in records:
        assert record["output"]["response"].strip() and record["output"]["principles"].strip()
        scores += _check_trace(record["output"]["trace"])
    assert scores
    assert json.loads((tmp_path / "out" / "run.json").read_text())["models"]["lm"]["endpoint"] == llama_server


def test_spri_judge(llama_server, tmp_path):
    """llama-cpp-python's schema grammar lets a string hold a raw newline, which is not JSON: a 135M model
    sometimes writes one, and that row fails naming its input and the field not found. Every other row
    has a typed score and texts."""
    source = tmp_path / "judge.jsonl"
    rows = [{"instruction": "Name a prime number.", "response": "7 is prime."},
            {"instruction": "Say hello in French.", "response": "Bonjour."},
            {"instruction": "What colour is the sky on a clear day?", "response": "Blue."}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    status = cli.main(["judge", str(source), str(tmp_path / "out"), *SMALL_MODEL, "--api-base", llama_server,
                       "--max-rounds", "1", "--threads", "1", "--no-progress"])
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert status == (1 if failures else 0) and records and len(records) + len(failures) == 3
    for record in records:
        output = record["output"]
        assert output["score"] in (1, 2, 3, 4, 5) and isinstance(output["feedback"], str) and output["rubric"].strip()
    for failure in failures:
        assert failure["input"]["instruction"] and "Expected to find output fields" in failure["error"]


def test_spri_compile_bootstrap(llama_server, tmp_path, capsys):
    rows = [{"Reddit Post": post, "appraisal_dimension_aim": "Help them see what they can control.",
             "constitution": "Acknowledge the feeling; point to one step within their control.", "standards": "s"}
            for post in ("I lost my job and panic about rent.", "My friend stopped answering my texts.",
                         "I keep failing my driving test.", "My landlord won't fix the heating.")]
    data = tmp_path / "reappraisal.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    saved = tmp_path / "compiled.json"
    status = cli.main(["compile", str(data), "--metric", "constitution-overlap", "--optimizer", "bootstrap",
                       "--max-demos", "1", "--max-rounds", "1", "--save", str(saved), *SMALL_MODEL,
                       "--api-base", llama_server])
    out = capsys.readouterr().out
    assert status == 0 and saved.is_file() and "bootstrap: metric on 2 dev examples" in out


def test_acall_through_openai_lm(llama_server):
    lm = openai_lm(MODEL, llama_server, response_format="json_schema", cache=False, max_tokens=256, temperature=0)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        prediction = asyncio.run(SPRI(max_rounds=2).acall(query="How do I keep a basil plant alive?"))
        expected = SPRI(max_rounds=2)(query="How do I keep a basil plant alive?")
    assert prediction.principles.strip() and prediction.response.strip()
    _check_trace(prediction.trace)
    assert dict(prediction.items()) == dict(expected.items())  # greedy decoding: the sync path gives the same


# --- The fake server against the real one, on what both do ------------------------------------------------------


def _chat(url, content, **options):
    import urllib.error
    import urllib.request

    body = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": content}], **options}).encode()
    request = urllib.request.Request(f"{url}/chat/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def both(llama_server):
    """(real server's URL, fake server's URL), the fake with the real one's context window (4,096)."""
    with FakeOpenAIServer(context=4096) as fake:
        yield llama_server, fake.url


def test_usage_counts_the_prompt_and_the_answer_on_both(both):
    for url in both:
        status, answer = _chat(url, "Say something about tea.", max_tokens=12)
        usage = answer["usage"]
        assert status == 200 and usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_an_answer_cut_at_max_tokens_says_length_on_both(both):
    for url in both:
        status, answer = _chat(url, "Write a long story about a lighthouse keeper and the sea.", max_tokens=3)
        assert status == 200 and answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 3


def test_a_prompt_over_the_context_is_the_same_400_on_both(both):
    for url in both:
        status, answer = _chat(url, "word " * 5000, max_tokens=8)
        assert status == 400
        assert answer["error"]["code"] == "context_length_exceeded" and "maximum context length is 4096" in answer["error"]["message"]


def test_a_query_over_the_context_is_one_inputs_failure_naming_the_limit(both, tmp_path):
    """Through spri generate, on either server: that input fails (naming the limit), the others finish."""
    for n, url in enumerate(both):
        source = tmp_path / f"in{n}.jsonl"
        source.write_text(json.dumps({"id": "long", "query": "word " * 5000}) + "\n"
                          + json.dumps({"id": "short", "query": "Hi there."}) + "\n")
        output = tmp_path / f"out{n}"
        status = cli.main(["generate", str(source), str(output), *SMALL_MODEL, "--api-base", url, "--max-rounds", "1",
                           "--threads", "1", "--no-progress"])
        failures = [json.loads(line) for line in (output / "failures.jsonl").read_text().splitlines()]
        done = [json.loads(line)["id"] for line in (output / "results.jsonl").read_text().splitlines()]
        assert status == 1 and done == ["short"] and [f["id"] for f in failures] == ["long"]
        assert "ContextWindowExceededError" in failures[0]["error"] and "4096" in failures[0]["error"]


def test_the_completion_budget_reaches_the_server(llama_server):
    """DSPy's client sends the budget as max_completion_tokens, which llama-cpp-python's app does not read
    (it generated to the context's end); the server spri ships reads it."""
    lm = openai_lm(MODEL, llama_server, cache=False, max_tokens=5)
    lm("Write a long story about a lighthouse keeper and the sea.")
    assert lm.history[-1]["usage"]["completion_tokens"] == 5
