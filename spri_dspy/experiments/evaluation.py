"""One evaluation path for compile, tune and ablate: ``dspy.Evaluate``, with failures and usage kept.

``dspy.Evaluate`` runs the program over a dev set (threads, error limits) and
scores failures 0. :func:`evaluate` also says which examples failed and why, and
counts the LM calls and tokens of the program alone (not those of an LLM-judge metric).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from spri_dspy.secrets import redact
from spri_dspy.runtime.usage import StepUsage

Inputs = Callable[[dspy.Example], dict[str, Any]]


@dataclass
class Evaluation:
    """A program's scores on a dev set.

    ``scores`` holds one score per example in order, None where the program or the
    metric failed; ``errors`` holds those failures; ``usage`` the program's LM calls.
    """

    scores: list[float | None]
    errors: list[Exception] = field(default_factory=list)
    usage: StepUsage = field(default_factory=StepUsage)

    @property
    def failed(self) -> int:
        """Examples that failed."""
        return sum(score is None for score in self.scores)

    @property
    def mean(self) -> float:
        """Mean score of the examples that ran (NaN when none did)."""
        scored = [score for score in self.scores if score is not None]
        return sum(scored) / len(scored) if scored else math.nan

    @property
    def score(self) -> float:
        """Mean score with failures scored 0 (``dspy.Evaluate``'s rule)."""
        return sum(score or 0.0 for score in self.scores) / len(self.scores)

    @property
    def first_error(self) -> str:
        """The first failure as one line (secrets redacted), or ``""``."""
        if not self.errors:
            return ""
        return _one_line(self.errors[0])

    @property
    def failure_reasons(self) -> dict[str, int]:
        """Each distinct failure (one line, secrets redacted) with how many examples it ended."""
        reasons: dict[str, int] = {}
        for error in self.errors:
            reasons[_one_line(error)] = reasons.get(_one_line(error), 0) + 1
        return reasons


def _one_line(error: Exception) -> str:
    return redact(" ".join(f"{type(error).__name__}: {error}".split()))[:300]


class _Counted(dspy.Module):
    """``program`` with its own LM usage counted and its failures kept."""

    def __init__(self, program: dspy.Module, usage: StepUsage, errors: list[Exception],
                 failed: Callable[[], None] = lambda: None):
        super().__init__()
        self.program, self.usage, self.errors, self.failed = program, usage, errors, failed

    def forward(self, **inputs):
        try:
            with self.usage.context(self.program):
                return self.program(**inputs)
        except Exception as exc:
            self.errors.append(exc)
            self.failed()  # no metric call follows: this example is finished here
            raise


Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: called as work advances (an example scored, a variant or trial finished)."""


def evaluate(program: dspy.Module, devset: Sequence[dspy.Example], metric: Callable[..., Any], *,
             inputs: Inputs | None = None, num_threads: int = 1, progress: Progress | None = None,
             label: str = "examples") -> Evaluation:
    """Run ``program`` on every example of ``devset`` with ``dspy.Evaluate`` and score it with ``metric``.

    ``inputs(example)`` gives the program's arguments when they are not the example's
    inputs (e.g. an oracle reading ``principles`` from the expert constitution).
    A failing example is recorded, never raised. ``progress(label, done, total)`` is called as each
    example finishes, scored or failed.

    Example:
        ```python
        result = evaluate(spri_dspy.SPRI(), devset, spri_dspy.experiments.metrics.reappraisal_alignment())
        result.mean, result.failed, result.usage.calls
        ```
    """
    examples = list(devset)
    if inputs is not None:
        examples = [_with_inputs(example, inputs(example)) for example in examples]
    scores: dict[int, float] = {}
    errors: list[Exception] = []
    lock = threading.Lock()

    finished = [0]

    def advance() -> None:
        with lock:
            finished[0] += 1
            done = finished[0]
        if progress is not None:
            progress(label, done, len(examples))

    def scored(example, prediction, trace=None):
        try:
            value = float(metric(example, prediction, trace))
        except Exception as exc:
            with lock:
                errors.append(exc)
            advance()
            raise
        with lock:
            scores[id(example)] = value
        advance()
        return value

    usage = StepUsage()
    dspy.Evaluate(devset=examples, metric=scored, num_threads=num_threads, display_progress=False,
                  provide_traceback=False, max_errors=len(examples) + 1)(_Counted(program, usage, errors, advance))
    return Evaluation([scores.get(id(example)) for example in examples], errors, usage)


def _with_inputs(example: dspy.Example, given: dict[str, Any]) -> dspy.Example:
    """``example`` whose inputs are ``given`` (its own fields kept, for the metric)."""
    extra = {key: value for key, value in given.items() if key not in example}
    return dspy.Example(**example.toDict(), **extra).with_inputs(*given)
