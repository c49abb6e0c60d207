"""Batch runs on Ray: the actor alone (in this process), then whole runs on a two-node Ray cluster started on this
machine (marked ``ray``): the same OUTPUT as a local run, a killed actor, a killed driver, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import dspy
import pyarrow as pa
import pytest

import spri_dspy
from spri_dspy import LMSpec
from spri_dspy.runtime.batch import RESULTS, SUMMARY, run_batch
from spri_dspy.cli import main
from spri_dspy.runtime.distributed import ProgramActor, RayCluster, actor_payload
from spri_dspy.core.programs import _state_without_lms, program_settings
from spri_dspy.testing import FakeOpenAIServer
from helpers.processes import ray_actor_processes

SECRET = "sk-driver-only-0123456789abcdef"


def test_the_payload_holds_no_key_and_an_actor_rebuilt_from_it_runs_the_program(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAIServer(critic_scores=(2, 5)) as server:
        critic = spri_dspy.openai_lm("openai/critic", server.url, api_key=SECRET)
        program = spri_dspy.SPRI(threshold=4, max_rounds=3, critic_lm=critic)
        cluster = RayCluster(LMSpec("openai/base", api_base=server.url), LMSpec("openai/critic", api_base=server.url))
        payload = actor_payload(cluster, program, threads=3)
        assert SECRET not in json.dumps(payload)
        assert json.loads(json.dumps(payload)) == payload  # plain JSON data: nothing pickled

        actor = ProgramActor(payload)
        batch = pa.table({"index": [0, 1], "id": ["a", "b"],
                          "inputs": [json.dumps({"query": "first question"}), json.dumps({"query": "second"})]})
        out = actor(batch).to_pylist()
    assert sorted(row["outcome"] for row in out) == ["done", "done"]
    records = {json.loads(row["record"])["id"]: json.loads(row["record"]) for row in out}
    first = records["a"]
    assert first["index"] == 0 and first["input"] == {"query": "first question"}
    # Each stage: written, scored 2, refined, scored 5: six calls, the critiques on the critic model.
    assert [(r["stage"], r["round"], r["score"]) for r in first["output"]["trace"]] == [
        ("principles", 1, 2), ("principles", 2, 5), ("response", 1, 2), ("response", 2, 5)]
    assert first["output"]["response"] == "responder for: first question (refined)"
    assert first["lm_calls"] == first["lm_calls_made"] == 8
    usage = {(step, model): counter["calls"] for step, stage, model, counter in json.loads(out[0]["usage"])}
    assert usage == {("principle_generator", "openai/base"): 1, ("principle_critic", "openai/critic"): 2,
                     ("principle_refiner", "openai/base"): 1, ("responder", "openai/base"): 1,
                     ("response_critic", "openai/critic"): 2, ("response_refiner", "openai/base"): 1}


@pytest.mark.parametrize("kind, name", list(spri_dspy.PROGRAMS))
def test_every_program_reaches_its_actors_with_its_settings_state_and_critic(kind, name):
    seeds = [{"query": "q1", "principles": "p1", "goal": "g", "instruction": "i1", "rubric": "r1"}]
    critic = LMSpec("openai/critic", api_base="http://127.0.0.1:9/v1")
    program = spri_dspy.build_program(name, kind, seeds=seeds, threshold=3, max_rounds=2, keep="best",
                                      critic_lm=critic.build(), module="query -> response")
    program.predictors()[0].demos = [dspy.Example(query="a compiled demo", principles="its principles")]
    actor = ProgramActor(actor_payload(RayCluster(LMSpec("openai/base", api_base=critic.api_base), critic), program,
                                       threads=1))
    rebuilt = actor.program
    assert type(rebuilt) is type(program)
    assert program_settings(rebuilt) == program_settings(program)
    assert _state_without_lms(rebuilt) == _state_without_lms(program)
    critics = {path for path, predictor in rebuilt.named_predictors() if predictor.lm is not None}
    assert critics == {path for path, predictor in program.named_predictors() if predictor.lm is not None}
    assert all(predictor.lm.model == "openai/critic" for _, predictor in rebuilt.named_predictors() if predictor.lm)


def test_ray_flags_are_checked_before_any_work(capsys, tmp_path, monkeypatch):
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q"}\n')
    base = ["generate", str(source), str(tmp_path / "out"), "--lm", "openai/m", "--api-base", "http://127.0.0.1:9/v1"]
    assert main(base + ["--actors", "2"]) == 2
    assert capsys.readouterr().err == "spri: error: --actors sizes the pool of Ray actors; give --ray [ADDRESS] too\n"
    assert main(base + ["--ray", "--actors", "0"]) == 2
    assert capsys.readouterr().err == "spri: error: --actors must be at least 1, got 0\n"
    assert main(base + ["--ray", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.startswith("spri: error: --ray 127.0.0.1:1: no Ray cluster answers at 127.0.0.1:1")
    assert main(base + ["--ray", "nonsense"]) == 2
    assert capsys.readouterr().err == ("spri: error: --ray nonsense: 'nonsense' is not a Ray address: give auto, "
                                       "HOST:PORT or ray://HOST:PORT\n")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(base + ["--ray"]) == 2
    assert capsys.readouterr().err == "spri: error: --ray: Ray is not installed: pip install 'spri-dspy[ray]'\n"


# --- on a two-node Ray cluster ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray head and a second node on this machine, one CPU each: its address."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


def write_inputs(tmp_path, n, text="question"):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "query": f"{text} {i}", "topic": f"t{i % 3}"}) + "\n"
                              for i in range(n)))
    return source


def spri(*args, env_extra=None):
    """``spri ARGS`` as a command line and its environment."""
    env = {**os.environ, "OPENAI_API_KEY": "unused", **(env_extra or {})}
    return [sys.executable, "-m", "spri_dspy.cli", *map(str, args)], env


def ray_generate(tmp_path, n, text, url, address):
    """``spri generate`` of ``n`` inputs on two actors at ``address``, 8 calls in flight: (argv, env, OUTPUT)."""
    output = tmp_path / "out"
    argv, env = spri("generate", write_inputs(tmp_path, n, text), output, "--lm", "openai/m", "--api-base", url,
                     "--threads", "8", "--ray", address, "--actors", "2", "--no-progress", "--no-cache")
    return argv, env, output


def results(output):
    return [json.loads(line) for line in (output / RESULTS).read_text().splitlines()]


def wait_for_results(output, count, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if (output / RESULTS).exists() and (output / RESULTS).read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} results in {timeout} s (exit status {process.poll()})")


def actor_processes():
    """(pid, parent pid) of every Ray Data actor process (``ray::MapWorker(...)``) on this machine."""
    return [(actor.pid, actor.parent) for actor in ray_actor_processes()]


def no_actors_left(timeout=60):
    """Whether every actor process exits within ``timeout`` seconds (Ray ends them shortly after their job)."""
    deadline = time.monotonic() + timeout
    while actor_processes():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.ray
@pytest.mark.parametrize("command", ["generate", "judge"])
def test_a_run_on_two_nodes_writes_what_a_local_run_writes(two_nodes, tmp_path, command):
    source = tmp_path / "in.jsonl"
    if command == "generate":
        write_inputs(tmp_path, 30)
        fields = []
    else:
        source.write_text("".join(json.dumps({"id": f"r{i}", "instruction": f"task {i}", "response": f"answer {i}",
                                              "topic": "t"}) + "\n" for i in range(12)))
        fields = ["--instruction-field", "instruction", "--response-field", "response"]
    with FakeOpenAIServer(latency=0.02, critic_scores=(2, 5)) as server:
        runs = {}
        for name, extra in (("local", []), ("ray", ["--ray", two_nodes, "--actors", "2"])):
            output = tmp_path / name
            argv, env = spri(command, source, output, *fields, "--lm", "openai/m", "--critic-lm", "openai/c",
                             "--api-base", server.url, "--threads", "6", "--no-progress", "--no-cache", *extra)
            runs[name] = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
            assert runs[name].returncode == 0, runs[name].stderr[-3000:]
    assert runs["ray"].stderr == ""  # no Ray notices or progress bars of its own
    local, ray = tmp_path / "local", tmp_path / "ray"
    by_id = {record["id"]: record for record in results(local)}
    assert len(by_id) == (30 if command == "generate" else 12)
    assert {record["id"]: record for record in results(ray)} == by_id  # outputs, traces, columns, calls
    assert (ray / "run.json").read_text() == (local / "run.json").read_text()  # so either can resume the other
    summaries = [json.loads((folder / SUMMARY).read_text()) for folder in (local, ray)]
    for summary in summaries:
        summary.pop("seconds")
    assert summaries[0] == summaries[1]  # counts, calls and tokens per step, stage and model
    assert summaries[1]["by_model"]["openai/c"]["calls"] > 0
    assert runs["ray"].stdout.splitlines()[1:] == runs["local"].stdout.splitlines()[1:-1] + [
        runs["ray"].stdout.splitlines()[-1]]  # the same report, bar the wall time


@pytest.mark.ray
def test_an_actor_killed_mid_run_is_replaced_and_every_input_ends_with_one_result(two_nodes, tmp_path):
    n = 120
    with FakeOpenAIServer(latency=0.2, critic_scores=(2, 5)) as server:
        argv, env, output = ray_generate(tmp_path, n, "worker kill", server.url, two_nodes)
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_results(output, 10, process)
        actors = actor_processes()
        assert len({parent for _, parent in actors}) == 2  # one actor under each node's raylet
        victim = actors[0][0]
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert victim not in {pid for pid, _ in actor_processes()}
    ids = [record["id"] for record in results(output)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))  # none lost, none twice
    summary = json.loads((output / SUMMARY).read_text())
    assert (summary["done"], summary["failed"], summary["results"]) == (n, 0, n)
    assert no_actors_left()  # the pool ends with the run


@pytest.mark.ray
def test_a_driver_killed_with_sigkill_then_rerun_ends_with_exactly_one_result_per_input(two_nodes, tmp_path):
    n = 120
    with FakeOpenAIServer(latency=0.2, critic_scores=(2, 5)) as server:
        argv, env, output = ray_generate(tmp_path, n, "driver kill", server.url, two_nodes)
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_results(output, 10, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert no_actors_left()  # Ray ends a dead driver's actors
        written = (output / RESULTS).read_bytes().count(b"\n")  # whole lines: a torn last one is cut off
        rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ids = [record["id"] for record in results(output)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))
    summary = json.loads((output / SUMMARY).read_text())
    assert (summary["already_done"], summary["done"], summary["results"]) == (written, n - written, n)


@pytest.mark.ray
def test_run_batch_on_ray_stops_at_max_errors_and_a_cluster_too_small_is_named(two_nodes, tmp_path):
    source = write_inputs(tmp_path, 40, "failing")
    with FakeOpenAIServer(faults={"500": 1.0}) as server:
        cluster = RayCluster(LMSpec("openai/m", api_base=server.url), address=two_nodes, actors=2)
        summary = run_batch(spri_dspy.Vanilla(), source, tmp_path / "out", fields={"query": "query"}, threads=4,
                            max_errors=3, progress=False, ray=cluster)
        assert summary.stopped_early and summary.done == 0 and 3 <= summary.failed < 40
        failures = (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
        assert len(failures) == summary.failed and "injected server error" in json.loads(failures[0])["error"]
        assert not (tmp_path / "out" / RESULTS).read_text()

        too_many = RayCluster(LMSpec("openai/m", api_base=server.url), address=two_nodes, actors=3)
        from spri_dspy.runtime.distributed import ClusterError

        with pytest.raises(ClusterError, match="3 actors need 3 CPUs \\(one each\\); the cluster has 2"):
            run_batch(spri_dspy.Vanilla(), source, tmp_path / "out2", fields={"query": "query"}, progress=False,
                      ray=too_many)

