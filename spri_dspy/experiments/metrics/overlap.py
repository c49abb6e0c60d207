"""A deterministic metric for compiling without an LLM judge: overlap with the expert constitution."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = frozenset(
    "a an the and or but if then so of to in on at by for with from as is are was were be been being it its "
    "this that these those there their they them he she his her you your i me my we our us not no do does "
    "did have has had will would can could should may might must than too very just also about into over".split()
)
"""Function words left out of the overlap: without them any fluent text shares a fifth of an expert's words."""


def token_f1(candidate: str, reference: str) -> float:
    """Unigram F1 between two texts over their content words (lowercased, :data:`STOPWORDS` left out,
    counted with multiplicity); 0 when either has none."""
    ours, theirs = (Counter(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS)
                    for text in (candidate, reference))
    common = sum((ours & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ours.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


class ConstitutionOverlap:
    """Content-word F1 of ``prediction.principles`` against ``example.constitution`` (0..1), a DSPy metric.

    It measures how much of the expert's wording the final principles share: cheap,
    deterministic and free of an LLM judge, so a compile can be judged on its own. It does not
    measure whether the principles are good, whether the response follows them, or
    paraphrase (other words for the same rule score nothing). While bootstrapping
    (``trace`` given) a trace passes at ``pass_score`` or more.

    Args:
        pass_score: the F1 a bootstrapped trace needs to count as a success.

    Example:
        ```python
        metric = ConstitutionOverlap()
        metric(dspy.Example(constitution="Name the feeling."), dspy.Prediction(principles="Name the feeling first."))
        ```
    """

    def __init__(self, pass_score: float = 0.2):
        self.pass_score = pass_score

    def __call__(self, example, prediction, trace=None) -> float | bool:
        score = token_f1(prediction.get("principles") or "", example.get("constitution") or "")
        return score >= self.pass_score if trace is not None else score


def constitution_overlap(lm=None) -> ConstitutionOverlap:
    """The ``constitution-overlap`` metric (``lm`` is accepted for the metric registry and not used)."""
    return ConstitutionOverlap()
