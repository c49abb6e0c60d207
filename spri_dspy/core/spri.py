"""The SPRI program: situated principles, critiqued and refined, then a response aligned to them."""

from __future__ import annotations

import dspy

from spri_dspy.core.critique import CritiqueRefineProgram, Keep
from spri_dspy.core.data import check_text
from spri_dspy.core.flow import call
from spri_dspy.core.steps import (
    PrincipleCritic,
    PrincipleGenerator,
    PrincipleRefiner,
    Responder,
    ResponseCritic,
    ResponseRefiner,
)
from spri_dspy.core.seeds import SeedMatch, SeedSource, load_seeds
from spri_dspy.signatures.instructions import MAX_WORDS, check_max_words


class SPRI(CritiqueRefineProgram):
    """Situated-PRInciples (Zhan et al., ICML 2025) as a DSPy program.

    Stage 1 writes principles for the input (few-shot from ``seeds``), which a
    critic scores 1..5; below ``threshold`` they are refined with the critic's
    feedback, for at most ``max_rounds`` critiques. Stage 2 writes the response
    under the final principles and critiques and refines it the same way.

    Args:
        threshold: the critic score (1..5) that accepts a text (the paper: 4).
        max_rounds: the most critiques per stage (the paper: 4).
        seeds: few-shot seed examples for the principle writer: a JSONL path or Examples
            with ``query`` and ``principles`` (see :func:`spri_dspy.load_seeds`).
        critic_lm: the LM of both critics; None runs them on the configured LM.
        keep: ``"latest"`` (the paper) keeps each stage's last text; ``"best"`` its highest-scored one.
        seed_match: ``"all"`` shows every seed; ``"goal"`` only the seeds with the input's goal
            (for reappraisal: the seed of the same appraisal dimension).
        leave_one_out: never show a seed whose query is the input.
        max_words: the word limit stated to every writer and refiner and checked by both
            critics (the paper's 128; None for none).
        framing: a task's word on what kind of response it wants (e.g.
            :data:`spri_dspy.experiments.tasks.REAPPRAISAL_FRAMING`), put before the instructions of the
            responder, the response critic and the response refiner.

    Every other step runs on the configured LM (``dspy.configure``/``dspy.context``).
    Each step is a submodule (``principle_generator``, ``principle_critic``,
    ``principle_refiner``, ``responder``, ``response_critic``, ``response_refiner``)
    that can be given its own LM, inspected or compiled; the two critique-refine
    loops are the :class:`spri_dspy.CritiqueRefine` stages ``principles_stage`` and
    ``response_stage`` over those steps.

    Calling ``program(query=..., goal=None)`` returns a Prediction with
    ``principles``, ``response``, ``trace`` (a JSON-serialisable list of
    :class:`spri_dspy.Round`) and ``seeds`` (indexes of the seeds shown).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        program = spri_dspy.SPRI(threshold=4, max_rounds=2)
        prediction = program(query="How do I tell my team I'm leaving?")
        print(prediction.principles, prediction.response, prediction.trace[-1]["score"])
        ```
    """

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
        self.framing = framing
        self.principle_generator = PrincipleGenerator(
            load_seeds(seeds) if seeds is not None else (), seed_match=seed_match, leave_one_out=leave_one_out,
            max_words=max_words,
        )
        self.principle_critic = PrincipleCritic(max_words)
        self.principle_refiner = PrincipleRefiner(max_words)
        self.responder = Responder(max_words, framing)
        self.response_critic = ResponseCritic(max_words, framing)
        self.response_refiner = ResponseRefiner(max_words, framing)
        self.principles_stage = self.critique_refine("principles", self.principle_critic, self.principle_refiner,
                                                     field="principles")
        self.response_stage = self.critique_refine("response", self.response_critic, self.response_refiner,
                                                   field="response")
        self.place_critics(critic_lm)

    stages = ("write_principles", "write_response")
    outputs = ("principles", "response", "trace", "seeds")

    async def write_principles(self, query: str, goal: str | None = None) -> dspy.Prediction:
        """Stage 1: principles for the input, critiqued and refined."""
        query, goal = check_text("query", query), check_text("goal", goal, optional=True)
        generated = await call(self.principle_generator, query=query, goal=goal)
        principles = await call(self.principles_stage, generated.principles, query=query, goal=goal)
        return dspy.Prediction(query=query, goal=goal, principles=principles.final, trace=principles.trace,
                               seeds=generated.seeds)

    async def write_response(self, query: str, goal: str | None, principles: str) -> dspy.Prediction:
        """Stage 2: the response under the final principles, critiqued and refined."""
        draft = (await call(self.responder, query=query, goal=goal, principles=principles)).response
        response = await call(self.response_stage, draft, query=query, goal=goal, principles=principles)
        return dspy.Prediction(response=response.final, trace=response.trace)
