"""SPRI as an LLM judge: an instance-specific rubric, critiqued and refined, then a judgement
made with it, itself critiqued and refined (the paper's BiGGen-Bench setting)."""

from __future__ import annotations

import dspy

from spri_dspy.core.critique import CritiqueRefineProgram, Keep
from spri_dspy.core.data import check_text
from spri_dspy.core.flow import call
from spri_dspy.core.steps import SeededStep, Step
from spri_dspy.core.seeds import SeedMatch, SeedSource, load_seeds
from spri_dspy.signatures import (
    CritiqueJudgement,
    CritiqueRubric,
    JudgeWithRubric,
    RefineJudgement,
    RefineRubric,
    WriteRubric,
)


def render_judgement(judgement: dspy.Prediction) -> str:
    """The text of a judgement as critics and the trace see it: feedback, then the score."""
    return f"{judgement.feedback.strip()}\nScore: {judgement.score}"


class RubricGenerator(SeededStep):
    """Writes a 1-5 scoring rubric for an instruction, few-shot from seed rubrics.

    Seeds are ``query``/``principles`` Examples (e.g. the paper's seed rubrics),
    shown as ``instruction``/``rubric`` demos and selected per input (see :class:`spri_dspy.core.steps.SeededStep`).

    Args:
        seeds: the seed rubrics.
        seed_match: ``"all"``, or ``"capability"`` to show only the seeds of the input's capability.
        leave_one_out: never show a seed whose instruction is the input.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        step = spri_dspy.RubricGenerator()
        print(step(instruction="Name three prime numbers.").rubric)
        ```
    """

    stage = "rubric"

    def __init__(self, seeds=(), seed_match: SeedMatch = "all", leave_one_out: bool = False):
        super().__init__(WriteRubric, "rubric", seeds, query_field="instruction", seed_match=seed_match,
                         leave_one_out=leave_one_out)


class RubricCritic(Step):
    """Scores a rubric 1..5 for how fairly it would grade responses to the instruction.

    Takes no arguments; called with ``instruction``, ``rubric`` and optionally
    ``reference_answer`` and ``system_prompt``, it returns ``score`` and ``feedback``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        critic = spri_dspy.RubricCritic()
        print(critic(instruction="Name three prime numbers.", rubric="Score 1: wrong ... Score 5: all correct.").score)
        ```
    """

    stage = "rubric"
    kind = "critic"

    def __init__(self):
        super().__init__(CritiqueRubric)


class RubricRefiner(Step):
    """Rewrites a rubric to address the critic's feedback.

    Takes no arguments; called with the rubric critic's inputs, ``draft_rubric`` and
    ``feedback``, it returns ``rubric``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        refiner = spri_dspy.RubricRefiner()
        print(refiner(instruction="Name three prime numbers.", draft_rubric="Score 5: good.",
                      feedback="Describe every level.").rubric)
        ```
    """

    stage = "rubric"
    kind = "refiner"

    def __init__(self):
        super().__init__(RefineRubric)


class Judge(Step):
    """Grades a response with a rubric: feedback and a 1..5 score.

    Takes no arguments; called with ``instruction``, ``response``, ``rubric`` and
    optionally ``reference_answer``, it returns ``feedback`` and ``score``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        judge = spri_dspy.Judge()
        verdict = judge(instruction="Name three prime numbers.", response="2, 3 and 9.",
                        rubric="Score 1: none prime ... Score 5: all three prime.")
        print(verdict.score, verdict.feedback)
        ```
    """

    stage = "judgement"
    kind = "generator"

    def __init__(self):
        super().__init__(JudgeWithRubric)


class JudgementCritic(Step):
    """Scores 1..5 how faithfully a judgement applies the rubric, with feedback.

    Takes no arguments; called with the judge's inputs and ``judgement`` (feedback
    and score as text), it returns ``score`` and ``feedback``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        critic = spri_dspy.JudgementCritic()
        print(critic(instruction="Name three prime numbers.", response="2, 3 and 9.", rubric="Score 5: all prime.",
                     judgement="All correct. Score: 5").feedback)
        ```
    """

    stage = "judgement"
    kind = "critic"

    def __init__(self):
        super().__init__(CritiqueJudgement)


class JudgementRefiner(Step):
    """Revises a judgement (feedback and score) using the critic's feedback.

    Takes no arguments; called with the judgement critic's inputs and ``feedback``,
    it returns the revised ``feedback`` and ``score``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        refiner = spri_dspy.JudgementRefiner()
        revised = refiner(instruction="Name three prime numbers.", response="2, 3 and 9.", rubric="Score 5: all prime.",
                          judgement="All correct. Score: 5", feedback="9 is not prime.")
        print(revised.score, revised.feedback)
        ```
    """

    stage = "judgement"
    kind = "refiner"

    def __init__(self):
        super().__init__(RefineJudgement, {"refined_feedback": "feedback", "refined_score": "score"})


class RubricProgram(CritiqueRefineProgram):
    """Base of the judges whose first stage writes an instance-specific rubric (:class:`SPRIJudge`, the
    pairwise :class:`spri_dspy.SPRIPairwiseJudge`): the steps ``rubric_generator``, ``rubric_critic`` and
    ``rubric_refiner``, the :class:`spri_dspy.CritiqueRefine` stage ``rubric_stage``, and
    :meth:`situated_rubric`. Subclasses build their second stage's steps in :meth:`second_stage`; every
    critic then runs on ``critic_lm``."""

    def __init__(self, threshold: int = 4, max_rounds: int = 4, seeds: SeedSource | None = None,
                 critic_lm: dspy.BaseLM | None = None, keep: Keep = "latest", seed_match: SeedMatch = "all",
                 leave_one_out: bool = False, use_reference: bool = True):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.use_reference = check_use_reference(use_reference)
        self.rubric_generator = RubricGenerator(
            load_seeds(seeds) if seeds is not None else (), seed_match=seed_match, leave_one_out=leave_one_out
        )
        self.rubric_critic = RubricCritic()
        self.rubric_refiner = RubricRefiner()
        self.rubric_stage = self.critique_refine("rubric", self.rubric_critic, self.rubric_refiner, field="rubric")
        self.second_stage()
        self.place_critics(critic_lm)

    def second_stage(self) -> None:  # pragma: no cover - every subclass defines it
        """Build the steps and the :class:`spri_dspy.CritiqueRefine` stage of what the rubric serves."""
        raise NotImplementedError

    async def situated_rubric(self, instruction: str, reference_answer: str | None, system_prompt: str | None,
                              capability: str | None) -> dspy.Prediction:
        """A rubric for the (validated) instruction, critiqued and refined: ``rubric``, ``trace``, ``seeds``.
        The rubric steps also see the instance's ``system_prompt``; ``capability`` only picks seeds."""
        context = {"instruction": instruction, "reference_answer": reference_answer,
                   "system_prompt": check_text("system_prompt", system_prompt, optional=True)}
        generated = await call(self.rubric_generator, **context,
                               capability=check_text("capability", capability, optional=True))
        rubric = await call(self.rubric_stage, generated.rubric, **context)
        return dspy.Prediction(rubric=rubric.final, trace=rubric.trace, seeds=generated.seeds)


class SPRIJudge(RubricProgram):
    """SPRI for LLM-as-a-judge: situated rubrics instead of situated principles.

    Stage 1 writes a rubric for the instruction, critiqued and refined like
    SPRI's principles; stage 2 judges the response with it (feedback and a 1..5
    score), and a critic checks that the judgement follows the rubric, refining
    it below ``threshold``.

    Args:
        threshold: the critic score (1..5) that accepts a rubric or a judgement (the paper: 4).
        max_rounds: the most critiques per stage (the paper: 4).
        seeds: seed rubrics for the rubric writer (a JSONL path or Examples with ``query`` and
            ``principles``; the paper's seed rubrics load as they are).
        critic_lm: the LM of both critics; None runs them on the configured LM.
        keep: ``"latest"`` (the paper) or ``"best"``, as in :class:`spri_dspy.SPRI`.
        seed_match: ``"all"``, or ``"capability"``: only the seed rubrics of the input's
            ``capability`` (the paper's three per capability).
        leave_one_out: never show a seed whose instruction is the input.
        use_reference: False never shows a reference answer to any step: the paper's SPRI condition.

    Its steps are ``rubric_generator``, ``rubric_critic``, ``rubric_refiner``, ``judge``,
    ``judgement_critic`` and ``judgement_refiner``; the two loops are the
    :class:`spri_dspy.CritiqueRefine` stages ``rubric_stage`` and ``judgement_stage``.
    Calling it with ``(instruction=..., response=..., reference_answer=None,
    system_prompt=None, capability=None)`` returns a Prediction with ``rubric``,
    ``feedback``, ``score``, ``trace`` (stages ``"rubric"`` and ``"judgement"``)
    and ``seeds``. The rubric stage sees the instance's ``system_prompt``.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        judge = spri_dspy.SPRIJudge(max_rounds=2, use_reference=False)
        verdict = judge(instruction="Name three prime numbers.", response="2, 3 and 9.")
        print(verdict.rubric, verdict.score, verdict.feedback)
        ```
    """

    def second_stage(self) -> None:
        """The judge, its critic and refiner, and the ``judgement_stage`` loop over them."""
        self.judge = Judge()
        self.judgement_critic = JudgementCritic()
        self.judgement_refiner = JudgementRefiner()
        self.judgement_stage = judgement_stage(self, self.judgement_critic, self.judgement_refiner)

    stages = ("write_rubric", "write_judgement")
    outputs = ("rubric", "feedback", "score", "trace", "seeds")

    async def write_rubric(self, instruction: str, response: str, reference_answer: str | None = None,
                           system_prompt: str | None = None, capability: str | None = None) -> dspy.Prediction:
        """Stage 1: a rubric for the instruction, critiqued and refined."""
        context = judge_context(instruction, response, reference_answer, use_reference=self.use_reference)
        rubric = await self.situated_rubric(context["instruction"], context["reference_answer"], system_prompt,
                                            capability)
        return dspy.Prediction(**context, rubric=rubric.rubric, trace=rubric.trace, seeds=rubric.seeds)

    async def write_judgement(self, instruction: str, reference_answer: str | None, response: str,
                              rubric: str) -> dspy.Prediction:
        """Stage 2: the judgement of the response under the final rubric, critiqued and refined."""
        context = {"instruction": instruction, "reference_answer": reference_answer, "rubric": rubric,
                   "response": response}
        judgement = await call(self.judgement_stage, await call(self.judge, **context), **context)
        return dspy.Prediction(feedback=judgement.final.feedback, score=judgement.final.score, trace=judgement.trace)


def judgement_stage(program: CritiqueRefineProgram, critic, refiner):
    """The judgement's :class:`spri_dspy.CritiqueRefine` stage: the draft is a Prediction with
    ``feedback`` and ``score``, shown to the critic and the refiner as :func:`render_judgement`."""
    return program.critique_refine("judgement", critic, refiner, field="judgement", draft_field="judgement",
                                   output=None, render=render_judgement)


def check_use_reference(use_reference: object) -> bool:
    """Validate ``use_reference``: a bool (False is the paper's SPRI condition: no reference answer)."""
    if not isinstance(use_reference, bool):
        raise TypeError(f"use_reference must be True or False, got {use_reference!r}")
    return use_reference


def judge_context(instruction: object, response: object, reference_answer: object, *, use_reference: bool) -> dict:
    """The validated inputs every judge step shares; the reference answer only when ``use_reference``."""
    return {"instruction": check_text("instruction", instruction), "response": check_text("response", response),
            "reference_answer": check_text("reference_answer", reference_answer, optional=True)
            if use_reference else None}
