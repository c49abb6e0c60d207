"""The stage scheduler every batch backend shares: inputs run through a program's stages on threads.

A program that declares its ``stages`` (:class:`spri_dspy.core.flow.StagedModule`: SPRI's principles,
then its response) has each stage of each input scheduled as its own task (:class:`StageRunner`): the
stages of one input run in order, those of different inputs interleave, so the last inputs of a batch
spread over every thread. Any other module is one stage. The runner carries each input's state between
its stages (the program's :meth:`~spri_dspy.core.flow.StagedModule.advance`): arguments, outputs so far,
the trace and the seed indexes.

A :class:`Backend` runs a batch's pending inputs somewhere else (a Ray cluster,
:class:`spri_dspy.runtime.distributed.RayCluster`) with this same runner; :func:`spri_dspy.runtime.batch.run_batch`
talks to it through the protocol only.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import dspy

from spri_dspy.compat import ParallelExecutor, executor_cancel_event, share_cancel_event
from spri_dspy.core.flow import StagedModule, run_sync
from spri_dspy.runtime.lms import LMSpec, endpoint_error
from spri_dspy.runtime.usage import StepUsage

Record = Callable[[str, dict, Mapping[tuple[str, str, str], Mapping[str, int]]], None]
"""Takes one input's outcome (``"done"``/``"failed"``), its record and its usage by (step, stage, model)."""


class Backend(Protocol):
    """Where a batch's inputs run when not on this process's threads (``run_batch(..., ray=...)``).

    ``lm`` and ``critic_lm`` are the models the backend's workers build (the run's identity names them);
    :meth:`connected` connects before the output folder is touched (a missing cluster changes nothing);
    :meth:`run` runs the pending inputs and hands each outcome to ``record`` on the calling thread.
    """

    lm: LMSpec
    critic_lm: LMSpec | None

    def connected(self) -> contextlib.AbstractContextManager[Backend]:
        """Connect for the run; yields the backend with its size settled."""
        ...

    def run(self, program: dspy.Module, pending: list[tuple[int, str, dict[str, Any]]], record: Record, *,
            threads: int, stop: threading.Event) -> None:
        """Run ``pending`` ((index, id, program arguments)), ``threads`` stages in flight in all; returns
        early once ``stop`` is set."""
        ...


def stage_functions(program: dspy.Module) -> list[Callable[[dict[str, Any]], Any]]:
    """The program's stages as functions of an input's state, run synchronously: each returns the next
    stage's state, the last the program's Prediction. A module without declared stages is one stage."""
    if not (isinstance(program, StagedModule) and program.stages):
        return [lambda inputs: program(**inputs)]
    last = len(program.stages) - 1

    def stage(index: int) -> Callable[[dict[str, Any]], Any]:
        def run(state: dict[str, Any]) -> Any:
            state = run_sync(program.advance(index, program.start(**state) if index == 0 else state))
            return program.finish(state) if index == last else state
        return run

    return [stage(index) for index in range(last + 1)]


@dataclass
class StageTask:
    """One input on its way through the program's stages (the runner's task)."""

    index: int
    row_id: str
    stage: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    arguments: dict[str, Any] = field(default_factory=dict)  # of the stage due next
    columns: dict[str, Any] | None = None  # the input's columns the program does not read, when carried
    usage: StepUsage | None = None  # from its first stage on: a queued input stays small
    finished: Callable[[StageTask, str, dict], None] | None = None
    """Called once with the outcome (``"done"`` or ``"failed"``) and ``{"output": ...}`` or ``{"error": ...}``."""


class StageRunner:
    """Runs inputs through a program's stages on ``threads`` of DSPy's ParallelExecutor.

    A program that declares its ``stages`` (SPRI: principles, then response) has each
    stage scheduled as its own task (:class:`_StageQueue`); a failed stage fails its
    input, recorded through the task's ``finished``. Inputs are added with :meth:`add`
    (also while :meth:`run` runs, from another thread) until :meth:`close`; :meth:`run`
    returns once every input added is finished, or at once after ``stop`` is set.
    """

    def __init__(self, program: dspy.Module, threads: int, *, load: Callable[[StageTask], None] | None = None,
                 stop: threading.Event | None = None, on_call: Callable[[], None] | None = None):
        self.stages = stage_functions(program)
        self.threads = threads
        self.load = load
        self.executor = ParallelExecutor(num_threads=threads, max_errors=10**9, disable_progress_bar=True, timeout=0)
        if stop is not None:
            share_cancel_event(self.executor, stop)
        self.stop = executor_cancel_event(self.executor)
        """Set to stop every thread (the executor's own stop: it then starts no more jobs)."""
        self.queue = _StageQueue(window=threads + threads // 2, stop=self.stop)
        self.broken: BaseException | None = None
        """What broke a thread (e.g. a full disk, an endpoint that cannot serve), which stopped them all."""
        self.program = program
        self.on_call = on_call
        """Called after every LM call an input's stage needed (a live count for the progress bar)."""
        self.reached = False
        """Whether an LM call of this run has reached its model: before that, no connection at all ends the run."""

    def add(self, tasks) -> None:
        """Queue new inputs (:class:`StageTask`s at stage 0)."""
        self.queue.add(tasks)

    def close(self) -> None:
        """No more inputs: :meth:`run` returns once those added are finished."""
        self.queue.close()

    def run(self) -> None:
        """Run every input's stages (see the class docstring); re-raises what broke a thread (e.g. a full disk)."""
        try:
            # No LM history and no DSPy trace: both keep every call's inputs and outputs (up to 10,000
            # of them), which a batch never reads back; memory stays flat in the number of inputs.
            with dspy.context(disable_history=True, trace=None):
                self.executor.execute(self._drain, range(self.threads))
        except Exception:
            if self.broken is not None:
                raise self.broken from None
            if not self.stop.is_set():
                raise

    def serve(self, **context: Any) -> None:
        """Run the stages on daemon threads, each in ``dspy.context(**context)``, until the process ends (a Ray
        actor's pool: queue inputs with :meth:`add`; the threads never hold the process at its exit)."""
        def serve_one(thread: int) -> None:
            with dspy.context(**context, disable_history=True, trace=None):
                self._drain(thread)

        for thread in range(self.threads):
            threading.Thread(target=serve_one, args=(thread,), name=f"spri-stages-{thread}", daemon=True).start()

    def _drain(self, _thread: int) -> None:
        """One executor thread: take stages from the queue until none is left."""
        try:
            while (task := self.queue.take()) is not None:
                self._run_stage(task)
        except BaseException as exc:  # e.g. a full disk: stop every thread rather than leave them waiting
            self.broken = self.broken or exc
            self.stop.set()
            raise

    def _run_stage(self, task: StageTask) -> None:
        if task.stage == 0:
            task.usage = StepUsage(on_call=self.on_call)
            if self.load is not None:
                self.load(task)
        try:
            with dspy.context(usage_tracker=task.usage):
                result = self.stages[task.stage](task.arguments)
        except Exception as exc:
            # An endpoint that refuses the key, has no such model or is unreachable from the start fails
            # every input alike: the run ends at once and this input stays pending, instead of one
            # failure (after minutes of retries) per input.
            lms = [dspy.settings.lm, *(predictor.lm for predictor in self.program.predictors())]
            fatal = endpoint_error(exc, lms, first_call=not self.reached and task.usage.calls == 0)
            if fatal is not None:
                raise fatal from exc
            self._finish(task, "failed", {"error": f"{type(exc).__name__}: {exc}"})
            return
        self.reached = self.reached or task.usage.calls > 0
        task.stage += 1
        if task.stage < len(self.stages):
            task.arguments = result
            self.queue.put(task)
        else:
            self._finish(task, "done", {"output": as_json(result)})

    def _finish(self, task: StageTask, outcome: str, result: dict) -> None:
        task.finished(task, outcome, result)
        self.queue.finish()


class _StageQueue:
    """Which stage of which input an executor thread runs next.

    A new input is started while fewer than ``window`` inputs are under way;
    otherwise the thread takes the next stage of an input under way, oldest
    first, or waits for one. Starting a little more than one input per thread
    lets the stages of the last inputs spread over all threads instead of
    leaving some idle while others finish whole inputs.
    """

    def __init__(self, window: int, stop: threading.Event):
        self._new: deque[StageTask] = deque()
        self._due: deque[StageTask] = deque()
        self._active, self._window, self._stop, self._closed = 0, window, stop, False
        self._changed = threading.Condition()

    def add(self, tasks) -> None:
        """New inputs to start."""
        with self._changed:
            self._new.extend(tasks)
            self._changed.notify_all()

    def close(self) -> None:
        """No more inputs will be added."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def take(self) -> StageTask | None:
        """The next stage to run; None once closed and every input is finished, or once ``stop`` is set."""
        with self._changed:
            while not self._stop.is_set():
                if self._new and self._active < self._window:
                    self._active += 1
                    return self._new.popleft()
                if self._due:
                    return self._due.popleft()
                if self._closed and not self._active and not self._new:
                    return None
                self._changed.wait(timeout=0.5)  # woken by add/put/finish/close; the timeout notices ``stop``
            return None

    def put(self, task: StageTask) -> None:
        """``task``'s next stage is due."""
        with self._changed:
            self._due.append(task)
            self._changed.notify()

    def finish(self) -> None:
        """An input under way has finished (done or failed)."""
        with self._changed:
            self._active -= 1
            if self._closed and not self._active and not self._new:
                self._changed.notify_all()  # the last one: every waiting thread returns
            else:
                self._changed.notify()  # room for one more input: one waiting thread takes it


def as_json(prediction: Any) -> dict[str, Any]:
    items = prediction.items() if hasattr(prediction, "items") else vars(prediction).items()
    return {key: value for key, value in items if not key.startswith("_")}


def task_record(task: StageTask, result: dict) -> dict[str, Any]:
    """The ``results.jsonl``/``failures.jsonl`` record of a finished task (``result``: its output or error)."""
    record = {"id": task.row_id, "index": task.index, "input": task.inputs, **result}
    if "output" in result:
        record |= {"lm_calls": task.usage.calls_needed, "lm_calls_made": task.usage.calls}
    if task.columns is not None:
        record["columns"] = task.columns
    return record


def recorder(record: Record) -> Callable[[StageTask, str, dict], None]:
    """A task's outcome as a record (:func:`task_record`) handed to ``record``."""
    def finished(task: StageTask, outcome: str, result: dict) -> None:
        record(outcome, task_record(task, result), task.usage.by_step)
    return finished
