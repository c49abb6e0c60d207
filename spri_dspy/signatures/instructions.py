"""Settings that reach a step through its instruction: the word limit (the paper's 128 words)
and a task's framing of the response."""

from __future__ import annotations

from typing import Literal

import dspy

MAX_WORDS = 128
"""The paper's limit on every principle writer, responder and refiner."""


def check_max_words(max_words: object) -> int | None:
    """Validate ``max_words``: a positive integer, or None for no limit."""
    if max_words is None:
        return None
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise ValueError(f"max_words must be a positive integer or None, got {max_words!r}")
    return max_words


def word_limited(signature: type[dspy.Signature], max_words: int | None,
                 role: Literal["writer", "critic"]) -> type[dspy.Signature]:
    """``signature`` with the word limit appended to its instruction (unchanged when ``max_words`` is None).

    A writer is told to stay within the limit; a critic is told to treat a longer
    text as a flaw, so the loop enforces what the writer was asked.
    """
    if check_max_words(max_words) is None:
        return signature
    if role == "writer":
        rule = f"Use at most {max_words} words."
    elif role == "critic":
        rule = f"The text under review should use at most {max_words} words: count a longer one as a flaw."
    else:
        raise ValueError(f"role must be 'writer' or 'critic', got {role!r}")
    return signature.with_instructions(f"{signature.instructions.rstrip()}\n{rule}")


def framed(signature: type[dspy.Signature], framing: str | None) -> type[dspy.Signature]:
    """``signature`` with a task's ``framing`` (what kind of response the task wants) before its
    instruction; unchanged when ``framing`` is None. The generic instruction stays as it is."""
    if framing is None:
        return signature
    if not isinstance(framing, str) or not framing.strip():
        raise ValueError(f"framing must be a non-empty string or None, got {framing!r}")
    return signature.with_instructions(f"{framing.strip()}\n{signature.instructions}")
