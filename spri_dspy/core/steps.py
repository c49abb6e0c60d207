"""The six steps of SPRI as DSPy modules, one typed predictor each.

Each module returns a Prediction with the program's names for its outputs:
``principles``, ``score`` + ``feedback`` or ``response``. Optional inputs given
as None (no ``goal``) are left out of the prompt rather than shown as "None".
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

import dspy

from spri_dspy.adapters import default_adapter
from spri_dspy.core.flow import FlowModule, call
from spri_dspy.core.seeds import SeedMatch, select_seeds
from spri_dspy.signatures.instructions import MAX_WORDS, framed, word_limited
from spri_dspy.signatures import (
    CritiquePrinciples,
    CritiqueResponse,
    GeneratePrinciples,
    RefinePrinciples,
    RefineResponse,
    Respond,
)

current_step: contextvars.ContextVar[Step | None] = contextvars.ContextVar("spri_current_step", default=None)
"""The :class:`Step` whose LM call is under way, if any (usage is counted by it: :mod:`spri_dspy.runtime.usage`)."""


class Step(FlowModule, dspy.Module):
    """A single LM call: one ``dspy.Predict`` whose output fields are renamed for the program.

    Args:
        signature: the step's DSPy signature.
        outputs: the signature's output field names -> the Prediction's names (default: every output
            field under its own name).
        stage: the stage the step belongs to (``"principles"``, ``"response"``, ``"rubric"``,
            ``"judgement"``); usage is counted per stage by it.
        kind: ``"generator"``, ``"critic"`` or ``"refiner"``: critics run on a program's
            ``critic_lm``, and tuning sets one temperature per kind.

    Optional inputs given as None are left out of the prompt. While it calls its
    LM, :data:`current_step` holds the step.

    Example:
        ```python
        step = Step(dspy.Signature("question -> answer"), {"answer": "response"}, stage="response",
                    kind="generator")
        step(question="Why is the sky blue?").response
        ```
    """

    step_name: str | None = None
    stage: str | None = None
    kind: str | None = None

    def __init__(self, signature: type[dspy.Signature], outputs: dict[str, str] | None = None, *,
                 stage: str | None = None, kind: str | None = None):
        super().__init__()
        self.predict = dspy.Predict(signature)
        self.outputs = dict(outputs) if outputs is not None else {name: name for name in signature.output_fields}
        self.stage = stage or self.stage
        self.kind = kind or self.kind

    async def predict_as_step(self, **inputs) -> dspy.Prediction:
        """``self.predict`` (through :func:`spri_dspy.core.flow.call`) with :data:`current_step`
        set to this step, on :func:`spri_dspy.adapters.default_adapter` when no adapter is configured."""
        token = current_step.set(self)
        try:
            if dspy.settings.adapter is None:
                with dspy.context(adapter=default_adapter()):
                    return await call(self.predict, **inputs)
            return await call(self.predict, **inputs)
        finally:
            current_step.reset(token)

    async def run(self, **inputs) -> dspy.Prediction:
        given = {name: value for name, value in inputs.items() if value is not None}
        prediction = await self.predict_as_step(**given)
        return dspy.Prediction(**{ours: prediction[theirs] for theirs, ours in self.outputs.items()})


class SeededStep(Step):
    """A generating step shown few-shot seed examples, chosen per input.

    The seeds are the predictor's demos (so they are saved with the program and
    an optimizer may replace them), renamed to the signature's fields: a seed's
    ``query`` becomes ``query_field`` and its ``principles`` ``output``. For each
    input :func:`spri_dspy.core.seeds.select_seeds` picks the demos to show
    (``seed_match``, ``leave_one_out``; ``capability``, when given, is read only
    for that choice); the Prediction's ``seeds`` lists their indexes.
    """

    kind = "generator"

    def __init__(self, signature, output: str, seeds: Iterable[dspy.Example] = (), *, query_field: str = "query",
                 seed_match: SeedMatch = "all", leave_one_out: bool = False):
        super().__init__(signature, {output: output})
        select_seeds([], query="", match=seed_match)  # validates seed_match
        self.query_field, self.output = query_field, output
        self.seed_match, self.leave_one_out = seed_match, leave_one_out
        self.predict.demos = [self._demo(seed) for seed in seeds]

    def _demo(self, seed: dspy.Example) -> dspy.Example:
        fields = {k: v for k, v in seed.items() if k not in ("query", "principles")}
        fields.update({self.query_field: seed.query, self.output: seed.principles})
        return dspy.Example(**fields).with_inputs(*(k for k in (self.query_field, "goal") if k in fields))

    async def run(self, capability: str | None = None, **inputs) -> dspy.Prediction:
        demos = self.predict.demos
        shown = select_seeds([dspy.Example(query=d.get(self.query_field), goal=d.get("goal"),
                                           capability=d.get("capability")) for d in demos],
                             query=inputs[self.query_field], goal=inputs.get("goal"), capability=capability,
                             match=self.seed_match, leave_one_out=self.leave_one_out)
        given = {name: value for name, value in inputs.items() if value is not None}
        prediction = await self.predict_as_step(**given, demos=[demos[i] for i in shown])
        return dspy.Prediction(**{self.output: prediction[self.output]}, seeds=shown)


class PrincipleGenerator(SeededStep):
    """Writes principles for an input, few-shot from seed examples (see :class:`SeededStep`).

    Args:
        seeds: seed Examples with ``query`` and ``principles`` (see :func:`spri_dspy.load_seeds`), shown as demos.
        seed_match: ``"all"``, or ``"goal"`` to show only the seeds with the input's goal.
        leave_one_out: never show a seed whose query is the input.
        max_words: the word limit the principles are asked to keep (None for none).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        step = spri_dspy.PrincipleGenerator(max_words=64)
        print(step(query="My sister never calls me back.").principles)
        ```
    """

    stage = "principles"

    def __init__(self, seeds: Iterable[dspy.Example] = (), seed_match: SeedMatch = "all", leave_one_out: bool = False,
                 max_words: int | None = MAX_WORDS):
        super().__init__(word_limited(GeneratePrinciples, max_words, "writer"), "principles", seeds,
                         seed_match=seed_match, leave_one_out=leave_one_out)


class PrincipleCritic(Step):
    """Scores principles 1..5 for their usefulness to the input, with feedback.

    Args:
        max_words: the word limit the principles should keep; a longer text counts as a flaw.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        critic = spri_dspy.PrincipleCritic()
        verdict = critic(query="My sister never calls me back.", principles="1. Be kind.")
        print(verdict.score, verdict.feedback)
        ```
    """

    stage = "principles"
    kind = "critic"

    def __init__(self, max_words: int | None = MAX_WORDS):
        super().__init__(word_limited(CritiquePrinciples, max_words, "critic"))


class PrincipleRefiner(Step):
    """Rewrites principles to address the critic's feedback.

    Args:
        max_words: the word limit the refined principles are asked to keep.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        refiner = spri_dspy.PrincipleRefiner()
        print(refiner(query="My sister never calls me back.", draft_principles="1. Be kind.",
                      feedback="Too generic; say how to reach out.").principles)
        ```
    """

    stage = "principles"
    kind = "refiner"

    def __init__(self, max_words: int | None = MAX_WORDS):
        super().__init__(word_limited(RefinePrinciples, max_words, "writer"))


class Responder(Step):
    """Writes the response to the input, guided by the principles.

    Args:
        max_words: the word limit the response is asked to keep.
        framing: the task's word on what kind of response it wants, put before the instructions.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        responder = spri_dspy.Responder()
        print(responder(query="My sister never calls me back.", principles="1. Suggest one small step.").response)
        ```
    """

    stage = "response"
    kind = "generator"

    def __init__(self, max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(word_limited(framed(Respond, framing), max_words, "writer"))


class ResponseCritic(Step):
    """Scores 1..5 how well a response adheres to the principles, with feedback.

    Args:
        max_words: the word limit the response should keep; a longer one counts as a flaw.
        framing: the task's framing, as given to the responder.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        critic = spri_dspy.ResponseCritic()
        verdict = critic(query="My sister never calls me back.", principles="1. Suggest one small step.",
                         response="Send her a short note about something you share.")
        print(verdict.score, verdict.feedback)
        ```
    """

    stage = "response"
    kind = "critic"

    def __init__(self, max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(word_limited(framed(CritiqueResponse, framing), max_words, "critic"))


class ResponseRefiner(Step):
    """Revises a response to follow the principles, using the critic's feedback.

    Args:
        max_words: the word limit the refined response is asked to keep.
        framing: the task's framing, as given to the responder.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        refiner = spri_dspy.ResponseRefiner()
        print(refiner(query="My sister never calls me back.", principles="1. Suggest one small step.",
                      draft_response="Talk to her.", feedback="Name the step.").response)
        ```
    """

    stage = "response"
    kind = "refiner"

    def __init__(self, max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(word_limited(framed(RefineResponse, framing), max_words, "writer"))
