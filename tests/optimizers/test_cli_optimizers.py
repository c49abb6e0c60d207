"""spri compile / tune / ablate and --program FILE, with scripted LMs."""

from __future__ import annotations

import json

import pytest

from spri_dspy import cli
from spri_dspy.cli import build as cli_build


@pytest.fixture
def data(reappraisal_rows):
    return reappraisal_rows(6)


@pytest.fixture
def scripted_models(cli_models):
    """Every model the command builds scripted; the alignment judge scores 9 of 10."""
    return cli_models(lambda: {"alignment_judge": lambda call: {"rationale": "r", "score": 9}})


def test_compile_then_run_and_generate_with_the_file(data, tmp_path, scripted_models, capsys):
    saved = tmp_path / "compiled.json"
    assert cli.main(["compile", str(data), "--optimizer", "bootstrap", "--save", str(saved), "--max-rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "bootstrap: metric on 3 dev examples 0.900 -> 0.900" in out and str(saved) in out
    state = json.loads(saved.read_text())
    assert state["spri_dspy"]["program"] == "spri" and state["spri_dspy"]["settings"]["max_rounds"] == 2
    from spri_dspy.experiments.tasks import REAPPRAISAL_FRAMING

    settings = state["spri_dspy"]["settings"]  # the program's own settings only: SPRI takes no use_reference
    assert (settings["max_words"], settings["framing"], "use_reference" in settings) == (128, REAPPRAISAL_FRAMING, False)
    assert state["principle_generator.predict"]["demos"]
    assert cli.main(["run", "post 0", "--goal", "aim 0", "--program", str(saved), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["response"] == "responder output"
    assert cli.main(["generate", str(data), str(tmp_path / "out"), "--program", str(saved), "--query-field",
                     "Reddit Post", "--goal-field", "appraisal_dimension_aim", "--no-progress"]) == 0
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 6
    generator_calls = [c for c in scripted_models["embedded"].calls if c.step == "principle_generator"]
    assert generator_calls[-1].demos > 0  # the compiled demos are used


def test_program_file_must_be_a_compiled_program(tmp_path, scripted_models, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text("{}")
    assert cli.main(["run", "q", "--program", str(bogus)]) == 2
    assert "not a program saved by 'spri compile'" in capsys.readouterr().err
    assert cli.main(["generate", str(bogus), str(tmp_path / "o"), "--program", "nonsense"]) == 2
    assert "--program must be one of spri, vanilla" in capsys.readouterr().err


def test_tune_resumes_on_sqlite_and_plots(data, tmp_path, scripted_models, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    base = ["tune", str(data), "--storage", storage, "--study", "t"]
    assert cli.main(base + ["--n-trials", "2"]) == 0
    assert cli.main(base + ["--n-trials", "4", "--plots", str(tmp_path / "plots")]) == 0  # the budget grows to 4
    out, err = capsys.readouterr()
    assert "study 't' in sqlite:///" in out and ": 4 complete trials of 4; best:" in out
    assert f"watch it live with: optuna-dashboard '{storage}'" in err
    assert (tmp_path / "plots" / "pareto_front.png").exists()
    assert cli.main(["ablate", str(data), "--output", str(tmp_path / "ab"), "--variants", "vanilla", "--study", "t",
                     "--storage", storage]) == 0
    assert {p.name for p in (tmp_path / "ab").glob("*.png")} == {
        "metric_by_variant.png", "quality_vs_cost.png", "pareto_front.png", "param_importances.png"}
    assert cli.main(["ablate", str(data), "--output", str(tmp_path / "ab"), "--variants", "vanilla", "--study", "nope",
                     "--storage", storage]) == 2


def test_ablate_writes_table_and_plots(data, tmp_path, scripted_models, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"query": "post 0", "goal": "aim 0", "principles": "p"}) + "\n"
                     + json.dumps({"query": "other", "goal": "aim 1", "principles": "q"}) + "\n")
    out_dir = tmp_path / "ablation"
    assert cli.main(["ablate", str(data), "--output", str(out_dir), "--seeds", str(seeds), "--max-rounds", "1"]) == 0
    table = (out_dir / "ablation.md").read_text()
    for variant in ("spri_no_seeds", "vanilla", "self_refine", "spri_seeds", "seed_principles",
                    "spri_seed_per_dimension", "oracle"):
        assert f"| {variant} | 6 |" in table
    assert "| seed_principles | 6 | 1 |" in table  # post 0 has no seed left under leave-one-out
    assert (out_dir / "quality_vs_cost.png").exists()


def test_metric_must_fit_the_task(data, scripted_models, capsys):
    assert cli.main(["ablate", str(data), "--output", "x", "--metric", "agreement"]) == 2
    assert "--metric agreement does not fit --task reappraisal" in capsys.readouterr().err


@pytest.fixture
def failing_models(monkeypatch):
    """Every LM a command makes is a fake OpenAI server answering 401 with the key it was sent."""
    import dspy

    from spri_dspy.testing import FakeOpenAIServer

    server = FakeOpenAIServer(faults={"401": 1.0}).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: dspy.LM(
        "openai/gpt-4o-mini", api_base=server.url, cache=False, num_retries=0))
    yield server
    server.stop()


def test_compile_with_every_call_failing_exits_1_saves_nothing_and_hides_the_key(data, tmp_path, failing_models, capsys):
    saved = tmp_path / "c.json"
    status = cli.main(["compile", str(data), "--save", str(saved), "--limit", "4"])
    out, err = capsys.readouterr()
    assert status == 1 and not saved.exists()
    assert err.splitlines()[-1].startswith("spri: error: every dev example failed before and after compiling")
    assert "Incorrect API key provided: ***" in err
    assert "SECRET" not in out + err


def test_ablate_with_every_row_failing_exits_1(data, tmp_path, failing_models, capsys):
    status = cli.main(["ablate", str(data), "--output", str(tmp_path / "abl"), "--variants", "vanilla"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "every input of every variant failed; the first error:" in err and "SECRET" not in out + err
    assert "SECRET" not in (tmp_path / "abl" / "ablation.csv").read_text()


@pytest.mark.parametrize("argv, message", [
    (["compile", "{data}", "--save", "{tmp}/nodir/c.json"], "--save {tmp}/nodir/c.json: the folder {tmp}/nodir does not exist"),
    (["compile", "{data}", "--save", "{tmp}/c.json", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["tune", "{data}", "--n-trials", "0"], "--n-trials must be at least 1, got 0"),
    (["tune", "{data}", "--n-trials", "-3"], "--n-trials must be at least 1, got -3"),
    (["tune", "{data}", "--timeout", "-1"], "--timeout must be a positive number of seconds, got -1.0"),
    (["ablate", "{data}", "--output", "{tmp}/a", "--study", "nosuch", "--storage", "sqlite:///{tmp}/s.db"],
     "--study 'nosuch' not found in sqlite:///{tmp}/s.db"),
    (["compile", "{data}", "--save", "{tmp}/c.json", "--task", "instructions", "--field", "Reddit Post",
      "--seeds", "{data}", "--seed-match", "goal"],
     "--seed-match goal shows only seeds with the input's goal, and these inputs have none: give --task reappraisal "
     "or use --seed-match all"),
])
def test_bad_settings_fail_before_any_lm_call(data, tmp_path, scripted_models, capsys, argv, message):
    fill = {"data": str(data), "tmp": str(tmp_path)}
    assert cli.main([a.format(**fill) for a in argv]) == 2
    assert capsys.readouterr().err == f"spri: error: {message.format(**fill)}\n"
    assert all(not engine.calls for engine in scripted_models.values())


def test_program_file_naming_an_unknown_program(tmp_path, scripted_models, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"spri_dspy": {"kind": "response", "program": "nonexistent", "settings": {}}}))
    assert cli.main(["run", "hi", "--program", str(bad)]) == 2
    assert capsys.readouterr().err == (f"spri: error: --program {bad}: its metadata names an unknown response program "
                                       "'nonexistent' (known: spri, vanilla, self-refine, oracle, seed-principles)\n")


def test_an_explicit_flag_wins_over_a_compiled_files_setting_and_says_so(data, tmp_path, scripted_models, capsys):
    saved = tmp_path / "compiled.json"
    assert cli.main(["compile", str(data), "--save", str(saved), "--max-rounds", "2"]) == 0
    capsys.readouterr()
    common = ["--program", str(saved), "--query-field", "Reddit Post", "--no-progress"]
    assert cli.main(["generate", str(data), str(tmp_path / "a"), *common]) == 0
    assert capsys.readouterr().err == ""
    info = json.loads((tmp_path / "a" / "summary.json").read_text())["info"]
    assert (info["max_rounds"], info["threshold"], info["overrides"]) == (2, 4, {})  # the file's settings, as run
    assert cli.main(["generate", str(data), str(tmp_path / "b"), *common, "--max-rounds", "1", "--thresh", "5"]) == 0
    err = capsys.readouterr().err
    assert err == (f"spri: --max-rounds 1 overrides 2 saved in {saved}\n"
                   f"spri: --threshold 5 overrides 4 saved in {saved}\n")
    info = json.loads((tmp_path / "b" / "summary.json").read_text())["info"]
    assert (info["max_rounds"], info["threshold"]) == (1, 5)
    assert info["overrides"] == {"max_rounds": {"saved": 2, "used": 1}, "threshold": {"saved": 4, "used": 5}}


def test_the_overriding_flag_is_what_runs(data, tmp_path, scripted_models, monkeypatch, capsys):
    saved = tmp_path / "compiled.json"
    assert cli.main(["compile", str(data), "--save", str(saved), "--max-rounds", "3"]) == 0
    low = {"principle_critic": lambda call: {"feedback": "no", "score": 1},
           "response_critic": lambda call: {"feedback": "no", "score": 1}}
    from spri_dspy.testing import ScriptedEngine, scripted_lm

    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: scripted_lm(ScriptedEngine(low)))
    capsys.readouterr()
    for flags, rounds in (([], 3), (["--max-rounds", "1"], 1)):
        assert cli.main(["run", "post 0", "--program", str(saved), "--json", *flags]) == 0
        trace = json.loads(capsys.readouterr().out)["trace"]
        assert [r["round"] for r in trace if r["stage"] == "principles"] == list(range(1, rounds + 1))


def test_ablate_compares_spri_with_and_without_the_word_limit_under_the_reappraisal_framing(data, tmp_path,
                                                                                          scripted_models, capsys):
    from spri_dspy.experiments.tasks import REAPPRAISAL_FRAMING

    assert cli.main(["ablate", str(data), "--output", str(tmp_path / "ab"), "--variants",
                     "spri_no_seeds,spri_no_word_limit", "--max-words", "90"]) == 0
    assert "spri_no_word_limit" in (tmp_path / "ab" / "ablation.csv").read_text()
    calls = [c for engine in scripted_models.values() for c in engine.calls if c.step == "responder"]
    said = [" ".join(c.instructions.split()) for c in calls]
    assert len(said) == 12 and all(REAPPRAISAL_FRAMING in text for text in said)
    assert sum("Use at most 90 words." in text for text in said) == 6
    assert sum("at most" not in text for text in said) == 6


def test_a_compiled_file_runs_its_critics_on_critic_lm(tmp_path, scripted_models, capsys):
    """Loading a compiled state resets each step's LM (DSPy's load_state); --critic-lm must still place the critics."""
    from spri_dspy import SPRI, save_program

    save_program(SPRI(max_rounds=1), tmp_path / "p.json")
    assert cli.main(["run", "a query", "--program", str(tmp_path / "p.json"), "--critic-lm", "openai/critic",
                     "--json"]) == 0
    capsys.readouterr()
    assert scripted_models["openai/critic"].steps() == ["principle_critic", "response_critic"]
    assert "principle_critic" not in scripted_models["embedded"].steps()


def test_tune_goes_on_through_a_faulty_server(data, tmp_path, capsys, monkeypatch):
    """Malformed replies used to end the study at its first failed call, with an Optuna traceback."""
    from spri_dspy.testing import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    with FakeOpenAIServer(critic_scores=(2, 5), faults={"malformed": 0.15}, seed=4) as server:
        code = cli.main(["tune", str(data), "--lm", "openai/tune-model", "--api-base", server.url, "--n-trials", "3",
                         "--storage", f"sqlite:///{tmp_path / 's.db'}", "--limit", "3", "--max-tokens", "64"])
        malformed = server.counts["fault:malformed"]
    out, err = capsys.readouterr()
    assert code == 0 and malformed > 0
    assert out.startswith("study 'spri' in sqlite:///") and "3 complete trials of 3" in out and "best:" in out
    import re

    first, *rest = [piece for piece in re.split(r"[\r\n]+", err) if piece.strip()]
    assert first.startswith("spri tune: worker ")  # then spri's own trial bars only: no Optuna warning or traceback
    assert rest and all(piece.startswith("spri tune trial ") for piece in rest)


@pytest.mark.parametrize("command", ["tune", "ablate"])
def test_program_is_refused_where_it_would_be_ignored(data, tmp_path, scripted_models, capsys, command):
    extra = ["--output", str(tmp_path / "a")] if command == "ablate" else []
    assert cli.main([command, str(data), "--program", "vanilla", *extra]) == 2
    assert capsys.readouterr().err.startswith(f"spri: error: --program is for spri compile; spri {command} ")
    assert not any(engine.calls for engine in scripted_models.values())


def test_compiled_demos_belong_to_their_step(data, tmp_path, scripted_models, capsys):
    """Every step's demos used to be raw training rows (id, query, goal, constitution, standards)."""
    saved = tmp_path / "c.json"
    assert cli.main(["compile", str(data), "--save", str(saved), "--max-rounds", "1", "--max-demos", "2"]) == 0
    out = capsys.readouterr().out
    state = json.loads(saved.read_text())
    generator = state["principle_generator.predict"]["demos"]
    labeled = [d for d in generator if not d.get("augmented")]
    assert [(d["query"], d["principles"]) for d in labeled] == [("post 0", "c 0"), ("post 1", "c 1")][:len(labeled)]
    assert labeled and all(set(d) <= {"query", "goal", "principles"} for d in labeled)
    for name, step in state.items():
        if name.endswith(".predict"):
            assert all("standards" not in d and "constitution" not in d for d in step["demos"]), name
    critic = state["principle_critic.predict"]["demos"]
    assert all(d["augmented"] and "score" in d and "feedback" in d for d in critic)
    line = next(line for line in out.splitlines() if line.strip().startswith("principle_generator:"))
    assert f"{len(labeled)} labeled from the data" in line
    # leave-one-out (saved with the program): a row never sees its own constitution as a demo
    assert cli.main(["run", "post 0", "--goal", "aim 0", "--program", str(saved), "--json"]) == 0
    capsys.readouterr()
    call = [c for c in scripted_models["embedded"].calls if c.step == "principle_generator"][-1]
    others = [d for d in generator if d["query"] != "post 0"]
    assert call.demos == len(others) > 0 and not any("c 0" in answer for answer in call.demo_answers)


@pytest.mark.parametrize("optimizer", ["bootstrap", "mipro", "gepa"])
def test_every_optimizer_compiles_offline_against_the_fake_server(data, tmp_path, capsys, monkeypatch, optimizer):
    """MIPROv2 used to exit 1 here: the fake server could not answer its instruction proposer."""
    from spri_dspy.testing import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    saved = tmp_path / f"{optimizer}.json"
    with FakeOpenAIServer(critic_scores=(2, 5)) as server:
        code = cli.main(["compile", str(data), "--lm", "openai/fake-model", "--api-base", server.url, "--optimizer",
                         optimizer, "--save", str(saved), "--max-rounds", "2", "--trials", "2", "--budget", "20",
                         "--no-cache"])
        counts = dict(server.counts)
    out = capsys.readouterr().out
    assert code == 0 and f"{optimizer}: metric on 3 dev examples" in out and saved.exists()
    own = {"mipro": "unknown:proposed_instruction", "gepa": "unknown:new_instruction"}.get(optimizer)
    assert own is None or counts.get(own, 0) > 0  # the optimizer's own signature was answered


def test_the_fake_server_answers_any_signature_with_typed_values():
    from spri_dspy.testing.server import typed_answer

    system = ("Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str): the answer\n"
              "2. `count` (int):\n3. `choice` (Literal['left', 'right']):\n4. `tags` (list[str]):\n5. `ok` (bool):")
    answer = typed_answer(system, ["answer", "count", "choice", "tags", "ok"])
    assert answer == {"answer": "A careful, concrete answer.", "count": 3, "choice": "left", "tags": [], "ok": True}
    schema = {"properties": {"score": {"type": "integer", "enum": [1, 2, 3]}, "weight": {"type": "number"}}}
    assert typed_answer("", ["score", "weight"], schema) == {"score": 1, "weight": 0.5}
    assert typed_answer("", []).startswith("```")


def test_compile_prints_only_its_report(data, tmp_path, scripted_models, capfd):
    """DSPy's optimizers print progress bars and "Bootstrapped N full traces" themselves: only with --verbose.
    stderr holds spri's own progress bars and nothing else."""
    import re

    assert cli.main(["compile", str(data), "--save", str(tmp_path / "c.json"), "--max-rounds", "1"]) == 0
    out, err = capfd.readouterr()
    assert out.startswith("bootstrap: metric on 3 dev examples") and "Bootstrapped" not in out + err
    pieces = [piece for piece in re.split(r"[\r\n]+", err) if piece.strip()]
    assert pieces and all(piece.startswith("spri compile ") for piece in pieces)
