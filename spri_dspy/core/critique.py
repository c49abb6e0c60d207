"""The critique-refine loop of SPRI's Algorithm 1 as a module, shared by every stage and program.

A stage's text is critiqued; a score at or above the threshold accepts it,
otherwise the text is refined with the critic's feedback and critiqued again,
until ``max_rounds`` critiques have been made. A stage therefore makes at most
``max_rounds`` critiques and ``max_rounds - 1`` refinements.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal, TypedDict

import dspy
from typing_extensions import NotRequired

from spri_dspy.core.flow import FlowModule, StagedModule, call
from spri_dspy.core.steps import Step
from spri_dspy.signatures.score import SCORE_RANGE

Keep = Literal["latest", "best"]
_FIELD: Any = object()  # CritiqueRefine's default output: the same name as its field


class Round(TypedDict):
    """One critique of one stage, as it appears in a program's ``trace`` (plain JSON data)."""

    stage: str
    """Which stage was critiqued: ``"principles"`` or ``"response"`` (``"rubric"``/``"judgement"`` for judges,
    ``"outputs"`` for :class:`spri_dspy.Situated`)."""
    round: int
    """1 for the first critique of the stage, 2 after the first refinement, ..."""
    text: str
    """The text the critic saw in this round."""
    score: int | None
    """The critic's 1..5 score, or None when its output could not be parsed."""
    feedback: str | None
    """The critic's feedback, or None when its output could not be parsed."""
    accepted: bool
    """Whether the score reached the threshold."""
    error: NotRequired[str]
    """Present only when the critic's output could not be parsed; the stage ended here."""


class CriticOutputError(ValueError):
    """A critic answered, but not with a usable 1..5 score and feedback."""


def check_keep(keep: str) -> Keep:
    """Validate the ``keep`` setting: ``"latest"`` (the paper's rule) or ``"best"``."""
    if keep not in ("latest", "best"):
        raise ValueError(f"keep must be 'latest' or 'best', got {keep!r}")
    return keep  # type: ignore[return-value]


def check_threshold(threshold: object) -> int:
    """Validate a critic threshold: an integer on the 1..5 score scale."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold not in SCORE_RANGE:
        raise ValueError(f"threshold must be an integer from 1 to 5, got {threshold!r}")
    return threshold


def check_max_rounds(max_rounds: object) -> int:
    """Validate ``max_rounds``: the number of critiques a stage may make, at least 1."""
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be an integer >= 1, got {max_rounds!r}")
    return max_rounds


def _verdict(prediction: dspy.Prediction) -> tuple[int, str]:
    score, feedback = prediction.get("score"), prediction.get("feedback")
    if isinstance(score, bool) or score not in SCORE_RANGE:
        raise CriticOutputError(f"critic score must be one of {list(SCORE_RANGE)}, got {score!r}")
    if not isinstance(feedback, str):
        raise CriticOutputError(f"critic feedback must be a string, got {type(feedback).__name__}")
    return int(score), feedback


class CritiqueRefine(FlowModule, dspy.Module):
    """One critique-refine stage of SPRI's Algorithm 1, as a module: critique a draft; below
    ``threshold`` refine it with the critic's feedback and critique it again, for at most
    ``max_rounds`` critiques.

    Args:
        stage: the stage's name in the trace: ``"principles"``, ``"response"``, ``"rubric"``, ``"judgement"``.
        critic: a module returning a Prediction with ``score`` (1..5) and ``feedback``, called with the
            stage's context and the rendered draft as ``field``.
        refiner: a module called with the context, the rendered draft as ``draft_field`` and ``feedback``;
            the refined draft is its Prediction's ``output`` field (with ``output=None``, the whole Prediction,
            e.g. a judgement's feedback and score).
        field: the critic's input name for the draft (``"principles"``, ``"response"``, ...).
        draft_field: the refiner's input name for the draft; default ``"draft_" + field``.
        output: the refiner's output holding the refined draft; default ``field``.
        render: the draft as the text the critic, the refiner and the trace see; default ``str``.
        threshold: the critic score (1..5) that accepts a draft.
        max_rounds: the most critiques; so at most ``max_rounds - 1`` refinements.
        keep: ``"latest"`` (the paper) keeps the last draft; ``"best"`` the highest-scored one (the
            later on ties).

    Calling it as ``stage(draft, **context)`` returns a Prediction with ``final`` (the kept draft)
    and ``trace`` (one :class:`Round` per critique). A critic whose output cannot be parsed
    ends the stage with the current draft and an ``error`` in its round.

    Example:
        ```python
        stage = CritiqueRefine("response", ResponseCritic(), ResponseRefiner(), field="response")
        refined = stage("Try to relax.", query="I can't sleep before exams.", principles="...")
        refined.final, refined.trace
        ```
    """

    def __init__(
        self,
        stage: str,
        critic: Callable[..., dspy.Prediction],
        refiner: Callable[..., dspy.Prediction],
        *,
        field: str,
        draft_field: str | None = None,
        output: str | None = _FIELD,
        render: Callable[[Any], str] = str,
        threshold: int = 4,
        max_rounds: int = 4,
        keep: Keep = "latest",
    ):
        super().__init__()
        self.stage = stage
        self.critic, self.refiner = critic, refiner
        self.field = field
        self.draft_field = draft_field or f"draft_{field}"
        self.output = field if output is _FIELD else output
        self.render = render
        self.threshold = check_threshold(threshold)
        self.max_rounds = check_max_rounds(max_rounds)
        self.keep = check_keep(keep)

    async def run(self, draft: Any, **context: Any) -> dspy.Prediction:
        """The loop, for ``forward`` and ``aforward`` alike (:mod:`spri_dspy.core.flow`)."""
        rounds: list[Round] = []
        drafts: list[Any] = []
        for number in range(1, self.max_rounds + 1):
            drafts.append(draft)
            text = self.render(draft)
            try:
                score, feedback = _verdict(await call(self.critic, **context, **{self.field: text}))
            except (dspy.AdapterParseError, CriticOutputError) as exc:
                rounds.append(Round(stage=self.stage, round=number, text=text, score=None, feedback=None,
                                    accepted=False, error=f"{type(exc).__name__}: {exc}"))
                break
            accepted = score >= self.threshold
            rounds.append(Round(stage=self.stage, round=number, text=text, score=score, feedback=feedback,
                                accepted=accepted))
            if accepted or number == self.max_rounds:
                break
            refined = await call(self.refiner, **context, **{self.draft_field: text}, feedback=feedback)
            draft = refined if self.output is None else refined[self.output]
        return dspy.Prediction(final=_kept(draft, drafts, rounds, self.keep), trace=rounds)


def _kept(latest: Any, drafts: list[Any], rounds: list[Round], keep: Keep) -> Any:
    scored = [r for r in rounds if r["score"] is not None]
    if keep == "latest" or not scored:
        return latest
    best = max(scored, key=lambda r: (r["score"], r["round"]))
    return drafts[best["round"] - 1]


class CritiqueRefineProgram(StagedModule, dspy.Module):
    """Base of the programs built from :class:`CritiqueRefine` stages (SPRI, SPRIJudge, baselines).

    Holds the validated loop settings (``threshold``, ``max_rounds``, ``keep``) that its
    stages share, and places the critic LM: every critic step (``kind="critic"``) runs on
    ``critic_lm`` when one is given.

    A program whose work falls into stages (principles then response, rubric then
    judgement) declares them in ``stages`` (:class:`spri_dspy.core.flow.StagedModule`);
    one that does not (the baselines) writes its ``run``.
    """

    def __init__(self, threshold: int = 4, max_rounds: int = 4, keep: Keep = "latest"):
        super().__init__()
        self.threshold = check_threshold(threshold)
        self.max_rounds = check_max_rounds(max_rounds)
        self.keep = check_keep(keep)

    def critique_refine(self, stage: str, critic, refiner, **options) -> CritiqueRefine:
        """A :class:`CritiqueRefine` stage with this program's threshold, max_rounds and keep."""
        return CritiqueRefine(stage, critic, refiner, threshold=self.threshold, max_rounds=self.max_rounds,
                              keep=self.keep, **options)

    def load_state(self, state: dict, **options) -> CritiqueRefineProgram:
        """DSPy's ``load_state``, with a clear error when the state was saved from another program."""
        expected = [name for name, _ in self.named_parameters()]
        missing = [name for name in expected if name not in state]
        if missing:
            saved = sorted(key for key in state if key not in ("metadata", "spri_dspy"))
            raise ValueError(f"cannot load into {type(self).__name__}: the saved state lacks its steps {missing} "
                             f"(it holds {saved}); it was saved from a different program")
        return super().load_state(state, **options)

    def deepcopy(self) -> CritiqueRefineProgram:
        """A deep copy whose stages still share their steps with the program; LMs are shared, not copied."""
        memo = {id(predictor.lm): predictor.lm for predictor in self.predictors() if predictor.lm is not None}
        return copy.deepcopy(self, memo)

    def place_critics(self, critic_lm: dspy.BaseLM | None) -> None:
        """Run every critic step on ``critic_lm`` (None leaves them on the configured LM)."""
        if critic_lm is None:
            return
        if not isinstance(critic_lm, dspy.BaseLM):
            raise TypeError(f"critic_lm must be a dspy.LM (dspy.BaseLM), got {type(critic_lm).__name__}")
        for _, step in self.named_sub_modules(Step):
            if step.kind == "critic":
                step.set_lm(critic_lm)
