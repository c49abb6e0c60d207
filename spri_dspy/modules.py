"""The six steps of SPRI as DSPy modules, one typed predictor each.

Each module returns a Prediction with the program's names for its outputs:
``principles``, ``score`` + ``feedback`` or ``response``. Optional inputs given
as None (no ``goal``) are left out of the prompt rather than shown as "None".
"""

from __future__ import annotations

from collections.abc import Iterable

import dspy

from spri_dspy.signatures import (
    CritiquePrinciples,
    CritiqueResponse,
    GeneratePrinciples,
    RefinePrinciples,
    RefineResponse,
    Respond,
)


class Step(dspy.Module):
    """A single LM call: one ``dspy.Predict`` whose output fields are renamed for the program.

    ``outputs`` maps the signature's output field names to the Prediction's names.
    """

    def __init__(self, signature: type[dspy.Signature], outputs: dict[str, str]):
        super().__init__()
        self.predict = dspy.Predict(signature)
        self.outputs = dict(outputs)

    def forward(self, **inputs) -> dspy.Prediction:
        given = {name: value for name, value in inputs.items() if value is not None}
        prediction = self.predict(**given)
        return dspy.Prediction(**{ours: prediction[theirs] for theirs, ours in self.outputs.items()})


class PrincipleGenerator(Step):
    """Writes principles for an input; ``seeds`` (dspy.Examples) are its few-shot demos."""

    def __init__(self, seeds: Iterable[dspy.Example] = ()):
        super().__init__(GeneratePrinciples, {"principles": "principles"})
        self.predict.demos = list(seeds)


class PrincipleCritic(Step):
    """Scores principles 1..5 for their usefulness to the input, with feedback."""

    def __init__(self):
        super().__init__(CritiquePrinciples, {"score": "score", "feedback": "feedback"})


class PrincipleRefiner(Step):
    """Rewrites principles to address the critic's feedback."""

    def __init__(self):
        super().__init__(RefinePrinciples, {"refined_principles": "principles"})


class Responder(Step):
    """Writes the response to the input, guided by the principles."""

    def __init__(self):
        super().__init__(Respond, {"response": "response"})


class ResponseCritic(Step):
    """Scores 1..5 how well a response adheres to the principles, with feedback."""

    def __init__(self):
        super().__init__(CritiqueResponse, {"score": "score", "feedback": "feedback"})


class ResponseRefiner(Step):
    """Revises a response to follow the principles, using the critic's feedback."""

    def __init__(self):
        super().__init__(RefineResponse, {"refined_response": "response"})
