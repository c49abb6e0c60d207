"""The SPRI program: situated principles, critiqued and refined, then a response aligned to them."""

from __future__ import annotations

import dspy

from spri_dspy.critique import Keep, check_keep, check_max_rounds, check_threshold, critique_refine
from spri_dspy.modules import (
    PrincipleCritic,
    PrincipleGenerator,
    PrincipleRefiner,
    Responder,
    ResponseCritic,
    ResponseRefiner,
)
from spri_dspy.seeds import SeedSource, load_seeds


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    """Validate a text input: a non-empty string (or None when ``optional``); the error names ``name``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


class SPRI(dspy.Module):
    """Situated-PRInciples (Zhan et al., ICML 2025) as a DSPy program.

    Stage 1 writes principles for the input (few-shot from ``seeds``), which a
    critic scores 1..5; below ``threshold`` they are refined with the critic's
    feedback, for at most ``max_rounds`` critiques. Stage 2 writes the response
    under the final principles and critiques and refines it the same way.

    The critics run on ``critic_lm`` when given, otherwise on the configured LM;
    every other step runs on the configured LM (``dspy.configure``/``dspy.context``).
    Each step is a submodule (``principle_generator``, ``principle_critic``,
    ``principle_refiner``, ``responder``, ``response_critic``, ``response_refiner``)
    that can be given its own LM, inspected or compiled.

    Calling ``program(query=..., goal=None)`` returns a Prediction with
    ``principles``, ``response`` and ``trace`` (a JSON-serialisable list of
    :class:`spri_dspy.Round`). ``keep="latest"`` (the paper) keeps each stage's
    last text; ``keep="best"`` keeps its highest-scored one.
    """

    def __init__(
        self,
        threshold: int = 4,
        max_rounds: int = 4,
        seeds: SeedSource | None = None,
        critic_lm: dspy.BaseLM | None = None,
        keep: Keep = "latest",
    ):
        super().__init__()
        self.threshold = check_threshold(threshold)
        self.max_rounds = check_max_rounds(max_rounds)
        self.keep = check_keep(keep)
        if critic_lm is not None and not isinstance(critic_lm, dspy.BaseLM):
            raise TypeError(f"critic_lm must be a dspy.LM (dspy.BaseLM), got {type(critic_lm).__name__}")
        self.principle_generator = PrincipleGenerator(load_seeds(seeds) if seeds is not None else ())
        self.principle_critic = PrincipleCritic()
        self.principle_refiner = PrincipleRefiner()
        self.responder = Responder()
        self.response_critic = ResponseCritic()
        self.response_refiner = ResponseRefiner()
        if critic_lm is not None:
            self.principle_critic.set_lm(critic_lm)
            self.response_critic.set_lm(critic_lm)

    def forward(self, query: str, goal: str | None = None) -> dspy.Prediction:
        context = {"query": check_text("query", query), "goal": check_text("goal", goal, optional=True)}
        loop = {"threshold": self.threshold, "max_rounds": self.max_rounds, "keep": self.keep}

        principles = self.principle_generator(**context).principles
        principles, principle_rounds = critique_refine(
            "principles",
            principles,
            critique=lambda text: self.principle_critic(**context, principles=text),
            refine=lambda text, feedback: self.principle_refiner(**context, principles=text, feedback=feedback).principles,
            **loop,
        )

        response = self.responder(**context, principles=principles).response
        response, response_rounds = critique_refine(
            "response",
            response,
            critique=lambda text: self.response_critic(**context, principles=principles, response=text),
            refine=lambda text, feedback: self.response_refiner(
                **context, principles=principles, response=text, feedback=feedback
            ).response,
            **loop,
        )
        return dspy.Prediction(principles=principles, response=response, trace=principle_rounds + response_rounds)
