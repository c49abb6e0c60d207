"""The SPRI program: situated principles, critiqued and refined, then a response aligned to them."""

from __future__ import annotations

import dspy

from spri_dspy.critique import CritiqueRefineProgram, Keep, Round
from spri_dspy.modules import (
    PrincipleCritic,
    PrincipleGenerator,
    PrincipleRefiner,
    Responder,
    ResponseCritic,
    ResponseRefiner,
)
from spri_dspy.seeds import SeedMatch, SeedSource, load_seeds
from spri_dspy.signatures.instructions import MAX_WORDS, check_max_words


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    """Validate a text input: a non-empty string (or None when ``optional``); the error names ``name``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def refine_response(program: CritiqueRefineProgram, response: str, context: dict) -> tuple[str, list[Round]]:
    """The response stage's loop on ``program.response_critic`` and ``program.response_refiner``.

    ``context`` holds every input of those steps but the response (query, goal,
    and for SPRI the principles).
    """
    return program.refine_loop(
        "response",
        response,
        critique=lambda text: program.response_critic(**context, response=text),
        refine=lambda text, feedback: program.response_refiner(**context, draft_response=text, feedback=feedback).response,
    )


class SPRI(CritiqueRefineProgram):
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
    ``principles``, ``response``, ``trace`` (a JSON-serialisable list of
    :class:`spri_dspy.Round`) and ``seeds`` (indexes of the seeds shown).
    ``max_words`` (the paper's 128; None for none) is the word limit stated to
    every writer and refiner and checked by both critics. ``framing`` is a task's
    word on what kind of response it wants (e.g.
    :data:`spri_dspy.tasks.REAPPRAISAL_FRAMING`), put before the instructions of
    the responder, the response critic and the response refiner.
    ``keep="latest"`` (the paper) keeps each stage's last text; ``keep="best"``
    keeps its highest-scored one. ``seed_match="goal"`` shows only seeds with
    the input's goal (for reappraisal: the seed of the same appraisal
    dimension); ``leave_one_out=True`` never shows a seed whose query is the input.
    """

    critics = ("principle_critic", "response_critic")
    stages = ("write_principles", "write_response")

    def __init__(
        self,
        threshold: int = 4,
        max_rounds: int = 4,
        seeds: SeedSource | None = None,
        critic_lm: dspy.BaseLM | None = None,
        keep: Keep = "latest",
        seed_match: SeedMatch = "all",
        leave_one_out: bool = False,
        max_words: int | None = MAX_WORDS,
        framing: str | None = None,
    ):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.max_words = check_max_words(max_words)
        self.principle_generator = PrincipleGenerator(
            load_seeds(seeds) if seeds is not None else (), seed_match=seed_match, leave_one_out=leave_one_out,
            max_words=max_words,
        )
        self.principle_critic = PrincipleCritic(max_words)
        self.principle_refiner = PrincipleRefiner(max_words)
        self.framing = framing
        self.responder = Responder(max_words, framing)
        self.response_critic = ResponseCritic(max_words, framing)
        self.response_refiner = ResponseRefiner(max_words, framing)
        self.place_critics(critic_lm)

    def forward(self, query: str, goal: str | None = None) -> dspy.Prediction:
        return self.write_response(**self.write_principles(query, goal))

    def write_principles(self, query: str, goal: str | None = None) -> dict:
        """Stage 1: principles for the input, critiqued and refined; returns stage 2's arguments."""
        context = {"query": check_text("query", query), "goal": check_text("goal", goal, optional=True)}
        generated = self.principle_generator(**context)
        principles, rounds = self.refine_loop(
            "principles",
            generated.principles,
            critique=lambda text: self.principle_critic(**context, principles=text),
            refine=lambda text, feedback: self.principle_refiner(**context, draft_principles=text,
                                                                  feedback=feedback).principles,
        )
        return {"context": context, "principles": principles, "trace": rounds, "seeds": generated.seeds}

    def write_response(self, context: dict, principles: str, trace: list[Round], seeds: list[int]) -> dspy.Prediction:
        """Stage 2: the response under the final principles, critiqued and refined; returns the Prediction."""
        response_context = {**context, "principles": principles}
        response, rounds = refine_response(self, self.responder(**response_context).response, response_context)
        return dspy.Prediction(principles=principles, response=response, trace=trace + rounds, seeds=seeds)
