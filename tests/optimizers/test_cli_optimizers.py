"""spri compile / tune / ablate and --program FILE, with scripted LMs."""

from __future__ import annotations

import json

import pytest

from spri_dspy import cli


@pytest.fixture
def data(tmp_path):
    rows = [{"Reddit Post": f"post {i}", "appraisal_dimension_aim": f"aim {i % 2}", "constitution": f"c {i}",
             "standards": "s"} for i in range(6)]
    path = tmp_path / "reappraisal.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def scripted_models(monkeypatch, scripted):
    engines = {}

    def fake_make_lm(model, **options):
        engine, lm = scripted({"alignment_judge": lambda call: {"rationale": "r", "score": 9}}, model=f"scripted/{model}")
        engines[model] = engine
        return lm

    monkeypatch.setattr(cli, "make_lm", fake_make_lm)
    return engines


def test_compile_then_run_and_generate_with_the_file(data, tmp_path, scripted_models, capsys):
    saved = tmp_path / "compiled.json"
    assert cli.main(["compile", str(data), "--optimizer", "bootstrap", "--save", str(saved), "--max-rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "bootstrap: metric on 3 dev examples 0.900 -> 0.900" in out and str(saved) in out
    state = json.loads(saved.read_text())
    assert state["spri_dspy"]["program"] == "spri" and state["spri_dspy"]["settings"]["max_rounds"] == 2
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
    base = ["tune", str(data), "--storage", storage, "--study", "t", "--n-trials", "2"]
    assert cli.main(base) == 0
    assert cli.main(base + ["--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "study 't' in sqlite:///" in out and ": 4 trials; best:" in out
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
