"""Counting LM calls and tokens per step, stage and model.

Every :class:`spri_dspy.modules.Step` sets :data:`current_step` while it calls
its LM, and declares the stage it belongs to (``"principles"``, ``"response"``,
``"rubric"``, ``"judgement"``). :class:`StepUsage` is a DSPy usage tracker that
reads it, so a batch run, an ablation or a tuning trial can say which step of
which stage spent which calls on which model.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import dspy
from dspy.utils.usage_tracker import UsageTracker

if TYPE_CHECKING:
    from spri_dspy.modules import Step

current_step: contextvars.ContextVar[Step | None] = contextvars.ContextVar("spri_current_step", default=None)
"""The :class:`~spri_dspy.modules.Step` whose LM call is under way, if any."""

OTHER = "other"
"""The step and stage of LM calls made outside any named step."""


def name_steps(program: dspy.Module) -> None:
    """Give every :class:`~spri_dspy.modules.Step` in ``program`` its attribute path as ``step_name``
    (e.g. ``"principle_critic"``), so usage can be counted per step."""
    from spri_dspy.modules import Step

    for name, module in program.named_sub_modules():
        if isinstance(module, Step):
            module.step_name = name.removeprefix("self.")


class StepUsage(UsageTracker):
    """A DSPy usage tracker that also counts calls and tokens per (step, stage, model).

    DSPy calls ``add_usage`` once per LM call that reached the model (cache hits
    are not counted); :data:`current_step` says which step made it (steps named
    by :func:`name_steps`; others count as ``"other"``).

    Example:
        ```python
        usage = StepUsage()
        with dspy.context(usage_tracker=usage):
            program(query="...")
        usage.calls, usage.by_step
        ```
    """

    def __init__(self):
        super().__init__()
        self.by_step: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
        self._lock = threading.Lock()

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        step = current_step.get()
        key = (step.step_name or OTHER, step.stage or OTHER, lm) if step is not None else (OTHER, OTHER, lm)
        with self._lock:
            super().add_usage(lm, usage_entry)
            counter = self.by_step[key]
            counter["calls"] += 1
            for name in ("prompt_tokens", "completion_tokens"):
                counter[name] += int(usage_entry.get(name) or 0)

    @property
    def calls(self) -> int:
        """LM calls counted so far, all steps and models together."""
        return sum(counter["calls"] for counter in self.by_step.values())

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens counted so far."""
        return sum(counter["prompt_tokens"] + counter["completion_tokens"] for counter in self.by_step.values())

    def __deepcopy__(self, memo):  # ParallelExecutor copies trackers per thread; ours is per input already
        return self
