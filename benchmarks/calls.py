"""P9: the client's CPU per LM call, layer by layer, at zero latency; this tree against an earlier commit, side by side.

    python benchmarks/calls.py                 # against the commit before issue 31's changes (db5bf4b)
    python benchmarks/calls.py --before REV    # against another commit; --before none: this tree alone
    python benchmarks/calls.py --rounds 3      # alternated rounds, reported by their median (default 2)

Every figure is CPU time of the measuring process divided by the LM calls it made, against
``spri_dspy.testing.server`` in its own process (zero latency, critics accepting at once: 4 calls per input),
through ``spri_dspy.openai_lm("openai/m")`` as ``spri`` builds it, on 16 threads, with DSPy's cache off.
Each layer adds one thing to the one before it:

1. ``lm``: the bare ``dspy.LM`` call with the messages of SPRI's first step (DSPy's floor);
2. ``+ adapter``: ``dspy.Predict`` of that step's signature, through the adapter the programs use when none is
   configured (DSPy's ``ChatAdapter`` before issue 31, ``spri_dspy.ChatAdapter`` after);
3. ``+ program``: ``SPRI()(query=...)``, its steps, critique loops and usage counting;
4. ``+ runner``: ``run_batch`` (what ``spri generate`` runs): scheduling, records written, usage per input;
5. ``spri generate``: the command in its own process, after its start-up: (CPU of 600 inputs - CPU of 20
   inputs) / (their calls' difference); and the whole process's CPU over the calls of 600 inputs.

Each layer of each tree runs in a fresh process (``PYTHONPATH`` set to the tree, the same interpreter); the
trees alternate round by round, so the load of the machine weighs on both alike. The earlier commit is checked
out with ``git worktree`` into a temporary folder and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "db5bf4b"  # main before issue 31
sys.path.insert(0, str(ROOT / "benchmarks"))
import run  # noqa: E402  (benchmarks/run.py: cli_generate)
THREADS = 16
LAYERS = ("lm", "+ adapter", "+ program", "+ runner")

CHILD = r"""
import json, os, sys, tempfile, threading, time
os.environ["OPENAI_API_KEY"] = "unused"
import dspy
from spri_dspy import SPRI, openai_lm
from spri_dspy.runtime.batch import run_batch
layer, url, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lm = openai_lm("openai/m", url, cache=False)
dspy.configure(lm=lm)
program = SPRI()
step = program.principle_generator.predict
try:
    from spri_dspy.adapters import default_adapter  # after issue 31: the programs' own default
    adapter = default_adapter()
except ImportError:
    adapter = dspy.ChatAdapter()  # before: DSPy's, which Predict builds when none is configured
messages = adapter.format(step.signature, [], {"query": "benchmark question"})

def lanes(work, total):
    # ``total`` units of ``work(i)``, spread over ``threads`` threads; returns CPU seconds
    def lane(k):
        with dspy.context(disable_history=True, trace=None):
            for i in range(k, total, threads):
                work(i)
    lane_threads = [threading.Thread(target=lane, args=(k,)) for k in range(threads)]
    started = time.process_time()
    for thread in lane_threads:
        thread.start()
    for thread in lane_threads:
        thread.join()
    return time.process_time() - started

# each layer's unit of work and how many of them make the 4 * n LM calls of n inputs (critics accept at once)
if layer == "lm":
    work, units = (lambda i: lm(messages=messages)), 4 * n
elif layer == "+ adapter":
    dspy.configure(adapter=adapter)
    work, units = (lambda i: step(query=f"benchmark question {i}")), 4 * n
elif layer == "+ program":
    work, units = (lambda i: program(query=f"benchmark question {i}")), n
if layer != "+ runner":
    work(0)
    cpu, calls = lanes(work, units), 4 * n
else:
    rows = [{"query": f"benchmark question {i}"} for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        run_batch(SPRI(), rows[:1], os.path.join(folder, "warm"), fields={"query": "query"}, progress=False)
        started = time.process_time()
        summary = run_batch(SPRI(), rows, os.path.join(folder, "out"), fields={"query": "query"}, threads=threads,
                            progress=False)
        cpu, calls = time.process_time() - started, summary.lm_calls
print(json.dumps({"cpu": cpu, "calls": calls}))
"""


def in_process(tree: Path, layer: str, url: str, n: int) -> float:
    """Milliseconds of CPU per LM call for one layer, in a fresh process running ``tree``'s code."""
    done = subprocess.run([sys.executable, "-c", CHILD, layer, url, str(n), str(THREADS)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{layer} failed in {tree}:\n{done.stderr[-1500:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["cpu"] / figures["calls"] * 1000


def generate(tree: Path, url: str) -> tuple[float, float]:
    """``spri generate`` in its own process: (ms of CPU per call after start-up, ms per call of the whole process)."""
    here = os.getcwd()
    os.environ["PYTHONPATH"] = str(tree)
    os.chdir(tree)  # ``python -c`` puts the current folder first on the path, before PYTHONPATH
    try:
        small, large = run.cli_generate(url, 20, THREADS), run.cli_generate(url, 600, THREADS)
    finally:
        os.chdir(here)
        del os.environ["PYTHONPATH"]
    marginal = (large["cpu"] - small["cpu"]) / (large["calls"] - small["calls"]) * 1000
    return marginal, large["cpu"] / large["calls"] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with (none: this tree alone)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=400, help="inputs per in-process layer (4 calls each)")
    args = parser.parse_args()
    from spri_dspy.testing.server import spawn

    trees: dict[str, Path] = {"after": ROOT}
    scratch = tempfile.mkdtemp(prefix="spri-p9-")
    if args.before != "none":
        added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", f"{scratch}/before",
                                args.before], capture_output=True, text=True)
        if added.returncode != 0:
            raise SystemExit(f"--before {args.before}: git cannot check it out ({added.stderr.strip()})")
        trees = {"before": Path(scratch) / "before", **trees}
    server, url = spawn(latency=0.0, critic_scores=[5])
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    try:
        for _ in range(args.rounds):
            for name, tree in trees.items():
                for layer in LAYERS:
                    figures[name].setdefault(layer, []).append(in_process(tree, layer, url, args.inputs))
                marginal, whole = generate(tree, url)
                figures[name].setdefault("spri generate, after start-up", []).append(marginal)
                figures[name].setdefault("spri generate, whole process", []).append(whole)
    finally:
        server.kill()
        if args.before != "none":
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", f"{scratch}/before"], check=False)
    names = list(trees)
    print(f"P9: client CPU per LM call (ms), zero latency, {THREADS} threads, median of {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.2f}" + (f"; before = {args.before}" if "before" in trees else ""))
    print(f"  {'layer':<32}" + "".join(f"{name:>10}" for name in names) + ("     after/before" if len(names) == 2 else ""))
    for layer in figures[names[-1]]:
        values = [statistics.median(figures[name][layer]) for name in names]
        ratio = f"     {values[1] / values[0]:.2f}" if len(values) == 2 else ""
        print(f"  {layer:<32}" + "".join(f"{value:10.3f}" for value in values) + ratio)
    after = statistics.median(figures["after"]["spri generate, after start-up"])
    print(f"spri generate: {after:.2f} ms of client CPU per LM call after start-up (target at most 1.2): "
          f"{'met' if after <= 1.2 else 'NOT met'}")


if __name__ == "__main__":
    main()
