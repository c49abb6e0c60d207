"""Counting LM calls and tokens per step, stage and model.

Every :class:`spri_dspy.core.steps.Step` sets :data:`current_step` while it calls
its LM, and declares the stage it belongs to (``"principles"``, ``"response"``,
``"rubric"``, ``"judgement"``). :class:`StepUsage` is a DSPy usage tracker that
reads it, so a batch run, an ablation or a tuning trial can say which step of
which stage spent which calls on which model.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter, defaultdict
from typing import Any

import dspy
from spri_dspy.compat import BaseCallback, UsageTracker

from spri_dspy.core.steps import Step, current_step
from spri_dspy.runtime.lms import endpoint_of

OTHER = "other"
"""The step and stage of LM calls made outside any named step."""


def name_steps(program: dspy.Module) -> None:
    """Give every :class:`~spri_dspy.core.steps.Step` in ``program`` its attribute path as ``step_name``
    (e.g. ``"principle_critic"``), so usage can be counted per step."""
    for name, module in program.named_sub_modules():
        if isinstance(module, Step):
            module.step_name = name.removeprefix("self.")


class StepUsage(UsageTracker):
    """A DSPy usage tracker that counts, per (step, stage, model), the LM calls a program *needed* and
    the calls *made*, with their tokens.

    Calls needed include those DSPy's cache answered: the cost of the same work on a cold cache, which
    a rerun or a warm cache does not change. Calls made are those that reached a model (DSPy calls
    ``add_usage`` only for them), and tokens are counted for them: a cache hit reports none.
    :data:`current_step` says which step made a call (steps named by :func:`name_steps`; others count
    as ``"other"``). Use it through :meth:`context`, which also lets the LMs in use report the calls
    their cache answered.

    Example:
        ```python
        usage = StepUsage()
        with usage.context(program):
            program(query="...")
        usage.calls_needed, usage.calls, usage.tokens, usage.by_step
        ```
    """

    def __init__(self, on_call: Any = None):
        super().__init__()
        self.by_step: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
        self._lock = threading.Lock()
        self.on_call = on_call
        """Called (no arguments) after each call needed is counted: a live counter, e.g. a batch's bar."""

    def context(self, program: dspy.Module | None = None):
        """``dspy.context`` that tracks usage into this object: calls made, and calls needed on the
        configured LM and on ``program``'s own step LMs (see :func:`count_calls_needed`)."""
        count_calls_needed(dspy.settings.lm, program)
        return dspy.context(usage_tracker=self)

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        """DSPy's report of a call that reached a model: counted as made and as needed, with its tokens."""
        call = _CALL.get()
        if call is not None:
            call.made = True  # not a cache hit (see _CallsNeeded)
        with self._lock:
            super().add_usage(lm, usage_entry)
            counter = self.by_step[_key(lm)]
            counter["calls"] += 1
            counter["calls_needed"] += 1
            for name in ("prompt_tokens", "completion_tokens"):
                counter[name] += int(usage_entry.get(name) or 0)
        if self.on_call is not None:
            self.on_call()

    def needed(self, lm: str) -> None:
        """Count one LM call the program needed that no model answered (DSPy's cache did)."""
        with self._lock:
            self.by_step[_key(lm)]["calls_needed"] += 1
        if self.on_call is not None:
            self.on_call()

    @property
    def calls(self) -> int:
        """LM calls made (that reached a model), all steps and models together."""
        return sum(counter["calls"] for counter in self.by_step.values())

    @property
    def calls_needed(self) -> int:
        """LM calls the program needed, cache hits included."""
        return sum(counter["calls_needed"] for counter in self.by_step.values())

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of the calls made."""
        return sum(counter["prompt_tokens"] + counter["completion_tokens"] for counter in self.by_step.values())

    def __deepcopy__(self, memo):  # ParallelExecutor copies trackers per thread; ours is per input already
        return self


def _key(lm: str) -> tuple[str, str, str]:
    step = current_step.get()
    return (step.step_name or OTHER, step.stage or OTHER, lm) if step is not None else (OTHER, OTHER, lm)


class _Call:
    """One LM call under way on an LM that has a cache: whether it reached a model."""

    __slots__ = ("model", "made")

    def __init__(self, model: str):
        self.model, self.made = model, False


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("spri_lm_call", default=None)


class _CallsNeeded(BaseCallback):
    """Counts the calls DSPy's cache answered on the LMs it is attached to (those with a cache), into the
    :class:`StepUsage` tracking the calling thread or task (if any): a call that returned without DSPy
    reporting its usage (:meth:`StepUsage.add_usage`) was a cache hit."""

    def __init__(self):
        self._calls: dict[str, tuple[_Call, contextvars.Token]] = {}

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if isinstance(dspy.settings.usage_tracker, StepUsage):
            call = _Call(getattr(instance, "model", type(instance).__name__))
            self._calls[call_id] = (call, _CALL.set(call))

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        call, token = entry
        try:
            _CALL.reset(token)
        except ValueError:  # ended in another context than it started in: nothing to restore there
            pass
        tracker = dspy.settings.usage_tracker
        if exception is None and not call.made and isinstance(tracker, StepUsage):
            tracker.needed(call.model)

    def __deepcopy__(self, memo):
        return self


_CALLS_NEEDED = _CallsNeeded()


def count_calls_needed(lm: dspy.BaseLM | None, program: dspy.Module | None = None) -> None:
    """Let :class:`StepUsage` count the calls DSPy's cache answers, on ``lm`` and on ``program``'s own step
    LMs: adds one shared callback to each LM whose cache is on (once). An LM without a cache needs none (every
    call it needs reaches its model, and DSPy reports those): a DSPy callback costs about 0.1 ms of CPU per call.
    On the LMs rather than in ``dspy.settings``, so that no module, predictor or adapter call pays for it."""
    lms = [lm, *(predictor.lm for predictor in program.predictors())] if program is not None else [lm]
    for model in lms:
        callbacks = getattr(model, "callbacks", None)
        if (getattr(model, "cache", True) and isinstance(callbacks, list)
                and not any(c is _CALLS_NEEDED for c in callbacks)):
            callbacks.append(_CALLS_NEEDED)


def run_summary(usage: StepUsage, lm: dspy.BaseLM, critic_lm: dspy.BaseLM | None, seconds: float) -> dict[str, Any]:
    """What one program call cost, for the screen or JSON: LM calls needed and made and tokens per model
    (the critic's model labelled as such when it differs), the seconds taken, where each model's requests
    went, and for an embedded engine its own counters (requests, memo hits, prompt tokens evaluated)."""
    lms = [lm] + ([critic_lm] if critic_lm is not None and critic_lm.model != lm.model else [])
    label = {m.model: m.model if m is lm else f"{m.model} (critic)" for m in lms}
    needed, made = Counter(), Counter()
    for (_step, _stage, model), counter in usage.by_step.items():
        needed[label.get(model, model)] += counter["calls_needed"]
        made[label.get(model, model)] += counter["calls"]
    summary = {"lm_calls": dict(needed), "lm_calls_made": dict(made), "usage": usage.get_total_tokens(),
               "seconds": round(seconds, 2),
               "endpoints": {label[m.model]: endpoint_of(m).host if endpoint_of(m) else "in process" for m in lms}}
    engines = {id(m.engine): m.engine for m in lms if hasattr(getattr(m, "engine", None), "stats")}
    if engines:
        first = next(iter(engines.values()))
        summary["engine"] = {key: sum(engine.stats[key] for engine in engines.values()) for key in first.stats}
        summary["engine"]["lm_calls"] = sum(needed[label[m.model]] for m in lms
                                            if id(getattr(m, "engine", None)) in engines)
    return summary
