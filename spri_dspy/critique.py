"""The critique-refine loop of SPRI's Algorithm 1, shared by every stage and program.

A stage's text is critiqued; a score at or above the threshold accepts it,
otherwise the text is refined with the critic's feedback and critiqued again,
until ``max_rounds`` critiques have been made. A stage therefore makes at most
``max_rounds`` critiques and ``max_rounds - 1`` refinements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypedDict, TypeVar

import dspy
from dspy.utils.exceptions import AdapterParseError
from typing_extensions import NotRequired

from spri_dspy.signatures.score import SCORE_RANGE

Keep = Literal["latest", "best"]
Draft = TypeVar("Draft")


class Round(TypedDict):
    """One critique of one stage, as it appears in a program's ``trace`` (plain JSON data)."""

    stage: str
    """Which stage was critiqued: ``"principles"`` or ``"response"`` (``"rubric"``/``"judgement"`` for judges)."""
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


def critique_refine(
    stage: str,
    draft: Draft,
    *,
    critique: Callable[[Draft], dspy.Prediction],
    refine: Callable[[Draft, str], Draft],
    threshold: int,
    max_rounds: int,
    keep: Keep = "latest",
    render: Callable[[Draft], str] = str,
) -> tuple[Draft, list[Round]]:
    """Run one stage's critique-refine loop on ``draft`` (a text, or e.g. a judgement).

    ``critique(draft)`` returns a Prediction with ``score`` and ``feedback``;
    ``refine(draft, feedback)`` returns the refined draft; ``render(draft)`` is
    the text recorded in the trace. Returns the kept draft (the latest one, or
    with ``keep="best"`` the highest-scored one, the later on ties) and the
    rounds for the trace. A critic whose output cannot be parsed ends the stage
    with the current draft and an ``error`` in its round.
    """
    rounds: list[Round] = []
    drafts: list[Draft] = []
    for number in range(1, max_rounds + 1):
        drafts.append(draft)
        try:
            score, feedback = _verdict(critique(draft))
        except (AdapterParseError, CriticOutputError) as exc:
            rounds.append(
                Round(stage=stage, round=number, text=render(draft), score=None, feedback=None, accepted=False,
                      error=f"{type(exc).__name__}: {exc}")
            )
            break
        accepted = score >= threshold
        rounds.append(Round(stage=stage, round=number, text=render(draft), score=score, feedback=feedback,
                            accepted=accepted))
        if accepted or number == max_rounds:
            break
        draft = refine(draft, feedback)
    return _kept(draft, drafts, rounds, keep), rounds


def _kept(latest: Draft, drafts: list[Draft], rounds: list[Round], keep: Keep) -> Draft:
    scored = [r for r in rounds if r["score"] is not None]
    if keep == "latest" or not scored:
        return latest
    best = max(scored, key=lambda r: (r["score"], r["round"]))
    return drafts[best["round"] - 1]


class CritiqueRefineProgram(dspy.Module):
    """Base of the programs whose stages run :func:`critique_refine` (SPRI, SPRIJudge, baselines).

    Holds the validated loop settings and places the critic LM: the submodules
    named in ``critics`` run on ``critic_lm`` when one is given.

    A program with two stages (principles then response, rubric then judgement)
    names their methods in ``stages``: the first takes ``forward``'s arguments and
    returns the keyword arguments of the next, the last returns the Prediction,
    and ``forward`` is exactly that chain. The batch runner schedules the stages of
    different inputs separately, in order within each input.
    """

    critics: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()

    def __init__(self, threshold: int = 4, max_rounds: int = 4, keep: Keep = "latest"):
        super().__init__()
        self.threshold = check_threshold(threshold)
        self.max_rounds = check_max_rounds(max_rounds)
        self.keep = check_keep(keep)

    def load_state(self, state: dict, **options) -> CritiqueRefineProgram:
        """DSPy's ``load_state``, with a clear error when the state was saved from another program."""
        expected = [name for name, _ in self.named_parameters()]
        missing = [name for name in expected if name not in state]
        if missing:
            saved = sorted(key for key in state if key not in ("metadata", "spri_dspy"))
            raise ValueError(f"cannot load into {type(self).__name__}: the saved state lacks its steps {missing} "
                             f"(it holds {saved}); it was saved from a different program")
        return super().load_state(state, **options)

    def place_critics(self, critic_lm: dspy.BaseLM | None) -> None:
        """Run every critic submodule on ``critic_lm`` (None leaves them on the configured LM)."""
        if critic_lm is None:
            return
        if not isinstance(critic_lm, dspy.BaseLM):
            raise TypeError(f"critic_lm must be a dspy.LM (dspy.BaseLM), got {type(critic_lm).__name__}")
        for name in self.critics:
            getattr(self, name).set_lm(critic_lm)

    def refine_loop(self, stage: str, draft: Draft, *, critique, refine, render=str) -> tuple[Draft, list[Round]]:
        """:func:`critique_refine` with this program's threshold, max_rounds and keep."""
        return critique_refine(stage, draft, critique=critique, refine=refine, render=render,
                               threshold=self.threshold, max_rounds=self.max_rounds, keep=self.keep)
