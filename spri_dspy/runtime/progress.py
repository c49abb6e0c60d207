"""Live progress of one program call: a line per step as it finishes, through DSPy's callbacks.

``with dspy.context(callbacks=[StepProgress()]): program(...)`` prints, on stderr, each
step of SPRI (or any program built from :class:`spri_dspy.core.steps.Step`) as it ends:
its stage, what it did (write, critique N with the score and what follows, refine)
and how long it took.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from spri_dspy.compat import BaseCallback

_VERBS = {"generator": "write", "refiner": "refine"}


class StepProgress(BaseCallback):
    """A DSPy callback printing one line per finished :class:`~spri_dspy.core.steps.Step`.

    Args:
        threshold: the score that accepts a text, to say what follows a critique (None: not said).
        max_rounds: the most critiques per stage, to tell a last critique from one a refinement follows.
        stream: where to write (default: ``sys.stderr`` at the time of each line).

    Example:
        ```python
        with dspy.context(callbacks=[StepProgress(threshold=4)]):
            SPRI()(query="How do I tell my team I'm leaving?")
        # principles  write            1.9 s
        # principles  critique 1       score 2, below 4: refine    0.8 s
        ```
    """

    def __init__(self, threshold: int | None = None, max_rounds: int | None = None, stream: TextIO | None = None):
        self.threshold, self.max_rounds = threshold, max_rounds
        self.stream = stream
        self._started: dict[str, tuple[Any, float]] = {}
        self._critiques: Counter = Counter()
        self._lock = threading.Lock()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        from spri_dspy.core.steps import Step

        if isinstance(instance, Step):
            self._started[call_id] = (instance, time.perf_counter())

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        started = self._started.pop(call_id, None)
        if started is None:
            return
        step, began = started
        seconds = time.perf_counter() - began
        stage = step.stage or "step"
        with self._lock:
            if step.kind == "critic":
                self._critiques[stage] += 1
                number = self._critiques[stage]
                action, note = f"critique {number}", self._verdict(outputs, exception, number)
            else:
                action = _VERBS.get(step.kind, step.kind or "call")
                note = f"failed: {type(exception).__name__}" if exception is not None else ""
            print(f"{stage:<11} {action:<12} {note:<34} {seconds:5.1f} s", file=self.stream or sys.stderr, flush=True)

    def _verdict(self, outputs: Any, exception: BaseException | None, number: int) -> str:
        score = getattr(outputs, "score", None) if exception is None else None
        if score is None:
            return f"failed: {type(exception).__name__}" if exception is not None else "no score"
        if self.threshold is None:
            return f"score {score}"
        if score >= self.threshold:
            return f"score {score}, accepted"
        last = self.max_rounds is not None and number >= self.max_rounds
        return f"score {score}, below {self.threshold}: " + ("rounds spent" if last else "refine")


class WorkProgress:
    """A progress bar per piece of long work (an ablation variant, the dev split before and after compiling, a
    tuning trial), drawn on ``stream`` as ``progress(what, done, total)`` reports it (see
    :data:`spri_dspy.experiments.evaluation.Progress`); each bar closes when its work is done.

    Args:
        command: the command named at the start of each bar (``spri ablate``).
        stream: where to draw (default ``sys.stderr`` at construction, so a later redirect of stderr, such as the
            one that hides an optimizer's own output, does not hide the bars).

    Example:
        ```python
        spri_dspy.experiments.ablate.ablate(variants, devset, metric, "out", progress=WorkProgress("ablation"))
        # ablation variant 1/3 spri:  40%|████      | 4/10 [00:31<00:47]
        ```
    """

    def __init__(self, command: str, stream: TextIO | None = None):
        self.command, self.stream = command, stream or sys.stderr
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        with self._lock:
            bar = self._bars.get(what)
            if bar is None:
                bar = self._bars[what] = tqdm(total=total, desc=f"{self.command} {what}", file=self.stream,
                                              leave=True, dynamic_ncols=True, mininterval=0.5)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
                del self._bars[what]
