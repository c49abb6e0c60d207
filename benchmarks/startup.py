"""P10: how long the ``spri`` command takes to start, against a bare Python start, measured side by side.

    python benchmarks/startup.py [--runs 15]

Times ``python -c "import argparse"`` (a bare interpreter start), ``spri --help``, ``spri --version`` and
``spri run --help`` (which builds its own arguments and loads DSPy), interleaved run by run so that the load
of the machine weighs on each alike; prints the median of each, its ratio to the bare start, and the
load average. The target (issue 26): ``spri --help`` at most 8x the bare start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPRI = str(Path(sys.executable).with_name("spri"))
COMMANDS = {
    "python -c 'import argparse'": [sys.executable, "-c", "import argparse"],
    "spri --help": [SPRI, "--help"],
    "spri --version": [SPRI, "--version"],
    "spri run --help": [SPRI, "run", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c 'import argparse'"])
    print(f"P10: start-up, median of {runs} runs, load average {os.getloadavg()[0]:.2f}")
    for name, seconds in times.items():
        print(f"  {name:<30} {statistics.median(seconds) * 1000:7.1f} ms  {statistics.median(seconds) / bare:5.1f} x bare")
    ratio = statistics.median(times["spri --help"]) / bare
    print(f"spri --help: {ratio:.1f} x a bare Python start (target at most 8x): {'met' if ratio <= 8 else 'NOT met'}")


if __name__ == "__main__":
    main()
