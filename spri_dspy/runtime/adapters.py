"""A lean prompt format for small models: DSPy's JSON adapter without the framing.

DSPy's adapters open every system message with a field list, an input layout and
a JSON template with ``{placeholder}`` values. For a frontier model that costs a
few hundred tokens; for the embedded 135M model it was three quarters of every
prompt, and the model copied the template's placeholders and format sentences
back as its answers. ``CompactJSONAdapter`` keeps everything that makes the JSON
adapter safe (a JSON schema per call, so scores stay typed and ranged; DSPy's
own parsing, fallbacks and demos) and changes only the text the model reads:

- one fixed system sentence, the same for every step;
- the inputs, each under a ``## name`` heading;
- last, the step's instruction and one line naming the answer's keys and their
  types. No word on JSON and no output field descriptions: a small model copied
  both back as its answers ("A short numbered list of principles ..."); the
  schema still asks for JSON, and the instruction says what each key holds.

Every step's prompt therefore starts with the same tokens and with the input
text, so a model that reuses the prompt state of earlier calls (the embedded
engine does) evaluates mostly what is new, and the instruction sits next to
where the answer starts.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import dspy
from spri_dspy.compat import format_field_value

SYSTEM = "You are a careful, helpful assistant. Read the inputs, then do the task."
TASK_HEADING = "task"


def _kind(annotation: Any) -> str:
    """A few words on a field's type: ``text``, ``one of 1, 2, 3``, ``integer`` ..."""
    if annotation is str:
        return "text"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(value) for value in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


class CompactJSONAdapter(dspy.JSONAdapter):
    """DSPy's ``JSONAdapter`` with a short prompt: inputs first, the instruction last, no JSON template.

    Use it for small local models such as the embedded one, which reads the
    instruction better when it is close to the answer and copies templates
    back. Output is still requested as a JSON schema (structured outputs), so
    typed fields such as scores are constrained exactly as with ``JSONAdapter``.

    Args:
        callbacks, use_native_function_calling: as for ``dspy.JSONAdapter``.

    Example:
        ```python
        import dspy, spri_dspy

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
        spri_dspy.SPRI()(query="How do I keep a basil plant alive indoors?").principles
        ```
    """

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        return SYSTEM

    def format_user_message_content(
        self,
        signature: type[dspy.Signature],
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        parts = [prefix]
        for name, field in signature.input_fields.items():
            if name in inputs and inputs[name] is not None:
                parts.append(f"## {name}\n{format_field_value(field_info=field, value=inputs[name])}")
        if main_request:
            parts.append(self.format_task(signature))
        parts.append(suffix)
        return "\n\n".join(part for part in parts if part).strip()

    def format_task(self, signature: type[dspy.Signature]) -> str:
        """The closing section: the signature's instruction and the keys of the JSON answer."""
        keys = "; ".join(f'"{name}" ({_kind(field.annotation)})' for name, field in signature.output_fields.items())
        return f"## {TASK_HEADING}\n{signature.instructions.strip()}\nKeys of your answer: {keys}."
