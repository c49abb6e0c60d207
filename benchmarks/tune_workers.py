"""P7: one spri tune study on 1 and on 3 workers, a real PostgreSQL, the fake server at a fixed latency.

    python benchmarks/tune_workers.py [--budget 12] [--latency 0.05]

Both runs use the same data, budget and latency, each on a fresh database of one PostgreSQL server
started here (tests/helpers/postgres.py; Debian: apt-get install postgresql), with workers started as
users start them: ``spri tune ... --storage postgresql://... --study shared --n-trials BUDGET`` in separate
processes. Prints each run's wall time, complete trials (must equal the budget), trials that found the
budget claimed, and the 3-worker speed-up measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from spri_dspy.testing import FakeOpenAIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.postgres import PostgresServer  # noqa: E402  (tests/helpers: test infrastructure)


def run(workers: int, data: Path, server: FakeOpenAIServer, storage: str, budget: int) -> dict:
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    command = [sys.executable, "-m", "spri_dspy.cli", "tune", str(data), "--lm", "openai/bench-model", "--api-base",
               server.url, "--storage", storage, "--study", "shared", "--n-trials", str(budget), "--max-tokens", "64",
               "--no-cache", "--heartbeat", "5"]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for _ in range(workers)]
    codes = [p.wait() for p in processes]
    seconds = time.perf_counter() - started
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    states = [t.state.name for t in trials]
    return {"workers": workers, "seconds": seconds, "exit codes": codes, "complete": states.count("COMPLETE"),
            "not run (budget claimed)": sum("budget" in t.user_attrs for t in trials),
            "failed": states.count("FAIL"), "running": states.count("RUNNING")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as folder, PostgresServer() as postgres, \
            FakeOpenAIServer(latency=args.latency, critic_scores=(2, 5)) as server:
        data = Path(folder) / "reappraisal.jsonl"
        data.write_text("".join(json.dumps({"Reddit Post": f"post {i}", "appraisal_dimension_aim": f"aim {i % 2}",
                                            "constitution": f"c {i}", "standards": "s"}) + "\n" for i in range(4)))
        results = [run(n, data, server, postgres.database(f"bench_{n}"), args.budget) for n in (1, 3)]
    for r in results:
        print(json.dumps(r))
    print(f"P7: budget {args.budget}, latency {args.latency * 1000:.0f} ms: 1 worker {results[0]['seconds']:.1f} s, "
          f"3 workers {results[1]['seconds']:.1f} s, speed-up {results[0]['seconds'] / results[1]['seconds']:.2f}x")


if __name__ == "__main__":
    main()
