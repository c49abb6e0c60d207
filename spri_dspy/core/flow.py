"""One algorithm, two ways to run it: every program's steps are written once, as a coroutine, and run
either synchronously (``forward``, ``program(...)``) or on DSPy's async path (``aforward``,
``await program.acall(...)``).

Inside the coroutine each sub-module is called through :func:`call`. Run by :func:`run_sync`,
:func:`call` calls the module directly and returns at once, so the coroutine never suspends and one
``send`` runs it to the end: exactly the calls, order and results of plain synchronous code. Run by
:func:`run_async`, :func:`call` awaits the module's ``acall`` (DSPy's async predictors and LM client),
so an asyncio server can serve many requests at once. The two paths make the same calls in the same
order and return the same Prediction for the same LM answers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Coroutine, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import dspy

T = TypeVar("T")

_ASYNC: ContextVar[bool] = ContextVar("spri_dspy_async", default=False)


async def call(module: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a sub-module from a program's coroutine: ``await module.acall(...)`` on the async path,
    ``module(...)`` on the sync path."""
    if _ASYNC.get():
        return await module.acall(*args, **kwargs)
    return module(*args, **kwargs)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a program's coroutine to its end without an event loop (every :func:`call` returns at once)."""
    token = _ASYNC.set(False)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    finally:
        _ASYNC.reset(token)
    coroutine.close()
    raise RuntimeError("a program's coroutine awaited something other than spri_dspy.core.flow.call on the sync path")


async def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await a program's coroutine with every :func:`call` on DSPy's async path."""
    token = _ASYNC.set(True)
    try:
        return await coroutine
    finally:
        _ASYNC.reset(token)


class FlowModule:
    """Mixin for a ``dspy.Module`` whose algorithm is its ``async def run(...)``: ``forward`` runs it with
    :func:`run_sync`, ``aforward`` with :func:`run_async`, so ``program(...)`` and
    ``await program.acall(...)`` share every line of it."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.run(*args, **kwargs))

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        return await run_async(self.run(*args, **kwargs))

    async def run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


@functools.cache
def _stage_signature(program: type, name: str) -> inspect.Signature:
    """The signature of ``program``'s stage method ``name`` without ``self``: read once per class and stage, not
    on every input (the batch runner advances each input through each stage)."""
    signature = inspect.signature(getattr(program, name))
    return signature.replace(parameters=list(signature.parameters.values())[1:])


TRACE = "trace"
"""The output every stage appends to rather than replaces (its critique rounds)."""


class StagedModule(FlowModule):
    """Mixin for a program made of stages: ``stages`` names its async methods in order, ``outputs`` the
    fields of its Prediction.

    Each stage is an ``async def`` of its own inputs, taken by name from the program's arguments and
    the outputs of the stages before it; it returns a Prediction of its outputs. The program carries
    the rest: a stage's ``trace`` is appended to the earlier stages' trace, every other output is kept
    for the stages after it and the final Prediction. ``forward``/``aforward`` run the stages in order
    (:meth:`run`); the batch runner runs them one task at a time with :meth:`start`, :meth:`advance`
    and :meth:`finish`, interleaving the stages of different inputs. Takes no arguments (a mixin).

    Example:
        ```python
        class Outline(StagedModule, dspy.Module):
            stages = ("plan", "write")
            outputs = ("plan", "text", "trace")

            async def plan(self, topic):
                return dspy.Prediction(plan=..., trace=[...])

            async def write(self, topic, plan):
                return dspy.Prediction(text=..., trace=[...])
        ```
    """

    stages: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def start(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The program's arguments by name (those of its first stage, defaults filled in): what stage 0 reads."""
        bound = _stage_signature(type(self), self.stages[0]).bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    async def advance(self, index: int, state: Mapping[str, Any]) -> dict[str, Any]:
        """Run stage ``index`` on ``state`` (the arguments and earlier outputs); returns ``state`` with the
        stage's outputs added (its ``trace`` appended)."""
        reads = _stage_signature(type(self), self.stages[index]).parameters
        outputs = await getattr(self, self.stages[index])(**{name: state[name] for name in reads if name in state})
        state = dict(state)
        for name, value in outputs.items():
            state[name] = [*state.get(TRACE, []), *value] if name == TRACE else value
        return state

    def finish(self, state: Mapping[str, Any]) -> dspy.Prediction:
        """The program's Prediction: its ``outputs`` from the state after the last stage."""
        return dspy.Prediction(**{name: state[name] for name in self.outputs})

    async def run(self, *args: Any, **kwargs: Any) -> dspy.Prediction:
        """Every stage in order, for ``forward`` and ``aforward`` alike."""
        state = self.start(*args, **kwargs)
        for index in range(len(self.stages)):
            state = await self.advance(index, state)
        return self.finish(state)
