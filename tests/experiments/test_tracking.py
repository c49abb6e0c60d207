"""Tracking in MLflow (``--mlflow`` on spri ablate, tune and compile), read back from real stores with
``mlflow.search_runs``: an SQLite store, the environment's store and an ``mlflow server`` over HTTP."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dspy
import pytest

mlflow = pytest.importorskip("mlflow", reason="MLflow comes with pip install 'spri-dspy[mlflow]'")

from helpers import spri_script  # noqa: E402
from spri_dspy import SPRI, Vanilla, cli  # noqa: E402
from spri_dspy.experiments.ablate import ablate  # noqa: E402
from spri_dspy.experiments.tracking import EXPERIMENT, Tracker, flat, trial_runs  # noqa: E402


@pytest.fixture(autouse=True)
def no_tracking_environment(monkeypatch, tmp_path_factory):
    """No store from the developer's environment, MLflow's global URI put back after each test, and each test
    run from an empty folder in which nothing may appear (MLflow's own default puts artefacts in ./mlruns)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    here = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(here)
    yield
    mlflow.set_tracking_uri(None)
    assert list(here.iterdir()) == []


def search(uri: str, experiment: str = EXPERIMENT) -> list:
    """Every run of ``experiment`` in the store at ``uri``, through ``mlflow.search_runs``."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[experiment], output_format="list")
    finally:
        mlflow.set_tracking_uri(previous)


def family(runs) -> tuple:
    """(the parent run, its children by name)."""
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = {run.info.run_name: run for run in runs if run.data.tags.get("mlflow.parentRunId") ==
                parents[0].info.run_id}
    assert len(children) == len(runs) - 1
    return parents[0], children


def artefacts(uri: str, run_id: str) -> set[str]:
    return {item.path for item in mlflow.MlflowClient(tracking_uri=uri).list_artifacts(run_id)}


# The Python API: Tracker and ablate(tracker=...).

DEVSET = [dspy.Example(query=f"q{i}").with_inputs("query") for i in range(4)]


def length_metric(example, prediction, trace=None):
    return 0.5 if "response" in prediction.response else 0.25


def test_ablate_logs_a_child_run_per_variant_with_its_row_and_its_paired_comparison(scripted, tmp_path):
    script = spri_script((5,) * 8, (5,) * 8)
    script["direct_responder"] = lambda call: {"response": "plain"}
    _, lm = scripted(script)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with Tracker(uri, "ablate test", params={"dataset": "toy"}, folder=tmp_path) as tracker, dspy.context(lm=lm):
        rows = ablate({"spri": SPRI(), "vanilla": Vanilla()}, DEVSET, length_metric, tmp_path / "out",
                      baseline="vanilla", repeats=2, tracker=tracker,
                      variant_params={"spri": {"program": "spri", "settings": {"threshold": 4}}})
    parent, children = family(search(uri))
    assert parent.info.run_name == "ablate test" and parent.info.status == "FINISHED"
    assert parent.data.params["dataset"] == "toy"
    assert parent.data.metrics["variants"] == 2 and parent.data.metrics["repeats"] == 2
    assert parent.data.metrics["lm_calls_needed"] == sum(r.lm_calls_needed_per_input * r.n for r in rows) == 4 * 4 + 4
    assert set(children) == {"spri", "vanilla"}
    by_name = {row.variant: row for row in rows}
    for name, run in children.items():
        assert run.info.status == "FINISHED"
        assert run.data.metrics["metric"] == by_name[name].metric
        assert run.data.metrics["lm_calls_needed_per_input"] == by_name[name].lm_calls_needed_per_input
        assert run.data.metrics["n"] == 4
    assert children["spri"].data.params == {"program": "spri", "settings.threshold": "4"}
    with (tmp_path / "out" / "comparison.csv").open() as handle:
        comparison = next(row for row in csv.DictReader(handle) if row["group"] == "all")
    assert children["spri"].data.metrics["difference"] == pytest.approx(float(comparison["mean_difference"])) == 0.25
    assert children["spri"].data.metrics["p_holm"] == pytest.approx(float(comparison["p_holm"]))
    assert "difference" not in children["vanilla"].data.metrics  # the baseline is not compared with itself
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(children["spri"].info.run_id, "repeat_metric")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.5)]
    assert {"ablation.csv", "ablation.md", "comparison.csv", "comparison.png", "metric_by_variant.png",
            "quality_vs_cost.png"} == artefacts(uri, parent.info.run_id)
    assert (tmp_path / "mlartifacts").is_dir()  # the default local store keeps its artefacts beside it


def test_a_block_that_raises_ends_its_run_failed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.raises(KeyboardInterrupt), Tracker(uri, "parent", folder=tmp_path) as tracker:
        with pytest.raises(RuntimeError), tracker.child("broken"):
            raise RuntimeError("the variant failed")
        with tracker.child("fine"):
            pass
        raise KeyboardInterrupt
    parent, children = family(search(uri))
    assert (parent.info.status, children["broken"].info.status, children["fine"].info.status) == (
        "FAILED", "FAILED", "FINISHED")


def test_the_tracking_uri_of_the_environment_is_put_back(tmp_path, monkeypatch):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    with Tracker(f"sqlite:///{tmp_path / 'store.db'}", "r", folder=tmp_path):
        assert mlflow.get_tracking_uri().endswith("store.db")
    assert os.environ["MLFLOW_TRACKING_URI"] == other and mlflow.get_tracking_uri() == other
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with Tracker(f"sqlite:///{tmp_path / 'store.db'}", "r", folder=tmp_path):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_parameters_are_flat_text_with_every_secret_masked(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    params = flat({"api_base": "http://user:hunter2pass@host/v1", "message": "key sk-test-SECRET-0123456789",
                   "settings": {"threshold": 4, "seeds": None}, "without": ("seeds", "max_words")})
    assert params == {"api_base": "http://***@host/v1", "message": "key ***", "settings.threshold": "4",
                      "settings.seeds": "None", "without": "seeds, max_words"}


def test_each_finished_trial_is_a_child_run_with_its_state_and_values(tmp_path):
    import optuna

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="s")
    space = {"threshold": optuna.distributions.IntDistribution(3, 5)}
    trials = [
        optuna.trial.create_trial(params={"threshold": 4}, distributions=space, values=[0.75, 6.0],
                                  user_attrs={"lm_calls_made_per_input": 5.5, "worker": "host:1"}),
        optuna.trial.create_trial(params={"threshold": 3}, distributions=space, state=optuna.trial.TrialState.FAIL,
                                  user_attrs={"error": "2 of 4 examples failed"}),
        optuna.trial.create_trial(params={"threshold": 5}, distributions=space, state=optuna.trial.TrialState.PRUNED),
        optuna.trial.create_trial(params={"threshold": 5}, distributions=space, state=optuna.trial.TrialState.PRUNED,
                                  user_attrs={"budget": "spent"}),
    ]
    with Tracker(uri, "tune", folder=tmp_path) as tracker:
        log = trial_runs(tracker)
        for number, trial in enumerate(trials):
            trial.number = number
            log(study, trial)
    _, children = family(search(uri))
    assert set(children) == {"trial 0", "trial 1", "trial 2"}  # trial 3 never ran: the budget was spent
    complete, failed, pruned = children["trial 0"], children["trial 1"], children["trial 2"]
    assert complete.data.metrics == {"metric": 0.75, "lm_calls_per_input": 6.0, "lm_calls_made_per_input": 5.5}
    assert complete.data.params == {"threshold": "4"} and complete.data.tags["optuna.worker"] == "host:1"
    assert (complete.info.status, failed.info.status, pruned.info.status) == ("FINISHED", "FAILED", "KILLED")
    assert failed.data.tags["optuna.error"] == "2 of 4 examples failed" and failed.data.metrics == {}


@pytest.fixture
def autolog():
    """DSPy's MLflow integration on for one test, then off (it adds a callback to DSPy's global settings)."""
    callbacks = list(dspy.settings.callbacks)
    mlflow.dspy.autolog(silent=True)
    yield
    mlflow.dspy.autolog(disable=True, silent=True)
    dspy.settings.configure(callbacks=callbacks)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["call", "acall"])
def test_autolog_shows_spris_steps_as_nested_spans(scripted, tmp_path, autolog, asynchronous):
    import asyncio

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'traces.db'}")
    mlflow.set_experiment("traces")
    _, lm = scripted(spri_script(principle_scores=(2, 5), response_scores=(5,)))
    program = SPRI()
    with dspy.context(lm=lm):
        prediction = asyncio.run(program.acall(query="q?")) if asynchronous else program(query="q?")
    mlflow.flush_trace_async_logging()
    (trace,) = mlflow.search_traces(return_type="list")
    spans = {span.span_id: span for span in trace.data.spans}

    def path(span):
        names = []
        while span is not None:
            names.append(span.name.split(".")[0])
            span = spans.get(span.parent_id)
        return "/".join(reversed(names))

    steps = [path(span) for span in trace.data.spans if span.name.endswith(".forward")
             and not span.name.startswith(("Predict", "CritiqueRefine", "SPRI"))]
    assert steps == ["SPRI/PrincipleGenerator", "SPRI/CritiqueRefine/PrincipleCritic",
                     "SPRI/CritiqueRefine/PrincipleRefiner", "SPRI/CritiqueRefine/PrincipleCritic",
                     "SPRI/Responder", "SPRI/CritiqueRefine/ResponseCritic"]
    lm_calls = [span for span in trace.data.spans if span.span_type == "CHAT_MODEL"]
    assert len(lm_calls) == 6 and all(path(span).startswith("SPRI/") for span in lm_calls)
    critic_scores = [span.outputs["score"] for span in trace.data.spans
                     if span.name == "Predict.forward" and "critic" in path(span).lower()]
    assert critic_scores == [2, 5, 5]
    root = next(span for span in trace.data.spans if span.parent_id is None)
    assert root.name == "SPRI.forward" and root.outputs["response"] == prediction.response


# The commands: --mlflow on spri ablate, tune and compile.

@pytest.fixture
def data(reappraisal_rows):
    return reappraisal_rows(4)


@pytest.fixture
def scripted_models(cli_models):
    """Every model the command builds scripted; the alignment judge scores 9 of 10."""
    return cli_models(lambda: {"alignment_judge": lambda call: {"rationale": "r", "score": 9}})


def test_spri_ablate_tracks_in_the_output_folder_by_default(data, tmp_path, scripted_models, capsys):
    out = tmp_path / "ablation"
    assert cli.main(["ablate", str(data), "--mlflow", "--output", str(out), "--variants", "spri_no_seeds,vanilla",
                     "--max-rounds", "1"]) == 0
    uri = f"sqlite:///{out / 'mlflow.db'}"
    assert "spri: tracked in MLflow as run " in capsys.readouterr().err
    parent, children = family(search(uri))
    assert parent.info.run_name == "ablate reappraisal"
    assert {key: parent.data.params[key] for key in ("command", "task", "lm", "max_rounds", "variants")} == {
        "command": "spri ablate", "task": "reappraisal", "lm": "embedded", "max_rounds": "1",
        "variants": "spri_no_seeds,vanilla"}
    assert set(children) == {"spri_no_seeds", "vanilla"}
    assert children["vanilla"].data.params["baseline"] == "True"
    assert children["spri_no_seeds"].data.params["program"] == "spri"
    assert children["spri_no_seeds"].data.metrics["n_paired"] == 4
    with (out / "ablation.csv").open() as handle:
        table = {row["variant"]: row for row in csv.DictReader(handle)}
    for name, run in children.items():
        assert run.data.metrics["metric"] == pytest.approx(float(table[name]["metric"]))
        assert run.data.metrics["lm_calls_made_per_input"] == pytest.approx(float(table[name]["lm_calls_made_per_input"]))
    logged = artefacts(uri, parent.info.run_id)
    assert {"report.html", "reappraisal.toml", "ablation.md", "comparison.png"} <= logged
    downloaded = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="report.html",
                                                     tracking_uri=uri, dst_path=str(tmp_path / "down"))
    assert Path(downloaded).read_text() == (out / "report.html").read_text()


def test_the_environments_store_and_experiment_serve_a_bare_flag(data, tmp_path, scripted_models, monkeypatch):
    store = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "resort-ablations")
    out = tmp_path / "ablation"
    assert cli.main(["ablate", str(data), "--output", str(out), "--variants", "vanilla", "--mlflow"]) == 0
    parent, children = family(search(store, "resort-ablations"))
    assert set(children) == {"vanilla"} and parent.data.params["output"] == str(out)
    assert not (out / "mlflow.db").exists()
    assert "report.html" in artefacts(store, parent.info.run_id)
    assert (tmp_path / "mlartifacts").is_dir()  # beside the store's database


def test_spri_tune_logs_a_child_run_per_trial_with_the_studys_values(data, tmp_path, scripted_models):
    import optuna

    storage, uri = f"sqlite:///{tmp_path / 'study.db'}", f"sqlite:///{tmp_path / 'runs.db'}"
    assert cli.main(["tune", str(data), "--storage", storage, "--study", "s", "--n-trials", "3",
                     f"--mlflow={uri}", "--output", str(tmp_path / "plots")]) == 0
    parent, children = family(search(uri))
    study = optuna.load_study(study_name="s", storage=storage)
    assert set(children) == {f"trial {t.number}" for t in study.trials} and len(children) == 3
    for trial in study.trials:
        run = children[f"trial {trial.number}"]
        assert run.data.metrics["metric"] == trial.values[0]
        assert run.data.metrics["lm_calls_per_input"] == trial.values[1]
        assert run.data.params == {name: str(value) for name, value in trial.params.items()}
    assert parent.data.metrics["complete_trials"] == 3 and parent.data.params["study"] == "s"
    assert "threshold" not in parent.data.params  # tuned per trial, not set for the study
    assert {"pareto_front.json", "pareto_front.png", "param_importances.png"} <= artefacts(uri, parent.info.run_id)
    front = json.loads(mlflow.artifacts.load_text(_artifact_uri(uri, parent, "pareto_front.json")))
    assert {row["trial"] for row in front} <= {t.number for t in study.trials}


def _artifact_uri(uri: str, run, name: str) -> str:
    return f"{mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id).info.artifact_uri}/{name}"


def test_spri_compile_logs_the_metric_before_and_after_and_the_program(data, tmp_path, scripted_models, capsys):
    saved = tmp_path / "compiled.json"
    assert cli.main(["compile", str(data), "--save", str(saved), "--max-rounds", "1", "--mlflow"]) == 0
    out = capsys.readouterr().out
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # beside the saved program
    (run,) = search(uri)
    metrics = run.data.metrics
    assert f"metric on 2 dev examples {metrics['metric_before']:.3f} -> {metrics['metric_after']:.3f}" in out
    assert f"LM calls: {metrics['lm_calls_needed']:.0f} needed, {metrics['lm_calls_made']:.0f} made" in out
    assert metrics["demos.principle_generator.bootstrapped"] == 2
    assert run.data.params["optimizer"] == "bootstrap" and run.info.run_name == "compile bootstrap"
    assert artefacts(uri, run.info.run_id) == {"compiled.json"}
    downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="compiled.json",
                                                     tracking_uri=uri, dst_path=str(tmp_path / "down"))
    assert json.loads(Path(downloaded).read_text()) == json.loads(saved.read_text())


def test_no_key_reaches_the_store(data, tmp_path, scripted_models, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    assert cli.main(["ablate", str(data), "--output", str(tmp_path / "o"), "--variants", "vanilla", "--mlflow", uri,
                     "--api-base", "http://user:sk-test-SECRET-0123456789@localhost:9/v1"]) == 0
    parent, _ = family(search(uri))
    assert parent.data.params["api_base"] == "http://***@localhost:9/v1"
    database = (tmp_path / "runs.db").read_bytes()
    assert b"SECRET" not in database and b"0123456789" not in database


def test_without_mlflow_the_flag_says_how_to_install_it_before_any_model(data, tmp_path, scripted_models, capsys,
                                                                        monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    for argv in (["ablate", str(data), "--output", str(tmp_path / "o")], ["tune", str(data)],
                 ["compile", str(data), "--save", str(tmp_path / "c.json")]):
        assert cli.main(argv + ["--mlflow"]) == 2
        assert capsys.readouterr().err.strip().endswith(
            "--mlflow needs MLflow, which is not installed: pip install 'spri-dspy[mlflow]'")
    assert scripted_models == {}  # no model was built


def test_a_data_file_taken_for_the_uri_is_refused_with_the_remedy(data, tmp_path, scripted_models, capsys):
    assert cli.main(["ablate", "--mlflow", str(data), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"--mlflow {data}: not a tracking URI" in err and "put --mlflow after DATA or write --mlflow=" in err
    assert scripted_models == {}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """MLflow's own tracking server (``mlflow server``, artefacts proxied over HTTP) on a free port."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "art")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_spri_ablate_tracks_to_an_mlflow_server_over_http(data, tmp_path, scripted_models, mlflow_server, capsys):
    out = tmp_path / "ablation"
    assert cli.main(["ablate", str(data), "--output", str(out), "--variants", "spri_no_seeds,vanilla",
                     "--max-rounds", "1", "--mlflow", mlflow_server]) == 0
    assert f"(to look: open {mlflow_server})" in capsys.readouterr().err
    parent, children = family(search(mlflow_server))
    assert set(children) == {"spri_no_seeds", "vanilla"}
    assert children["spri_no_seeds"].data.metrics["lm_calls_needed_per_input"] == 4
    assert {"report.html", "ablation.csv"} <= artefacts(mlflow_server, parent.info.run_id)
    assert not (out / "mlflow.db").exists()


def test_a_command_inside_an_active_run_becomes_its_child(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    experiment = mlflow.create_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="notebook", experiment_id=experiment) as outer:
        with Tracker(None, "ablate", folder=tmp_path) as tracker:
            with tracker.child("variant"):
                pass
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the user's run is active again
    runs = {run.info.run_name: run for run in search(uri)}
    assert runs["ablate"].data.tags["mlflow.parentRunId"] == outer.info.run_id
    assert runs["variant"].data.tags["mlflow.parentRunId"] == runs["ablate"].info.run_id


def test_spri_tune_refuses_to_resume_a_study_in_another_prompt_format(data, tmp_path, scripted_models, capsys):
    """The embedded default changed layout in December 2026: a study resumed across such a change is refused in one
    line naming the setting, rather than mixing trials that do not compare."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert cli.main(["tune", str(data), "--storage", storage, "--study", "s", "--n-trials", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["tune", str(data), "--storage", storage, "--study", "s", "--n-trials", "2",
                     "--adapter", "compact-last"]) == 2
    err = capsys.readouterr().err
    assert "--study: study 's' was run with another setup (adapter" in err and '"instruction": "last"' in err
    assert cli.main(["tune", str(data), "--storage", storage, "--study", "s", "--n-trials", "2"]) == 0
