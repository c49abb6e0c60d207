"""A small OpenAI-compatible chat server on 127.0.0.1 for benchmarks and fault-injection tests.

Every answer is scripted and stateless, so any number of threads or processes
can call it: generators answer ``"<step> for: <query>"``, refiners append
``" (refined)"`` to the text they refine, and critics score the text under
review with ``critic_scores[k]`` where k is how often that text was refined
(the last score repeats); other scores (judges, metrics) are 3 plus the number of
refinements of their last input, at most 5. Faults are injected at the given rates: ``"500"``,
``"429"``, ``"timeout"`` (the answer comes after ``timeout_delay`` seconds) and
``"malformed"`` (a 200 with a body that is not JSON). A client that closes its connection while it waits for
an answer is noticed, as a real server notices it: the call ends unanswered and counts as ``"cancelled"``.

Run it in-process (``with FakeOpenAIServer(latency=0.1) as server: server.url``) or,
for benchmarks, in its own process: ``python -m spri_dspy.testing.server --latency 0.1``
prints the URL and serves until stopped.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spri_dspy.testing.engine import STEPS, ScriptedEngine, render_answer

FAULTS = ("500", "429", "timeout", "malformed", "401", "400")


_OUTPUT_LIST = re.compile(r"^Your output fields are:\n(.*?)(?=\n\n|\nYour |\Z)", re.S | re.M)
_TYPED_FIELD = re.compile(r"^\d+\. `(\w+)` \((.+?)\)(?::|$)", re.M)


def typed_answer(system: str, outputs: Sequence[str], schema: Mapping[str, Any] | None = None) -> dict[str, Any] | str:
    """An answer to any DSPy signature: each output field the adapter asked for, filled with a value of its
    type (read from the JSON schema when one was requested, else from the field list DSPy's adapters write).
    A request that names no output fields (a raw prompt, e.g. GEPA's reflection) gets a fenced instruction."""
    if not outputs:
        return "```\nRead the request closely and answer it carefully and concretely.\n```"
    properties = dict((schema or {}).get("properties") or {})
    listed = _OUTPUT_LIST.search(system)
    declared = dict(_TYPED_FIELD.findall(listed.group(1))) if listed else {}
    return {name: _value(name, properties.get(name), declared.get(name, "str")) for name in outputs}


def _value(name: str, schema: Mapping[str, Any] | None, declared: str) -> Any:
    kind = (schema or {}).get("type")
    if schema and schema.get("enum"):
        return schema["enum"][0]
    if declared.startswith("Literal["):
        try:
            return ast.literal_eval(f"[{declared[len('Literal['):-1]}]")[0]
        except (ValueError, SyntaxError, IndexError):
            pass
    if kind == "integer" or declared == "int":
        return 3
    if kind == "number" or declared == "float":
        return 0.5
    if kind == "boolean" or declared == "bool":
        return True
    if kind == "array" or declared.startswith(("list", "List")):
        return []
    if kind == "object" or declared.startswith(("dict", "Dict")):
        return {}
    return f"A careful, concrete {name.replace('_', ' ')}."


def scripted_answer(step: str, inputs: Mapping[str, str], critic_scores: Sequence[int]) -> dict[str, Any] | str:
    """The server's stateless answer for one SPRI or metric step (see the module docstring); None for any
    other step (see :func:`typed_answer`)."""
    signature = STEPS.get(step)
    if signature is None:
        return None
    outputs = list(signature.output_fields)
    under_review = list(inputs.values())[-1] if inputs else ""  # a critic's last input is the text it reviews
    if outputs == ["feedback", "score"] and step.endswith("critic"):
        refined = under_review.count("(refined)")
        return {"feedback": f"improve it ({refined})", "score": critic_scores[min(refined, len(critic_scores) - 1)]}
    answer: dict[str, Any] = {}
    for name in outputs:
        if name == "score" or name.endswith("_score"):  # judges and metrics: better for refined texts
            answer[name] = min(5, 3 + under_review.count("(refined)"))
        elif f"draft_{name}" in inputs or name.startswith("refined_"):  # a refiner: its draft, marked refined
            draft = inputs.get(f"draft_{name}", inputs.get("judgement", ""))
            answer[name] = f"{draft} (refined)"
        else:
            first = next(iter(inputs.values()), "")
            answer[name] = f"{step} for: {first[:40]}"
    return answer


class FakeOpenAIServer:
    """OpenAI-compatible ``/v1/chat/completions`` with fixed latency, scripted critics and faults.

    Args:
        latency: seconds to wait before each answer.
        critic_scores: critic score by number of refinements of the text under review.
        faults: fault name (``"500"``, ``"429"``, ``"timeout"``, ``"malformed"``, ``"401"``) to rate in [0, 1].
            ``"401"`` answers as a provider does to a wrong key: echoing the key it was sent; ``"400"`` is a
            bad-request answer that quotes the key too (one input's failure, where a 401 ends a run).
        timeout_delay: how long a ``"timeout"`` fault holds its answer.
        seed: seed of the fault draws.
        port: 0 picks a free port.
        models: the model names served (``GET /v1/models`` lists them; a request for another is a 404, as vLLM
            answers); None serves any name, as llama.cpp's server does.
        context: the context window in tokens (prompt plus ``max_tokens``; a token here is a word): a longer
            request is a 400 with code ``context_length_exceeded``, as llama.cpp's server answers.

    As a real server does, an answer longer than the request's ``max_tokens`` is cut there with
    ``finish_reason: "length"``, and ``usage`` counts the prompt's and the answer's tokens.
    """

    def __init__(self, latency: float = 0.0, critic_scores: Sequence[int] = (5,), faults: Mapping[str, float] | None = None,
                 timeout_delay: float = 5.0, seed: int = 0, port: int = 0, models: Sequence[str] | None = None,
                 context: int | None = None):
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {list(FAULTS)}")
        self.latency, self.critic_scores = latency, list(critic_scores)
        self.faults, self.timeout_delay = dict(faults or {}), timeout_delay
        self.models, self.context = (list(models) if models is not None else None), context
        self.counts: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0  # requests being answered now, and the most at once
        self._random, self._lock = random.Random(seed), threading.Lock()
        self._recogniser = ScriptedEngine()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler(), bind_and_activate=False)
        self._httpd.request_queue_size = 4096  # a listen backlog for thousands of clients connecting at once
        try:
            self._httpd.server_bind()
            self._httpd.server_activate()
        except BaseException:
            self._httpd.server_close()
            raise
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for ``dspy.LM("openai/<any>", api_base=url, api_key="unused")``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _draw_fault(self) -> str | None:
        with self._lock:
            draw = self._random.random()
        edge = 0.0
        for fault in FAULTS:
            edge += self.faults.get(fault, 0.0)
            if draw < edge:
                return fault
        return None

    def answer(self, body: dict) -> dict:
        """The chat-completion response for a request body."""
        messages = body.get("messages") or []
        system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in ("system", "developer"))
        users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
        call = self._recogniser.recognise(system, users, str(body.get("model")), body.get("response_format") is not None)
        answer = scripted_answer(call.step, call.inputs, self.critic_scores)
        if answer is None:  # an optimizer's own signature (MIPROv2's proposer, GEPA's reflection) or a user's
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
            answer = typed_answer(system, call.outputs, schema)
        text = render_answer(answer, call.json_mode)
        with self._lock:
            self.counts[call.step] += 1
        prompt = _tokens(messages)
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words = list(re.finditer(r"\S+", text))
        if isinstance(limit, int) and 0 < limit < len(words):
            text, finish = text[: words[limit - 1].end()], "length"
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                      "total_tokens": prompt + len(text.split())},
        }

    def refusal(self, body: dict) -> tuple[int, dict] | None:
        """The error a real server gives this request body (no such model, over the context), or None."""
        model = body.get("model")
        if self.models is not None and model not in self.models:
            return 404, {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                                   "param": "model", "code": 404}}
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        prompt = _tokens(body.get("messages") or [])
        if self.context is not None and prompt + limit > self.context:
            return 400, {"error": {
                "message": f"This model's maximum context length is {self.context} tokens. However, you requested "
                           f"{prompt + limit} tokens ({prompt} in the messages, {limit} in the completion). Please "
                           "reduce the length of the messages or completion.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
        return None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one write, flushed after each request

            def setup(self):
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stall per answer

            def parse_request(self):  # called as soon as the request line has arrived
                self.deadline = time.monotonic() + server.latency
                return super().parse_request()

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/stats"):
                    with server._lock:
                        stats = {**server.counts, "max_in_flight": server.max_in_flight}
                    self._send(200, json.dumps(stats).encode())
                elif self.path.rstrip("/").endswith("/models"):
                    names = server.models if server.models is not None else ["fake"]
                    listing = {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "spri-dspy"}
                                                          for name in names]}
                    self._send(200, json.dumps(listing).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                # The answer leaves a fixed latency after the request arrived: the server's own work
                # (parsing, scripting the answer) happens inside that latency, not on top of it.
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, b'{"error": {"message": "not found"}}')
                fault = server._draw_fault()
                with server._lock:
                    server.counts["requests"] += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if fault:
                        server.counts[f"fault:{fault}"] += 1
                try:
                    status, payload, headers = self._respond(raw, fault)
                    delay = self.deadline - time.monotonic() + (server.timeout_delay if fault == "timeout" else 0.0)
                    if not self._client_stays(delay):
                        with server._lock:
                            server.counts["cancelled"] += 1
                        self.close_connection = True
                        return
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(status, payload, headers)

            def _client_stays(self, delay: float) -> bool:
                """Wait ``delay`` seconds; False as soon as the client closes its connection (it cancelled the
                call), as a real server notices."""
                end = time.monotonic() + delay
                poller = select.poll()  # not select.select: no limit on the descriptor's number (1,024 clients)
                poller.register(self.connection, select.POLLIN | select.POLLHUP)
                while (left := end - time.monotonic()) > 0:
                    if left < 0.002:  # poll's timeout is whole milliseconds, rounded up: sleep the last bit exactly
                        time.sleep(left)
                        break
                    if poller.poll(int(left * 1000) - 1):
                        try:
                            if not self.connection.recv(1, socket.MSG_PEEK):
                                return False
                        except OSError:
                            return False
                        time.sleep(min(left, 0.01))  # bytes of a next request (not sent before an answer): wait on
                return True

            def _respond(self, raw: bytes, fault: str | None) -> tuple[int, bytes, Mapping[str, str] | None]:
                if fault == "500":
                    return 500, b'{"error": {"message": "injected server error", "type": "server_error"}}', None
                if fault == "429":
                    return 429, b'{"error": {"message": "injected rate limit", "type": "rate_limit"}}', {"Retry-After": "0"}
                if fault == "malformed":
                    return 200, b'{"id": "x", "choices": [ this is not json', None
                if fault in ("401", "400"):
                    key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    text = f"Incorrect API key provided: {key}" if fault == "401" else f"Bad request (key {key})"
                    message = {"error": {"message": text, "type": "invalid_request_error"}}
                    return int(fault), json.dumps(message).encode(), None
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return 400, b'{"error": {"message": "request body is not JSON"}}', None
                refused = server.refusal(body)
                if refused is not None:
                    return refused[0], json.dumps(refused[1]).encode(), None
                return 200, json.dumps(server.answer(body)).encode(), None

            def _send(self, status: int, payload: bytes, headers: Mapping[str, str] | None = None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout); nothing to answer

        return Handler


def _tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A prompt's length in this server's tokens (words)."""
    return sum(len(_text(m.get("content")).split()) for m in messages)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def spawn(latency: float = 0.0, critic_scores: Sequence[int] = (5,), faults: Mapping[str, float] | None = None,
          seed: int = 0) -> tuple[subprocess.Popen, str]:
    """Start a server in its own process (so it never competes with the client for the GIL);
    returns the process and its URL. Terminate the process when done."""
    command = [sys.executable, "-m", "spri_dspy.testing.server", "--latency", str(latency),
               "--critic-scores", ",".join(map(str, critic_scores)), "--seed", str(seed)]
    for fault, rate in (faults or {}).items():
        command += ["--fault", f"{fault}={rate}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise RuntimeError(f"fake server did not start: {url!r}")
    return process, url


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed; the first line printed is the URL."""
    parser = argparse.ArgumentParser(prog="python -m spri_dspy.testing.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--critic-scores", default="5", help="comma-separated scores, e.g. 2,5")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE", help=f"one of {FAULTS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    faults = {name: float(rate) for name, rate in (item.split("=", 1) for item in args.fault)}
    server = FakeOpenAIServer(args.latency, [int(s) for s in args.critic_scores.split(",")], faults, seed=args.seed,
                              port=args.port)
    print(server.url, flush=True)
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
