"""Helpers the tests share: the paths of ../shared and scripts for the scripted engine.

Imported as ``from helpers import ...`` (``tests/`` is on the path through conftest); fixtures live in
``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PAPER = SHARED / "spri-paper"


def critic_answers(scores, prefix):
    """Critic answers with the given scores and numbered feedback; a non-int entry is sent raw."""
    return [s if isinstance(s, str) else {"feedback": f"{prefix} feedback {i}", "score": s}
            for i, s in enumerate(scores, start=1)]


def numbered(prefix, field):
    """A step script returning '<prefix> v0', '<prefix> v1', ... in field ``field``."""
    count = iter(range(1000))
    return lambda call: {field: f"{prefix} v{next(count)}"}


def spri_script(principle_scores=(5,), response_scores=(5,)):
    """A full script: versioned texts and the given critic score sequences."""
    return {
        "principle_generator": numbered("principles", "principles"),
        "principle_refiner": lambda call: {"principles": f"{call.inputs['draft_principles']}+"},
        "principle_critic": critic_answers(principle_scores, "principles"),
        "responder": numbered("response", "response"),
        "response_refiner": lambda call: {"response": f"{call.inputs['draft_response']}+"},
        "response_critic": critic_answers(response_scores, "response"),
    }


def judge_script(rubric_scores=(5,), judgement_scores=(5,), judged=(3,)):
    """SPRIJudge script: versioned rubrics, judgements scoring ``judged`` in turn, given critic scores."""
    judged = iter(judged)
    return {
        "rubric_generator": numbered("rubric", "rubric"),
        "rubric_refiner": lambda call: {"rubric": f"{call.inputs['draft_rubric']}+"},
        "rubric_critic": critic_answers(rubric_scores, "rubric"),
        "judge": lambda call: {"feedback": "judged v0", "score": next(judged)},
        "judgement_refiner": lambda call: {"refined_feedback": call.inputs["judgement"].split("\n")[0] + "+",
                                           "refined_score": next(judged)},
        "judgement_critic": critic_answers(judgement_scores, "judgement"),
    }
