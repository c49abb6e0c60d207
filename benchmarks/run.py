"""Batch-run benchmarks against a local fake OpenAI-compatible server (its own process), as users run them.

    python benchmarks/run.py            # P1, P4, P5 and P6 (about 20 minutes on 2 cores)
    python benchmarks/run.py --only p6  # P6 needs Ray: pip install -e ".[ray]"

Every run names a model no catalogue knows (``openai/m``, as vLLM users have), through the
LM that ``spri`` builds for ``openai/`` models (``spri_dspy.openai_lm``).

P1: ``spri generate`` (a subprocess, as users run it) over 400 inputs, 200 ms per LM call, 16
    threads. Prints its wall time (run_batch's own, from summary.json) over the lower bound
    max(K*L/C, D*L) (K calls, L latency, C threads, D the longest chain of one input), the same
    ratio for the LM client alone (the same number of plain calls), and the speed-up over one
    call at a time (all measured in the same run).
P4: peak RSS of a batch over 1,000 and 10,000 inputs at zero latency, each in a fresh
    process, and their ratio (memory must not grow with the number of inputs).
P5: ``spri generate`` at 1000 ms per LM call with 64, 256 and 1024 threads (calls in flight):
    LM calls per second over the steady middle of the run (read from the server), as a share of
    the ideal threads / latency, with the client's CPU time per call and its peak RSS.
P6: the same batch (1000 ms per LM call, 64, 256 and 1024 calls in flight) through ``spri generate`` in one
    process and through ``spri generate --ray ADDRESS --actors 2`` on a two-node Ray cluster started here
    (a head and a second node, one CPU each): wall-time ratio, steady calls/s of each, and the rows lost or
    written twice (ids missing from results.jsonl, lines beyond one per id).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "openai/m"  # a name no catalogue knows, as a vLLM deployment's are
BASE_URL_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
SPRI = [sys.executable, "-m", "spri_dspy.cli"]


def batch(url: str, n: int, threads: int, scores: str, output: str) -> dict:
    """One batch run of SPRI in this process; returns its figures.

    The clock starts in a warm process, as a long ``spri generate`` run is after its first seconds:
    the libraries are imported and a one-input batch (into a scratch folder) has loaded the rest
    (DSPy's model catalogue, its adapter). That start-up time is reported separately.
    """
    started = time.perf_counter()
    import datasets  # noqa: F401  (what run_batch reads tables with)
    import dspy
    import pyarrow.parquet  # noqa: F401  (what run_batch exports with)

    from spri_dspy import SPRI
    from spri_dspy.runtime.batch import run_batch

    from spri_dspy import openai_lm

    os.environ.setdefault("OPENAI_API_KEY", "unused")
    lm = openai_lm(MODEL, url, cache=False)
    rows = [{"query": f"benchmark question {i}"} for i in range(n)]
    with dspy.context(lm=lm):
        run_batch(SPRI(), [{"query": "warm-up"}], os.path.join(output, "warm-up"), fields={"query": "query"},
                  progress=False)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        summary = run_batch(SPRI(), rows, output, fields={"query": "query"}, threads=threads, progress=False)
        wall = time.perf_counter() - started
    with open(os.path.join(output, "results.jsonl")) as handle:
        chains = [json.loads(line)["lm_calls"] for line in handle]
    return {"n": n, "done": summary.done, "failed": summary.failed, "calls": summary.lm_calls, "wall": wall,
            "startup": startup,
            "longest_chain": max(chains), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bare_calls(url: str, n: int, threads: int) -> dict:
    """``n`` plain LM calls (no program, no adapter), ``n / threads`` one after another on each of
    ``threads`` threads of DSPy's ParallelExecutor: what DSPy's LM client alone costs."""
    import dspy
    from spri_dspy.compat import ParallelExecutor

    from spri_dspy import openai_lm

    os.environ.setdefault("OPENAI_API_KEY", "unused")
    lm = openai_lm(MODEL, url, cache=False)
    executor = ParallelExecutor(num_threads=threads, disable_progress_bar=True, timeout=0)
    with dspy.context(lm=lm, disable_history=True):
        executor.execute(lambda lane: lm(f"warm-up {lane}"), range(threads))
        started = time.perf_counter()
        executor.execute(lambda lane: [lm(f"call {lane}.{i}") for i in range(lane, n, threads)], range(threads))
        wall = time.perf_counter() - started
    return {"n": n, "calls": n, "wall": wall}


def child(url: str, n: int, threads: int, scores: str, bare: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as output:
        command = [sys.executable, __file__, "--child", url, "--n", str(n), "--threads", str(threads),
                   "--scores", scores, "--output", output] + (["--bare"] if bare else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


CLI_CHILD = """
import json, resource, sys
from spri_dspy.cli import main
code = main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}),
      file=sys.stderr)
"""


def cli_generate(url: str, n: int, threads: int, *extra: str, variables: dict[str, str] | None = None) -> dict:
    """``spri generate`` over ``n`` inputs in a fresh process (``extra``: more flags; ``variables``: set in its
    environment, the base-URL variables being unset otherwise): summary.json's figures, the process's wall
    time, CPU time and peak RSS, and the ids lost or written twice."""
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "in.jsonl")
        with open(data, "w") as handle:
            handle.writelines(json.dumps({"query": f"benchmark question {i}"}) + "\n" for i in range(n))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CLI_CHILD, "generate", data, os.path.join(folder, "out"), "--lm",
                               MODEL, "--api-base", url, "--threads", str(threads), "--no-progress", "--no-cache",
                               *extra],
                              capture_output=True, text=True,
                              env={**{k: v for k, v in os.environ.items() if k not in BASE_URL_VARIABLES},
                                   "OPENAI_API_KEY": "unused", **(variables or {})})
        process_wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"spri generate failed: {done.stderr[-800:]}")
        with open(os.path.join(folder, "out", "summary.json")) as handle:
            summary = json.load(handle)
        with open(os.path.join(folder, "out", "results.jsonl")) as handle:
            records = [json.loads(line) for line in handle]
    chains, ids = [record["lm_calls"] for record in records], {record["id"] for record in records}
    figures = json.loads(done.stderr.strip().splitlines()[-1])
    return {"n": n, "done": summary["done"], "failed": summary["failed"], "calls": summary["lm_calls"],
            "wall": summary["seconds"], "process_wall": process_wall, "longest_chain": max(chains),
            "lost": n - len(ids), "twice": len(records) - len(ids), **figures}


def p1(repeat: int) -> None:
    from spri_dspy.testing.server import spawn

    latency, threads, n, scores = 0.2, 16, 400, "2,5"
    server, url = spawn(latency=latency, critic_scores=[int(s) for s in scores.split(",")])
    try:
        runs, bare, with_variables = [], [], []
        for _ in range(repeat):  # alternated, so a noisy stretch of a shared machine touches all alike
            runs.append(cli_generate(url, n, threads))
            bare.append(child(url, runs[0]["calls"], threads, scores, bare=True))
            with_variables.append(cli_generate(url, n, threads, variables={name: url for name in BASE_URL_VARIABLES}))
        sequential = cli_generate(url, 20, 1)
    finally:
        server.kill()
    k, d = runs[0]["calls"], max(run["longest_chain"] for run in runs)
    bound = max(k * latency / threads, d * latency)
    ratios = sorted(run["wall"] / bound for run in runs)
    bare_ratios = sorted(run["wall"] / (k * latency / threads) for run in bare)
    wall = statistics.median(run["wall"] for run in runs)
    print(f"P1  spri generate --lm {MODEL}: {n} inputs, {k} LM calls (longest chain {d}), latency "
          f"{latency * 1000:.0f} ms, {threads} threads, {repeat} runs")
    print(f"    wall {wall:.2f} s (median, run_batch's own), lower bound max(K*L/C, D*L) = {bound:.2f} s, "
          f"ratio {statistics.median(ratios):.3f} (median; runs {', '.join(f'{r:.3f}' for r in ratios)}; "
          "target <= 1.10)")
    variable_ratios = sorted(run["wall"] / bound for run in with_variables)
    print(f"    the same with OPENAI_BASE_URL and OPENAI_API_BASE set to the same URL: ratio "
          f"{statistics.median(variable_ratios):.3f} (median; runs {', '.join(f'{r:.3f}' for r in variable_ratios)}); "
          f"client CPU {statistics.median(r['cpu'] / r['calls'] * 1000 for r in with_variables):.2f} ms per LM call")
    print(f"    reference, the LM client alone: the same {k} calls as plain calls, {k // threads} "
          f"one after another on each of {threads} threads: ratio {statistics.median(bare_ratios):.3f} "
          f"(median; runs {', '.join(f'{r:.3f}' for r in bare_ratios)})")
    per_input_one = sequential["wall"] / sequential["n"]
    print(f"    one call at a time ({sequential['n']} inputs, --threads 1): {per_input_one:.2f} s per input against "
          f"{wall / n:.3f} s per input at {threads} threads: speed-up {per_input_one * n / wall:.1f}x (ideal {threads}x)")
    print(f"    done {runs[0]['done']}, failed {sum(run['failed'] for run in runs)}; the whole process (start-up, "
          f"imports, writing Parquet): {statistics.median(run['process_wall'] for run in runs):.1f} s; client CPU "
          f"{statistics.median(run['cpu'] / run['calls'] * 1000 for run in runs):.2f} ms per LM call")


def steady_run(url: str, n: int, threads: int, *extra: str) -> tuple[dict, float]:
    """:func:`cli_generate` while sampling the server's request counter once a second: its figures and the
    calls/s over the steady middle of the run (past the ramp-up, before the tail)."""
    import threading
    import urllib.request

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.processes import ray_actor_processes  # tests/helpers: test infrastructure

    stats = url.removesuffix("/v1") + "/v1/stats"

    def requests() -> int:
        with urllib.request.urlopen(stats, timeout=10) as response:
            return json.load(response).get("requests", 0)

    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(cli_generate(url, n, threads, *extra)))
    runner.start()
    samples, actors = [], {}
    while runner.is_alive():
        samples.append((time.perf_counter(), requests()))
        actors.update({actor.pid: (actor.cpu_seconds, actor.peak_rss_mb) for actor in ray_actor_processes()})
        time.sleep(1.0)
    runner.join()
    if not result:
        raise SystemExit("spri generate failed (see above)")
    result["actors"] = len(actors)
    result["actor_cpu"] = sum(cpu for cpu, _ in actors.values())  # as last sampled, up to a second short
    result["actor_peak_rss_mb"] = max((rss for _, rss in actors.values()), default=0)
    start = next(i for i, (_, count) in enumerate(samples) if count > samples[0][1])  # calls have begun
    steady = samples[start + 4: max(start + 5, len(samples) - 6)]
    return result, (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])


LEVELS = (64, 256, 1024)
"""The calls in flight P5 and P6 run at (``--levels``)."""


def p5(levels: tuple[int, ...] = LEVELS) -> None:
    """Calls per second at 1000 ms latency with many calls in flight, read from the server's counter over the
    steady middle of each run."""
    from spri_dspy.testing.server import spawn

    latency = 1.0
    server, url = spawn(latency=latency, critic_scores=[5])
    try:
        print(f"P5  spri generate --lm {MODEL}, latency {latency * 1000:.0f} ms, 4 LM calls per input")
        for threads in levels:
            n = max(200, threads * 6)  # about 24 s of calls at the ideal rate
            result, rate = steady_run(url, n, threads)
            ideal = threads / latency
            print(f"    {threads:>4} in flight: {rate:6.1f} calls/s steady ({rate / ideal:.0%} of ideal {ideal:.0f}); "
                  f"whole run {result['calls'] / result['wall']:.1f} calls/s; client CPU "
                  f"{result['cpu'] / result['calls'] * 1000:.2f} ms per call ({result['cpu'] / result['wall']:.0%} of "
                  f"one core); peak RSS {result['peak_rss_mb']:.0f} MB; done {result['done']}, failed {result['failed']}")
    finally:
        server.kill()


def p6(levels: tuple[int, ...] = LEVELS) -> None:
    """One process against two Ray actors on a two-node cluster started here, at the same calls in flight."""
    from ray.cluster_utils import Cluster

    from spri_dspy.testing.server import spawn

    latency = 1.0
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    server, url = spawn(latency=latency, critic_scores=[5])
    try:
        print(f"P6  spri generate --lm {MODEL}, latency {latency * 1000:.0f} ms, 4 LM calls per input: one process "
              f"against --ray on two nodes (--actors 2, one CPU each), the same --threads")
        for threads in levels:
            n = threads * 6
            local, local_rate = steady_run(url, n, threads)
            ray, ray_rate = steady_run(url, n, threads, "--ray", cluster.address, "--actors", "2")
            print(f"    {threads:>4} in flight, {n} inputs: one process {local['wall']:.1f} s ({local_rate:.1f} calls/s "
                  f"steady), Ray {ray['wall']:.1f} s ({ray_rate:.1f} calls/s steady; start-up included in its wall "
                  f"time); Ray / one process = {ray['wall'] / local['wall']:.2f}")
            for name, run in (("one process", local), ("Ray", ray)):
                cpu = (run["cpu"] + run["actor_cpu"]) / run["calls"] * 1000
                actors = (f", each of its {run['actors']} actors at most {run['actor_peak_rss_mb']:.0f} MB"
                          if run["actors"] else "")
                print(f"         {name}: done {run['done']}, failed {run['failed']}, lost {run['lost']}, written twice "
                      f"{run['twice']}; client CPU {cpu:.2f} ms per call (driver{' and actors' if actors else ''}); "
                      f"peak RSS: the driver {run['peak_rss_mb']:.0f} MB{actors}")
    finally:
        server.kill()
        cluster.shutdown()


def p4() -> None:
    from spri_dspy.testing.server import spawn

    server, url = spawn(latency=0.0, critic_scores=[5])
    try:
        small, large = child(url, 1000, 16, "5"), child(url, 10000, 16, "5")
    finally:
        server.kill()
    print(f"P4  peak RSS: {small['peak_rss_mb']:.0f} MB for {small['n']} inputs ({small['wall']:.0f} s), "
          f"{large['peak_rss_mb']:.0f} MB for {large['n']} inputs ({large['wall']:.0f} s); "
          f"ratio {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} for 10x the inputs (target < 400 MB, flat)")
    print(f"    done {large['done']}, failed {large['failed']}, {large['calls']} LM calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("p1", "p4", "p5", "p6"))
    parser.add_argument("--repeat", type=int, default=3, help="P1 parallel runs, reported by their median")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)),
                        help="P5 and P6: the calls in flight to run at, comma-separated (default %(default)s)")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scores", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.bare:
        print(json.dumps(bare_calls(args.child, args.n, args.threads)))
        return
    if args.child:
        print(json.dumps(batch(args.child, args.n, args.threads, args.scores, args.output)))
        return
    if args.only in (None, "p1"):
        p1(args.repeat)
    if args.only in (None, "p4"):
        p4()
    levels = tuple(int(level) for level in args.levels.split(","))
    if args.only in (None, "p5"):
        p5(levels)
    if args.only in (None, "p6"):
        p6(levels)


if __name__ == "__main__":
    main()
