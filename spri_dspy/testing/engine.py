"""A scripted, deterministic engine for testing SPRI programs without a real model.

It recognises which step a request is for from what DSPy's adapters announce in
the system message (the signature's input and output field names), or, for
:class:`spri_dspy.CompactJSONAdapter`, from the input headings and answer keys
of the user message; the same recognition serves :mod:`spri_dspy.testing.server`.

``ScriptedEngine`` plugs into ``dspy.LM(model, engine=...)`` like any engine, so
programs under test go through DSPy's real adapters, parsing, history and usage
tracking. Each request is recognised as one of the program's steps by the input
and output fields its adapter announced, answered from a script, and logged::

    engine = ScriptedEngine({"principle_critic": [{"feedback": "vague", "score": 2}, ...]})
    lm = dspy.LM("scripted/base", engine=engine, cache=False)
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import dspy
from spri_dspy.compat import Message, Response, Usage, response_to_events

from spri_dspy import signatures
from spri_dspy.adapters import TASK_HEADING
from spri_dspy.signatures.metrics import (
    JudgeEmpathy,
    JudgePrincipleUsefulness,
    JudgeReappraisalAlignment,
    JudgeResponseAdherence,
)

# Step name -> the signature that step calls; a request is matched by its field names. The names are the
# programs' attribute names; the baselines' own signatures are the "direct_*" steps.
STEPS: dict[str, type[dspy.Signature]] = {
    "principle_generator": signatures.GeneratePrinciples,
    "principle_critic": signatures.CritiquePrinciples,
    "principle_refiner": signatures.RefinePrinciples,
    "responder": signatures.Respond,
    "response_critic": signatures.CritiqueResponse,
    "response_refiner": signatures.RefineResponse,
    "rubric_generator": signatures.WriteRubric,
    "rubric_critic": signatures.CritiqueRubric,
    "rubric_refiner": signatures.RefineRubric,
    "judge": signatures.JudgeWithRubric,
    "judgement_critic": signatures.CritiqueJudgement,
    "judgement_refiner": signatures.RefineJudgement,
    "comparer": signatures.CompareWithRubric,
    "comparison_critic": signatures.CritiqueComparison,
    "comparison_refiner": signatures.RefineComparison,
    "direct_responder": signatures.RespondDirectly,
    "direct_critic": signatures.CritiqueDirectly,
    "direct_refiner": signatures.RefineDirectly,
    "direct_judge": signatures.JudgeDirectly,
    "direct_judgement_critic": signatures.CritiqueJudgementDirectly,
    "direct_judgement_refiner": signatures.RefineJudgementDirectly,
    "alignment_judge": JudgeReappraisalAlignment,
    "empathy_judge": JudgeEmpathy,
    "usefulness_judge": JudgePrincipleUsefulness,
    "adherence_judge": JudgeResponseAdherence,
}

Answer = Union[Mapping[str, Any], str]
Script = Union[Callable[["Call"], Answer], Iterable[Answer]]

_FIELD_LIST = re.compile(r"^Your (input|output) fields are:\n(.*?)(?=\n\n|\nYour |\Z)", re.S | re.M)
_FIELD_NAME = re.compile(r"^\d+\. `(\w+)`", re.M)
_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]\n")
_HEADING = re.compile(r"^## (\w+)\n", re.M)
_ANSWER_KEYS = re.compile(r"Keys of your answer: (.*)\.\Z", re.S)
_KEY = re.compile(r'"(\w+)" \(')


@dataclass
class Call:
    """One request the engine answered: which step, on which model, with which inputs."""

    step: str
    model: str
    inputs: dict[str, str]
    json_mode: bool
    demos: int = 0
    answer: Answer = field(default="")
    outputs: list[str] = field(default_factory=list)
    """The output field names the adapter asked for."""
    instructions: str = ""
    """The system message (which holds the signature's instructions)."""
    demo_answers: list[str] = field(default_factory=list)
    """The answers of the demos shown (the assistant turns before the request), as sent."""


class ScriptedEngine:
    """Answers each step from ``script``: a mapping from step name to a list of answers
    (consumed in order) or to a function of the :class:`Call`.

    An answer is a dict of output fields, formatted the way the calling adapter
    expects (JSON when a response format was requested or the JSON adapter is in
    use, DSPy's field markers otherwise), or a raw string sent as it is (e.g.
    garbage, to test parse failures). Steps without a script get ``default(call)``.
    Every call is appended to ``calls``; ``steps()`` lists their step names.
    """

    supports_response_schema = True
    supported_params = frozenset({"temperature", "max_tokens", "response_format"})

    def __init__(
        self,
        script: Mapping[str, Script] | None = None,
        default: Callable[[Call], Answer] | None = None,
        step_signatures: Mapping[str, type[dspy.Signature]] | None = None,
    ):
        self.script = {name: _as_callable(answers) for name, answers in (script or {}).items()}
        self.default = default or _placeholder
        self.signatures = dict(step_signatures or STEPS)
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def steps(self) -> list[str]:
        """The step names of all calls so far, in order."""
        return [call.step for call in self.calls]

    def complete(self, request) -> Response:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system or ())
        user_texts = [m.text or "" for m in request.messages if m.role == "user"]
        call = self.recognise(system, user_texts, request.model, request.config.response_format is not None)
        call.demo_answers = [m.text or "" for m in request.messages if m.role == "assistant"]
        with self._lock:
            answer = self.script.get(call.step, self.default)(call)
            call.answer = answer
            self.calls.append(call)
        text = render_answer(answer, call.json_mode)
        prompt = len(system.split()) + sum(len((m.text or "").split()) for m in request.messages)
        return Response(id=None, model=request.model, message=Message.assistant(text), finish_reason="stop",
                        usage=Usage(input_tokens=prompt, output_tokens=len(text.split())))

    def recognise(self, system: str, user_texts: list[str], model: str, schema_requested: bool) -> Call:
        """The :class:`Call` a request makes: its step, inputs, format and number of demos."""
        last = user_texts[-1] if user_texts else ""
        fields = {kind: _FIELD_NAME.findall(names) for kind, names in _FIELD_LIST.findall(system)}
        # CompactJSONAdapter: inputs as headings; the task and keys in the system (its default) or after them ("last")
        keys = None if fields else _ANSWER_KEYS.search(last) or _ANSWER_KEYS.search(system)
        if keys:
            inputs = _compact_inputs(last)
            task = inputs.pop(TASK_HEADING, "")
            fields = {"input": list(inputs), "output": _KEY.findall(keys.group(1))}
            return Call(step=self._step(fields["input"], fields["output"]), model=model, inputs=inputs,
                        json_mode=True, demos=max(0, len(user_texts) - 1), outputs=fields["output"],
                        instructions=system + "\n" + task)
        json_mode = schema_requested or "Outputs will be a JSON object" in system
        return Call(step=self._step(fields.get("input", []), fields.get("output", [])), model=model,
                    inputs=_inputs(last), json_mode=json_mode,
                    demos=max(0, len(user_texts) - 1), outputs=fields.get("output", []), instructions=system)

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass

    def _step(self, inputs: list[str], outputs: list[str]) -> str:
        for name, signature in self.signatures.items():
            if list(signature.input_fields) == inputs and list(signature.output_fields) == outputs:
                return name
        for name, signature in self.signatures.items():  # a compact prompt leaves absent optional inputs out
            required = [f for f, info in signature.input_fields.items() if not _optional(info.annotation)]
            if (list(signature.output_fields) == outputs and set(inputs) <= set(signature.input_fields)
                    and set(required) <= set(inputs)):
                return name
        return "unknown:" + ",".join(outputs)


def _as_callable(answers: Script) -> Callable[[Call], Answer]:
    if callable(answers):
        return answers
    queue = iter(list(answers))

    def next_answer(call: Call) -> Answer:
        try:
            return next(queue)
        except StopIteration:
            raise AssertionError(f"script for {call.step!r} has no answer left") from None

    return next_answer


def _placeholder(call: Call) -> Answer:
    """Default answers: a text naming the step for every output field the request asked for
    (so optimizers' own steps get answers too), and critics that accept with score 5."""
    if not call.outputs:
        return "no script for this step"
    return {name: 5 if name == "score" else f"{call.step} output" for name in call.outputs}


def _inputs(text: str) -> dict[str, str]:
    text = text.split("\n\nRespond with ")[0]  # the adapter's closing output reminder
    parts = _MARKER.split(text)
    return {name: value.strip() for name, value in zip(parts[1::2], parts[2::2])}


def _optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _compact_inputs(text: str) -> dict[str, str]:
    parts = _HEADING.split(text)
    return {name: value.strip() for name, value in zip(parts[1::2], parts[2::2])}


def render_answer(answer: Answer, json_mode: bool) -> str:
    """An answer as the calling adapter expects it: JSON, DSPy's field markers, or a raw string as it is."""
    if isinstance(answer, str):
        return answer
    if json_mode:
        return json.dumps(dict(answer))
    blocks = (f"[[ ## {name} ## ]]\n{value}" for name, value in answer.items())
    return "\n\n".join(itertools.chain(blocks, ["[[ ## completed ## ]]"]))


class AsyncScriptedEngine:
    """The async face of a :class:`ScriptedEngine` (DSPy's ``async_engine=``): the same script and call log,
    so a program run with ``acall`` can be compared call by call with the same program run synchronously."""

    def __init__(self, engine: ScriptedEngine):
        self.engine = engine

    async def complete(self, request) -> Response:
        return self.engine.complete(request)


def scripted_lm(engine: ScriptedEngine, model: str = "scripted/base") -> dspy.LM:
    """A ``dspy.LM`` over ``engine`` (sync and async) with DSPy's cache off, so every call reaches the script."""
    return dspy.LM(model, engine=engine, async_engine=AsyncScriptedEngine(engine), cache=False)


def step_signatures(program: dspy.Module) -> dict[str, type[dspy.Signature]]:
    """Every predictor of ``program`` by its step name (its attribute path, less ``.predict``) -> its signature:
    ``ScriptedEngine(script, step_signatures=step_signatures(program))`` recognises the steps of any program,
    a :class:`spri_dspy.Situated` around a user's own module included."""
    return {name.removesuffix(".predict"): predictor.signature for name, predictor in program.named_predictors()}
