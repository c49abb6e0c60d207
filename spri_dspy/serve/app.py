"""The ASGI app of ``spri serve``: OpenAI's chat-completions API in front of spri-dspy's programs.

``POST /v1/chat/completions`` runs the program ``model`` names through ``acall``:

- response programs (``spri``, ``vanilla``, ``self-refine``, a compiled file by its name): the last user message
  is the query; the ``goal`` field, else a system message, the goal;
- judges (``spri-judge``, ``vanilla-judge``, ...; ``spri-pairwise``): the fields ``instruction``, ``response``
  (or ``response_a`` and ``response_b``) and an optional ``reference_answer``, in the body beside ``model``.

A request may set ``threshold`` (1-5), ``max_rounds`` (1 to the server's bound) and ``max_words`` where the
program takes them. The reply is a standard chat completion: its content is the final response (a judge's: its
verdict as JSON), ``usage`` sums every LM call, and the extension field ``spri`` holds the whole Prediction
(principles, rubric, trace). With ``stream: true`` the reply is Server-Sent Events in OpenAI's chunk format: each
step's result (principles written, each critique's score and feedback, each refinement) arrives in a chunk's
``spri`` field as it happens, then the response as content, then ``[DONE]``.

Above ``max_concurrency`` programs in flight a request is refused with 429 and ``Retry-After``; a program that
runs past ``timeout`` is cancelled (504); a client that disconnects cancels its program and its pending LM
calls; an upstream failure is a 502 or 503 with the reason; a bad request a 400 naming the field. Every error
body is OpenAI's ``{"error": {"message", "type", "param", "code"}}``, redacted, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import dspy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spri_dspy.compat import BaseCallback
from spri_dspy.core.programs import PROGRAMS, build_program, load_program, read_metadata
from spri_dspy.core.steps import Step
from spri_dspy.runtime.usage import StepUsage, count_calls_needed, name_steps
from spri_dspy.secrets import redact

log = logging.getLogger("spri_dspy.serve")

INPUTS = {
    "response": (("query",), ("goal",)),
    "judge": (("instruction", "response"), ("reference_answer",)),
    "pairwise": (("instruction", "response_a", "response_b"), ("reference_answer",)),
}
"""Per kind of program: (required inputs, optional inputs)."""
SETTINGS = ("threshold", "max_rounds", "max_words")
"""The settings a request may set, where its program takes them."""
SERVED = {"response": ("spri", "vanilla", "self-refine"), "judge": ("spri", "vanilla", "self-refine", "mt-bench", "flask"),
          "pairwise": ("spri",)}
"""The registry programs served by default (those that need no per-request principles or seeds)."""
SUFFIX = {"response": "", "judge": "-judge", "pairwise": "-pairwise"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""The playground's Content-Security-Policy: its own script and style, requests to this server only."""


@dataclass(frozen=True)
class Limits:
    """What the server allows: programs in flight, seconds per request, and the bounds of a request's settings."""

    max_concurrency: int = 64
    timeout: float = 600.0
    max_rounds: int = 4
    """The most critique rounds per stage a request may ask for."""
    max_words: int = 1024
    max_chars: int = 32_000
    """The longest text a field may hold."""


@dataclass(frozen=True)
class Served:
    """A model the server answers as: its id, kind (``response``, ``judge``, ``pairwise``), a builder of its
    program from a request's settings, and the settings a request may set."""

    id: str
    kind: str
    build: Callable[..., dspy.Module]
    settings: tuple[str, ...] = ()
    description: str = ""


def served_programs(settings: Mapping[str, Any] | None = None, files: Sequence[str] = ()) -> dict[str, Served]:
    """The models a server answers as: the registry's programs that need no extra input (``spri``,
    ``vanilla``, ``self-refine``; ``spri-judge`` and the other judges; ``spri-pairwise``) built with
    ``settings``, and each compiled program file by its file name (without ``.json``)."""
    settings = dict(settings or {})
    served: dict[str, Served] = {}
    for kind, names in SERVED.items():
        for name in names:
            spec = PROGRAMS[(kind, name)]
            served[name + SUFFIX[kind]] = Served(
                name + SUFFIX[kind], kind, functools.partial(_built, name, kind, settings), _requestable(spec),
                spec.summary)
    for path in files:
        metadata = read_metadata(path)
        spec = PROGRAMS[(metadata["kind"], metadata["program"])]
        served[Path(path).stem] = Served(
            Path(path).stem, metadata["kind"], functools.partial(load_program, path, settings.get("critic_lm")),
            _requestable(spec), f"compiled {metadata['program']} ({Path(path).name})")
    return served


def _requestable(spec) -> tuple[str, ...]:
    """The settings of :data:`SETTINGS` that the program ``spec`` takes."""
    return tuple(name for name in SETTINGS if name in spec.accepts())


def _built(name: str, kind: str, settings: Mapping[str, Any], **overrides: Any) -> dspy.Module:
    return build_program(name, kind, **{**settings, **overrides})


class APIError(Exception):
    """An error answered in OpenAI's format."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": redact(self.message), "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


def bad(param: str, message: str) -> APIError:
    """A 400 naming the field."""
    return APIError(400, f"{param}: {message}", param=param)


def upstream_error(exc: BaseException) -> APIError:
    """A program's failure as the client sees it: 503 (with Retry-After) when the upstream model is rate-limited,
    unavailable or unreachable, else 502; the reason in one redacted line."""
    name = type(exc).__name__
    reason = " ".join(str(exc).split())[:500]
    if isinstance(exc, dspy.AdapterParseError):
        return APIError(502, f"the upstream model's answer did not parse: {reason}", "upstream_error",
                        code="unparseable_answer")
    if isinstance(exc, (dspy.LMRateLimitError, dspy.LMTransportError)) or getattr(exc, "status", None) == 503:
        retry = getattr(exc, "retry_after", None)
        return APIError(503, f"the upstream model is unavailable: {name}: {reason}", "upstream_error",
                        code="upstream_unavailable", headers={"Retry-After": str(max(1, round(retry or 1)))})
    return APIError(502, f"the upstream model failed: {name}: {reason}", "upstream_error", code="upstream_failed")


class StageEvents(BaseCallback):
    """A DSPy callback (one per streamed request) that reports each step's result as it ends: its stage, step,
    kind, round (per stage and kind) and outputs."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]):
        self.emit = emit
        self._steps: dict[str, Step] = {}
        self._rounds: Counter[tuple[str | None, str | None]] = Counter()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if isinstance(instance, Step):
            self._steps[call_id] = instance

    def on_module_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        step = self._steps.pop(call_id, None)
        if step is None or exception is not None or outputs is None:
            return
        self._rounds[(step.stage, step.kind)] += 1
        values = {key: value for key, value in outputs.items() if key != "seeds"}
        self.emit({"event": "step", "stage": step.stage, "step": step.step_name, "kind": step.kind,
                   "round": self._rounds[(step.stage, step.kind)], "outputs": jsonable(values)})


def jsonable(value: Any) -> Any:
    """``value`` as JSON data (a Prediction as its fields; anything else unknown as text)."""
    return json.loads(json.dumps(value, default=lambda v: dict(v.items()) if hasattr(v, "items") else str(v)))


class SPRIServer:
    """The state of one server: its models, LMs, limits and the programs in flight."""

    def __init__(self, served: Mapping[str, Served], lm: dspy.BaseLM, adapter: dspy.Adapter | None = None,
                 limits: Limits | None = None, api_key: str | None = None):
        self.served, self.lm, self.adapter = dict(served), lm, adapter
        self.limits, self.api_key = limits or Limits(), api_key
        self.in_flight = 0
        self.program = functools.lru_cache(maxsize=256)(self._program)

    def _program(self, model: str, overrides: tuple[tuple[str, Any], ...]) -> dspy.Module:
        program = self.served[model].build(**dict(overrides))
        name_steps(program)
        count_calls_needed(self.lm, program)  # once per program: it walks the module tree
        return program

    # requests

    def authorize(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key")

    def parse(self, body: Any) -> tuple[Served, dict[str, Any], tuple[tuple[str, Any], ...]]:
        """(the model, the program's inputs, the request's settings) of a request body, or a 400 naming the field."""
        if not isinstance(body, dict):
            raise bad("body", "must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or model not in self.served:
            raise APIError(404 if isinstance(model, str) else 400,
                           f"model: {model!r} is not served here; served: {', '.join(self.served)}",
                           param="model", code="model_not_found" if isinstance(model, str) else None)
        served = self.served[model]
        if "stream" in body and not isinstance(body["stream"], bool):
            raise bad("stream", "must be true or false")
        inputs = self._inputs(served, body)
        overrides = []
        for name in SETTINGS:
            if body.get(name) is None and not (name == "max_words" and "max_words" in body):
                continue
            if name not in served.settings:
                raise bad(name, f"the model {model} takes no {name}")
            overrides.append((name, self._setting(name, body[name])))
        return served, inputs, tuple(overrides)

    def _inputs(self, served: Served, body: dict) -> dict[str, Any]:
        required, optional = INPUTS[served.kind]
        if served.kind == "response":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise bad("messages", "must be a non-empty list of {role, content} messages")
            for index, message in enumerate(messages):
                if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                    raise bad(f"messages[{index}]", "must be an object with a role and content")
            users = [i for i, m in enumerate(messages) if m["role"] == "user"]
            if not users:
                raise bad("messages", "holds no user message (the last one is the query)")
            fields = {"query": _content(messages[users[-1]].get("content"), f"messages[{users[-1]}].content")}
            systems = [i for i, m in enumerate(messages) if m["role"] in ("system", "developer")]
            if body.get("goal") is not None:
                fields["goal"] = body["goal"]
            elif systems:
                fields["goal"] = _content(messages[systems[0]].get("content"), f"messages[{systems[0]}].content")
        else:
            fields = {name: body.get(name) for name in (*required, *optional) if body.get(name) is not None}
        for name in required + optional:
            value = fields.get(name)
            if value is None and name in required:
                raise bad(name, f"is required by the {served.kind} model {served.id}")
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise bad(name, "must be a non-empty string")
            if value is not None and len(value) > self.limits.max_chars:
                raise bad(name, f"is {len(value)} characters; this server takes at most {self.limits.max_chars}")
        return fields

    def _setting(self, name: str, value: Any) -> Any:
        if name == "max_words" and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(name, f"must be a whole number, got {value!r}")
        low, high = {"threshold": (1, 5), "max_rounds": (1, self.limits.max_rounds),
                     "max_words": (1, self.limits.max_words)}[name]
        if not low <= value <= high:
            raise bad(name, f"must be between {low} and {high} on this server, got {value}")
        return value

    # running

    async def run(self, program: dspy.Module, inputs: dict[str, Any],
                  emit: Callable[[dict[str, Any]], None] | None = None) -> tuple[dspy.Prediction, StepUsage]:
        """The program's Prediction for ``inputs`` and its usage; ``emit`` receives each step's result."""
        usage = StepUsage()
        callbacks = [*dspy.settings.callbacks, StageEvents(emit)] if emit else dspy.settings.callbacks
        # No LM history and no DSPy trace: both keep every call's texts (up to 10,000 of them), which a server
        # never reads back; memory stays flat in the number of requests, and users' texts are not held.
        with dspy.context(lm=self.lm, adapter=self.adapter, callbacks=callbacks, usage_tracker=usage,
                          disable_history=True, trace=None):
            return await program.acall(**inputs), usage

    async def execute(self, request: Request, program: dspy.Module, inputs: dict[str, Any],
                      emit: Callable[[dict[str, Any]], None] | None = None) -> tuple[dspy.Prediction, StepUsage]:
        """:meth:`run` bounded by the timeout, cancelled (with its LM calls) when the client disconnects."""
        task = asyncio.create_task(self.run(program, inputs, emit))
        gone = asyncio.create_task(_disconnected(request))
        try:
            done, _ = await asyncio.wait({task, gone}, timeout=self.limits.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # this request cancelled (e.g. the server shutting down): its program too
            task.cancel()
            raise
        finally:
            gone.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if gone in done:
                raise ClientGone()
            raise APIError(504, f"the program did not finish within the server's {self.limits.timeout:g} s",
                           "timeout", code="timeout")
        try:
            return task.result()
        except (APIError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-style error, never a traceback
            log.warning("request failed: %s", redact(f"{type(exc).__name__}: {exc}")[:500])
            raise upstream_error(exc) from None


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _disconnected(request: Request) -> None:
    """Return when the client has disconnected (the request's body is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _content(content: Any, param: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(str(part.get("text", "")) for part in content if part.get("type", "text") == "text")
    raise bad(param, "must be a string or a list of text parts")


def completion(served: Served, prediction: dspy.Prediction, usage: StepUsage, request_id: str,
               created: int) -> dict[str, Any]:
    """The chat completion of a finished program."""
    return {"id": request_id, "object": "chat.completion", "created": created, "model": served.id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content(served, prediction)},
                         "finish_reason": "stop"}],
            "usage": usage_of(usage), "spri": jsonable(dict(prediction.items()))}


def content(served: Served, prediction: dspy.Prediction) -> str:
    """What a client reads as the message: the response, or a judge's verdict as JSON."""
    if served.kind == "response":
        return str(prediction.response)
    keys = ("feedback", "score") if served.kind == "judge" else ("verdict", "feedback")
    return json.dumps({key: prediction.get(key) for key in keys})


def usage_of(usage: StepUsage) -> dict[str, int]:
    """OpenAI's usage object, summed over every LM call the program made."""
    prompt = sum(counter["prompt_tokens"] for counter in usage.by_step.values())
    completion_tokens = sum(counter["completion_tokens"] for counter in usage.by_step.values())
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens,
            "lm_calls": usage.calls}


def chunk(served: Served, request_id: str, created: int, delta: dict[str, Any], finish: str | None = None,
          **extra: Any) -> bytes:
    """One Server-Sent Event in OpenAI's chunk format (extension fields beside ``choices``)."""
    body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": served.id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class EventStream(Response):
    """The streamed answer: runs the program, sends each step's event as it ends, then the response."""

    def __init__(self, server: SPRIServer, request: Request, served: Served, program: dspy.Module,
                 inputs: dict[str, Any], include_usage: bool, release: Callable[[], None]):
        self.status_code, self.background = 200, None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]  # no Content-Length: the body is sent as it is made
        self.server, self.request, self.served, self.program = server, request, served, program
        self.inputs, self.include_usage, self.release = inputs, include_usage, release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for data in self.events():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, ClientGone):
            pass  # the client left; its program was cancelled
        finally:
            self.release()

    async def events(self) -> AsyncIterator[bytes]:
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        emit = lambda event: loop.call_soon_threadsafe(queue.put_nowait, event)  # noqa: E731
        yield chunk(self.served, request_id, created, {"role": "assistant", "content": ""})
        task = asyncio.create_task(self.server.execute(self.request, self.program, self.inputs, emit))
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield chunk(self.served, request_id, created, {}, spri=getter.result())
                else:
                    getter.cancel()
            try:
                prediction, usage = task.result()
            except APIError as error:
                yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
                return
            yield chunk(self.served, request_id, created, {"content": content(self.served, prediction)})
            yield chunk(self.served, request_id, created, {}, "stop",
                        spri={"event": "done", **jsonable(dict(prediction.items()))})
            if self.include_usage:
                body = {"id": request_id, "object": "chat.completion.chunk", "created": created,
                        "model": self.served.id, "choices": [], "usage": usage_of(usage)}
                yield b"data: " + json.dumps(body).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def create_app(served: Mapping[str, Served], lm: dspy.BaseLM, adapter: dspy.Adapter | None = None,
               limits: Limits | None = None, api_key: str | None = None) -> Starlette:
    """The ASGI app serving ``served`` (see :func:`served_programs`) on ``lm`` (critics on the programs' own
    ``critic_lm`` where they were built with one), with ``limits``; ``api_key``: the bearer token every
    ``/v1`` request must send (None: none)."""
    server = SPRIServer(served, lm, adapter, limits, api_key)

    async def completions(request: Request) -> Response:
        try:
            server.authorize(request)
            try:
                body = await request.json()
            except ValueError:
                raise bad("body", "is not JSON") from None
            served_model, inputs, overrides = server.parse(body)
            if server.in_flight >= server.limits.max_concurrency:
                raise APIError(429, f"the server runs at most {server.limits.max_concurrency} requests at once; "
                               "retry after a moment", "rate_limit_error", code="rate_limit_exceeded",
                               headers={"Retry-After": "1"})
            program = server.program(served_model.id, overrides)
        except APIError as error:
            return error.response()
        server.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released, server.in_flight = True, server.in_flight - 1

        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return EventStream(server, request, served_model, program, inputs, include_usage, release)
        try:
            prediction, usage = await server.execute(request, program, inputs)
            return JSONResponse(completion(served_model, prediction, usage, f"chatcmpl-{uuid.uuid4().hex}",
                                           int(time.time())))
        except APIError as error:
            return error.response()
        except ClientGone:
            return Response(status_code=499)
        finally:
            release()

    async def models(request: Request) -> Response:
        try:
            server.authorize(request)
        except APIError as error:
            return error.response()
        return JSONResponse({"object": "list", "data": [
            {"id": s.id, "object": "model", "created": 0, "owned_by": "spri-dspy", "kind": s.kind,
             "settings": list(s.settings), "description": s.description} for s in server.served.values()]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "in_flight": server.in_flight,
                             "max_concurrency": server.limits.max_concurrency})

    def asset(name: str, media_type: str) -> Callable[[Request], Any]:
        text = resources.files("spri_dspy.serve").joinpath("playground", name).read_text(encoding="utf-8")

        async def endpoint(request: Request) -> Response:
            return Response(text, media_type=media_type, headers={"Content-Security-Policy": CSP,
                                                                  "X-Content-Type-Options": "nosniff"})

        return endpoint

    async def not_found(request: Request, exc: Exception) -> Response:
        return APIError(404, f"no such path: {request.url.path}", code="not_found").response()

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("internal error: %s", redact(f"{type(exc).__name__}: {exc}")[:500])
        return APIError(500, "internal server error", "server_error").response()

    routes = [Route("/v1/chat/completions", completions, methods=["POST"]), Route("/v1/models", models),
              Route("/healthz", healthz), Route("/", asset("index.html", "text/html; charset=utf-8")),
              Route("/playground.js", asset("playground.js", "text/javascript; charset=utf-8")),
              Route("/playground.css", asset("playground.css", "text/css; charset=utf-8")),
              Route("/favicon.ico", lambda request: Response(status_code=204))]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: failed})
    app.state.server = server
    return app
