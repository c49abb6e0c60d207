"""The embedded SmolLM2-135M model through DSPy's LM layer, for real (a few seconds on CPU)."""

from __future__ import annotations

import json

import dspy
import pytest

from spri_dspy import SPRI, CompactJSONAdapter
from spri_dspy.runtime import embedded
from spri_dspy import embedded_lm
from spri_dspy.runtime.embedded import LlamaCppEngine, default_model_path, load_llama, schema_grammar
from spri_dspy.signatures import CritiquePrinciples, RefinePrinciples
from spri_dspy.testing.quality import degenerate_reason


@pytest.fixture(scope="module")
def lm():
    model = embedded_lm(max_tokens=96, cache=False)
    yield model
    model.engine.close()


def test_model_ships_in_the_wheel():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_grammar_caps_free_text_and_keeps_the_score_enum():
    schema = {"type": "object", "properties": {"feedback": {"type": "string"}, "score": {"enum": [1, 2, 3, 4, 5], "type": "integer"}},
              "required": ["feedback", "score"]}
    gbnf = schema_grammar(schema, 300)
    assert 'string ::= "\\"" text-start char{0,299} "\\"" space' in gbnf
    assert 'score ::= "1" | "2" | "3" | "4" | "5"' in gbnf


def test_grammar_texts_are_never_empty_nor_start_as_json():
    from llama_cpp import LlamaGrammar

    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    gbnf = schema_grammar(schema, 50)
    assert 'text-start ::= [A-Za-z0-9\\u00C0-\\uFFFF]' in gbnf
    LlamaGrammar.from_string(gbnf, verbose=False)  # llama.cpp accepts it


def test_grammar_texts_hold_no_braces_unless_allowed():
    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    assert 'string ::= "\\"" text-start text-char{0,49} "\\"" space' in schema_grammar(schema, 50, braces=False)
    assert 'text-char ::= [^"\\\\{}]' in schema_grammar(schema, 50, braces=False)
    assert "text-char" not in schema_grammar(schema, 50, braces=True)


@pytest.mark.embedded
def test_a_text_holds_no_brace_even_when_the_model_wants_one():
    """Asked for a JSON object, the model writes braces inside its text when the engine allows them, and none with
    the engine's default (the 135M model writes "}" inside a text when it means to close its JSON answer, and
    garbage follows)."""
    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    messages = [{"role": "user", "content": "Show a JSON object with a name and an age."}]
    options = {"max_tokens": 120, "temperature": 0.0, "repeat_penalty": 1.2, "seed": 0}
    texts = {}
    for braces in (True, False):
        engine = LlamaCppEngine(n_ctx=1024, no_copy_tokens=0, **({"braces": True} if braces else {}))
        texts[braces] = json.loads(engine._complete(messages, dict(options), schema)[0], strict=False)["response"]
        engine.close()
    assert "{" in texts[True] and texts[False].startswith(texts[True][:40])  # the same text up to the brace
    assert "{" not in texts[False] and "}" not in texts[False]


def test_models_load_without_extra_weight_buffers():
    """The AMX fix: llama.cpp's extra (repacked) buffers, where its AMX kernels live, are off,
    and llama-cpp-python's own defaults are left as they were."""
    import llama_cpp

    llama = load_llama(default_model_path(), n_ctx=256, n_threads=1)
    try:
        assert llama.model_params.use_extra_bufts is False
    finally:
        llama.close()
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True


def test_engine_loads_through_the_portable_loader(monkeypatch):
    loaded = []
    monkeypatch.setattr(embedded, "check_native_library", lambda path: loaded.append(("checked", str(path))))
    monkeypatch.setattr(embedded, "load_llama", lambda path, **options: loaded.append(("loaded", str(path))) or
                        type("FakeLlama", (), {"set_cache": lambda self, cache: loaded.append(("cache", cache.capacity_bytes)),
                                               "generate": lambda self, tokens, **settings: iter(tokens),
                                               "close": lambda self: loaded.append(("closed",))})())
    engine = LlamaCppEngine(state_cache_mb=8)
    engine.llama
    path = str(default_model_path())
    assert loaded == [("checked", path), ("loaded", path), ("cache", 8 << 20)]
    engine.close()  # (also registered to run at exit, before llama_cpp is torn down)
    assert loaded[-1] == ("closed",) and engine._llama is None


@pytest.mark.parametrize("returncode, reason", [(-11, "crashed with SIGSEGV"), (-4, "crashed with SIGILL"),
                                                 (1, "failed (OSError: cannot load library)")])
def test_a_native_library_that_cannot_run_is_a_one_line_error(monkeypatch, tmp_path, returncode, reason):
    import subprocess

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(embedded, "_CHECKED", set())
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, returncode, "", "Traceback ...\nOSError: cannot load library"))
    with pytest.raises(RuntimeError) as error:
        embedded.check_native_library(default_model_path())
    message = str(error.value)
    assert "\n" not in message and reason in message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir llama-cpp-python' in message
    assert not list(tmp_path.rglob("native-ok-*"))


def test_the_native_check_runs_once_per_machine(monkeypatch, tmp_path):
    import subprocess

    runs = []
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(embedded, "_CHECKED", set())
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a) or subprocess.CompletedProcess(a, 0, "", ""))
    embedded.check_native_library(default_model_path())
    monkeypatch.setattr(embedded, "_CHECKED", set())  # a new process: the marker file remembers
    embedded.check_native_library(default_model_path())
    assert len(runs) == 1 and len(list(tmp_path.rglob("native-ok-*"))) == 1


@pytest.mark.embedded
def test_the_native_check_really_runs_a_100_token_prompt(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(embedded, "_CHECKED", set())
    embedded.check_native_library(default_model_path())
    llama = load_llama(default_model_path(), n_ctx=512, n_threads=1)
    try:
        assert len(llama.tokenize(embedded._CHECK_PROMPT.encode())) >= 100
    finally:
        llama.close()
    assert len(list(tmp_path.rglob("native-ok-*"))) == 1


@pytest.mark.embedded
def test_engine_answers_a_prompt_of_more_than_100_tokens(lm):
    """The AMX kernels crashed only past a few dozen prompt tokens; one-token prompts never reached them."""
    query = ("I moved to a new city for work three months ago and I still do not know anyone here. My colleagues "
             "are friendly but they all have families and leave right after work. I tried a running club once but "
             "felt awkward and did not go back. Weekends are the hardest part because the flat is so quiet. "
             "What could I realistically do this month to start building a social life?")
    before = lm.engine.stats["prompt_tokens"]
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        verdict = dspy.Predict(CritiquePrinciples)(query=query, principles="1. Be kind.\n2. Be specific.")
    assert verdict.score in (1, 2, 3, 4, 5)
    assert lm.engine.stats["prompt_tokens"] - before >= 100


@pytest.mark.embedded
def test_spri_runs_end_to_end_and_every_call_parses(lm):
    with dspy.context(lm=lm, adapter=CompactJSONAdapter(), track_usage=True):
        prediction = SPRI(max_rounds=2)(query="How do I keep a basil plant alive indoors?")
    trace = prediction.trace
    assert {r["stage"] for r in trace} == {"principles", "response"}
    for stage in ("principles", "response"):
        rounds = [r for r in trace if r["stage"] == stage]
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        assert 1 <= len(rounds) <= 2
        assert rounds[-1]["accepted"] or len(rounds) == 2
    for r in trace:
        assert "error" not in r, r
        assert r["score"] in (1, 2, 3, 4, 5) and isinstance(r["feedback"], str) and isinstance(r["text"], str)
        assert r["accepted"] == (r["score"] >= 4)
    assert isinstance(prediction.principles, str) and isinstance(prediction.response, str)
    # What the grammar guarantees, whatever the 135M model writes: no empty text, no JSON fragment.
    # (Echoes of the instruction are still possible: benchmarks/embedded.py counts them over 10 queries.)
    for text in (prediction.principles, prediction.response):
        assert degenerate_reason(text) not in ("empty", "JSON fragment"), text
    json.dumps(trace)
    usage = prediction.get_lm_usage()["embedded/smollm2-135m-instruct"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


@pytest.mark.embedded
def test_critic_calls_always_parse_to_a_valid_score(lm):
    critic = dspy.Predict(CritiquePrinciples)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for query in ["I lost my job today.", "Explain recursion.", "Is coffee bad for me?", "Write a haiku.", "Hi"]:
            verdict = critic(query=query, principles="1. Be kind.\n2. Be specific.")
            assert verdict.score in (1, 2, 3, 4, 5)
            assert isinstance(verdict.feedback, str)


@pytest.mark.embedded
def test_query_longer_than_the_context_is_rejected_clearly():
    small = dspy.LM("embedded/smollm2-135m-instruct", engine=LlamaCppEngine(n_ctx=512), max_tokens=64, cache=False,
                    num_retries=0)
    with dspy.context(lm=small, adapter=CompactJSONAdapter()), pytest.raises(Exception) as error:
        SPRI()(query="please read this " * 400)
    assert "context window is 512 tokens; shorten the input" in str(error.value)
    small.engine.close()


@pytest.mark.embedded
def test_a_query_over_the_context_is_one_inputs_failure_in_a_batch(tmp_path):
    """In a batch the same query fails alone, naming the limit; the run goes on (never a crash)."""
    from spri_dspy.runtime.batch import run_batch

    small = dspy.LM("embedded/smollm2-135m-instruct", engine=LlamaCppEngine(n_ctx=512), max_tokens=64, cache=False,
                    num_retries=0)
    rows = [{"id": "long", "query": "please read this " * 400}, {"id": "short", "query": "Hi."}]
    with dspy.context(lm=small, adapter=CompactJSONAdapter()):
        summary = run_batch(SPRI(max_rounds=1), rows, tmp_path, fields={"query": "query"}, threads=1, progress=False)
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert (summary.done, summary.failed) == (1, 1) and [f["id"] for f in failures] == ["long"]
    assert "ContextWindowExceededError" in failures[0]["error"] and "context window is 512 tokens" in failures[0]["error"]
    small.engine.close()


def test_engine_state_round_trips_without_weights():
    engine = LlamaCppEngine(n_ctx=1024, seed=7)
    assert LlamaCppEngine.load_state(engine.dump_state()).dump_state() == engine.dump_state()
    assert json.dumps(engine.dump_state())


@pytest.mark.embedded
def test_state_reuse_and_memo_change_no_output_at_temperature_0():
    """The same calls on an engine with neither prompt-state reuse nor memo, and on the default one:
    identical answers, and the default engine evaluates far fewer prompt tokens. The steps alternate, as SPRI's
    critic and writer do, so the state of a step's earlier call is what the next call of that step can reuse."""
    plain = embedded_lm(max_tokens=64, cache=False, state_cache_mb=0, memo_size=0)
    reusing = embedded_lm(max_tokens=64, cache=False)
    answers = {}
    for name, model in (("plain", plain), ("reusing", reusing)):
        with dspy.context(lm=model, adapter=CompactJSONAdapter()):
            out = []
            for query in ["I lost my job today.", "Explain recursion.", "I lost my job today."]:
                for principles in ("1. Be kind.", "1. Be specific.\n2. Give one example."):
                    verdict = dspy.Predict(CritiquePrinciples)(query=query, principles=principles)
                    out.append((verdict.score, verdict.feedback))
                    out.append(dspy.Predict(RefinePrinciples)(query=query, draft_principles=principles,
                                                              feedback=verdict.feedback).principles)
        answers[name] = out
        model.engine.close()
    assert answers["plain"] == answers["reusing"]
    assert reusing.engine.stats["memo_hits"] == 4 and plain.engine.stats["memo_hits"] == 0
    # the plain engine still reuses the prefix of the call just before (llama-cpp-python always does)
    assert reusing.engine.stats["prompt_tokens_evaluated"] < 0.8 * plain.engine.stats["prompt_tokens_evaluated"]


def without_then_with(monkeypatch, setup: str, **options):
    """An embedded LM whose engine skips ``setup`` (a function the engine applies to its llama, replaced by a
    no-op), then one whose engine applies it: ``(applied, lm)`` each, the engine closed after."""
    for applied in (False, True):
        if applied:
            monkeypatch.undo()
        else:
            monkeypatch.setattr(embedded, setup, lambda llama: None)
        model = embedded_lm(cache=False, memo_size=0, **options)
        yield applied, model
        model.engine.close()


@pytest.mark.embedded
def test_the_one_row_logits_buffer_changes_no_answer_and_saved_states_stay_small(monkeypatch):
    """The engine's llama keeps one row of host logits (llama-cpp-python's 100 MB buffer is never read without
    logits_all); the same calls, prompt states saved and restored included, answer as with the full buffer."""
    answers = {}
    for applied, model in without_then_with(monkeypatch, "shrink_logits_buffer", max_tokens=48):
        with dspy.context(lm=model, adapter=CompactJSONAdapter()):
            answers[applied] = [dspy.Predict(CritiquePrinciples)(query=query, principles="1. Be kind.").feedback
                                for query in ("I lost my job today.", "Explain recursion.", "I lost my job today.")]
        states = list(model.engine.llama.cache.cache_state.values())
        assert model.engine.llama.scores.shape[0] == (1 if applied else 512)
        assert len(states) == 2  # the third call repeats the first
    assert answers[False] == answers[True]


@pytest.mark.embedded
def test_grammar_first_greedy_sampling_picks_the_same_tokens(monkeypatch):
    """Greedy sampling that asks the grammar about the best token first answers exactly as the chain that applies
    the grammar to the whole vocabulary: a critique (score read from the levels, feedback under the text floor),
    a free-text reply and a refinement that must open with a JSON key. (How much faster: benchmarks/embedded.py.)"""
    from spri_dspy.signatures import RefineResponse, Respond

    answers = {}
    for applied, model in without_then_with(monkeypatch, "grammar_first_greedy", max_tokens=96):
        with dspy.context(lm=model, adapter=CompactJSONAdapter()):
            verdict = dspy.Predict(CritiquePrinciples)(query="I lost my job today.", principles="1. Be kind.")
            reply = dspy.Predict(Respond)(query="How do I keep basil alive indoors?", principles="1. Be specific.")
            refined = dspy.Predict(RefineResponse)(query="How do I keep basil alive indoors?",
                                                   principles="1. Be specific.", draft_response=reply.response,
                                                   feedback="Say how often to water it.")
        answers[applied] = (verdict.score, verdict.feedback, reply.response, refined.response)
    assert answers[False] == answers[True]


@pytest.mark.embedded
def test_stopping_at_the_json_end_changes_no_answer_and_saves_a_forward_pass_per_call(monkeypatch):
    """A schema answer ends with the token that closes its JSON, not after one more forward pass for the end token:
    the same critiques and reply (the texts the LM returned, whitespace after the brace aside), one token fewer
    evaluated per call."""
    from spri_dspy.compat import llama_context
    from spri_dspy.signatures import Respond

    answers, evaluated = {}, {}
    for applied, model in without_then_with(monkeypatch, "stop_at_json_end", max_tokens=96):
        with dspy.context(lm=model, adapter=CompactJSONAdapter()):
            verdicts = [dspy.Predict(CritiquePrinciples)(query=query, principles="1. Be kind.")
                        for query in ("I lost my job today.", "Explain recursion.")]
            reply = dspy.Predict(Respond)(query="How do I keep basil alive indoors?", principles="1. Be specific.")
        texts = [entry["outputs"][0].strip() for entry in model.history]
        answers[applied] = ([(v.score, v.feedback) for v in verdicts], reply.response, texts)
        import llama_cpp

        evaluated[applied] = llama_cpp.llama_perf_context(llama_context(model.engine.llama)).n_eval
    assert answers[False] == answers[True]
    assert evaluated[True] == evaluated[False] - 3


def _fake_llama_engine(monkeypatch, **options):
    engine = LlamaCppEngine(**options)
    calls = []

    def complete(messages, options, schema):
        calls.append((options["temperature"], messages[-1]["content"]))
        return json.dumps({"feedback": f"answer {len(calls)}", "score": 4}), "stop", 10, 5

    monkeypatch.setattr(engine, "_complete", complete)
    return engine, calls


def test_memo_answers_an_identical_temperature_0_request_once(monkeypatch):
    engine, calls = _fake_llama_engine(monkeypatch)
    lm = dspy.LM("embedded/test", engine=engine, cache=False, max_tokens=64, temperature=0.0)
    critic = dspy.Predict(CritiquePrinciples)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        first = critic(query="Hi", principles="1. Be kind.")
        again = critic(query="Hi", principles="1. Be kind.")
        other = critic(query="Hi", principles="1. Be brief.")
    assert [first.feedback, again.feedback, other.feedback] == ["answer 1", "answer 1", "answer 2"]
    assert len(calls) == 2
    assert engine.stats == {"requests": 3, "memo_hits": 1, "prompt_tokens": 20, "prompt_tokens_evaluated": 0}
    # the memo's answer reports the tokens the request needed, as the first answer did
    assert lm.history[1]["usage"]["prompt_tokens"] == 10


def test_memo_never_answers_sampled_requests(monkeypatch):
    engine, calls = _fake_llama_engine(monkeypatch)
    lm = dspy.LM("embedded/test", engine=engine, cache=False, max_tokens=64, temperature=0.7)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for _ in range(2):
            dspy.Predict(CritiquePrinciples)(query="Hi", principles="1. Be kind.")
    assert len(calls) == 2 and engine.stats["memo_hits"] == 0


def test_memo_is_bounded_and_can_be_turned_off(monkeypatch):
    engine, calls = _fake_llama_engine(monkeypatch, memo_size=2)
    lm = dspy.LM("embedded/test", engine=engine, cache=False, max_tokens=64, temperature=0.0)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for principles in ["a", "b", "c", "a"]:  # "a" was pushed out by "c"
            dspy.Predict(CritiquePrinciples)(query="Hi", principles=principles)
    assert len(calls) == 4 and len(engine._memo) == 2
    engine, calls = _fake_llama_engine(monkeypatch, memo_size=0)
    lm = dspy.LM("embedded/test", engine=engine, cache=False, max_tokens=64, temperature=0.0)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        for _ in range(2):
            dspy.Predict(CritiquePrinciples)(query="Hi", principles="a")
    assert len(calls) == 2


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("   ", "empty"), (None, "empty"),
    ("{refined_response}", "JSON fragment"), ("Thanks, {response} here", "placeholder"),
    ('"feedback": "good",', "JSON fragment"),
    ("1.2; 3; 4; 5;\n```\nYour output fields are:\n[", "format text"),
    ("Respond with a JSON object in the following order of keys: `refined_principles`", "format text"),
    ("RefinedFeedbackText: RefinedFeedbackText:", "field name"),
    ("Use draft_principles here", "field name"),
    ("Refine your approach to the new career by focusing on what truly matters.", "field name"),
    ("Revise the draft principles as the critic's feedback asks.", "instruction echo"),
    ("The answer: change only what the feedback asks for and keep the rest of the draft.", "instruction echo"),
    ("The answer is: The reply to the user.", "instruction echo"),  # a field description, copied whole
    ("Ignore the principle;\n2. Follow one or a few of them, and fail.", "instruction echo"),  # the critic's scale
    ("Sure.\n## feedback\nFeedback is key", "format text"),
    ("1.0; note: the value you produce must exactly match one of: 1; 2; 3; 4; 5", "format text"),
    ("2.5, 3.75, 4.98", "no words"), ("{#1.0} #2.0", "JSON fragment"),
    ("compound_interest.cababyamagana-2019683475, #CCCABYANABARRIERAMACALANDAOPAJUJCIMASEZMARAMA", "garbled"),
    ("Compare rates at https://bank.example/rates and ask for the APR.", None),
    ("1. Praise the dog when it stays quiet.\n2. Practise with a friend posing as the mailman.", None),
    ("Take slow breaths before you go in, and remember they invited you for a reason.", None),
])
def test_degenerate_reason(text, reason):
    assert degenerate_reason(text) == reason


@pytest.mark.parametrize("text, query, words", [
    ("The feedback is not adhering.", "Should I switch to freelancing?", ["feedback", "adhering"]),
    ("The refined draft scored higher; feedback helps.", "How do I stop my dog barking?",
     ["refined", "draft", "scored", "feedback"]),
    ("Ask your manager for feedback every month.", "How do I get useful feedback at work?", []),
    ("1. Praise the dog when it stays quiet.", "How do I stop my dog barking?", []),
])
def test_loop_talk_names_the_loop_words_the_query_did_not_use(text, query, words):
    from spri_dspy.testing.quality import loop_talk

    assert loop_talk(text, (query,)) == words


class _WordTokenizer:
    """Stands in for llama.cpp's tokenizer: one id per distinct word."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def tokenize(self, text: bytes, add_bos=False, special=False):
        return [self.ids.setdefault(word, len(self.ids)) for word in text.decode().split()]


def test_the_copy_guard_bans_the_token_that_would_extend_a_copied_run():
    import numpy as np

    from spri_dspy.runtime.embedded import CopyGuard

    words = _WordTokenizer()
    guard = CopyGuard(words, [{"role": "user", "content": "my dog barks at the mailman\nevery single morning"}], 3)
    ids = words.ids
    prompt = [99, 98]  # the chat template's own tokens: never looked at
    scores = np.zeros(100)
    assert not np.isinf(guard(np.array(prompt), scores.copy())).any()  # the first call learns the prompt length
    copied = prompt + [ids["dog"], ids["barks"], ids["at"]]
    banned = guard(np.array(copied), scores.copy())
    assert list(np.flatnonzero(np.isinf(banned))) == [ids["the"]]  # "dog barks at" may not go on to "the"
    own = prompt + [ids["dog"], ids["the"], ids["at"]]
    assert not np.isinf(guard(np.array(own), scores.copy())).any()
    across = prompt + [ids["the"], ids["mailman"], ids["every"]]  # runs never span the prompt's lines
    assert not np.isinf(guard(np.array(across), scores.copy())).any()
    guard.reset()
    assert guard.prompt_length is None


@pytest.mark.embedded
def test_the_engine_never_copies_more_than_its_limit_from_the_prompt():
    """Asked to copy a sentence, the model must write its own words after at most five copied tokens."""
    text = "the quick brown fox jumps over the lazy dog and then runs all the way home to sleep"
    engine = LlamaCppEngine(n_ctx=1024, no_copy_tokens=5, memo_size=0)
    lm = dspy.LM("embedded/guarded", engine=engine, max_tokens=64, cache=False)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        copy = dspy.Predict("text -> copy_of_text")(text=text).copy_of_text
    tokens = lambda s: engine.llama.tokenize(s.encode(), add_bos=False)
    source, written = tokens(text), tokens(copy)
    runs = {tuple(source[i:i + 6]) for i in range(len(source) - 5)}
    assert written and not any(tuple(written[i:i + 6]) in runs for i in range(len(written) - 5)), copy
    engine.close()


@pytest.mark.embedded
def test_acall_on_the_embedded_model_gives_what_the_sync_call_gives():
    """The README's model on DSPy's async path: the same calls and the same Prediction as program(...)."""
    import asyncio

    program = SPRI(max_rounds=1)
    query = "How do I keep a basil plant alive indoors?"
    lm = embedded_lm(max_tokens=96, cache=False)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        expected = program(query=query)
        got = asyncio.run(program.acall(query=query))
    assert dict(got.items()) == dict(expected.items())
    assert lm.engine.stats["memo_hits"] >= 4  # the async calls repeated the sync ones on the same engine


class _CharModel:
    """Stands in for llama.cpp's tokenizer and detokenizer: one token per character of a small alphabet."""

    alphabet = ' "{}:,.abcdefghijklmnopqrstuvwxyzF12345'

    def tokenize(self, text: bytes, add_bos=False, special=False):
        return [self.alphabet.index(c) for c in text.decode()]

    def detokenize(self, tokens):
        return "".join(self.alphabet[t] for t in tokens).encode()

    def n_vocab(self):
        return len(self.alphabet)


def _written(model, text):
    import numpy as np

    return np.array([0] * 7 + model.tokenize(text.encode()))  # seven prompt tokens, then the answer


def _feed(processor, model, text):
    """Call ``processor`` as llama.cpp does, once per token of ``text``; return the last call's scores."""
    import numpy as np

    processor(_written(model, "")[:7], np.zeros(model.n_vocab()))  # the first call learns the prompt length
    scores = None
    for end in range(1, len(text) + 1):
        scores = processor(_written(model, text[:end]), np.zeros(model.n_vocab()))
    return scores


def test_the_text_floor_keeps_a_value_open_until_it_has_its_words_and_is_not_a_name():
    import numpy as np

    from spri_dspy.runtime.embedded import TextFloor

    model = _CharModel()
    quote = model.alphabet.index('"')

    def closable(text, min_words=3):
        floor = TextFloor(model, names={"feedback", "score"}, fields={"feedback"}, min_words=min_words)
        return not np.isinf(_feed(floor, model, text)[quote])

    assert not closable('{"feedback": "too short')  # two words: may not close
    assert closable('{"feedback": "three words here')
    assert not closable('{"feedback": "Feedback', min_words=1)  # a key name as the value
    assert not closable('{"feedback": "feedback.', min_words=1)
    assert closable('{"feedback": "fine', min_words=1)

    def at_cap(text):  # the grammar closes the string at max_chars: the floor gives way before it
        floor = TextFloor(model, names=set(), fields={"feedback"}, min_words=5, max_chars=TextFloor.room + 6)
        return not np.isinf(_feed(floor, model, text)[quote])

    assert not at_cap('{"feedback": "abcde')
    assert at_cap('{"feedback": "abcdef')
    assert closable('{"feedback": "x", "score": ')  # outside a text field: untouched
    assert closable('{"other": "one')  # a field the floor does not cover


def test_the_score_reader_writes_the_probability_weighted_level():
    import math

    import numpy as np

    from spri_dspy.runtime.embedded import ScoreReader, reading

    assert reading([0.0, 0.0, 0.0, 0.0, 0.0], (1, 2, 3, 4, 5))["score"] == 3
    assert reading([0.0, 0.0, -1e9, -1e9, -1e9], (1, 2, 3, 4, 5)) == {
        "probabilities": [0.5, 0.5, 0.0, 0.0, 0.0], "mean": 1.5, "score": 2}  # half up
    found = reading([math.log(0.7), math.log(0.2), math.log(0.1), -1e9, -1e9], (1, 2, 3, 4, 5))
    assert found["mean"] == 1.4 and found["score"] == 1  # greedy would say 1 too; the mean is 1.4
    found = reading([math.log(0.4), math.log(0.1), math.log(0.1), math.log(0.2), math.log(0.2)], (1, 2, 3, 4, 5))
    assert found["mean"] == 2.7 and found["score"] == 3  # greedy would say 1

    model = _CharModel()
    reader = ScoreReader(model, {"score": (1, 2, 3, 4, 5)})
    levels = [model.alphabet.index(str(level)) for level in range(1, 6)]
    reader(_written(model, "")[:7], np.zeros(model.n_vocab()))
    prefix = '{"feedback": "it is fine", "score":'
    for end in range(1, len(prefix)):
        assert not np.isinf(reader(_written(model, prefix[:end]), np.zeros(model.n_vocab()))).any()
    logits = np.zeros(model.n_vocab())
    logits[levels] = [math.log(p) for p in (0.4, 0.1, 0.1, 0.2, 0.2)]
    out = reader(_written(model, prefix), logits)
    assert list(np.flatnonzero(np.isfinite(out))) == [levels[2]]  # only "3" may be written
    assert reader.readings["score"]["score"] == 3
    assert reader.readings["score"]["probabilities"] == [0.4, 0.1, 0.1, 0.2, 0.2]


def test_engine_settings_are_checked_and_saved():
    with pytest.raises(ValueError, match="scoring must be one of expected, greedy"):
        LlamaCppEngine(scoring="best")
    state = LlamaCppEngine(scoring="greedy", min_words=0, critique_chars=100).dump_state()
    assert (state["scoring"], state["min_words"], state["critique_chars"]) == ("greedy", 0, 100)


@pytest.mark.embedded
def test_the_embedded_critic_writes_feedback_and_reads_its_score(lm):
    """The README's model as a critic: feedback of at least five words that is not a key name, a score
    read from its probabilities (the reading shown in the LM's history), for principles and response."""
    from spri_dspy.signatures import CritiquePrinciples, CritiqueResponse

    query = "My neighbour's dog barks all night. How do I raise it with them politely?"
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        critiques = [dspy.Predict(CritiquePrinciples)(query=query, principles="1. Be polite.\n2. Suggest a chat."),
                     dspy.Predict(CritiqueResponse)(query=query, principles="1. Be polite.",
                                                    response="Knock on their door and ask them kindly.")]
    answers = [json.loads(h["outputs"][0]) for h in lm.history[-2:]]
    for critique, answer in zip(critiques, answers, strict=True):
        assert len(critique.feedback.split()) >= 5 and critique.feedback.strip().lower() != "feedback"
        read = answer["score_readings"]["score"]
        assert critique.score == read["score"] and abs(sum(read["probabilities"]) - 1) < 1e-3
        assert abs(read["mean"] - read["score"]) <= 0.5


def test_score_readings_ride_along_without_touching_the_answer():
    from spri_dspy.runtime.embedded import _with_readings

    read = {"score": {"probabilities": [1.0, 0, 0, 0, 0], "mean": 1.0, "score": 1}}
    assert json.loads(_with_readings('{"feedback": "a\nb", "score": 1}', read)) == {
        "feedback": "a\nb", "score": 1, "score_readings": read}  # a raw newline in a string is read too
    assert _with_readings('{"score_readings": "mine", "score": 1}', read) == '{"score_readings": "mine", "score": 1}'
    assert _with_readings("not json", read) == "not json"
