"""P8: ``spri serve`` under many streaming clients, against the fake upstream at 1 s per LM call.

    python benchmarks/serve.py                 # 64, 256 and 1024 clients, then the memory run (about 6 minutes)
    python benchmarks/serve.py --clients 256   # one level, no memory run
    python benchmarks/serve.py --memory        # only the memory run

Three processes, as a deployment has them: the fake OpenAI-compatible upstream (1,000 ms per call; critics
accept at once, so SPRI makes 4 calls in a row: a request takes at least 4 s), ``spri serve --lm openai/m``
as users start it, and this process, where N clients (asyncio tasks, each with its own official
``openai.AsyncOpenAI``) each stream one request after another.

The clients arrive spread over the first 4 s (as independent users do; all at once, they stay in lockstep and
every LM answer of the run arrives in bursts of N). For each N it prints the requests per second completed
over the steady window (from 8 s to the time the clients stop sending) as a share of the ideal,
min(N, in-flight limit) / 4 s (each client sends one request after another); the
server's CPU seconds per request (from /proc); the most upstream calls in flight at once; the errors. The memory run keeps 256 clients busy until
10,000 requests have completed and prints the server's resident memory after 1,000 and after 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LATENCY = 1.0
CALLS = 4  # SPRI with critics that accept at once: principles, critique, response, critique
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) in MB."""
    values = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(values["VmRSS"].split()[0]) / 1024, int(values["VmHWM"].split()[0]) / 1024


def start_server(upstream: str, limit: int) -> tuple[subprocess.Popen, str]:
    """``spri serve`` in its own process, as users start it; returns it and its root URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "spri_dspy.cli", "serve", "--lm", "openai/m", "--api-base", upstream,
               "--port", str(port), "--max-concurrency", str(limit), "--no-cache", "--timeout", "120"]
    process = subprocess.Popen(command, env={**os.environ, "OPENAI_API_KEY": "unused"}, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("spri serve did not start")
            time.sleep(0.2)


async def load(url: str, clients: int, seconds: float | None = None, requests: int | None = None,
               on_done=None) -> tuple[list[float], list[str]]:
    """``clients`` streaming clients, each sending one request after another until ``seconds`` have passed or
    ``requests`` have completed; returns the completion times (from the start) and the errors."""
    import httpx
    import openai

    started, done, errors = time.monotonic(), [], []
    stop = asyncio.Event()

    async def one_client(index: int) -> None:
        await asyncio.sleep(index / clients * CALLS * LATENCY)  # arrivals spread over one request's time, as users'
        # A client of its own per task, as N independent applications have: one httpx pool shared by hundreds of
        # streams spends its time scanning the pool (httpcore's pool is quadratic in its connections), which
        # would measure the client, not the server.
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                                      http_client=httpx.AsyncClient(timeout=httpx.Timeout(300))) as client:
            await requests_of(client, index)

    async def requests_of(client, index: int) -> None:
        while not stop.is_set():
            try:
                stream = await client.chat.completions.create(
                    model="spri", stream=True, messages=[{"role": "user", "content": f"client {index} query {len(done)}"}])
                async for _ in stream:
                    pass
                done.append(time.monotonic() - started)
                if on_done is not None:
                    on_done(len(done))
            except Exception as exc:  # noqa: BLE001 - counted and shown
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.5)
            if (seconds is not None and time.monotonic() - started > seconds) or \
                    (requests is not None and len(done) >= requests):
                stop.set()

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return done, errors


def level(upstream: str, clients: int, limit: int, seconds: float, upstream_pid: int) -> None:
    server, url = start_server(upstream, limit)
    try:
        before = (cpu_seconds(server.pid), cpu_seconds(upstream_pid), cpu_seconds(os.getpid()))
        done, errors = asyncio.run(load(url, clients, seconds=seconds))
        cpu, upstream_cpu, client_cpu = (after - first for after, first in zip(
            (cpu_seconds(server.pid), cpu_seconds(upstream_pid), cpu_seconds(os.getpid())), before, strict=True))
        _, peak = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Every client sends its requests one after another, so an ideal server completes min(clients, limit)
    # requests per 4 s once every client has arrived: completions over the steady window, from the end of the
    # first full round to the time the clients stop sending.
    warm, span = 2 * CALLS * LATENCY, max(done)
    rate, ideal = sum(warm <= t <= seconds for t in done) / (seconds - warm), min(clients, limit) / (CALLS * LATENCY)
    with urllib.request.urlopen(upstream.removesuffix("/v1") + "/v1/stats", timeout=10) as reply:
        upstream_peak = json.load(reply).get("max_in_flight")
    print(f"    {clients:>4} clients: {rate:6.1f} requests/s ({rate / ideal:.0%} of ideal {ideal:.1f}) from {warm:.0f} "
          f"to {seconds:.0f} s, {len(done)} requests in {span:.0f} s; upstream calls in flight at most {upstream_peak}; "
          f"server CPU {cpu / max(1, len(done)) * 1000:.1f} ms per request "
          f"({cpu / span:.0%} of one core); CPU of the clients {client_cpu / span:.0%} and the upstream "
          f"{upstream_cpu / span:.0%} of one core (2 cores in all); server peak RSS {peak:.0f} MB; errors {len(errors)}"
          + (f" (e.g. {errors[0]})" if errors else ""), flush=True)


def memory(upstream: str, clients: int = 256, total: int = 10_000) -> None:
    server, url = start_server(upstream, 1024)
    marks: dict[int, float] = {}

    def on_done(count: int) -> None:
        if count in (1_000, total):
            marks[count] = rss_mb(server.pid)[0]

    try:
        started = time.monotonic()
        done, errors = asyncio.run(load(url, clients, requests=total, on_done=on_done))
        seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"    memory: {len(done)} requests in {seconds:.0f} s at {clients} clients; server RSS after 1,000 "
          f"{marks.get(1_000, float('nan')):.0f} MB, after {total:,} {marks.get(total, float('nan')):.0f} MB "
          f"(ratio {marks.get(total, float('nan')) / marks.get(1_000, float('nan')):.2f}); errors {len(errors)}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, action="append", help="client counts (default 64, 256, 1024)")
    parser.add_argument("--seconds", type=float, default=40.0, help="run length per level (default 40)")
    parser.add_argument("--limit", type=int, default=1024, help="spri serve --max-concurrency (default 1024)")
    parser.add_argument("--memory", action="store_true", help="only the memory run")
    args = parser.parse_args()
    from spri_dspy.testing.server import spawn

    upstream, upstream_url = spawn(latency=LATENCY, critic_scores=[5])
    try:
        load_average = os.getloadavg()[0]
        print(f"P8  spri serve --lm openai/m, upstream {LATENCY * 1000:.0f} ms per call, {CALLS} calls per request "
              f"(at least {CALLS * LATENCY:.0f} s), streaming clients on openai.AsyncOpenAI; "
              f"load average {load_average:.2f} at start", flush=True)
        for clients in () if args.memory else args.clients or (64, 256, 1024):
            level(upstream_url, clients, args.limit, args.seconds, upstream.pid)
        if not args.clients:
            memory(upstream_url)
    finally:
        upstream.kill()


if __name__ == "__main__":
    main()
