"""Batch-run benchmarks against a local fake OpenAI-compatible server, through DSPy's normal LM client.

    python benchmarks/run.py            # P1 and P4 (about 6 minutes on 2 cores)
    python benchmarks/run.py --only p1

P1: 200 inputs, 100 ms per LM call, 16 threads. Prints wall time over the lower bound
    max(K*L/C, D*L) (K calls, L latency, C threads, D the longest chain of one input),
    the same ratio for DSPy's LM client alone (the same number of plain calls), and the
    speed-up over issuing the same calls one at a time (all measured in the same run).
P4: peak RSS of a batch over 1,000 and 10,000 inputs at zero latency, each in a fresh
    process, and their ratio (memory must not grow with the number of inputs).
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

MODEL = "openai/gpt-4o-mini"  # any name works with the fake server; a catalogued one keeps DSPy's pricing lookup cheap


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
    from spri_dspy.batch import run_batch

    os.environ.setdefault("OPENAI_API_KEY", "unused")
    lm = dspy.LM(MODEL, api_base=url, cache=False)
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
    from dspy.utils.parallelizer import ParallelExecutor

    os.environ.setdefault("OPENAI_API_KEY", "unused")
    lm = dspy.LM(MODEL, api_base=url, cache=False)
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


def p1(repeat: int) -> None:
    from spri_dspy.testing.server import spawn

    latency, threads, n, scores = 0.1, 16, 200, "2,5"
    server, url = spawn(latency=latency, critic_scores=[int(s) for s in scores.split(",")])
    try:
        runs, bare = [], []
        for _ in range(repeat):  # alternated, so a noisy stretch of a shared machine touches both alike
            runs.append(child(url, n, threads, scores))
            bare.append(child(url, runs[0]["calls"], threads, scores, bare=True))
        sequential = child(url, n, 1, scores)
    finally:
        server.kill()
    k, d = runs[0]["calls"], max(run["longest_chain"] for run in runs)
    bound = max(k * latency / threads, d * latency)
    ratios = sorted(run["wall"] / bound for run in runs)
    bare_ratios = sorted(run["wall"] / (k * latency / threads) for run in bare)
    wall = statistics.median(run["wall"] for run in runs)
    print(f"P1  {n} inputs, {k} LM calls (longest chain {d}), latency {latency * 1000:.0f} ms, {threads} threads, "
          f"{repeat} runs")
    print(f"    wall {wall:.2f} s (median), lower bound max(K*L/C, D*L) = {bound:.2f} s, "
          f"ratio {statistics.median(ratios):.3f} (median; runs {', '.join(f'{r:.3f}' for r in ratios)}; "
          "target <= 1.10)")
    print(f"    reference, DSPy's LM client alone: the same {k} calls as plain dspy.LM calls, {k // threads} "
          f"one after another on each of {threads} threads: ratio {statistics.median(bare_ratios):.3f} "
          f"(median; runs {', '.join(f'{r:.3f}' for r in bare_ratios)})")
    print(f"    one call at a time: {sequential['wall']:.2f} s; speed-up {sequential['wall'] / wall:.1f}x "
          f"(ideal {threads}x); per-call overhead one at a time: "
          f"{(sequential['wall'] / sequential['calls'] - latency) * 1000:.1f} ms")
    print(f"    done {runs[0]['done']}, failed {sum(run['failed'] for run in runs)}; start-up before the clock "
          f"(imports, a one-input warm-up batch): {runs[0]['startup']:.1f} s")


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
    parser.add_argument("--only", choices=("p1", "p4"))
    parser.add_argument("--repeat", type=int, default=3, help="P1 parallel runs, reported by their median")
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


if __name__ == "__main__":
    main()
