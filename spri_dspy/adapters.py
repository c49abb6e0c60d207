"""DSPy's adapters with the work that depends only on a signature done once, and a lean prompt format for small
models.

:class:`ChatAdapter` and :class:`JSONAdapter` send exactly the messages (and, for JSON, the response format)
of the DSPy adapters they extend, byte for byte, so compiled programs, caches and recorded replays are
unchanged. What they save is CPU: on every call DSPy rebuilds the system message (a field list, a field
structure and JSON schemas, each through a fresh pydantic ``TypeAdapter``), the output reminder and, for
JSON, the structured-output schema (a pydantic model built per call), and formats each plain-text value
through another ``TypeAdapter``. Here each of those is computed once per signature and kept while the
signature lives; a plain ``str`` value is formatted as itself, which is what DSPy's formatting returns for
it. Every program of this package uses :class:`ChatAdapter` when no adapter is configured; anyone can use
them with ``dspy.configure(adapter=spri_dspy.ChatAdapter())``.

A signature is treated as immutable, as DSPy's own signature methods (``with_instructions``,
``with_updated_fields``, ``append``) return a new class: the cache is keyed by the class and checked
against its instructions and field objects, so replacing either recomputes.

``CompactJSONAdapter`` is the lean format for small local models. DSPy's adapters open every system
message with a field list, an input layout and a JSON template with ``{placeholder}`` values. For a
frontier model that costs a few hundred tokens; for the embedded 135M model it was three quarters of
every prompt, and the model copied the template's placeholders and format sentences back as its answers.
``CompactJSONAdapter`` keeps everything that makes the JSON adapter safe (a JSON schema per call, so
scores stay typed and ranged; DSPy's own parsing, fallbacks and demos) and changes only the text the
model reads:

- one fixed system sentence, the same for every step;
- the inputs, each under a ``## name`` heading;
- the step's instruction and one line naming the answer's keys and their
  types, in the system message before the inputs (``instruction="first"``, the
  default) or after them (``instruction="last"``). No word on JSON and no output
  field descriptions: a small model copied both back as its answers ("A short
  numbered list of principles ..."); the schema still asks for JSON, and the
  instruction says what each key holds.

Every step's prompt therefore starts with the same tokens, so a model that
reuses the prompt state of earlier calls (the embedded engine does) evaluates
mostly what is new: with the instruction first, a step's later rounds reuse its
instruction too, and the embedded model evaluates about a quarter of the prompt
tokens it does with the instruction last (725 against 2,742 per query) and runs
SPRI about 1.8 times as fast (9.0 against 16.3 s per query). With the
instruction last (the default until December 2026) it sits next to where the
answer starts, and the embedded model's texts talk about the loop itself
("key principles of the response.", "The feedback is not adhering.") in 24 of
60 final texts over 30 queries, against none with it first
(``benchmarks/README.md``, P3, the instruction first by default).
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import dspy
from spri_dspy.compat import (
    format_field_value,
    has_open_ended_mapping,
    serialize_for_json,
    structured_outputs_response_format,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

SYSTEM = "You are a careful, helpful assistant. Read the inputs, then do the task."
TASK_HEADING = "task"


def _kind(annotation: Any) -> str:
    """A few words on a field's type: ``text``, ``one of 1, 2, 3``, ``integer`` ..."""
    if annotation is str:
        return "text"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(value) for value in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def _value(field: Any, value: Any) -> str:
    """DSPy's ``format_field_value`` for one value; a plain ``str`` is itself (what DSPy's formatting returns for
    it, after a ``TypeAdapter`` built for the call)."""
    return value if type(value) is str else format_field_value(field_info=field, value=value)


class PerSignature:
    """Values that depend only on a signature, computed once per signature class and kept while it lives.

    Each entry is checked against the signature's instructions and field objects, so a signature whose
    instructions or fields were replaced in place is formatted anew.
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[type, tuple[tuple, dict[str, Any]]] = weakref.WeakKeyDictionary()

    def get(self, signature: type[dspy.Signature], name: str, build: Callable[[], T]) -> T:
        """The value ``name`` of ``signature``, from ``build()`` the first time."""
        # the instructions' source (``instructions`` is it cleaned up) and the field objects, read without the
        # property calls that would cost what this cache saves
        stamp = (signature.__doc__, *vars(signature).get("__pydantic_fields__", signature.model_fields).values())
        entry = self._entries.get(signature)
        if entry is None or entry[0] != stamp:
            entry = (stamp, {})
            self._entries[signature] = entry
        values = entry[1]
        if name not in values:
            values[name] = build()
        return values[name]

    def __getstate__(self) -> dict:  # pickled or deep-copied with its adapter: start empty
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class _OncePerSignature:
    """What :class:`ChatAdapter` and :class:`JSONAdapter` share: the system message, the output reminder and the
    input fields kept per signature, and values formatted as DSPy's ``ChatAdapter`` does (markers, then the value)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_signature = PerSignature()

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        return self.per_signature.get(signature, "system", lambda: super(_OncePerSignature, self)
                                      .format_system_message(signature))

    def user_message_output_requirements(self, signature: type[dspy.Signature]) -> str:
        return self.per_signature.get(signature, "requirements", lambda: super(_OncePerSignature, self)
                                      .user_message_output_requirements(signature))

    def format_user_message_content(self, signature: type[dspy.Signature], inputs: dict[str, Any], prefix: str = "",
                                    suffix: str = "", main_request: bool = False) -> str:
        messages = [prefix]
        for name, field in self.per_signature.get(signature, "inputs", lambda: signature.input_fields).items():
            if name in inputs:
                messages.append(f"[[ ## {name} ## ]]\n{_value(field, inputs.get(name))}")
        if main_request:
            requirements = self.user_message_output_requirements(signature)
            if requirements is not None:
                messages.append(requirements)
        messages.append(suffix)
        return "\n\n".join(messages).strip()

    @staticmethod
    def _markers(fields_with_values: dict[Any, Any]) -> str:
        return "\n\n".join(f"[[ ## {field.name} ## ]]\n{_value(field.info, value)}"
                             for field, value in fields_with_values.items()).strip()


class ChatAdapter(_OncePerSignature, dspy.ChatAdapter):
    """DSPy's ``ChatAdapter``, sending the same messages, with the per-signature work done once.

    The system message and the output reminder are built once per signature (:class:`PerSignature`), and a
    plain-text value is formatted without a pydantic ``TypeAdapter`` per call. Every program of spri-dspy
    uses it when no adapter is configured. Its JSON fallback (after a reply it cannot parse) is
    :class:`JSONAdapter`.

    Args:
        as for ``dspy.ChatAdapter``.

    Example:
        ```python
        import dspy, spri_dspy

        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"), adapter=spri_dspy.ChatAdapter())
        ```
    """

    def _make_json_adapter_fallback(self) -> dspy.JSONAdapter:
        return JSONAdapter(use_native_function_calling=self.use_native_function_calling,
                           parallel_tool_calls=self.parallel_tool_calls)

    def format_field_with_value(self, fields_with_values: dict[Any, Any]) -> str:
        return self._markers(fields_with_values)


@functools.cache
def default_adapter() -> ChatAdapter:
    """The :class:`ChatAdapter` spri-dspy's programs call their LMs through when no adapter is configured (one
    shared instance, so its per-signature work is kept across calls): DSPy's default format, the same messages."""
    return ChatAdapter()


class JSONAdapter(_OncePerSignature, dspy.JSONAdapter):
    """DSPy's ``JSONAdapter``, sending the same messages and response format, with the per-signature work done once.

    The system message, the output reminder and the structured-output schema (a pydantic model DSPy builds on
    every call) are built once per signature (:class:`PerSignature`); a plain-text value is formatted without
    a pydantic ``TypeAdapter`` per call.

    Args:
        as for ``dspy.JSONAdapter``.

    Example:
        ```python
        import dspy, spri_dspy

        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"), adapter=spri_dspy.JSONAdapter())
        ```
    """

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: type[dspy.Signature]) -> None:
        if "response_format" not in lm.supported_params:
            return
        if (self.per_signature.get(signature, "open_ended", lambda: has_open_ended_mapping(signature))
                or (not self.use_native_function_calling and self.per_signature.get(signature, "tool_calls", lambda: any(
                    field.annotation == dspy.ToolCalls for field in signature.output_fields.values())))
                or not lm.supports_response_schema):
            lm_kwargs["response_format"] = {"type": "json_object"}
            return
        schema = self.per_signature.get(signature, f"schema {self.use_native_function_calling}",
                                        lambda: _schema_or_error(signature, self.use_native_function_calling))
        if isinstance(schema, Exception):
            logger.warning("Failed to build structured output schema; using JSON mode before execution.")
            schema = {"type": "json_object"}
        lm_kwargs["response_format"] = schema

    def format_field_with_value(self, fields_with_values: dict[Any, Any], role: str = "user") -> str:
        if role == "user":
            return self._markers(fields_with_values)
        values = {field.name: value for field, value in fields_with_values.items()}
        if not all(type(value) is str for value in values.values()):
            values = serialize_for_json(values)
        return json.dumps(values, indent=2, ensure_ascii=False)


def _schema_or_error(signature: type[dspy.Signature], native: bool) -> Any:
    """DSPy's structured-output response format for ``signature`` (a pydantic model whose JSON schema is the
    request's), or the error that says it cannot be built."""
    import pydantic

    try:
        return structured_outputs_response_format(signature, native)
    except (ValueError, pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticSchemaGenerationError) as error:
        return error


class CompactJSONAdapter(JSONAdapter):
    """DSPy's ``JSONAdapter`` with a short prompt: one system message with the instruction, the inputs under
    headings, no JSON template.

    Use it for small local models such as the embedded one, which copy templates
    and format sentences back as their answers. Output is still requested as a JSON schema (structured outputs), so
    typed fields such as scores are constrained exactly as with ``JSONAdapter``.

    Args:
        instruction: where the step's instruction and the answer's keys go: ``"first"`` (the default), in the
            system message before the inputs, so that a model reusing the prompt states of earlier calls
            evaluates each step's instruction once rather than once per round; ``"last"``, after the inputs.
        callbacks, use_native_function_calling: as for ``dspy.JSONAdapter``.

    Example:
        ```python
        import dspy, spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        spri_dspy.SPRI()(query="How do I keep a basil plant alive indoors?").principles
        ```
    """

    def __init__(self, instruction: Literal["first", "last"] = "first", **options: Any):
        if instruction not in ("first", "last"):
            raise ValueError(f"instruction must be 'first' or 'last', got {instruction!r}")
        super().__init__(**options)
        self.instruction = instruction

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        if self.instruction == "last":
            return SYSTEM
        return self.per_signature.get(signature, "system", lambda: f"{SYSTEM}\n\n{self.format_task(signature)}")

    def format_user_message_content(
        self,
        signature: type[dspy.Signature],
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        parts = [prefix]
        for name, field in self.per_signature.get(signature, "inputs", lambda: signature.input_fields).items():
            if name in inputs and inputs[name] is not None:
                parts.append(f"## {name}\n{_value(field, inputs[name])}")
        if main_request and self.instruction == "last":
            parts.append(self.per_signature.get(signature, "task", lambda: self.format_task(signature)))
        parts.append(suffix)
        return "\n\n".join(part for part in parts if part).strip()

    def format_task(self, signature: type[dspy.Signature]) -> str:
        """The task section (in the system message, or after the inputs): the signature's instruction and the keys
        of the JSON answer."""
        keys = "; ".join(f'"{name}" ({_kind(field.annotation)})' for name, field in signature.output_fields.items())
        return f"## {TASK_HEADING}\n{signature.instructions.strip()}\nKeys of your answer: {keys}."
