"""The word limit of SPRI's writing steps (the paper's 128 words), stated in the instruction."""

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
