"""Is a generated text real content, or an echo of the prompt's machinery?

A small model can answer with its format instructions ("Respond with a JSON
object ..."), a field name (``draft_principles``, or a text about refining that
opens with the word: "Refine your approach ..."), a template placeholder
(``{response}``), a JSON fragment, a copy of its own instruction or of a field
description, or little more than its input's own words. This module names which,
so benchmarks and tests can count degenerate texts.
"""

from __future__ import annotations

import re

from spri_dspy.adapters import SYSTEM
from spri_dspy.testing.engine import STEPS

_FORMAT_PHRASES = (
    "json object", "output fields", "input fields", "[[ ##", "respond with", "order of keys", "order of fields",
    "following fields", "fields are:", "answer with a json", "keys of your answer", "## task", "not supplied for this",
    "must exactly match one of", "formatted as a valid python",
)
_PLACEHOLDER = re.compile(r"\{\s*['\"]?[A-Za-z_]\w*['\"]?\s*\}")
_WORD = re.compile(r"[a-z0-9']+")
_HEADING = re.compile(r"^## \w+", re.M)  # CompactJSONAdapter's input headings


def _field_names() -> set[str]:
    names = set()
    for signature in STEPS.values():
        names.update(name for name in signature.fields if "_" in name)
    return names


def _instruction_texts() -> list[str]:
    texts = [SYSTEM]
    for signature in STEPS.values():
        texts.append(signature.instructions)
        texts += [(field.json_schema_extra or {}).get("desc", "") for field in signature.fields.values()]
    return texts


_FIELDS = _field_names()
_REFINED_STEM = "refin"
_SQUASHED_FIELDS = {name.replace("_", "") for name in _FIELDS}
_SHINGLE = 6  # words in a row, each without a plural or third-person "s": "1. Ignore the principle; 2. Follow one ..."
             # restates the critic's scale ("1 = ignores the principles; 2 = follows one or two ...")


def _stems(words: list[str]) -> list[str]:
    """``words`` (lower case) with a final "s" dropped (not from "-ss" or words of 3 letters or fewer)."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


_DESCRIPTIONS = {  # a field description of four words or more, copied whole ("The reply to the user")
    " ".join(words)
    for signature in STEPS.values()
    for field in signature.fields.values()
    for words in [_WORD.findall(((field.json_schema_extra or {}).get("desc") or "").lower())]
    if len(words) >= 4
}
_SHINGLES = {
    tuple(words[i : i + _SHINGLE])
    for text in _instruction_texts()
    for words in [_stems(_WORD.findall(text.lower()))]
    for i in range(len(words) - _SHINGLE + 1)
}


_GARBLED = 30  # characters without a space: no word of a reply is that long ("compound_interest.cababya...")
_LEAD_IN = 8  # words a text may add around a copied input ("The answer to this question is: ...")


def degenerate_reason(text: object, inputs: tuple[str, ...] = ()) -> str | None:
    """Why ``text`` is not real content (``"empty"``, ``"JSON fragment"``, ``"format text"``,
    ``"placeholder"``, ``"field name"``, ``"no words"``, ``"garbled"``, ``"instruction echo"``,
    ``"input echo"``),
    or None when it is. ``inputs`` are the texts the step was given (e.g. the query): a text made
    of little more than an input's own words is an echo of it."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    stripped = text.strip()
    lower = stripped.lower()
    if stripped[0] in "{[" or stripped.startswith('"') and stripped.rstrip().endswith(('",', '"}')):
        return "JSON fragment"
    if any(phrase in lower for phrase in _FORMAT_PHRASES) or _HEADING.search(stripped):
        return "format text"
    if _PLACEHOLDER.search(stripped):
        return "placeholder"
    tokens = re.findall(r"[A-Za-z_]+", stripped)
    if any(token in _FIELDS for token in tokens) or any(
        squashed in token.lower() for token in tokens for squashed in _SQUASHED_FIELDS
    ):
        return "field name"
    if tokens and tokens[0].lower().startswith(_REFINED_STEM):  # the refiners' "refined_*" key, talked about
        return "field name"
    if len(re.findall(r"[A-Za-z]{2,}", stripped)) < 3:
        return "no words"
    if any(len(run) >= _GARBLED for run in stripped.split()):
        return "garbled"
    words = _WORD.findall(lower)
    stems = _stems(words)
    if any(tuple(stems[i : i + _SHINGLE]) in _SHINGLES for i in range(len(stems) - _SHINGLE + 1)):
        return "instruction echo"
    joined = " ".join(words)
    if any(phrase in joined for phrase in _DESCRIPTIONS):
        return "instruction echo"
    for given in inputs:
        given_words = set(_WORD.findall(given.lower()))
        copied = sum(word in given_words for word in words)
        if len(given_words) >= 4 and copied >= 0.8 * len(given_words) and len(words) - copied <= _LEAD_IN:
            return "input echo"
    return None


LOOP_WORDS = ("feedback", "critic", "critique", "draft", "score", "scored", "adhering", "adherence", "adheres", "rubric",
              "refine", "refined", "refinement")
"""Words that name SPRI's own loop (the critic, its feedback and score, the draft it refines). A reply to the user has
no reason to use them unless the user did."""


def loop_talk(text: str, inputs: tuple[str, ...] = ()) -> list[str]:
    """The words of :data:`LOOP_WORDS` in ``text`` that none of ``inputs`` (e.g. the query) uses: a final
    principles or response text that talks about the loop that wrote it ("The feedback is not adhering.")
    rather than about the user's question. Counted beside :func:`degenerate_reason`, not by it: a text can say
    something real and still mention its feedback."""
    given = {word for text_given in inputs for word in _WORD.findall(text_given.lower())}
    found = dict.fromkeys(word for word in _WORD.findall(text.lower()) if word in LOOP_WORDS and word not in given)
    return list(found)
