"""P3: the embedded model (SmolLM2-135M through llama.cpp) as users run it.

    python benchmarks/embedded.py                 # about 5 minutes on 2 cores
    python benchmarks/embedded.py --compare       # also DSPy's JSONAdapter with no state reuse (+10 min)
    python benchmarks/embedded.py --instruction-last    # also CompactJSONAdapter(instruction="last"), the embedded
                                                        # format before December 2026 (+8 min): its critic figures,
                                                        # degenerate texts and spri run --adapter compact-last
    python benchmarks/embedded.py --wide          # the degenerate and loop-talk counts over 30 queries, not 10

Everything is measured in this run, on this machine:

- raw: one llama.cpp completion of a 1,000-token prompt with 64 generated tokens, same model file,
  in a fresh process (the unit the other figures are divided by);
- run: ``spri run QUERY --no-cache --json`` as a subprocess (the whole process: start-up, model load,
  16 LM calls at most), its LM calls, prompt tokens sent and evaluated, peak RSS, and its wall time
  as a multiple of the raw call;
- replay: the same llama.cpp calls that run made, replayed straight on llama-cpp-python with the
  same grammar and state cache, against SPRI in-process; the overhead of DSPy and spri-dspy on top;
- degenerate texts: final principles and responses over 10 queries (``QUERIES``; ``--wide``: 30, with
  ``HELD_OUT`` and ``FRESH``) that are empty, echo format
  text, field names or instructions, or are placeholders/JSON fragments
  (``spri_dspy.testing.quality.degenerate_reason``), and, counted apart, those that talk about the loop that wrote
  them (``spri_dspy.testing.quality.loop_talk``: "The feedback is not adhering.");
- generate: seconds per input of ``spri generate`` over 4 inputs with ``--no-cache``;
- critic: over 10 held-out queries (``HELD_OUT``, written once and never tuned on), the critic's distinct
  score levels, the share of feedbacks of at least 5 words that are not a field name, the share of stages
  that accept, the share of refinements the critic scored above the text they refined, and the DPO pairs
  ``spri export --format dpo`` finds after ``spri generate`` on 5 of them; ``--greedy`` adds the same for
  the engine's old settings (greedy score, no text floor, no critique cap) in the same run;
- critic discrimination: each critic's mean probability-weighted score of hand-written good texts, the same
  texts shown for an unrelated query, and a degenerate text (``DISCRIMINATION``): whether it reads what it scores;
- prompt tokens per call of SPRI's six steps as CompactJSONAdapter, DSPy's JSONAdapter, ChatAdapter
  and XMLAdapter format them (the model's tokenizer and chat template, no generation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = "I have a job interview tomorrow and I can't stop shaking. How do I calm down?"
QUERIES = [
    "My dog keeps barking at the mailman every morning. How can I train him to stop?",
    "I failed my driving test for the second time and feel like giving up.",
    "What should I consider before switching from a salaried job to freelancing?",
    "Can you explain how compound interest works with a simple example?",
    "My elderly father refuses to stop driving even though his eyesight is poor. What do I do?",
    "I want to start running but I get bored after ten minutes. Any tips?",
    "How do I apologise to a friend whose birthday I forgot?",
    "Is it safe to eat rice that was left out overnight?",
    "My manager takes credit for my work in meetings. How should I handle it?",
    "How can I help my teenage son who spends all night playing video games?",
]
HELD_OUT = [
    "My landlord wants to raise the rent by 20 percent. Can I negotiate?",
    "I keep procrastinating on my thesis and the deadline is in three weeks.",
    "How do I tell my parents I want to change my university major?",
    "What is a healthy breakfast I can make in five minutes?",
    "My cat stopped eating yesterday. Should I be worried?",
    "I got a parking ticket I think is unfair. How do I contest it?",
    "How can I make friends after moving to a new city at 35?",
    "My coworker keeps interrupting me in meetings. What should I say?",
    "What should I pack for a three-day hiking trip in the mountains?",
    "I feel nervous every time I have to make a phone call. How can I get better at it?",
]
"""Queries for the critic figures, written for issue 28 after the engine's settings were chosen on ``QUERIES``."""
FRESH = [
    "My roommate never does the dishes. How do I bring it up without a fight?",
    "How long should I boil an egg for a soft yolk?",
    "I lost my wallet with my ID and cards in it. What should I do first?",
    "My best friend is moving abroad next month and I feel lost.",
    "What is a good way to learn the basics of Spanish in three months?",
    "My toddler throws tantrums at bedtime every night. Any advice?",
    "Should I pay off my student loan early or invest the money?",
    "I snapped at my partner after a long day and now I feel terrible.",
    "How do I get rid of fruit flies in my kitchen?",
    "I was not picked for the team at work and feel overlooked.",
]
"""Queries written on 2026-12-02, before any run on them, to compare the two instruction layouts on more texts
(``--wide``); nothing was chosen by them."""
DISCRIMINATION = [  # (query, principles, response), written by hand for the critic's discrimination check
    ("My neighbour plays loud music late at night. What can I do?",
     "1. Suggest talking to the neighbour calmly first.\n2. Give concrete wording for the request.\n"
     "3. Mention quiet-hours rules and the landlord or council as a next step.",
     "Knock on their door at a calm moment and say: 'The music at night keeps me awake; could you turn it down "
     "after 10?' Most people don't realise how far sound carries. If it goes on, check your building's quiet-hours "
     "rules and tell the landlord or the council."),
    ("How do I keep basil alive on my windowsill?",
     "1. Cover light, water and pot drainage.\n2. Explain pinching off flowers.\n3. Keep the advice short and practical.",
     "Give it six or more hours of sun, water when the top of the soil feels dry, and use a pot with drainage holes. "
     "Pinch off the flower buds as they appear so the plant keeps making leaves."),
    ("I'm nervous about my first day at a new job tomorrow.",
     "1. Acknowledge that the nerves are normal.\n2. Offer two or three concrete things to prepare tonight.\n"
     "3. End on encouragement.",
     "Feeling nervous is normal; it means you care. Tonight, lay out your clothes, plan your route and write down two "
     "questions to ask your manager. Tomorrow, arrive a little early and introduce yourself. You were hired for a reason."),
    ("What is the difference between a virus and a bacterium?",
     "1. State the key difference in size and structure.\n2. Mention that antibiotics work on bacteria, not viruses.\n"
     "3. Use plain words.",
     "Bacteria are living single cells that can reproduce on their own. Viruses are much smaller and can only multiply "
     "inside another living cell. That is why antibiotics can kill bacteria but do nothing against viruses."),
    ("My sister and I argue every time we talk about politics. How do we stop?",
     "1. Suggest agreeing to avoid the topic or set ground rules.\n2. Encourage listening before answering.\n"
     "3. Stress the relationship over winning.",
     "Agree together that politics is off the table at family visits, or set a rule that each of you listens and sums "
     "up the other's view before answering. Remind yourself the goal is to keep the relationship, not to win the argument."),
]
"""Hand-written principles and responses for :func:`critic_discrimination`: each is shown to the critics for its own
query, for another case's query (unrelated) and replaced by a text of the kind the loop writes ("The feedback is not
adhering.", a final response of the default layout on 2026-12-02)."""
UNRELATED_SHIFT = 2  # the unrelated text of case i is case i + 2's
DEGENERATE_TEXT = "The feedback is not adhering."
SPRI = [sys.executable, "-m", "spri_dspy.cli"]

RAW = """
import sys, time
from spri_dspy.runtime.embedded import default_model_path, load_llama
import os
llama = load_llama(default_model_path(), n_ctx=2048, n_threads=os.cpu_count(), n_threads_batch=os.cpu_count())
words = ("The history of the small town by the river is long. Farmers, traders and teachers lived there, "
         "and every spring the river rose over the low fields. ").split()
text = " ".join(words[i % len(words)] for i in range(2000))
tokens = llama.tokenize(text.encode())[:1000]
prompt = llama.detokenize(tokens).decode(errors="ignore")
started = time.perf_counter()
out = llama.create_completion(prompt, max_tokens=64, temperature=0.0, logit_bias={llama.token_eos(): -100.0})
seconds = time.perf_counter() - started
print(seconds, out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"])
"""


def raw_call() -> tuple[float, int, int]:
    """One raw 1,000-token llama.cpp completion (64 tokens out), timed inside a fresh process."""
    done = subprocess.run([sys.executable, "-c", RAW], capture_output=True, text=True, check=True)
    seconds, prompt, completion = done.stdout.split()
    return float(seconds), int(prompt), int(completion)


LAUNCH = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    json.dump({"seconds": seconds, "status": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}, report)
"""


def cli_run(query: str, *options: str) -> dict:
    """``spri run QUERY --no-cache --json [options]`` in a child process: its JSON plus wall time and its own peak RSS.
    A small launcher process starts it and reads both: a child forked from this process would report this process's
    memory at the fork as its peak (Linux keeps the larger of the pre-exec and post-exec high-water marks), and this
    process holds the models of the in-process figures."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        subprocess.run([sys.executable, "-c", LAUNCH, report.name, *SPRI, "run", query, "--no-cache", "--json", *options],
                       stdout=out, stderr=err, text=True, check=True)
        figures = json.load(report)
        out.seek(0), err.seek(0)
        if figures["status"] != 0:
            raise SystemExit(f"spri run failed: {err.read().strip()[-500:]}")
        data = json.loads(out.read())
    data["wall"] = figures["seconds"]
    data["rss_mb"] = figures["maxrss_kb"] / 1024
    return data


def replay_overhead(query: str) -> tuple[float, float, int]:
    """SPRI in-process, then the llama.cpp calls it made replayed directly: (spri s, replay s, calls)."""
    import dspy

    import spri_dspy
    from spri_dspy.runtime import embedded

    recorded, built = [], []
    generate, processors = embedded.LlamaCppEngine._generate, embedded.LlamaCppEngine._processors

    def recording(llama, messages, options):
        kept = {k: v for k, v in options.items() if k not in ("grammar", "logits_processor")}
        recorded.append((messages, kept, options.get("grammar"), built[-1] if "logits_processor" in options else None))
        return generate(llama, messages, options)

    def recording_processors(self, llama, messages, schema, max_chars=None):
        built.append((schema, max_chars))
        return processors(self, llama, messages, schema, max_chars)

    lm = spri_dspy.embedded_lm(cache=False)
    lm.engine.llama  # load before the clock, as the replay's model is
    embedded.LlamaCppEngine._generate = staticmethod(recording)
    embedded.LlamaCppEngine._processors = recording_processors
    try:
        started = time.perf_counter()
        with dspy.context(lm=lm, adapter=spri_dspy.CompactJSONAdapter()):
            spri_dspy.SPRI()(query=query)
        spri_seconds = time.perf_counter() - started
    finally:
        embedded.LlamaCppEngine._generate = staticmethod(generate)
        embedded.LlamaCppEngine._processors = processors
    lm.engine.close()

    from llama_cpp import LlamaGrammar, LogitsProcessorList

    llama = embedded.load_llama(embedded.default_model_path(), n_ctx=8192, n_threads=os.cpu_count(),
                                n_threads_batch=os.cpu_count(), seed=0)
    llama.set_cache(embedded.prompt_state_cache(256 << 20))
    embedded.shrink_logits_buffer(llama)  # llama.cpp set up as the engine sets it up: what is measured is what
    embedded.grammar_first_greedy(llama)  # DSPy and spri-dspy add on top of the same llama.cpp calls
    embedded.stop_at_json_end(llama)
    engine = embedded.LlamaCppEngine()  # the same settings as the run's engine: its logits processors, rebuilt on
    calls = []                          # the replay's model (those of the run hold the closed one)
    for messages, options, grammar, made in recorded:
        extra = {} if grammar is None else {"grammar": LlamaGrammar.from_string(grammar._grammar, verbose=False)}
        if made is not None:
            guard = [embedded.CopyGuard(llama, messages, engine.no_copy_tokens)] if engine.no_copy_tokens else []
            extra["logits_processor"] = LogitsProcessorList(guard + engine._processors(llama, messages, *made))
        calls.append((messages, {**options, **extra}))
    started = time.perf_counter()
    for messages, options in calls:
        llama.create_chat_completion(messages=messages, **options)
    replay_seconds = time.perf_counter() - started
    llama.close()
    return spri_seconds, replay_seconds, len(recorded)


def degenerate(queries: list[str], adapter: str, reuse: bool) -> tuple[int, int, list[str], float, int, list[str]]:
    """Run SPRI in-process over ``queries``: degenerate texts, texts, examples, mean seconds, mean evaluated, and the
    texts that talk about the loop (:func:`spri_dspy.testing.quality.loop_talk`)."""
    import dspy

    import spri_dspy
    from spri_dspy.testing.quality import degenerate_reason, loop_talk

    options = {} if reuse else {"state_cache_mb": 0, "memo_size": 0}
    lm = spri_dspy.embedded_lm(cache=False, **options)
    chosen = {"compact": spri_dspy.CompactJSONAdapter, "json": dspy.JSONAdapter,
              "last": lambda: spri_dspy.CompactJSONAdapter(instruction="last")}[adapter]()
    bad, texts, examples, seconds, talking = 0, 0, [], [], []
    for query in queries:
        started = time.perf_counter()
        with dspy.context(lm=lm, adapter=chosen):
            prediction = spri_dspy.SPRI()(query=query)
        seconds.append(time.perf_counter() - started)
        for name in ("principles", "response"):
            texts += 1
            reason = degenerate_reason(prediction[name], (query,))
            if reason:
                bad += 1
                examples.append(f"{reason}: {prediction[name][:70]!r}")
            words = loop_talk(prediction[name], (query,))
            if words:
                talking.append(f"{', '.join(words)}: {prediction[name][:70]!r}")
    evaluated = lm.engine.stats["prompt_tokens_evaluated"] // len(queries)
    lm.engine.close()
    return bad, texts, examples, statistics.mean(seconds), evaluated, talking


def prompt_tokens_by_adapter() -> dict[str, float]:
    """Mean prompt tokens per call of SPRI's six steps (the README example, a 60-word principles and response
    text), as each adapter formats them, counted with the model's tokenizer and chat template."""
    import dspy

    import spri_dspy
    from spri_dspy import signatures as s
    from spri_dspy.runtime.embedded import default_model_path, load_llama

    text = " ".join(["Stay calm and take slow breaths before you go in."] * 6)
    values = {"query": EXAMPLE, "principles": text, "response": text, "feedback": text}
    steps = [s.GeneratePrinciples, s.CritiquePrinciples, s.RefinePrinciples, s.Respond, s.CritiqueResponse,
             s.RefineResponse]
    llama = load_llama(default_model_path(), n_ctx=512, n_threads=1, vocab_only=True)
    adapters = {"CompactJSONAdapter": spri_dspy.CompactJSONAdapter(), "JSONAdapter": dspy.JSONAdapter(),
                "ChatAdapter": dspy.ChatAdapter(), "XMLAdapter": dspy.XMLAdapter()}
    counts = {}
    for name, adapter in adapters.items():
        tokens = []
        for signature in steps:
            messages = adapter.format(signature, [], {k: v for k, v in values.items() if k in signature.input_fields})
            chat = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            tokens.append(len(llama.tokenize((chat + "<|im_start|>assistant\n").encode(), special=True)))
        counts[name] = statistics.mean(tokens)
    llama.close()
    return counts


def generate_per_input(n: int = 4) -> float:
    """Seconds per input of ``spri generate`` over ``n`` queries (``--no-cache``, its default threads: one on the
    embedded model)."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "in.jsonl"
        data.write_text("".join(json.dumps({"query": q}) + "\n" for q in QUERIES[:n]))
        started = time.perf_counter()
        subprocess.run([*SPRI, "generate", str(data), str(Path(folder) / "out"), "--no-cache", "--no-progress"],
                       capture_output=True, check=True)
        return (time.perf_counter() - started) / n


def critic_figures(queries: list[str], instruction: str = "first", **engine: object) -> dict[str, float | int | list[int]]:
    """SPRI over ``queries`` in-process: what its critiques show of the loop (see the module docstring)."""
    import dspy

    import spri_dspy
    from spri_dspy import signatures

    field_names = {name for kind in vars(signatures).values() if isinstance(kind, type)
                   and issubclass(kind, dspy.Signature) for name in kind.fields}

    lm = spri_dspy.embedded_lm(cache=False, **engine)
    rounds, started = [], time.perf_counter()
    for query in queries:
        with dspy.context(lm=lm, adapter=spri_dspy.CompactJSONAdapter(instruction=instruction)):
            rounds.append(spri_dspy.SPRI()(query=query).trace)
    seconds = (time.perf_counter() - started) / len(queries)
    lm.engine.close()
    critiques = [r for trace in rounds for r in trace if r["score"] is not None]
    said = [len(r["feedback"].split()) >= 5 and r["feedback"].strip().strip(".:").lower() not in field_names
            for r in critiques]
    refined = [(a, b) for trace in rounds for a, b in zip(trace, trace[1:], strict=False) if a["stage"] == b["stage"]]
    stages = [a for trace in rounds for a, b in zip(trace, [*trace[1:], None], strict=True)
              if b is None or b["stage"] != a["stage"]]  # each stage's last round
    return {"levels": sorted({r["score"] for r in critiques}), "feedback_said": sum(said) / len(said),
            "accepted": sum(r["accepted"] for r in stages) / len(stages),
            "raised": sum(b["score"] > a["score"] for a, b in refined) / max(1, len(refined)),
            "refinements": len(refined), "critiques": len(critiques), "seconds": seconds}


def critic_discrimination(instruction: str = "first") -> dict[str, dict[str, float]]:
    """Can the critics tell a good text from a bad one? Each critic (through SPRI's own steps, the README's defaults)
    rates the hand-written texts of :data:`DISCRIMINATION` for their own query, the same texts for another query
    (unrelated) and a degenerate text. Returns the mean of the critic's probability-weighted score (the G-Eval mean
    the engine records under ``score_readings``, before rounding) per critic and kind of text: a critic that reads
    the texts rates the good ones highest."""
    import dspy

    import spri_dspy
    from spri_dspy.runtime.embedded import SCORE_READINGS

    lm = spri_dspy.embedded_lm(cache=False)
    program = spri_dspy.SPRI()
    steps = {"principles": program.principle_critic, "response": program.response_critic}
    means: dict[str, dict[str, list[float]]] = {name: {"good": [], "unrelated": [], "degenerate": []} for name in steps}
    with dspy.context(lm=lm, adapter=spri_dspy.CompactJSONAdapter(instruction=instruction)):
        for i, (query, principles, response) in enumerate(DISCRIMINATION):
            _, other_principles, other_response = DISCRIMINATION[(i + UNRELATED_SHIFT) % len(DISCRIMINATION)]
            texts = {"principles": {"good": principles, "unrelated": other_principles, "degenerate": DEGENERATE_TEXT},
                     "response": {"good": response, "unrelated": other_response, "degenerate": DEGENERATE_TEXT}}
            for name, step in steps.items():
                for kind, text in texts[name].items():
                    inputs = {"principles": text} if name == "principles" else {"principles": principles, "response": text}
                    step(query=query, goal=None, **inputs)
                    output = lm.history[-1]["outputs"][0]
                    answer = json.loads(output if isinstance(output, str) else output["text"])
                    means[name][kind].append(answer[SCORE_READINGS]["score"]["mean"])
    lm.engine.close()
    return {name: {kind: statistics.mean(values) for kind, values in kinds.items()} for name, kinds in means.items()}


def dpo_pairs(queries: list[str]) -> int:
    """``spri generate`` (``--no-cache``) on ``queries``, then ``spri export --format dpo``: the pairs written."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "in.jsonl"
        data.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries))
        out = Path(folder) / "out"
        subprocess.run([*SPRI, "generate", str(data), str(out), "--no-cache", "--threads", "2", "--no-progress"],
                       capture_output=True, check=True)
        done = subprocess.run([*SPRI, "export", str(out), "--format", "dpo"], capture_output=True, text=True)
        if done.returncode != 0:
            return 0
        return int(done.stdout.split(": ", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10, help="queries for the degenerate-text count (default 10)")
    parser.add_argument("--compare", action="store_true", help="also DSPy's JSONAdapter with no state reuse or memo")
    parser.add_argument("--greedy", action="store_true", help="also the critic figures with the engine's old "
                        "settings (greedy score, no text floor, no critique cap)")
    parser.add_argument("--critic-only", action="store_true", help="only the critic figures")
    parser.add_argument("--instruction-last", action="store_true", help="also the critic figures, degenerate texts "
                        "and spri run with CompactJSONAdapter(instruction='last'), the format before December 2026 "
                        "(about 8 minutes more)")
    parser.add_argument("--wide", action="store_true", help="count degenerate and loop-talk texts over QUERIES, "
                        "HELD_OUT and FRESH (30 queries) rather than QUERIES")
    args = parser.parse_args()
    configs = {"default": {}}
    if args.instruction_last:
        configs["instruction last"] = {"instruction": "last"}
    if args.greedy:
        configs["old (greedy, no floor)"] = {"scoring": "greedy", "min_words": 0, "critique_chars": 1200}
    for label, engine in configs.items():
        figures = critic_figures(HELD_OUT, **engine)
        print(f"    critic, {label}, {len(HELD_OUT)} held-out queries: score levels {figures['levels']} "
              f"(target >= 3 distinct); feedback of 5+ words and not a field name {figures['feedback_said']:.0%} "
              f"(target >= 90%); stages accepted {figures['accepted']:.0%}; refinements scored above their draft "
              f"{figures['raised']:.0%} of {figures['refinements']} (target >= 25%); {figures['seconds']:.1f} s per query")
    for label, engine in configs.items():
        if engine.get("scoring") == "greedy":
            continue  # a greedy score records no probabilities to read
        found = critic_discrimination(engine.get("instruction", "first"))
        print(f"    critic discrimination, {label}: mean probability-weighted score of hand-written good / unrelated / "
              "degenerate texts: " + "; ".join(f"{name} critic " + " / ".join(f"{value:.2f}" for value in kinds.values())
                                               for name, kinds in found.items()))
    print(f"    DPO pairs from spri generate on 5 held-out queries: {dpo_pairs(HELD_OUT[:5])} (target >= 1)")
    if args.critic_only:
        return

    tokens = prompt_tokens_by_adapter()
    print("P3  prompt tokens per call, mean of SPRI's six steps: " + ", ".join(
        f"{name} {count:.0f}" for name, count in tokens.items()))
    raw, raw_prompt, raw_completion = raw_call()
    print(f"    raw llama.cpp call: {raw_prompt} prompt + {raw_completion} generated tokens in {raw:.2f} s")
    for options in [()] + ([("--adapter", "compact-last")] if args.instruction_last else []):
        run = cli_run(EXAMPLE, *options)
        calls = sum(run["lm_calls"].values())
        engine = run.get("engine", {})
        print(f"    spri run (README example, --no-cache{''.join(' ' + o for o in options)}): {run['wall']:.1f} s = "
              f"{run['wall'] / raw:.2f} x raw (target <= 3); {calls} LM calls, {engine.get('memo_hits', 0)} answered by "
              f"the memo; prompt tokens {engine.get('prompt_tokens', 0)} sent, {engine.get('prompt_tokens_evaluated', 0)} "
              f"evaluated (target <= 2500); peak RSS {run['rss_mb']:.0f} MB")
    spri_seconds, replay_seconds, replayed = replay_overhead(QUERIES[0])
    print(f"    replay of the same {replayed} llama.cpp calls: {replay_seconds:.2f} s; SPRI in-process "
          f"{spri_seconds:.2f} s; overhead {100 * (spri_seconds / replay_seconds - 1):+.1f}% (target <= 5%)")
    configs = ([("compact", True)] + ([("last", True)] if args.instruction_last else [])
               + ([("json", False)] if args.compare else []))
    queries = QUERIES + HELD_OUT + FRESH if args.wide else QUERIES[: args.queries]
    for adapter, reuse in configs:
        bad, texts, examples, mean, evaluated, talking = degenerate(queries, adapter, reuse)
        label = {"compact": "CompactJSONAdapter (instruction first), state reuse + memo",
                 "json": "DSPy JSONAdapter, no reuse or memo",
                 "last": "CompactJSONAdapter(instruction='last'), state reuse + memo"}[adapter]
        print(f"    {label}: degenerate texts {bad} of {texts} (target 0); {mean:.1f} s and "
              f"{evaluated} evaluated prompt tokens per query")
        for example in examples[:6]:
            print(f"      {example}")
        print(f"      final texts that talk about the loop (feedback, critic, draft, score, refine ... where the query does "
              f"not): {len(talking)} of {texts}")
        for example in talking[:6]:
            print(f"        {example}")
    print(f"    spri generate --no-cache: {generate_per_input():.1f} s per input (4 inputs, default threads)")


if __name__ == "__main__":
    main()
