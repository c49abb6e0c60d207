"""The Ray Data actor processes (``ray::MapWorker(...)``) running on this machine, read from ``/proc``: for
the tests that kill one and the benchmark that counts their CPU and memory."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ActorProcess:
    """One actor process, as ``/proc`` shows it now."""

    pid: int
    parent: int
    """The parent's pid: the raylet of the node the actor runs on."""
    cpu_seconds: float
    """User plus system CPU time so far."""
    peak_rss_mb: float


def ray_actor_processes() -> list[ActorProcess]:
    """Every Ray Data actor process on this machine (Linux only; processes that end while being read are skipped)."""
    found, tick = [], os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if not handle.read().startswith(b"ray::MapWorker"):
                    continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/status") as handle:
                peak = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            continue
        found.append(ActorProcess(int(entry), int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, peak / 1024))
    return found
