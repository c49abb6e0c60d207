"""Batch runs on a Ray cluster: the same OUTPUT, exactly once, from a pool of actors on many machines.

``run_batch(..., ray=RayCluster(lm=...))`` (``spri generate/judge --ray [ADDRESS]``)
makes the inputs not yet done a Ray Dataset and maps it through a pool of actors
(``Dataset.map_batches`` with an ``ActorPoolStrategy``). Each actor builds the
program from its saved state (what :func:`~spri_dspy.save_program` writes: no LM,
no key) and its LMs from :class:`~spri_dspy.runtime.lms.LMSpec`\\ s, reading any key from
its own node's environment, and runs the stages of its batches on its share of
the threads with the local runner's scheduler (:class:`~spri_dspy.runtime.stages.StageRunner`).

Results stream back to the driver, which alone writes OUTPUT, through the same
store as a local run: one process holds OUTPUT's lock and writes each id once.
A task Ray retries after its actor died returns nothing twice to the files, and
a rerun after the driver itself was killed skips the ids already written, so
every input ends with exactly one result, as in a local run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import dspy

from spri_dspy.core.programs import METADATA_KEY, _rebuilt, _saved_text
from spri_dspy.runtime.lms import EndpointError, LMSpec, adapter_for, make_adapter
from spri_dspy.runtime.stages import Record, StageRunner, StageTask, task_record
from spri_dspy.runtime.usage import count_calls_needed, name_steps

RAY_MISSING = "Ray is not installed: pip install 'spri-dspy[ray]'"


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the batch: no cluster at the address, or too few CPUs for the actors."""


@dataclass(frozen=True)
class RayCluster:
    """Where and how :func:`~spri_dspy.run_batch` runs on Ray (its ``ray`` argument).

    Every node needs spri-dspy installed (``pip install "spri-dspy[ray]"``) and, for a
    hosted model, its key in the environment ``ray start`` ran in: keys never travel
    with the work. The LMs configured in DSPy on the driver are not sent either; each
    actor builds its own from ``lm`` and ``critic_lm``.

    Args:
        lm, critic_lm: the specs of the models every actor builds (the critic's default: ``lm``).
        address: the cluster; None for ``RAY_ADDRESS``, else a Ray started here for the run.
        actors: the pool's size (one CPU each; default one per node).
        logs: show Ray's logs and the actors' output.
        adapter: the actors' prompt format (default as for the driver's models).

    Example:
        ```python
        from spri_dspy import SPRI, LMSpec, RayCluster, run_batch

        vllm = LMSpec("openai/meta-llama/Llama-3.1-8B-Instruct", api_base="http://vllm-head:8000/v1")
        run_batch(SPRI(), "instructions.jsonl", "out", fields={"query": "instruction"}, threads=1024,
                  ray=RayCluster(vllm, address="auto", actors=8))
        ```
    """

    lm: LMSpec
    """The base model of every actor."""
    critic_lm: LMSpec | None = None
    """The critic model (default: the base model)."""
    address: str | None = None
    """The cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None connects to ``RAY_ADDRESS``
    when it is set, else starts Ray on this machine for the run. A process already connected to Ray
    (``ray.init`` called) keeps its connection, and the run leaves it open."""
    actors: int | None = None
    """The pool's size, each actor holding one CPU; default one actor per node."""
    logs: bool = False
    """Show Ray's own logs and the actors' output on the driver."""
    adapter: str | None = None
    """The actors' prompt format (:data:`~spri_dspy.runtime.lms.ADAPTERS`); default :func:`~spri_dspy.runtime.lms.default_adapter`."""

    def connected(self) -> contextlib.AbstractContextManager[RayCluster]:
        """:func:`connected` (the :class:`~spri_dspy.runtime.stages.Backend` protocol)."""
        return connected(self)

    def run(self, program: dspy.Module, pending: list[tuple[int, str, dict[str, Any]]], record: Record, *,
            threads: int, stop: threading.Event) -> None:
        """:func:`run_on_ray` (the :class:`~spri_dspy.runtime.stages.Backend` protocol)."""
        run_on_ray(self, program, pending, record, threads=threads, stop=stop)


@contextlib.contextmanager
def connected(cluster: RayCluster) -> Iterator[RayCluster]:
    """Connect to ``cluster`` (or start Ray here) for the block; yields it with its pool's size settled. A missing
    cluster or one with fewer CPUs than actors is a :class:`ClusterError` (or Ray's ConnectionError) before any work."""
    ray = _import_ray(cluster.logs)
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(cluster.address)
        with contextlib.nullcontext() if cluster.logs else _stderr_silenced():
            ray.init(address=cluster.address, logging_level=logging.INFO if cluster.logs else logging.ERROR,
                     log_to_driver=cluster.logs)
    try:
        actors = cluster.actors or len([node for node in ray.nodes() if node.get("Alive")])
        cpus = ray.cluster_resources().get("CPU", 0)
        if actors > cpus:
            raise ClusterError(f"{actors} actors need {actors} CPUs (one each); the cluster has {cpus:g}")
        yield replace(cluster, actors=actors)
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(cluster: RayCluster, program: dspy.Module, pending: list[tuple[int, str, dict[str, Any]]],
               record: Record, *, threads: int, stop: threading.Event) -> None:
    """Run the ``pending`` inputs ((index, id, program arguments)) on the cluster :func:`connected` yields,
    ``threads`` stages in flight in all, handing each outcome to ``record`` (on this thread) as it arrives;
    returns early once ``stop`` is set."""
    if not pending:
        return
    ray = _import_ray(cluster.logs)
    actors = cluster.actors
    per_actor = math.ceil(threads / actors)
    results = _dataset(ray, pending, rows=per_actor).map_batches(
        ProgramActor, fn_constructor_kwargs={"payload": actor_payload(cluster, program, per_actor)},
        batch_size=per_actor, batch_format="pyarrow",
        # Two batches per actor at once share its threads, so one batch's last inputs never leave them idle.
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2,
                                           max_concurrent_calls_per_actor=2, enable_true_multi_threading=True),
        num_cpus=1)
    for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            usage = {(step, stage, model): counter for step, stage, model, counter in json.loads(row["usage"])}
            record(row["outcome"], json.loads(row["record"]), usage)
        if stop.is_set():
            return


def actor_payload(cluster: RayCluster, program: dspy.Module, threads: int) -> dict[str, Any]:
    """What every actor is built from (JSON data): the program as :func:`~spri_dspy.save_program` writes it,
    the specs of its LMs and its threads. No LM object and no key."""
    return {"program": _saved_text(program), "lm": asdict(cluster.lm),
            "critic_lm": asdict(cluster.critic_lm) if cluster.critic_lm else None, "threads": threads,
            "adapter": cluster.adapter}


def _import_ray(logs: bool):
    """Ray, quiet unless ``logs``: no progress bars (the run's own bar counts inputs), no start-up notices."""
    if not logs:  # Ray's C++ core logs to stderr (Ray Data's actors draw a note on restarts, ray#53727); its log
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # files keep everything
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    if not logs:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """:class:`ClusterError` unless something listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address: Ray itself
    keeps retrying an address where nothing answers, for minutes."""
    if not address or address == "auto":
        return  # Ray's own lookup of a local cluster fails at once when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"{address!r} is not a Ray address: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _stderr_silenced():
    """Nothing written to file descriptor 2 shows, Python's or C++'s: Ray's core notes on its log level at start
    (its errors still raise)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _dataset(ray, pending: list[tuple[int, str, dict[str, Any]]], rows: int):
    """The pending inputs as a Ray Dataset of blocks of ``rows`` rows (index, id, arguments as JSON)."""
    import pyarrow as pa

    table = pa.table({"index": [index for index, _, _ in pending], "id": [row_id for _, row_id, _ in pending],
                      "inputs": [json.dumps(inputs, ensure_ascii=False) for _, _, inputs in pending]})
    return ray.data.from_arrow([table.slice(start, rows) for start in range(0, table.num_rows, rows)])


class ProgramActor:
    """One actor of the pool: the program and its LMs, built once from :func:`actor_payload`, and a
    :class:`~spri_dspy.runtime.stages.StageRunner` whose threads run every batch the actor is given."""

    def __init__(self, payload: dict[str, Any]):
        specs = [LMSpec(**spec) if spec else None for spec in (payload["lm"], payload["critic_lm"])]
        self.lm, critic_lm = (spec.build() if spec else None for spec in specs)
        self.adapter = (make_adapter(payload["adapter"]) if payload.get("adapter")
                        else adapter_for(*(spec.model for spec in specs if spec)))
        state = json.loads(payload["program"])
        self.program = _rebuilt(state, state[METADATA_KEY], critic_lm)
        name_steps(self.program)
        count_calls_needed(self.lm, self.program)
        self.runner = StageRunner(self.program, payload["threads"])
        self.runner.serve(lm=self.lm, adapter=self.adapter)

    def __call__(self, batch):
        """Run a batch's inputs; one row per input: outcome, record (JSON) and usage (JSON)."""
        import pyarrow as pa

        outcomes: list[tuple[str, str, str]] = []
        lock, finished = threading.Lock(), threading.Event()
        size = batch.num_rows

        def done(task: StageTask, outcome: str, result: dict) -> None:
            usage = [[*key, dict(counter)] for key, counter in task.usage.by_step.items()]
            line = (outcome, json.dumps(task_record(task, result), ensure_ascii=False, default=str), json.dumps(usage))
            with lock:
                outcomes.append(line)
                if len(outcomes) == size:
                    finished.set()

        tasks = []
        for row in batch.to_pylist():
            inputs = json.loads(row["inputs"])
            tasks.append(StageTask(row["index"], row["id"], inputs=inputs, arguments=inputs, finished=done))
        self.runner.add(tasks)
        while not finished.wait(timeout=1.0):
            if isinstance(self.runner.broken, EndpointError):  # the endpoint cannot serve: say so, in one line
                raise EndpointError(str(self.runner.broken))
            if self.runner.broken is not None:  # e.g. out of memory: its threads stopped, the batch cannot finish
                raise RuntimeError("the actor's stage runner stopped") from self.runner.broken
        return pa.table({name: [line[i] for line in outcomes] for i, name in enumerate(("outcome", "record", "usage"))})
