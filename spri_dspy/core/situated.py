"""Situated: SPRI around any DSPy module, the way ``dspy.Refine`` wraps one.

For each input, principles are written from the module's own input fields and
critiqued and refined (stage 1); the module then runs with the principles in
front of it; a critic scores all its outputs against the principles, and below
the threshold a refiner rewrites them with the feedback, typed exactly as the
module's signature types them (stage 2). Both stages are the same
:class:`~spri_dspy.CritiqueRefine` loop as every other program's.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import dspy

from spri_dspy.core.critique import CritiqueRefineProgram, Keep
from spri_dspy.core.flow import call
from spri_dspy.core.steps import Step
from spri_dspy.signatures.instructions import MAX_WORDS, check_max_words, word_limited
from spri_dspy.signatures.situated import (
    CritiqueOutputs,
    CritiqueTaskPrinciples,
    RefineOutputs,
    RefineTaskPrinciples,
    WriteTaskPrinciples,
    for_task,
)
from spri_dspy.core.steps import current_step

PRINCIPLES = "principles"
"""The input field each of the wrapped module's predictors gains: this input's final principles."""

_RESERVED = ("principles", "draft_principles", "outputs", "draft_outputs", "feedback", "score", "trace")
_IN_FORCE: ContextVar[str | None] = ContextVar("spri_situated_principles", default=None)
_OBJECT_PATH = re.compile(r"^(?P<file>[^:]+\.py):(?P<name>[A-Za-z_][\w.]*)$")


def task_signature(module: dspy.Module) -> type[dspy.Signature]:
    """The signature of the task a module performs: its own ``signature`` (``dspy.Predict``), a
    ``dspy.ChainOfThought``'s without its ``reasoning``, else its only predictor's, else the first predictor's inputs and the
    last one's outputs (pass ``signature=`` to :class:`Situated` when that is not the task)."""
    own = getattr(module, "signature", None)
    if isinstance(own, type) and issubclass(own, dspy.Signature):
        return own
    if isinstance(module, dspy.ChainOfThought):  # its predictor's signature, less the reasoning it adds
        return module.predict.signature.delete("reasoning")
    predictors = module.predictors()
    if not predictors:
        raise ValueError(f"{type(module).__name__} has no predictor to wrap; give Situated a signature or a module "
                         "built from dspy.Predict")
    first, last = predictors[0].signature, predictors[-1].signature
    if len(predictors) == 1:
        return first
    fields = {name: (field.annotation, field) for name, field in first.input_fields.items()}
    fields.update({name: (field.annotation, field) for name, field in last.output_fields.items()})
    return dspy.Signature(fields, first.instructions)


def is_object_path(text: str) -> bool:
    """Whether ``text`` names a module object in a Python file (``FILE.py:NAME``) rather than a signature."""
    return _OBJECT_PATH.match(text) is not None


def load_object(path: str) -> Any:
    """The object ``NAME`` defined by the Python file of ``FILE.py:NAME`` (for ``--program FILE.py:NAME``)."""
    match = _OBJECT_PATH.match(path)
    if match is None:
        raise ValueError(f"expected FILE.py:NAME, got {path!r}")
    file = Path(match["file"])
    if not file.is_file():
        raise ValueError(f"{file}: no such file")
    spec = importlib.util.spec_from_file_location(f"spri_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    value: Any = module
    for part in match["name"].split("."):
        if not hasattr(value, part):
            raise ValueError(f"{file} defines no {match['name']!r}")
        value = getattr(value, part)
    return value


class _Guided:
    """Mixed into each predictor of the wrapped module: its signature gains a ``principles`` input, filled
    with the principles in force for the current input (:class:`Situated` sets them around the call)."""

    def forward(self, **kwargs):
        kwargs.setdefault(PRINCIPLES, _IN_FORCE.get())
        return super().forward(**kwargs)

    async def aforward(self, **kwargs):
        kwargs.setdefault(PRINCIPLES, _IN_FORCE.get())
        return await super().aforward(**kwargs)


_GUIDED: dict[type, type] = {}


def _guided_class(cls: type) -> type:
    if issubclass(cls, _Guided):
        return cls
    if cls not in _GUIDED:
        _GUIDED[cls] = type(cls.__name__, (_Guided, cls), {"__module__": cls.__module__,
                                                            "__qualname__": cls.__qualname__})
    return _GUIDED[cls]


def _guide(module: dspy.Module) -> None:
    """Give every predictor of ``module`` the ``principles`` input (see :class:`_Guided`)."""
    for predictor in module.predictors():
        if PRINCIPLES not in predictor.signature.input_fields:
            field = dspy.InputField(desc="Principles that the outputs for this input must follow.")
            predictor.signature = predictor.signature.prepend(PRINCIPLES, field, str)
        predictor.__class__ = _guided_class(type(predictor))


class _ModuleCalls:
    """What the wrapped module's LM calls are counted under (:mod:`spri_dspy.runtime.usage`)."""

    step_name, stage, kind = "module", "outputs", "generator"


class Situated(CritiqueRefineProgram):
    """SPRI around any DSPy module or signature: situated principles for each input, the module run under
    them, and its outputs critiqued and refined against them.

    Stage 1 writes principles from the module's inputs (the task's instruction and output fields tell the
    writer what the task is) and critiques and refines them below ``threshold``. Stage 2 runs the module
    with the principles in front of it, then a critic scores all its outputs (typed ones included) against
    the principles, and a refiner rewrites them with the feedback, each output typed as the module's
    signature types it (a ``Literal`` stays in its set, an ``int`` an ``int``). Both stages are the
    :class:`~spri_dspy.CritiqueRefine` loop of every other program, with its trace and usage counting.

    The principles reach the module as an extra ``principles`` input field of each of its predictors
    (on Situated's own copy of the module; yours is not changed): any module works, however it calls
    its predictors, and an optimizer compiles it as usual (demos record the principles they were made
    under). Instructions would not do: they are what optimizers rewrite, and they are shared by every
    input while principles belong to one.

    Args:
        module: the module to wrap (copied), a ``dspy.Signature``, a string signature such as
            ``"question, context -> answer"`` (a ``dspy.Predict``), or ``"FILE.py:NAME"`` naming a module
            object in a Python file.
        threshold: the critic score (1..5) that accepts principles or outputs (the paper: 4).
        max_rounds: the most critiques per stage (the paper: 4).
        critic_lm: the LM of both critics; None runs them on the configured LM.
        seeds: few-shot examples for the principle writer: ``dspy.Example``s (or dicts) holding the task's
            input fields and ``principles``.
        max_words: the word limit on principles, stated to their writer and refiner and checked by their
            critic (None for none); outputs are the module's own and have none.
        keep: ``"latest"`` keeps each stage's last text; ``"best"`` its highest-scored one.
        signature: the task's signature, when the module's own cannot be read off it (see
            :func:`task_signature`).

    Calling it with the module's inputs returns a Prediction with the module's output fields (the kept
    ones), ``principles`` and ``trace`` (one :class:`~spri_dspy.Round` per critique, stages
    ``"principles"`` and ``"outputs"``).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        qa = spri_dspy.Situated(dspy.ChainOfThought("question -> answer"), max_rounds=2)
        prediction = qa(question="Why do onions make people cry?")
        print(prediction.answer, prediction.principles, prediction.trace[-1]["score"])
        ```
    """

    def __init__(
        self,
        module: dspy.Module | type[dspy.Signature] | str,
        threshold: int = 4,
        max_rounds: int = 4,
        critic_lm: dspy.BaseLM | None = None,
        seeds: list[dspy.Example | dict] | None = None,
        max_words: int | None = MAX_WORDS,
        keep: Keep = "latest",
        signature: type[dspy.Signature] | str | None = None,
    ):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.max_words = check_max_words(max_words)
        self.module_source = module if isinstance(module, str) else None
        """What rebuilds the module from a saved file: its string signature or ``FILE.py:NAME`` (else None)."""
        self.signature = signature if isinstance(signature, str) else None
        self.module = _own_copy(module)
        self.task = dspy.ensure_signature(signature) if signature is not None else task_signature(self.module)
        if not self.task.input_fields or not self.task.output_fields:
            raise ValueError(f"the task {self.task.signature!r} needs at least one input and one output field")
        clash = [name for name in (*self.task.input_fields, *self.task.output_fields) if name in _RESERVED]
        if clash:
            raise ValueError(f"the task's field {clash[0]!r} has a name Situated's own steps use; rename it "
                             f"(reserved: {', '.join(_RESERVED)})")
        _guide(self.module)
        task = self.task
        self.principle_writer = Step(word_limited(for_task(WriteTaskPrinciples, task), max_words, "writer"),
                                     stage="principles", kind="generator")
        self.principle_critic = Step(word_limited(for_task(CritiqueTaskPrinciples, task), max_words, "critic"),
                                     stage="principles", kind="critic")
        self.principle_refiner = Step(word_limited(for_task(RefineTaskPrinciples, task), max_words, "writer"),
                                      stage="principles", kind="refiner")
        self.output_critic = Step(for_task(CritiqueOutputs, task),
                                  stage="outputs", kind="critic")
        self.output_refiner = Step(for_task(RefineOutputs, task, outputs=True),
                                   {name: name for name in task.output_fields}, stage="outputs", kind="refiner")
        self.principles_stage = self.critique_refine("principles", self.principle_critic, self.principle_refiner,
                                                     field="principles")
        self.outputs_stage = self.critique_refine("outputs", self.output_critic, self.output_refiner,
                                                  field="outputs", output=None, render=self.render_outputs)
        self.seeds = [_seed(seed, task, number) for number, seed in enumerate(seeds or (), start=1)]
        self.principle_writer.predict.demos = list(self.seeds)
        self.place_critics(critic_lm)

    def render_outputs(self, outputs: Any) -> str:
        """The module's outputs as the critic, the refiner and the trace see them: one ``name: value`` line
        per output field (values that are not text as JSON)."""
        lines = []
        for name in self.task.output_fields:
            value = outputs[name]
            lines.append(f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)}")
        return "\n".join(lines)

    async def run(self, **inputs: Any) -> dspy.Prediction:
        """Algorithm 1 around the module, for ``program(...)`` and ``await program.acall(...)`` alike."""
        missing = [name for name in self.task.input_fields if name not in inputs]
        if missing:
            raise ValueError(f"Situated({self.task.signature}) needs the input field {missing[0]!r}")
        written = await call(self.principle_writer, **inputs)
        principles = await call(self.principles_stage, written.principles, **inputs)
        produced = await self._produce(principles.final, inputs)
        draft = dspy.Prediction(**{name: produced[name] for name in self.task.output_fields})
        outputs = await call(self.outputs_stage, draft, **inputs, principles=principles.final)
        return dspy.Prediction(**{name: outputs.final[name] for name in self.task.output_fields},
                               principles=principles.final, trace=principles.trace + outputs.trace)

    async def _produce(self, principles: str, inputs: dict[str, Any]) -> dspy.Prediction:
        """The wrapped module's Prediction for ``inputs``, with ``principles`` in force for its predictors."""
        in_force, step = _IN_FORCE.set(principles), current_step.set(_ModuleCalls)
        try:
            return await call(self.module, **inputs)
        finally:
            current_step.reset(step)
            _IN_FORCE.reset(in_force)


def _own_copy(module: Any) -> dspy.Module:
    if module is None:
        raise ValueError("Situated needs the module it wraps (a module, a signature or FILE.py:NAME); for a saved "
                         "program of your own module: load_program(path, module=YourModule())")
    if isinstance(module, str) and is_object_path(module):
        module = load_object(module)
    if isinstance(module, str) or (isinstance(module, type) and issubclass(module, dspy.Signature)):
        return dspy.Predict(module)
    if not isinstance(module, dspy.Module):
        raise TypeError(f"Situated wraps a dspy.Module, a signature or FILE.py:NAME, got {type(module).__name__}")
    return module.deepcopy()


def _seed(seed: dspy.Example | dict, task: type[dspy.Signature], number: int) -> dspy.Example:
    example = seed if isinstance(seed, dspy.Example) else dspy.Example(**seed)
    absent = [name for name in (*task.input_fields, "principles") if example.get(name) is None]
    if absent:
        raise ValueError(f"seed {number} has no {absent[0]!r} (a seed holds the task's inputs and 'principles')")
    return example.with_inputs(*task.input_fields)
