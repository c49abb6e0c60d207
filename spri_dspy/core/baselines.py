"""The paper's baselines as DSPy modules, so evaluation, ablations and optimizers treat them like SPRI.

Response baselines return ``principles``, ``response``, ``trace`` and ``seeds``
like :class:`spri_dspy.SPRI`; judge baselines return ``rubric``, ``feedback``,
``score`` and ``trace`` like :class:`spri_dspy.SPRIJudge`.

- :class:`Vanilla` / :class:`VanillaJudge`: answer or judge directly.
- :class:`SelfRefine` / :class:`SelfRefineJudge`: critique and refine without principles
  (same threshold and rounds as SPRI).
- :class:`OraclePrinciples`: SPRI's response stage under principles given with each input
  (e.g. the expert constitution).
- :class:`SeedPrinciples`: the selected seeds' principles used directly as the principles.
- :class:`RubricJudge`: judge with a fixed rubric (:data:`MT_BENCH_RUBRIC`, instance-agnostic;
  :data:`FLASK_RUBRIC`, skill-based), a rubric given with each input (the oracle gold rubric),
  or the selected seed rubrics.
"""

from __future__ import annotations

import dspy

from spri_dspy.core.critique import CritiqueRefineProgram, Keep
from spri_dspy.core.data import check_text
from spri_dspy.core.flow import FlowModule, call
from spri_dspy.core.judge import Judge, check_use_reference, judge_context, judgement_stage
from spri_dspy.core.steps import Responder, ResponseCritic, ResponseRefiner, Step
from spri_dspy.core.seeds import SeedMatch, SeedSource, load_seeds, select_seeds
from spri_dspy.signatures import (
    CritiqueDirectly,
    CritiqueJudgementDirectly,
    JudgeDirectly,
    RefineDirectly,
    RefineJudgementDirectly,
    RespondDirectly,
)
from spri_dspy.signatures.instructions import MAX_WORDS, check_max_words, framed, word_limited

MT_BENCH_RUBRIC = """Criteria: How helpful is the response overall: relevant to the instruction, accurate, deep enough, \
creative where that helps, and detailed at the right level?
Score 1: Irrelevant, wrong or unhelpful; it does not address the instruction.
Score 2: Touches on the instruction but is mostly inaccurate, shallow or missing what was asked.
Score 3: Addresses the instruction with some accurate, relevant content, but has clear gaps or errors.
Score 4: Accurate, relevant and helpful, with only minor omissions or lapses in depth or detail.
Score 5: Fully answers the instruction: accurate, relevant, insightful and exactly as detailed as needed."""

FLASK_RUBRIC = """Criteria: Judge the response skill by skill: logical correctness, factual accuracy, commonsense \
understanding, comprehension of the instruction, completeness, insightfulness, metacognition (knowing the limits of \
its knowledge), readability, conciseness and harmlessness. Weigh the skills this instruction most depends on.
Score 1: Fails the skills the instruction depends on: wrong reasoning or facts, misread instruction, or harmful.
Score 2: Shows the key skills only weakly: notable logical or factual errors, or large parts of the task missing.
Score 3: Adequate on the key skills but with some errors, gaps, padding or unclear writing.
Score 4: Strong on the key skills with minor flaws in one or two of them.
Score 5: Excellent on every skill the instruction depends on: correct, complete, insightful, clear and safe."""


class Vanilla(FlowModule, dspy.Module):
    """Baseline: respond directly, with no principles and no critique (within ``max_words``, like SPRI).

    Args:
        max_words: the word limit stated to the writers and checked by the critic (None for none).
        framing: the task's word on what kind of response it wants (see :class:`spri_dspy.SPRI`).

    Returns from ``program(query=..., goal=None)`` a Prediction shaped like SPRI's (``principles`` None).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        print(spri_dspy.Vanilla()(query="I failed my driving test again.").response)
        ```
    """

    def __init__(self, max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__()
        self.max_words = check_max_words(max_words)
        self.framing = framing
        self.responder = Step(word_limited(framed(RespondDirectly, framing), max_words, "writer"),
                              stage="response", kind="generator")

    async def run(self, query: str, goal: str | None = None) -> dspy.Prediction:
        query, goal = check_text("query", query), check_text("goal", goal, optional=True)
        response = (await call(self.responder, query=query, goal=goal)).response
        return dspy.Prediction(principles=None, response=response, trace=[], seeds=[])


class SelfRefine(CritiqueRefineProgram):
    """Baseline: respond, then critique and refine the response without principles.

    Its loop is the :class:`spri_dspy.CritiqueRefine` stage ``response_stage``.

    Args:
        threshold, max_rounds, critic_lm, keep: the loop settings, as in :class:`spri_dspy.SPRI`.
        max_words: the word limit stated to the writers and checked by the critic (None for none).
        framing: the task's word on what kind of response it wants (see :class:`spri_dspy.SPRI`).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        prediction = spri_dspy.SelfRefine(max_rounds=2)(query="I failed my driving test again.")
        print(prediction.response, prediction.trace)
        ```
    """

    def __init__(self, threshold: int = 4, max_rounds: int = 4, critic_lm: dspy.BaseLM | None = None,
                 keep: Keep = "latest", max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.max_words = check_max_words(max_words)
        self.framing = framing
        self.responder = Step(word_limited(framed(RespondDirectly, framing), max_words, "writer"),
                              stage="response", kind="generator")
        self.response_critic = Step(word_limited(framed(CritiqueDirectly, framing), max_words, "critic"),
                                    stage="response", kind="critic")
        self.response_refiner = Step(word_limited(framed(RefineDirectly, framing), max_words, "writer"),
                                     stage="response", kind="refiner")
        self.response_stage = self.critique_refine("response", self.response_critic, self.response_refiner,
                                                   field="response")
        self.place_critics(critic_lm)

    async def run(self, query: str, goal: str | None = None) -> dspy.Prediction:
        query, goal = check_text("query", query), check_text("goal", goal, optional=True)
        draft = (await call(self.responder, query=query, goal=goal)).response
        response = await call(self.response_stage, draft, query=query, goal=goal)
        return dspy.Prediction(principles=None, response=response.final, trace=response.trace, seeds=[])


class OraclePrinciples(CritiqueRefineProgram):
    """Baseline: SPRI's response stage under principles given with each input (no principle stage).

    Call it as ``program(query=..., principles=..., goal=None)``, e.g. with the expert constitution.

    Args:
        threshold, max_rounds, critic_lm, keep: the loop settings, as in :class:`spri_dspy.SPRI`.
        max_words: the word limit stated to the writers and checked by the critic (None for none).
        framing: the task's word on what kind of response it wants (see :class:`spri_dspy.SPRI`).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        program = spri_dspy.OraclePrinciples(max_rounds=2)
        print(program(query="I failed my driving test again.", principles="1. Name one thing that went well.").response)
        ```
    """

    def __init__(self, threshold: int = 4, max_rounds: int = 4, critic_lm: dspy.BaseLM | None = None,
                 keep: Keep = "latest", max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.max_words = check_max_words(max_words)
        self.framing = framing
        self.responder = Responder(max_words, framing)
        self.response_critic = ResponseCritic(max_words, framing)
        self.response_refiner = ResponseRefiner(max_words, framing)
        self.response_stage = self.critique_refine("response", self.response_critic, self.response_refiner,
                                                   field="response")
        self.place_critics(critic_lm)

    async def run(self, query: str, principles: str, goal: str | None = None, seeds: list[int] | None = None) -> dspy.Prediction:
        query, goal = check_text("query", query), check_text("goal", goal, optional=True)
        principles = check_text("principles", principles)
        draft = (await call(self.responder, query=query, goal=goal, principles=principles)).response
        response = await call(self.response_stage, draft, query=query, goal=goal, principles=principles)
        return dspy.Prediction(principles=principles, response=response.final, trace=response.trace,
                               seeds=seeds or [])


class SeedPrinciples(OraclePrinciples):
    """Baseline: the seeds selected for the input used directly as its principles, then SPRI's response stage.

    Args:
        seeds: the seed examples (a JSONL path or Examples with ``query`` and ``principles``).
        seed_match: ``"all"``, or ``"goal"`` to use only the seeds with the input's goal.
        leave_one_out: never use a seed whose query is the input.
        threshold, max_rounds, critic_lm, keep: the loop settings, as in :class:`spri_dspy.SPRI`.
        max_words: the word limit stated to the writers and checked by the critic (None for none).
        framing: the task's word on what kind of response it wants (see :class:`spri_dspy.SPRI`).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        seeds = [{"query": "I lost my job.", "principles": "1. Acknowledge the loss. 2. Suggest one next step."}]
        program = spri_dspy.SeedPrinciples(seeds, max_rounds=1)
        print(program(query="I failed my driving test again.").response)
        ```
    """

    def __init__(self, seeds: SeedSource, seed_match: SeedMatch = "all", leave_one_out: bool = False,
                 threshold: int = 4, max_rounds: int = 4, critic_lm: dspy.BaseLM | None = None, keep: Keep = "latest",
                 max_words: int | None = MAX_WORDS, framing: str | None = None):
        super().__init__(threshold=threshold, max_rounds=max_rounds, critic_lm=critic_lm, keep=keep,
                         max_words=max_words, framing=framing)
        self.seeds = load_seeds(seeds)
        select_seeds([], query="", match=seed_match)  # validates seed_match
        self.seed_match, self.leave_one_out = seed_match, leave_one_out

    async def run(self, query: str, goal: str | None = None) -> dspy.Prediction:
        check_text("query", query)
        shown = select_seeds(self.seeds, query=query, goal=goal, match=self.seed_match, leave_one_out=self.leave_one_out)
        if not shown:
            raise ValueError("no seed matches this input (seed_match/leave_one_out left none)")
        principles = "\n\n".join(self.seeds[i].principles for i in shown)
        return await super().run(query=query, principles=principles, goal=goal, seeds=shown)


class VanillaJudge(FlowModule, dspy.Module):
    """Baseline judge: feedback and a 1..5 score with no rubric and no critique.

    Called like :class:`spri_dspy.SPRIJudge`; ``system_prompt`` and ``capability`` are accepted and unused.

    Args:
        use_reference: False never shows a reference answer (the paper's SPRI condition).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        verdict = spri_dspy.VanillaJudge()(instruction="Name three prime numbers.", response="2, 3 and 9.")
        print(verdict.score, verdict.feedback)
        ```
    """

    def __init__(self, use_reference: bool = True):
        super().__init__()
        self.use_reference = check_use_reference(use_reference)
        self.judge = Step(JudgeDirectly, stage="judgement",
                          kind="generator")

    async def run(self, instruction: str, response: str, reference_answer: str | None = None,
                system_prompt: str | None = None, capability: str | None = None) -> dspy.Prediction:
        context = judge_context(instruction, response, reference_answer, use_reference=self.use_reference)
        judgement = await call(self.judge, **context)
        return dspy.Prediction(rubric=None, feedback=judgement.feedback, score=judgement.score, trace=[])


class SelfRefineJudge(CritiqueRefineProgram):
    """Baseline judge: judge without a rubric, then critique and refine the judgement
    (the :class:`spri_dspy.CritiqueRefine` stage ``judgement_stage``).

    Args:
        threshold, max_rounds, critic_lm, keep: the loop settings, as in :class:`spri_dspy.SPRI`.
        use_reference: False never shows a reference answer (the paper's SPRI condition).

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        judge = spri_dspy.SelfRefineJudge(max_rounds=2)
        print(judge(instruction="Name three prime numbers.", response="2, 3 and 9.").score)
        ```
    """

    def __init__(self, threshold: int = 4, max_rounds: int = 4, critic_lm: dspy.BaseLM | None = None,
                 keep: Keep = "latest", use_reference: bool = True):
        super().__init__(threshold=threshold, max_rounds=max_rounds, keep=keep)
        self.use_reference = check_use_reference(use_reference)
        self.judge = Step(JudgeDirectly, stage="judgement",
                          kind="generator")
        self.judgement_critic = Step(CritiqueJudgementDirectly,
                                     stage="judgement", kind="critic")
        self.judgement_refiner = Step(RefineJudgementDirectly, {"refined_feedback": "feedback", "refined_score": "score"},
                                      stage="judgement", kind="refiner")
        self.judgement_stage = judgement_stage(self, self.judgement_critic, self.judgement_refiner)
        self.place_critics(critic_lm)

    async def run(self, instruction: str, response: str, reference_answer: str | None = None,
                system_prompt: str | None = None, capability: str | None = None) -> dspy.Prediction:
        context = judge_context(instruction, response, reference_answer, use_reference=self.use_reference)
        judgement = await call(self.judgement_stage, await call(self.judge, **context), **context)
        return dspy.Prediction(rubric=None, feedback=judgement.final.feedback, score=judgement.final.score,
                               trace=judgement.trace)


class RubricJudge(FlowModule, dspy.Module):
    """Baseline judge: one judgement with a rubric that is not written for the input.

    The rubric is, in order of precedence: the ``rubric`` given with the call
    (the oracle gold rubric), the fixed ``rubric`` given here (e.g.
    :data:`MT_BENCH_RUBRIC` or :data:`FLASK_RUBRIC`), or the seed rubrics
    selected for the instruction.

    Args:
        rubric: a fixed rubric for every input.
        seeds: seed rubrics to use when neither the call nor ``rubric`` gives one.
        leave_one_out: never use a seed whose instruction is the input.
        use_reference: False never shows a reference answer (the paper's SPRI condition).
        seed_match: ``"all"``, or ``"capability"`` to use only the seed rubrics of the input's capability.

    Example:
        ```python
        import dspy
        import spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        judge = spri_dspy.RubricJudge(rubric=spri_dspy.MT_BENCH_RUBRIC)
        print(judge(instruction="Name three prime numbers.", response="2, 3 and 9.").score)
        ```
    """

    def __init__(self, rubric: str | None = None, seeds: SeedSource | None = None, leave_one_out: bool = False,
                 use_reference: bool = True, seed_match: SeedMatch = "all"):
        super().__init__()
        self.rubric = check_text("rubric", rubric, optional=True)
        self.seeds = load_seeds(seeds) if seeds is not None else []
        select_seeds([], query="", match=seed_match)  # validates seed_match
        self.leave_one_out, self.seed_match = leave_one_out, seed_match
        self.use_reference = check_use_reference(use_reference)
        self.judge = Judge()

    async def run(self, instruction: str, response: str, reference_answer: str | None = None,
                rubric: str | None = None, system_prompt: str | None = None,
                capability: str | None = None) -> dspy.Prediction:
        context = judge_context(instruction, response, reference_answer, use_reference=self.use_reference)
        rubric = check_text("rubric", rubric, optional=True) or self.rubric
        shown: list[int] = []
        if rubric is None:
            shown = select_seeds(self.seeds, query=instruction, capability=capability, match=self.seed_match,
                                 leave_one_out=self.leave_one_out)
            if not shown:
                raise ValueError("rubric is required: pass rubric= to the call, a fixed rubric, or seeds "
                                 "(none matched this input)")
            rubric = "\n\n".join(self.seeds[i].principles for i in shown)
        judgement = await call(self.judge, **context, rubric=rubric)
        return dspy.Prediction(rubric=rubric, feedback=judgement.feedback, score=judgement.score, trace=[], seeds=shown)
