"""Batch runs: results, usage per step, resume, failures, bad rows, torn lines, faults, kill -9, cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import dspy
import pytest

from spri_dspy.core.flow import StagedModule
from spri_dspy import SPRI, Vanilla
from spri_dspy.runtime.batch import FAILURES, RESULTS, ResultStore, RunMismatchError, input_id, run_batch
from spri_dspy.core.data import RowError
from spri_dspy.testing import FakeOpenAIServer


def rows(n, prefix="question"):
    return [{"query": f"{prefix} {i}", "goal": "be kind" if i % 2 else None} for i in range(n)]


def results(output):
    lines = (output / RESULTS).read_text().splitlines()
    return [json.loads(line) for line in lines]


def batch(program, data, output, lm, **options):
    options = {"fields": {"query": "query", "goal": "goal"}, "optional": ("goal",), "progress": False, **options}
    with dspy.context(lm=lm):
        return run_batch(program, data, output, **options)


def test_results_usage_and_summary(scripted, tmp_path):
    engine, lm = scripted({"principle_critic": lambda call: {"feedback": "f", "score": 5},
                           "response_critic": lambda call: {"feedback": "f", "score": 5}})
    summary = batch(SPRI(), rows(6), tmp_path, lm, threads=3)
    assert (summary.done, summary.failed, summary.pending, summary.lm_calls) == (6, 0, 0, 24)
    records = results(tmp_path)
    assert sorted(r["index"] for r in records) == list(range(6))
    first = next(r for r in records if r["index"] == 1)
    assert first["input"] == {"query": "question 1", "goal": "be kind"} and first["lm_calls"] == 4
    assert first["id"] == input_id({"query": "question 1", "goal": "be kind"})
    assert first["output"]["response"] == "responder output" and len(first["output"]["trace"]) == 2
    assert set(summary.by_step) == {"principle_generator", "principle_critic", "responder", "response_critic"}
    assert summary.by_step["principle_critic"]["scripted/base"]["calls"] == 6
    assert summary.by_stage["principles"]["calls"] == 12 and summary.by_stage["response"]["calls"] == 12
    assert summary.by_model["scripted/base"]["calls"] == 24 == len(engine.calls)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["done"] == 6 and saved["by_stage"] == summary.by_stage
    import datasets

    table = datasets.Dataset.from_parquet(str(tmp_path / "results.parquet"))
    assert table.num_rows == 6 and "output.response" in table.column_names


class Staged(StagedModule, dspy.Module):
    """A two-stage program that logs when each stage starts and each input ends; no LM.

    With ``hold`` set, every second stage waits (up to 10 s) until the input ``hold`` has started.
    """

    stages = ("first", "second")
    outputs = ("answer",)

    def __init__(self, fail=(), hold=None):
        super().__init__()
        self.events, self.fail, self.hold = [], set(fail), hold
        self._lock, self._held = threading.Lock(), threading.Event()

    def log(self, *event):
        with self._lock:
            self.events.append(event)

    async def first(self, query, goal=None):
        self.log("first", query)
        if query == self.hold:
            self._held.set()
        if query in self.fail:
            raise ValueError(f"no principles for {query}")
        return {"query": query}

    async def second(self, query):
        if self.hold is not None and not self._held.wait(timeout=10):
            raise TimeoutError(f"{self.hold} never started")
        self.log("second", query)
        self.log("end", query)
        return dspy.Prediction(answer=query.upper())


def test_one_thread_runs_each_input_stage_by_stage(tmp_path):
    program = Staged()
    summary = batch(program, rows(3), tmp_path, lm=None, threads=1)
    assert summary.done == 3
    assert program.events == [(event, f"question {i}") for i in range(3) for event in ("first", "second", "end")]
    assert [r["output"]["answer"] for r in results(tmp_path)] == ["QUESTION 0", "QUESTION 1", "QUESTION 2"]


def test_stages_interleave_in_order_with_a_bounded_number_under_way(tmp_path):
    # Two threads may have 3 inputs under way: the third input starts while the first two wait to run
    # their second stages (a runner that kept each input on one thread would stall here).
    program = Staged(hold="question 2")
    summary = batch(program, rows(20), tmp_path, lm=None, threads=2)
    assert (summary.done, summary.failed) == (20, 0)
    third = program.events.index(("first", "question 2"))
    assert all(event != "second" for event, _ in program.events[:third])
    for i in range(20):
        assert [event for event, query in program.events if query == f"question {i}"] == ["first", "second", "end"]
    under_way, most = set(), 0
    for event, query in program.events:
        if event == "first":
            under_way.add(query)
        elif event == "end":
            under_way.discard(query)
        most = max(most, len(under_way))
    assert most <= 3
    assert sorted(r["output"]["answer"] for r in results(tmp_path)) == sorted(f"QUESTION {i}" for i in range(20))


def test_a_failed_first_stage_is_recorded_and_skips_the_second(tmp_path):
    program = Staged(fail={"question 2"})
    summary = batch(program, rows(4), tmp_path, lm=None, threads=2)
    assert (summary.done, summary.failed) == (3, 1)
    assert ("second", "question 2") not in program.events
    failure = json.loads((tmp_path / FAILURES).read_text())
    assert failure["index"] == 2 and failure["error"] == "ValueError: no principles for question 2"


def test_a_broken_results_file_stops_every_thread_with_its_error(tmp_path, monkeypatch):
    written = []

    def add(self, record):
        if len(written) == 2:
            raise OSError("No space left on device")
        written.append(record)
        return True

    monkeypatch.setattr(ResultStore, "add", add)
    started = time.monotonic()
    with pytest.raises(OSError, match="No space left on device"):
        batch(Staged(), rows(30), tmp_path, lm=None, threads=4)
    assert len(written) == 2 and time.monotonic() - started < 5  # no thread left waiting for work


def test_rerun_skips_finished_ids(scripted, tmp_path):
    engine, lm = scripted()
    batch(Vanilla(), rows(5), tmp_path, lm)
    engine.calls.clear()
    summary = batch(Vanilla(), rows(7), tmp_path, lm)
    assert (summary.already_done, summary.done, summary.lm_calls) == (5, 2, 2)
    assert len(engine.calls) == 2 and len(results(tmp_path)) == 7


def test_identical_rows_are_distinct_inputs(scripted, tmp_path):
    engine, lm = scripted()
    summary = batch(Vanilla(), [{"query": "same"}] * 3, tmp_path, lm, fields={"query": "query"}, optional=())
    assert summary.done == 3 and len({r["id"] for r in results(tmp_path)}) == 3


def test_failures_are_recorded_and_retried(scripted, tmp_path):
    attempts = {}

    def flaky(call):
        attempts[call.inputs["query"]] = attempts.get(call.inputs["query"], 0) + 1
        if call.inputs["query"].endswith(("1", "3")) and attempts[call.inputs["query"]] == 1:
            raise RuntimeError("model fell over")
        return {"response": "ok"}

    engine, lm = scripted({"direct_responder": flaky})
    summary = batch(Vanilla(), rows(5), tmp_path, lm)
    assert (summary.done, summary.failed, summary.pending) == (3, 2, 2)
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["index"] for f in failures) == [1, 3]
    assert "model fell over" in failures[0]["error"]
    summary = batch(Vanilla(), rows(5), tmp_path, lm)
    assert (summary.already_done, summary.done, summary.failed, summary.pending) == (3, 2, 0, 0)
    assert sorted(r["index"] for r in results(tmp_path)) == [0, 1, 2, 3, 4]


def test_max_errors_stops_early(scripted, tmp_path):
    def broken(call):
        raise RuntimeError("down")

    engine, lm = scripted({"direct_responder": broken})
    summary = batch(Vanilla(), rows(40), tmp_path, lm, threads=1, max_errors=3)
    assert summary.stopped_early and summary.failed == 3 and summary.pending == 40


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"goal": "x"}, "row 3: field 'query' must be a non-empty string, got None"),
        ({"query": 17}, "row 3: field 'query' must be a non-empty string, got 17"),
        ({"query": "   "}, "row 3: field 'query' must be a non-empty string"),
    ],
)
def test_bad_rows_stop_before_any_call_or_are_skipped(scripted, tmp_path, bad, message):
    data = rows(4)
    data[2] = bad
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    engine, lm = scripted()
    with pytest.raises(RowError) as error:
        batch(Vanilla(), path, tmp_path / "a", lm)
    assert message in str(error.value) and engine.calls == []
    summary = batch(Vanilla(), path, tmp_path / "b", lm, skip_bad_rows=True)
    assert (summary.done, summary.bad_rows) == (3, 1)
    failure = json.loads((tmp_path / "b" / "failures.jsonl").read_text())
    assert failure["index"] == 2 and message in failure["error"]


def test_mixed_types_in_python_rows_name_row_and_field(scripted, tmp_path):
    engine, lm = scripted()
    with pytest.raises(RowError, match="row 2: field 'query' is a int where earlier rows hold a str: 5"):
        batch(Vanilla(), [{"query": "a"}, {"query": 5}], tmp_path, lm, fields={"query": "query"}, optional=())


def test_id_field_must_be_unique(scripted, tmp_path):
    engine, lm = scripted()
    data = [{"id": "a", "query": "x"}, {"id": "a", "query": "y"}]
    with pytest.raises(RowError, match="row 2: field 'id' repeats the id 'a'"):
        batch(Vanilla(), data, tmp_path, lm, fields={"query": "query"}, optional=(), id_field="id")


def test_torn_last_line_is_cut_and_redone(scripted, tmp_path):
    engine, lm = scripted()
    batch(Vanilla(), rows(4), tmp_path, lm)
    text = (tmp_path / RESULTS).read_text()
    torn = text[: len(text) - len(text.splitlines()[-1]) // 2 - 1]  # half of the last line, no newline
    (tmp_path / RESULTS).write_text(torn)
    summary = batch(Vanilla(), rows(4), tmp_path, lm)
    assert (summary.already_done, summary.done) == (3, 1)
    records = results(tmp_path)
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]


def test_injected_faults_end_done_or_failed_then_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    faults = {"500": 0.1, "429": 0.1, "timeout": 0.05, "malformed": 0.05}
    data = rows(24, prefix=f"faulty {tmp_path.name}")
    with FakeOpenAIServer(latency=0.005, critic_scores=(2, 5), faults=faults, timeout_delay=1.5, seed=3) as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.url, cache=False, num_retries=1, timeout=0.5)
        first = batch(SPRI(), data, tmp_path, lm, threads=6)
        assert server.counts["fault:500"] and server.counts["fault:malformed"] and server.counts["fault:timeout"]
        port = int(server.url.split(":")[2].split("/")[0])
    assert first.done + first.failed == 24 and first.failed > 0
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == first.failed and all(f["error"] for f in failures)
    # The same endpoint, restarted without faults (another endpoint would be another run).
    with FakeOpenAIServer(latency=0.005, critic_scores=(2, 5), port=port) as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.url, cache=False)
        second = batch(SPRI(), data, tmp_path, lm, threads=6)
    assert (second.already_done, second.done, second.failed) == (first.done, first.failed, 0)
    assert sorted(r["index"] for r in results(tmp_path)) == list(range(24))


def test_dspy_cache_makes_no_calls_for_finished_work(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    data = rows(5, prefix=f"cached {uuid.uuid4()}")
    with FakeOpenAIServer(critic_scores=(2, 5)) as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.url, cache=True)
        first = batch(SPRI(), data, tmp_path / "a", lm)
        requests = server.counts["requests"]
        second = batch(SPRI(), data, tmp_path / "b", lm)
        assert server.counts["requests"] == requests
    assert first.lm_calls == 40 and second.lm_calls == 0 and second.done == 5
    assert first.lm_calls_needed == second.lm_calls_needed == 40  # the work needed does not read zero when cached
    assert {r["lm_calls"] for r in results(tmp_path / "b")} == {8} and {r["lm_calls_made"] for r in results(tmp_path / "b")} == {0}
    def outputs(folder):
        return [r["output"] for r in sorted(results(folder), key=lambda r: r["index"])]

    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def generate_command(tmp_path, n, text, url, threads):
    """A ``spri generate`` run of ``n`` id'd inputs against the fake server ``url``: (command, env, output)."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "query": f"{text} {i}"}) + "\n" for i in range(n)))
    output = tmp_path / "out"
    env = {**os.environ, "OPENAI_API_KEY": "unused", "DSPY_CACHEDIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "spri_dspy.cli", "generate", str(source), str(output), "--id-field", "id",
               "--lm", "openai/gpt-4o-mini", "--api-base", url, "--threads", str(threads), "--no-progress",
               "--no-cache"]
    return command, env, output


def test_kill_minus_9_at_several_points_ends_exactly_once(tmp_path):
    started = time.perf_counter()
    n = 24
    with FakeOpenAIServer(latency=0.01, critic_scores=(2, 5)) as server:
        command, env, output = generate_command(tmp_path, n, f"kill test {tmp_path.name}", server.url, threads=4)
        for kill_after in (0, 4, 11):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                done = (output / RESULTS).read_bytes().count(b"\n") if (output / RESULTS).exists() else 0
                if done >= kill_after:
                    break
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = (output / RESULTS).read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))  # no loss, no duplicates, no torn lines
    print(f"kill -9 test: {time.perf_counter() - started:.1f} s")


def test_a_second_process_on_the_same_output_is_refused_and_rows_stay_unique(tmp_path):
    """Two `spri generate` on one OUTPUT started together: one runs, the other is refused at start
    (before any LM call); the results hold each id once. A third run after both resumes normally."""
    n = 8  # 64 calls of 0.25 s on 2 threads: the first run lasts about 8 s, longer than the second's start-up
    with FakeOpenAIServer(latency=0.25, critic_scores=(2, 5)) as server:
        command, env, output = generate_command(tmp_path, n, "two writers", server.url, threads=2)
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (output / ".lock").exists() or not (output / ".lock").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert first.poll() is None  # the refusal came while the first run was still writing
        assert first.wait(timeout=120) == 0, first.stderr.read()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert second.stderr == (f"spri: error: {output} is being written by another spri process (pid {first.pid}); "
                             "wait for it to finish or use another OUTPUT folder\n")
    ids = [json.loads(line)["id"] for line in (output / RESULTS).read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))
    assert rerun.returncode == 0 and f"0 done, 0 failed, {n} already done" in rerun.stdout


def test_the_folder_lock_is_released_after_a_run(scripted, tmp_path):
    from spri_dspy.runtime.batch import OutputBusyError, _lock_folder

    engine, lm = scripted({"principle_critic": lambda call: {"feedback": "f", "score": 5},
                           "response_critic": lambda call: {"feedback": "f", "score": 5}})
    with pytest.raises(RowError):
        batch(SPRI(), [{"query": ""}], tmp_path / "out", lm)
    assert not (tmp_path / "out").exists()  # bad rows are found before OUTPUT is made
    batch(SPRI(), rows(1), tmp_path / "out", lm)
    held = _lock_folder(tmp_path / "out")  # free again after the run
    with pytest.raises(OutputBusyError):
        batch(SPRI(), rows(1), tmp_path / "out", lm)
    os.close(held)
    assert batch(SPRI(), rows(1), tmp_path / "out", lm).already_done == 1  # and free after the refused one
    os.close(_lock_folder(tmp_path / "out"))  # and after a finished run


def test_usage_is_counted_under_the_stage_each_step_declares(tmp_path, scripted):
    """By stage means the stage a step belongs to, not what its name starts with."""
    from spri_dspy.core.steps import Step

    class Helper(dspy.Module):
        def __init__(self):
            super().__init__()
            self.polish = Step(dspy.Signature("query -> response"), {"response": "response"}, stage="response",
                               kind="refiner")

        def forward(self, query, goal=None):
            return self.polish(query=query)

    _, lm = scripted({}, step_signatures={"polish": dspy.Signature("query -> response")})
    summary = batch(Helper(), rows(2), tmp_path, lm=lm, threads=1)
    assert summary.done == 2
    assert summary.by_step == {"polish": {"scripted/base": {"calls": 2, "calls_needed": 2,
                                                             "prompt_tokens": summary.prompt_tokens,
                                                             "completion_tokens": summary.completion_tokens}}}
    assert list(summary.by_stage) == ["response"] and summary.by_stage["response"]["calls"] == 2


def test_an_id_column_is_used_and_other_columns_carried_through(scripted, tmp_path):
    """Users join results back to their data by these; they used to get hash ids and lose every other column."""
    import pyarrow.parquet as pq

    _, lm = scripted({})
    table = [{"id": f"row-{i}", "query": f"q{i}", "category": i % 2, "tags": ["a", str(i)], "index": 100 + i}
             for i in range(3)]
    batch(Vanilla(), table, tmp_path / "kept", lm, threads=1, fields={"query": "query"}, optional=())
    records = sorted(results(tmp_path / "kept"), key=lambda r: r["id"])
    assert [r["id"] for r in records] == ["row-0", "row-1", "row-2"]
    assert records[1]["columns"] == {"category": 1, "tags": ["a", "1"], "index": 101}
    assert records[1]["input"] == {"query": "q1"} and records[1]["index"] == 1
    parquet = pq.read_table(tmp_path / "kept" / "results.parquet")
    assert str(parquet.schema.field("category").type) == "int64"
    assert parquet.column("tags").to_pylist()[0] in (["a", "0"], ["a", "1"], ["a", "2"])
    assert sorted(parquet.column("columns.index").to_pylist()) == [100, 101, 102]  # clashes with ours: prefixed
    assert sorted(parquet.column("category").to_pylist()) == [0, 0, 1]

    batch(Vanilla(), table, tmp_path / "dropped", lm, threads=1, fields={"query": "query"}, optional=(),
          keep_columns=False, hash_ids=True)
    dropped = results(tmp_path / "dropped")
    assert all("columns" not in r for r in dropped)
    assert sorted(r["id"] for r in dropped) == sorted(input_id({"query": f"q{i}"}) for i in range(3))
    with pytest.raises(RowError, match="the id column 'key' is not in the input"):
        batch(Vanilla(), table, tmp_path / "bad", lm, fields={"query": "query"}, optional=(), id_field="key")


def test_a_batch_with_its_critic_on_an_engine_lm_runs_and_records_both_models(tmp_path):
    """The run's identity hashes the program's state without its step LMs: with a critic from openai_lm (what the
    CLI builds for --critic-lm openai/...) hashing the state used to raise before the first input."""
    from spri_dspy import openai_lm

    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "one"}\n{"query": "two"}\n')
    with FakeOpenAIServer(critic_scores=(2, 5)) as server:
        program = SPRI(critic_lm=openai_lm("openai/critic", server.url))
        with dspy.context(lm=openai_lm("openai/base", server.url)):
            summary = run_batch(program, source, tmp_path / "out", fields={"query": "query"}, progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    assert summary.by_model["openai/critic"]["calls"] == 8 and summary.by_model["openai/base"]["calls"] == 8
    models = json.loads((tmp_path / "out" / "run.json").read_text())["models"]
    assert models["lm"]["model"] == "openai/base" and models["principle_critic"]["model"] == "openai/critic"


@pytest.mark.parametrize("failing_call, fatal", [(1, True), (5, False)])
def test_no_connection_ends_the_run_only_before_any_call_reached_the_model(scripted, tmp_path, failing_call, fatal):
    """A refused connection on the run's first call ends the run (every input pending); once a call has
    reached the model, the same error is one input's failure and the others go on."""
    from dspy.utils.exceptions import LMTransportError

    from spri_dspy.runtime.lms import EndpointError

    count = iter(range(1, 1000))

    def generator(call):
        if next(count) == failing_call:
            raise LMTransportError("[scripted/base] failed to connect to 127.0.0.1:9: [Errno 111] Connection refused",
                                   model="scripted/base")
        return {"principles": "p"}

    engine, lm = scripted({"principle_generator": generator})
    lm = lm.copy(num_retries=0)
    if fatal:
        with pytest.raises(EndpointError, match="could not be reached for scripted/base"):
            batch(SPRI(), rows(6), tmp_path, lm, threads=1)
        assert results(tmp_path) == [] and (tmp_path / "failures.jsonl").read_text() == ""
    else:
        summary = batch(SPRI(), rows(6), tmp_path, lm, threads=1)
        assert (summary.done, summary.failed) == (5, 1)


def test_every_bad_row_is_listed_before_output_is_made_and_skipped_ones_are_not_pending(scripted, tmp_path):
    from spri_dspy.runtime.batch import BAD_ROWS_LISTED

    engine, lm = scripted()
    data = [{"query": "fine"}] + [{"query": ""} for _ in range(BAD_ROWS_LISTED + 2)] + [{"goal": "no query"}]
    with pytest.raises(RowError) as error:
        batch(Vanilla(), data, tmp_path / "out", lm)
    message = str(error.value)
    assert message.startswith(f"{BAD_ROWS_LISTED + 3} bad rows (--skip-bad-rows records them as failed")
    assert "row 2: field 'query'" in message and f"row {BAD_ROWS_LISTED + 1}: " in message
    assert f"row {BAD_ROWS_LISTED + 2}: " not in message and message.endswith("; and 3 more")
    assert not (tmp_path / "out").exists() and engine.calls == []
    summary = batch(Vanilla(), data, tmp_path / "out", lm, skip_bad_rows=True)
    assert (summary.done, summary.bad_rows, summary.pending) == (1, BAD_ROWS_LISTED + 3, 0)


# --- Guards: each test fails when its one line is changed (the mutants of issue 27) --------------------------------


@pytest.mark.parametrize("change, difference", [
    ("fields", "fields.goal"),
    ("state", "state_sha256"),
    ("model", "models.lm.model"),
])
def test_a_different_run_is_refused_naming_what_differs(scripted, tmp_path, change, difference):
    """run.json compares the field mapping, the compiled state and the models, each on its own."""
    engine, lm = scripted({"direct_responder": lambda call: {"response": "r"}})
    data = [{"query": "q", "goal": "g", "aim": "a"}]
    batch(Vanilla(), data, tmp_path, lm, fields={"query": "query", "goal": "goal"})
    program, fields = Vanilla(), {"query": "query", "goal": "goal"}
    if change == "fields":
        fields = {"query": "query", "goal": "aim"}
    elif change == "state":
        program.responder.predict.signature = program.responder.predict.signature.with_instructions("Other.")
    else:
        _, lm = scripted({}, model="scripted/another")
    with pytest.raises(RunMismatchError, match=difference):
        batch(program, data, tmp_path, lm, fields=fields)


def test_a_run_with_another_prompt_layout_is_refused_and_one_recorded_before_the_adapter_key_resumes(scripted, tmp_path):
    """The adapter is part of run.json: the same program with the instruction last writes other prompts, so its
    texts must not join a folder written with the instruction first. A run.json from before the key resumes."""
    from spri_dspy import CompactJSONAdapter

    engine, lm = scripted({"direct_responder": lambda call: {"response": "r"}})
    with dspy.context(adapter=CompactJSONAdapter()):
        batch(Vanilla(), rows(2), tmp_path, lm)
    recorded = json.loads((tmp_path / "run.json").read_text())
    assert recorded["adapter"] == {"class": "CompactJSONAdapter", "instruction": "first"}
    with dspy.context(adapter=CompactJSONAdapter(instruction="last")):
        with pytest.raises(RunMismatchError, match=r'adapter.instruction: "first" -> "last"'):
            batch(Vanilla(), rows(3), tmp_path, lm)
    with pytest.raises(RunMismatchError, match="adapter: "):
        batch(Vanilla(), rows(3), tmp_path, lm)  # no adapter configured: each step's default, another format
    del recorded["adapter"]  # as written before the adapter was recorded
    (tmp_path / "run.json").write_text(json.dumps(recorded))
    with dspy.context(adapter=CompactJSONAdapter()):
        summary = batch(Vanilla(), rows(3), tmp_path, lm)
    assert (summary.done, len(results(tmp_path))) == (1, 3)


@pytest.mark.parametrize(("adapter", "name"), [
    ({"class": "CompactJSONAdapter", "instruction": "first"}, "compact"),
    ({"class": "CompactJSONAdapter", "instruction": "last"}, "compact-last"),
    ({"class": "ChatAdapter"}, "chat"), ({"class": "JSONAdapter"}, "json"),
    (None, None), ({"class": "MyAdapter"}, None),
])
def test_recorded_adapter_names_the_format_run_json_records(tmp_path, adapter, name):
    from spri_dspy.runtime.batch import recorded_adapter

    (tmp_path / "run.json").write_text(json.dumps({"models": {"lm": {"model": "openai/m"}}, "adapter": adapter}))
    assert recorded_adapter(tmp_path) == name


def test_recorded_adapter_of_a_run_json_from_before_the_key_is_the_embedded_default_of_then(tmp_path):
    """Before run.json recorded the format, the embedded model's default was the instruction last."""
    from spri_dspy.runtime.batch import recorded_adapter

    assert recorded_adapter(tmp_path) is None  # no run.json: a new run
    (tmp_path / "run.json").write_text(json.dumps({"models": {"lm": {"model": "embedded/smollm2-135m-instruct"}}}))
    assert recorded_adapter(tmp_path) == "compact-last"
    (tmp_path / "run.json").write_text(json.dumps({"models": {"lm": {"model": "openai/m"}}}))
    assert recorded_adapter(tmp_path) is None
    (tmp_path / "run.json").write_text("{not json")
    assert recorded_adapter(tmp_path) is None


def test_restart_moves_every_file_of_the_old_run_aside(scripted, tmp_path):
    def broken(call):
        raise ValueError("the old run's failure")

    engine, lm = scripted({"direct_responder": broken})
    batch(Vanilla(), rows(2), tmp_path, lm, threads=1)
    assert (tmp_path / FAILURES).read_text()
    engine, lm = scripted({"direct_responder": lambda call: {"response": "r"}}, model="scripted/new")
    summary = batch(Vanilla(), rows(2), tmp_path, lm, restart=True)
    assert summary.done == 2 and (tmp_path / FAILURES).read_text() == ""
    assert "the old run's failure" in (tmp_path / "previous-1" / FAILURES).read_text()
    assert {p.name for p in (tmp_path / "previous-1").iterdir()} >= {RESULTS, FAILURES, "run.json", "summary.json"}


def test_the_store_writes_an_id_once(tmp_path):
    from spri_dspy.runtime.batch import ResultStore

    store = ResultStore(tmp_path)
    assert store.add({"id": "a", "output": 1}) is True
    assert store.add({"id": "a", "output": 2}) is False  # e.g. a Ray task retried after it had returned
    store.close()
    store.unlock()
    assert [json.loads(line)["output"] for line in (tmp_path / RESULTS).read_text().splitlines()] == [1]


def test_read_output_drops_a_failure_that_later_got_a_result(tmp_path):
    from spri_dspy.runtime.batch import read_output

    (tmp_path / RESULTS).write_text(json.dumps({"id": "a", "output": {}}) + "\n")
    (tmp_path / FAILURES).write_text(json.dumps({"id": "a", "error": "e1"}) + "\n"
                                     + json.dumps({"id": "b", "error": "e2"}) + "\n")
    assert read_output(tmp_path).failures == {"b": "e2"}


def test_results_lines_are_redacted(scripted, tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_API_KEY", "sk-live-0123456789")
    engine, lm = scripted({"direct_responder": lambda call: {"response": "my key is sk-live-0123456789"}})
    batch(Vanilla(), rows(1), tmp_path, lm)
    text = (tmp_path / RESULTS).read_text()
    assert "sk-live-0123456789" not in text and "my key is ***" in text


def test_a_column_json_cannot_hold_is_left_out_not_written_as_a_repr(scripted, tmp_path):
    """A binary column (as an Image's bytes are) is named and left out; results.parquet is still written."""
    import datasets

    engine, lm = scripted({"direct_responder": lambda call: {"response": "r"}})
    table = datasets.Dataset.from_dict({"query": ["q0", "q1"], "pic": [b"\x89PNG\x00", b"\x89PNG\x01"],
                                        "note": ["n0", "n1"]})
    summary = batch(Vanilla(), table, tmp_path, lm)
    records = results(tmp_path)
    assert summary.done == 2 and summary.info["columns_left_out"] == ["pic"]
    assert all(set(r["columns"]) == {"note"} for r in records) and "PNG" not in (tmp_path / RESULTS).read_text()
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "results.parquet").column("note").to_pylist() == ["n0", "n1"]


def test_the_bar_counts_lm_calls_as_they_end(scripted, tmp_path, monkeypatch):
    """An input of 8 calls moves the bar's LM-call count 8 times before it finishes (a slow model shows life)."""
    import spri_dspy.runtime.batch as batch_module

    seen = []

    class Bar:
        n = 0

        def set_postfix(self, **postfix):
            seen.append((postfix["lm_calls"], postfix["done"]))

        def update(self, n=1):
            pass

        def close(self):
            pass

    monkeypatch.setattr(batch_module, "_progress", lambda total, enabled: Bar())
    two_rounds = lambda: iter([{"feedback": "f", "score": 2}, {"feedback": "f", "score": 5}])  # noqa: E731
    engine, lm = scripted({"principle_critic": two_rounds(), "response_critic": two_rounds()})
    batch(SPRI(), rows(1), tmp_path, lm, progress=True)
    assert [count for count, done in seen if done == 0] == list(range(1, 9))  # live, while the input runs
    assert seen[-1] == (8, 1)
