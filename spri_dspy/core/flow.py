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

from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

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
