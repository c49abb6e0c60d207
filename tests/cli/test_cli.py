"""The ``spri`` command line with a scripted LM, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import SHARED, spri_script
from spri_dspy import cli
from spri_dspy.cli import run as cli_run
from spri_dspy.cli import build as cli_build


@pytest.fixture
def scripted_cli(monkeypatch, scripted):
    """Run ``spri`` in-process with every --lm/--critic-lm answered by scripted engines."""
    engines = {}

    def fake_make_lm(model, **options):
        engine, lm = scripted(spri_script((2, 5), (3, 4)), model=f"scripted/{model}")
        engines[model] = engine
        return lm

    monkeypatch.setattr(cli_build, "make_lm", fake_make_lm)

    def run(*argv):
        return cli.main(list(argv)), engines

    return run


def test_run_prints_principles_response_and_rounds(scripted_cli, capsys):
    status, engines = scripted_cli("run", "My roommate never cleans.", "--goal", "Stay friends.")
    out = capsys.readouterr().out
    assert status == 0
    assert "== Principles\nprinciples v0+\n" in out
    assert "== Response\nresponse v0+\n" in out
    rows = [line.split()[:4] for line in out.split("== Rounds\n")[1].splitlines()[1:5]]
    assert rows == [["principles", "1", "2", "no"], ["principles", "2", "5", "yes"],
                    ["response", "1", "3", "no"], ["response", "2", "4", "yes"]]
    assert "LM calls: 8 (scripted/embedded: 8)" in out
    assert all(c.inputs["goal"] == "Stay friends." for c in engines["embedded"].calls)


def test_run_json_has_the_whole_prediction(scripted_cli, capsys):
    status, _ = scripted_cli("run", "hello", "--json", "--lm", "openai/gpt-4o-mini", "--critic-lm", "openai/gpt-4o")
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["principles"] == "principles v0+" and data["response"] == "response v0+"
    assert [(r["stage"], r["round"], r["score"]) for r in data["trace"]] == [
        ("principles", 1, 2), ("principles", 2, 5), ("response", 1, 3), ("response", 2, 4)]
    assert data["lm_calls"] == {"scripted/openai/gpt-4o-mini": 4, "scripted/openai/gpt-4o (critic)": 4}


def test_settings_reach_the_program(scripted_cli, capsys):
    status, engines = scripted_cli("run", "hello", "--threshold", "5", "--max-rounds", "1", "--keep", "best")
    assert status == 0
    assert engines["embedded"].steps() == ["principle_generator", "principle_critic", "responder", "response_critic"]


def test_seeds_file_is_loaded(scripted_cli, shared_paper):
    status, engines = scripted_cli("run", "hello", "--seeds", str(shared_paper / "seeds" / "seed-principles-6.jsonl"))
    assert status == 0 and engines["embedded"].calls[0].demos == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", ""], "QUERY must not be empty"),
        (["run", "   "], "QUERY must not be empty"),
        (["run", "hi", "--goal", " "], "--goal must not be empty"),
        (["run", "hi", "--threshold", "0"], "--threshold must be from 1 to 5, got 0"),
        (["run", "hi", "--threshold", "9"], "--threshold must be from 1 to 5, got 9"),
        (["run", "hi", "--max-rounds", "0"], "--max-rounds must be at least 1, got 0"),
        (["run", "hi", "--seeds", "/nonexistent/seeds.jsonl"], "--seeds: seeds file not found: /nonexistent/seeds.jsonl"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(scripted_cli, capsys, argv, message):
    status, _ = scripted_cli(*argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"spri: error: {message}\n"


def test_malformed_and_unknown_seed_files(scripted_cli, capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "principles": "p"}\n{oops\n')
    assert scripted_cli("run", "hi", "--seeds", str(bad))[0] == 2
    assert capsys.readouterr().err == f"spri: error: --seeds: seeds file {bad} line 2: not valid JSON (Expecting property name enclosed in double quotes)\n"
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"prompt": "q"}\n')
    assert scripted_cli("run", "hi", "--seeds", str(odd))[0] == 2
    assert "line 1: unknown seed format with fields ['prompt']" in capsys.readouterr().err


def test_unknown_model_is_rejected_before_any_call(capsys):
    assert cli.main(["run", "hi", "--lm", "nosuchprovider/some-model"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no LiteLLM "Provider List" banner
    assert err == (
        "spri: error: unknown model 'nosuchprovider/some-model': use 'embedded' or a DSPy/LiteLLM model string "
        "such as openai/gpt-4o-mini\n")


def test_non_integer_threshold_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "hi", "--threshold", "four"])
    assert exit_.value.code == 2
    assert "argument --threshold: invalid int value: 'four'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in ("run", "generate", "judge", "reproduce", "compile", "tune", "ablate")])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert "usage: spri" in capsys.readouterr().out


def test_console_script_errors_without_traceback():
    done = subprocess.run([sys.executable, "-m", "spri_dspy.cli", "run", " "], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "spri: error: QUERY must not be empty\n"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("content, message", [
    (b"", "{path} has no rows (the file is empty or blank)"),
    (b"\n  \n\n", "{path} has no rows (the file is empty or blank)"),
    (b'{"query": "a"}\n{"query": "b', "{path} line 2: not valid JSON (the last line is cut off): Unterminated string starting at"),
    (b'{"query": "a"}\n{"query": "caf\xe9"}\n', "{path} line 2: not UTF-8 text (byte 0xe9 at column 15); convert the file to UTF-8"),
    (b'{"query": "a"}\n[1, 2]\n', "{path} line 2: a JSON object per line is needed, got list"),
])
def test_generate_on_a_bad_table_names_the_line(scripted_cli, capsys, tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    status, engines = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"spri: error: {message.format(path=path)}") and err.count("\n") == 1
    assert not engines or not engines["embedded"].calls


def test_a_non_utf8_query_is_named(scripted_cli, capsys):
    status, _ = scripted_cli("run", b"caf\xe9".decode("utf-8", "surrogateescape"))
    assert status == 2 and capsys.readouterr().err == "spri: error: QUERY is not valid UTF-8 text\n"


def test_seed_match_goal_needs_a_goal(scripted_cli, capsys, shared_paper):
    seeds = str(shared_paper / "seeds" / "seed-principles-6.jsonl")
    status, _ = scripted_cli("run", "hi", "--seeds", seeds, "--seed-match", "goal")
    assert status == 2 and capsys.readouterr().err == (
        "spri: error: --seed-match goal shows only seeds with the input's goal, and these inputs have none: "
        "give --goal TEXT or use --seed-match all\n")


def _instruction_first(call) -> bool:
    """Whether a scripted call's system message holds the step's instruction (CompactJSONAdapter's default)."""
    from spri_dspy.adapters import SYSTEM

    return call.instructions.startswith(f"{SYSTEM}\n\n## task\n")


def test_adapter_compact_last_puts_the_instruction_last_and_a_resume_without_the_flag_keeps_it(scripted_cli, capsys,
                                                                                                tmp_path):
    """The embedded default (``compact``) sends every step's instruction in the system message; ``--adapter
    compact-last`` after the inputs. run.json records the layout: a resume given no ``--adapter`` goes on in it, and
    one given the other layout is refused in one line."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "a"}\n')
    status, engines = scripted_cli("generate", str(path), str(tmp_path / "first"), "--no-progress")
    calls = engines["embedded"].calls
    assert status == 0 and calls and all(_instruction_first(call) for call in calls)
    assert "Write the principles that a good reply" in calls[0].instructions
    recorded = json.loads((tmp_path / "first" / "run.json").read_text())["adapter"]
    assert recorded == {"class": "CompactJSONAdapter", "instruction": "first"}

    status, engines = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress", "--adapter", "compact-last")
    calls = engines["embedded"].calls
    assert status == 0 and calls and not any(_instruction_first(call) for call in calls)
    recorded = json.loads((tmp_path / "out" / "run.json").read_text())["adapter"]
    assert recorded == {"class": "CompactJSONAdapter", "instruction": "last"}
    path.write_text('{"query": "a"}\n{"query": "b"}\n')
    status, engines = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress")
    calls = engines["embedded"].calls
    assert status == 0 and calls and not any(_instruction_first(call) for call in calls)  # "b", as "a" was written
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    path.write_text('{"query": "a"}\n{"query": "b"}\n{"query": "c"}\n')
    status, _ = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress", "--adapter", "compact")
    assert status == 2 and 'adapter.instruction: "last" -> "first"' in capsys.readouterr().err


def test_a_folder_written_before_run_json_recorded_the_layout_resumes_in_the_layout_of_then(scripted_cli, tmp_path,
                                                                                          monkeypatch):
    """A run.json without the adapter key, from a run on the embedded model, was written with the instruction last
    (the default then): a resume with no --adapter goes on in that layout rather than mixing in the new default."""
    from spri_dspy.runtime import batch

    monkeypatch.setattr(batch, "EMBEDDED_MODEL_NAME", "scripted/embedded")  # the scripted stand-in's model name
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "a"}\n')
    status, _ = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress", "--adapter", "compact-last")
    identity = json.loads((tmp_path / "out" / "run.json").read_text())
    del identity["adapter"]
    (tmp_path / "out" / "run.json").write_text(json.dumps(identity))
    path.write_text('{"query": "a"}\n{"query": "b"}\n')
    status, engines = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress")
    calls = engines["embedded"].calls
    assert status == 0 and calls and not any(_instruction_first(call) for call in calls)


def test_normal_runs_print_no_library_chatter(scripted_cli, capsys, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "a"}\n')
    status, _ = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress")
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert "Generating train split" not in out and out.startswith(f"{tmp_path / 'out'}: 1 done, 0 failed")


def test_api_keys_never_reach_the_screen_or_the_failure_log(capsys, tmp_path, monkeypatch):
    """A server that echoes the key it was sent (as providers do for a wrong key), and a key inside --api-base."""
    from spri_dspy.testing import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "a"}\n')
    with FakeOpenAIServer(faults={"401": 1.0}) as server:
        status = cli.main(["run", "hi", "--lm", "openai/gpt-4o-mini", "--api-base", server.url, "--no-cache"])
        out, err = capsys.readouterr()
        assert status == 1 and "Incorrect API key provided: ***" in err and "SECRET" not in out + err
        status = cli.main(["generate", str(path), str(tmp_path / "out"), "--lm", "openai/gpt-4o-mini", "--api-base",
                           server.url, "--no-cache", "--no-progress"])
        out, err = capsys.readouterr()  # a refused key ends the run in one line; the input stays pending
        assert status == 1 and "Incorrect API key provided: ***" in err and "SECRET" not in out + err
    with FakeOpenAIServer(faults={"400": 1.0}) as server:  # an input's failure whose error quotes the key
        status = cli.main(["generate", str(path), str(tmp_path / "out"), "--lm", "openai/gpt-4o-mini", "--api-base",
                           server.url, "--no-cache", "--no-progress", "--restart"])
        out, err = capsys.readouterr()
    failures = (tmp_path / "out" / "failures.jsonl").read_text()
    assert status == 1 and "Bad request (key ***)" in failures
    assert "SECRET" not in out + err + failures
    with_credentials = "http://someone:hunter2-password@127.0.0.1:9/v1"
    assert cli.main(["run", "hi", "--lm", "openai/gpt-4o-mini", "--api-base", with_credentials, "--no-cache"]) == 1
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err


def test_judge_oracle_reads_biggen_rubric_objects(scripted_cli, capsys, tmp_path):
    source = SHARED / "benchmarks" / "biggen-bench" / "instances.jsonl"
    if not source.is_file():
        pytest.skip("../shared/benchmarks/biggen-bench is not beside this checkout")
    path = tmp_path / "three.jsonl"
    path.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
    status, engines = scripted_cli("judge", str(path), str(tmp_path / "out"), "--program", "oracle", "--instruction-field",
                                   "input", "--response-field", "reference_answer", "--rubric-field", "score_rubric",
                                   "--id-field", "id", "--no-progress")
    assert status == 0, capsys.readouterr().err
    first = json.loads(source.read_text().splitlines()[0])
    rubric = first["score_rubric"]
    # The three rows run on threads: the first row's call, whichever came first.
    seen = next(call.inputs["rubric"] for call in engines["embedded"].calls
                if call.inputs.get("instruction") == first["input"])
    assert seen.startswith(f"Criteria: {rubric['criteria']}\nScore 1: {rubric['score1_description']}")


def test_seed_match_goal_on_judge_inputs_says_they_have_no_goal(scripted_cli, capsys, shared_paper, tmp_path):
    seeds = str(shared_paper / "seeds" / "seed-principles-6.jsonl")
    status, engines = scripted_cli("judge", str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--seeds", seeds,
                                   "--seed-match", "goal")
    assert status == 2 and capsys.readouterr().err == (
        "spri: error: --seed-match goal shows only seeds with the input's goal, and these inputs have none: "
        "use --seed-match all\n")


def test_the_embedded_engine_line_says_what_reached_the_model():
    import dspy

    prediction = dspy.Prediction(principles="p", response="r", trace=[])
    summary = {"lm_calls": {"embedded/smollm2-135m-instruct": 8}, "usage": {}, "seconds": 1.0,
               "engine": {"requests": 7, "memo_hits": 2, "prompt_tokens": 1198, "prompt_tokens_evaluated": 824,
                          "lm_calls": 8}}
    assert cli_run.render(prediction, summary).splitlines()[-1] == (
        "embedded model: 7 of its 8 calls reached it (1 answered by DSPy's cache), 2 of those repeated an earlier "
        "one (answered from memory); 824 of 1198 prompt tokens evaluated (the rest reused from earlier calls)")
    summary["engine"].update(requests=0, memo_hits=0, prompt_tokens=0, prompt_tokens_evaluated=0)
    assert cli_run.render(prediction, summary).splitlines()[-1].startswith(
        "embedded model: 0 of its 8 calls reached it (8 answered by DSPy's cache), 0 of those")


def test_max_words_reaches_every_writer_and_none_removes_the_limit(scripted_cli, capsys):
    status, engines = scripted_cli("run", "hello", "--max-words", "50")
    assert status == 0
    writers = [c for c in engines["embedded"].calls if not c.step.endswith("critic")]
    assert len(writers) == 4 and all("Use at most 50 words." in c.instructions for c in writers)
    status, engines = scripted_cli("run", "hello", "--max-words", "none")
    assert status == 0 and not any("at most" in c.instructions for c in engines["embedded"].calls)


@pytest.mark.parametrize("value, message", [("0", "must be at least 1 (or 'none' for no limit), got 0"),
                                            ("lots", "expected a whole number of words or 'none', got 'lots'")])
def test_a_bad_max_words_is_named(capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "hi", "--max-words", value])
    assert exit_.value.code == 2 and f"argument --max-words: {message}" in capsys.readouterr().err


def test_judge_reads_system_prompts_capabilities_and_can_hide_the_reference(scripted_cli, capsys, tmp_path):
    rows = [{"id": "a", "instruction": "Add 2 and 2.", "response": "4", "reference": "4", "system": "Be terse.",
             "capability": "reasoning"}]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"query": f"q{i}", "principles": f"r{i}", "capability": c}) + "\n"
                             for i, c in enumerate(["reasoning", "safety", "reasoning"])))
    status, engines = scripted_cli("judge", str(path), str(tmp_path / "out"), "--reference-field", "reference",
                                   "--system-prompt-field", "system", "--capability-field", "capability",
                                   "--seeds", str(seeds), "--seed-match", "capability", "--no-reference",
                                   "--no-leave-one-out", "--no-progress")
    assert status == 0, capsys.readouterr().err
    calls = engines["embedded"].calls
    assert calls[0].step == "rubric_generator" and calls[0].demos == 2
    assert calls[0].inputs["system_prompt"] == "Be terse."
    assert not any("reference_answer" in c.inputs for c in calls)
    info = json.loads((tmp_path / "out" / "summary.json").read_text())["info"]
    assert (info["use_reference"], info["max_words"], info["seed_match"]) == (False, 128, "capability")


def test_seed_match_capability_needs_seeds_and_a_capability_column(scripted_cli, capsys, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"query": "q", "principles": "r", "capability": "safety"}) + "\n")
    status, _ = scripted_cli("judge", str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--seeds", str(seeds),
                             "--seed-match", "capability")
    assert status == 2 and capsys.readouterr().err == (
        "spri: error: --seed-match capability needs each input's capability: give --capability-field COLUMN\n")
    status, _ = scripted_cli("run", "hi", "--seeds", str(seeds), "--seed-match", "capability")
    assert status == 2 and "--seed-match capability is for judges" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "hi", "--no-reference"], "--no-reference is for judges (spri judge, or --task judgements); "
                                      "these programs never see a reference answer"),
    (["judge", "in.jsonl", "out", "--max-words", "50"],
     "--max-words limits principle and response writers; judges have no word limit"),
])
def test_a_setting_the_program_would_ignore_is_refused(scripted_cli, capsys, argv, message):
    status, engines = scripted_cli(*argv)
    assert status == 2 and capsys.readouterr().err == f"spri: error: {message}\n"
    assert not engines  # refused before any model was made


def test_a_different_run_into_an_existing_output_is_refused(scripted_cli, capsys, tmp_path):
    """It used to print "3 already done", make no call, exit 0 and relabel summary.json."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "gen1"
    assert scripted_cli("generate", str(path), str(out), "--no-progress", "--program", "vanilla")[0] == 0
    held = (out / "results.jsonl").read_text()
    capsys.readouterr()

    status, engines = scripted_cli("generate", str(path), str(out), "--no-progress")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"spri: error: {out} holds the results of a different run (program: "
                                          '"Vanilla" -> "SPRI"; ') and err.endswith(
        "use another OUTPUT folder, or --restart to move the old results aside and start over\n")
    assert not engines["embedded"].calls and (out / "results.jsonl").read_text() == held
    status, _ = scripted_cli("generate", str(path), str(out), "--no-progress", "--program", "vanilla",
                             "--max-words", "64")
    assert status == 2 and "settings.max_words: 128 -> 64" in capsys.readouterr().err

    assert scripted_cli("generate", str(path), str(out), "--no-progress", "--program", "vanilla")[0] == 0
    assert "3 already done" in capsys.readouterr().out  # the same run resumes

    status, _ = scripted_cli("generate", str(path), str(out), "--no-progress", "--program", "vanilla",
                             "--max-words", "64", "--restart")
    assert status == 0 and "3 done" in capsys.readouterr().out
    assert (out / "previous-1" / "results.jsonl").read_text() == held
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["settings"]["max_words"] == 64 and summary["info"]["max_words"] == 64
    assert summary["results"] == 3 and json.loads((out / "run.json").read_text()) == summary["run"]


def test_run_on_a_warm_cache_reports_the_calls_needed_and_made(monkeypatch, scripted, capsys):
    """A cached repeat used to print "LM calls: 16 ... tokens: 0" and batch summaries 0 calls."""
    import uuid

    from spri_dspy.testing import ScriptedEngine

    model = f"scripted/{uuid.uuid4().hex[:8]}"
    engine = ScriptedEngine(spri_script((2, 5), (5,)))
    monkeypatch.setattr(cli_build, "make_lm", lambda name, **options: __import__("dspy").LM(model, engine=engine, cache=True))
    assert cli.main(["run", "A warm question.", "--json"]) == 0
    cold = json.loads(capsys.readouterr().out)
    engine.script = ScriptedEngine(spri_script((2, 5), (5,))).script  # (a cache miss would find the same answers)
    assert cli.main(["run", "A warm question.", "--json"]) == 0
    warm = json.loads(capsys.readouterr().out)
    assert cold["lm_calls"] == warm["lm_calls"] == {model: 6}
    assert cold["lm_calls_made"] == {model: 6} and warm["lm_calls_made"] == {model: 0} and warm["usage"] == {}
    assert cli.main(["run", "A warm question."]) == 0
    assert f"LM calls: 6 ({model}: 6), 0 made, 6 answered by DSPy's cache; tokens of the calls made: 0" in (
        capsys.readouterr().out)


def test_a_misspelt_optional_column_is_an_error(scripted_cli, capsys, tmp_path):
    """--goal-field with a typo used to run every row without goals, exit 0."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "a", "goal": "be kind"}\n')
    status, engines = scripted_cli("generate", str(path), str(tmp_path / "out"), "--no-progress", "--goal-field", "gaol")
    assert status == 2 and capsys.readouterr().err == (
        f"spri: error: {path}: the input has no column 'gaol' (for goal); its columns: query, goal\n")
    assert not engines["embedded"].calls


@pytest.fixture
def steady_cli(monkeypatch, scripted):
    """``spri`` in-process on a scripted LM whose critics accept every text: any number of inputs."""
    script = {**spri_script(), "principle_critic": lambda call: {"feedback": "ok", "score": 5},
              "response_critic": lambda call: {"feedback": "ok", "score": 5}}
    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: scripted(script, model=f"scripted/{model}")[1])
    return lambda *argv: (cli.main(list(argv)), None)


def test_generate_reads_every_split_of_a_dataset_dict_or_the_one_asked_for(steady_cli, capsys, tmp_path):
    import datasets

    scripted_cli = steady_cli

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"query": "t1"}, {"query": "t2"}]),
                          "test": datasets.Dataset.from_list([{"query": "e1"}])}).save_to_disk(str(folder))
    status, _ = scripted_cli("generate", str(folder), str(tmp_path / "all"), "--no-progress")
    records = [json.loads(line) for line in (tmp_path / "all" / "results.jsonl").read_text().splitlines()]
    assert status == 0 and sorted((r["input"]["query"], r["columns"]["split"]) for r in records) == [
        ("e1", "test"), ("t1", "train"), ("t2", "train")]
    status, _ = scripted_cli("generate", str(folder), str(tmp_path / "test"), "--no-progress", "--split", "test")
    records = [json.loads(line) for line in (tmp_path / "test" / "results.jsonl").read_text().splitlines()]
    assert status == 0 and [r["input"]["query"] for r in records] == ["e1"]
    assert json.loads((tmp_path / "test" / "run.json").read_text())["split"] == "test"
    capsys.readouterr()
    status, _ = scripted_cli("generate", str(folder), str(tmp_path / "x"), "--no-progress", "--split", "dev")
    assert status == 2 and capsys.readouterr().err == f"spri: error: {folder}: no split 'dev'; the splits are: train, test\n"


def test_run_shows_each_step_on_stderr_as_it_finishes_unless_quiet(scripted_cli, capsys):
    status, _ = scripted_cli("run", "How do I calm down?")
    err = capsys.readouterr().err
    assert status == 0
    steps = [" ".join(line.split()[:-2]) for line in err.splitlines()]  # without the seconds
    assert steps == ["principles write", "principles critique 1 score 2, below 4: refine", "principles refine",
                     "principles critique 2 score 5, accepted", "response write",
                     "response critique 1 score 3, below 4: refine", "response refine",
                     "response critique 2 score 4, accepted"]
    assert all(line.endswith(" s") for line in err.splitlines())
    status, _ = scripted_cli("run", "How do I calm down?", "--quiet")
    assert status == 0 and capsys.readouterr().err == ""


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"spri {version('spri-dspy')}\n"


def test_the_last_critique_says_the_rounds_are_spent(scripted_cli, capsys):
    status, _ = scripted_cli("run", "How do I calm down?", "--max-rounds", "1")
    lines = [" ".join(line.split()[:-2]) for line in capsys.readouterr().err.splitlines()]
    assert status == 0 and lines == ["principles write", "principles critique 1 score 2, below 4: rounds spent",
                                     "response write", "response critique 1 score 3, below 4: rounds spent"]


def test_a_missing_seeds_file_is_an_error_even_for_variants_that_read_none(scripted_cli, capsys, shared_paper):
    """spri ablate --seeds missing.jsonl --variants vanilla used to run and exit 0."""
    status, engines = scripted_cli("ablate", str(shared_paper / "reappraisal" / "resort_eval_30.json"), "--seeds",
                                   "missing.jsonl", "--variants", "vanilla", "--output", "unused", "--limit", "2")
    assert status == 2 and capsys.readouterr().err == "spri: error: --seeds: seeds file not found: missing.jsonl\n"
    assert not any(engine.calls for engine in engines.values())


def test_a_run_with_failures_says_why_on_screen_and_in_the_summary(tmp_path, capsys, monkeypatch):
    """The README's promise: a failed run says why. Reasons grouped with counts, the library's advice left off."""
    from spri_dspy.testing import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}"}) + "\n" for i in range(3))
                    + json.dumps({"query": "word " * 1000}) + "\n")
    with FakeOpenAIServer(context=900) as server:  # the long query is over this server's context window
        status = cli.main(["generate", str(path), str(tmp_path / "out"), "--lm", "openai/m", "--api-base", server.url,
                           "--no-cache", "--no-progress", "--threads", "1", "--max-tokens", "64"])
    out = capsys.readouterr().out
    assert status == 1 and out.startswith(f"{tmp_path / 'out'}: 3 done, 1 failed")
    lines = [line for line in out.splitlines() if line.startswith("  failed: ")]
    assert len(lines) == 1 and lines[0].startswith("  failed: 1 x ContextWindowExceededError: [openai/m] This model's "
                                                   "maximum context length is 900 tokens")
    assert "To fix" not in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["failure_reasons"].values()) == [1] and "900 tokens" in next(iter(summary["failure_reasons"]))


def test_output_that_is_a_file_is_named(tmp_path, capsys, scripted_cli):
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "a"}\n')
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    status, _ = scripted_cli("generate", str(source), str(taken), "--no-progress")
    assert status == 2 and capsys.readouterr().err == (
        f"spri: error: OUTPUT {taken}: is a file; OUTPUT is a folder (created when missing)\n")
    assert taken.read_text() == "mine"


def test_help_texts_name_things_one_way(capsys):
    def _help(*command):  # through main, as a user sees it: redacted like everything spri prints
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    from spri_dspy.secrets import redact

    assert "postgresql://USER:PASSWORD@HOST/DB" in _help("tune")  # the help's placeholder is not masked ...
    assert redact("postgresql://bob:hunter2pw@db/x") == "postgresql://***@db/x"  # ... a real password is
    task = _help("compile").split("--task {reappraisal,instructions,judgements,preferences}")[-1]
    assert all(name in task.split("--field")[0] for name in ("reappraisal (", "instructions (", "judgements (",
                                                              "preferences ("))
    assert "--optimizer {bootstrap,mipro,gepa} DSPy's BootstrapFewShot (demos; default)" in _help("compile")
    for command in ("run", "generate"):  # judge-only settings are not offered where no judge runs
        assert "--no-reference" not in _help(command) and "capability" not in _help(command)
    assert "--no-reference" in _help("judge") and "capability" in _help("judge")
    for command in ("compile", "tune", "ablate", "export", "report"):  # one name for where output goes
        assert "--output " in _help(command), command


def test_export_writes_rows_in_input_order(tmp_path, monkeypatch):
    import datasets

    from spri_dspy.testing import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "query": f"question {i}"}) + "\n" for i in range(5)))
    with FakeOpenAIServer() as server:
        assert cli.main(["generate", str(source), str(tmp_path / "out"), "--lm", "openai/m", "--api-base", server.url,
                         "--no-progress", "--no-cache"]) == 0
    results = tmp_path / "out" / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(reversed(lines)) + "\n")  # as if they had finished in reverse order
    assert cli.main(["export", str(tmp_path / "out"), "--output", str(tmp_path / "sft")]) == 0
    exported = datasets.load_dataset("parquet", data_files=str(tmp_path / "sft" / "data" / "*.parquet"), split="train")
    assert exported["id"] == [f"q{i}" for i in range(5)]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_a_batch_at_once_says_how_to_resume_and_the_rerun_finishes(tmp_path, presses):
    """LM calls of 30 s in flight: Ctrl-C ends the process within seconds (not when the calls end), says what
    finished and how to resume; a second Ctrl-C exits at once too; never a traceback. The rerun does it all."""
    import os
    import signal
    import time

    from spri_dspy.testing import FakeOpenAIServer

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "query": f"question {i}"}) + "\n" for i in range(4)))
    output = tmp_path / "out"
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    with FakeOpenAIServer(latency=30) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        command = [sys.executable, "-m", "spri_dspy.cli", "generate", str(source), str(output), "--lm", "openai/m",
                   "--api-base", server.url, "--no-cache", "--no-progress", "--threads", "2"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while server.in_flight < 2 and time.monotonic() < deadline:  # both threads wait on an LM call
            time.sleep(0.1)
        started = time.monotonic()
        for _ in range(presses):
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
        out, err = process.communicate(timeout=20)
        seconds = time.monotonic() - started
    assert process.returncode == 130 and seconds < 5 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"spri: interrupted: 0 done and 0 failed in this run, 4 of 4 pending in "
                                            f"{output}; rerun the same command to resume")
    with FakeOpenAIServer(port=port) as server:  # the same endpoint, answering at once
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    ids = [json.loads(line)["id"] for line in (output / "results.jsonl").read_text().splitlines()]
    assert rerun.returncode == 0 and sorted(ids) == ["q0", "q1", "q2", "q3"]


def test_ablate_compares_every_variant_with_the_grids_baseline_per_dimension(monkeypatch, scripted, capsys,
                                                                             shared_paper, tmp_path):
    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: scripted(
        spri_script((5,) * 100, (5,) * 100), model=f"scripted/{model}")[1])
    data = str(shared_paper / "reappraisal" / "resort_eval_30.json")  # rows 0-3 self-responsibility, 4-5 problem-focused
    status = cli.main(["ablate", data, "--variants", "spri_no_seeds,vanilla", "--metric", "constitution-overlap",
                       "--limit", "6", "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0 and "## Against the baseline\n\nPaired against the baseline **vanilla**" in out
    rows = [line.split(" | ")[:3] for line in out.splitlines() if line.startswith("| spri_no_seeds | ")][1:]
    assert rows == [["| spri_no_seeds", "all", "6"], ["| spri_no_seeds", "problem-focused_coping", "2"],
                    ["| spri_no_seeds", "self-responsibility", "4"]]
    assert (tmp_path / "out" / "comparison.csv").is_file()
    status = cli.main(["ablate", data, "--variants", "vanilla", "--baseline", "spri_no_seeds", "--metric",
                       "constitution-overlap", "--limit", "2", "--output", str(tmp_path / "other")])
    assert status == 2 and "--baseline spri_no_seeds: not among the variants run (vanilla)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--grid", "missing.toml"], "missing.toml: no such grid file"),
])
def test_ablate_refuses_bad_repeats_and_grids_before_any_model(scripted_cli, capsys, shared_paper, argv, message):
    status, engines = scripted_cli("ablate", str(shared_paper / "reappraisal" / "resort_eval_30.json"),
                                   "--output", "unused", *argv)
    assert status == 2 and capsys.readouterr().err == f"spri: error: {message}\n" and engines == {}


def test_ablate_without_data_or_a_grid_file_says_what_is_missing(capsys):
    assert cli.main(["ablate"]) == 2
    assert capsys.readouterr().err == "spri: error: spri ablate needs DATA and --output DIR (or --print-grid)\n"
    assert cli.main(["ablate", "--print-grid", "--task", "judgements"]) == 2
    assert capsys.readouterr().err == "spri: error: --task judgements has no grid file\n"


@pytest.mark.parametrize("flags, threads", [
    ([], 1),  # the embedded model alone: one llama.cpp context, one input at a time
    (["--threads", "8"], 8),
    (["--threads", "3"], 3),
    (["--critic-lm", "openai/c"], 8),  # a critic on a server (OPENAI_BASE_URL): its calls overlap
    (["--lm", "openai/m", "--api-base", "http://127.0.0.1:9/v1"], 8),
    (["--ray", "127.0.0.1:1"], 8),  # on Ray each actor has its own model: --threads counts stages over all of them
])
def test_a_batch_on_the_embedded_model_alone_runs_one_input_at_a_time(monkeypatch, tmp_path, flags, threads):
    import spri_dspy.runtime.batch as batch_module

    seen = {}

    def run_batch(program, *args, threads, **kwargs):
        seen["threads"] = threads
        raise ValueError("stopped before any call")

    monkeypatch.setattr(batch_module, "run_batch", run_batch)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q"}\n')
    assert cli.main(["generate", str(source), str(tmp_path / "out"), *flags]) == 2
    assert seen == {"threads": threads}
