"""Many spri tune workers on one study: a real PostgreSQL, a worker killed mid-trial, SQLite's one-worker rule,
and the dashboard on the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from spri_dspy import cli
from spri_dspy.cli import build as cli_build
from spri_dspy.testing import FakeOpenAIServer

BUDGET = 9


@pytest.fixture
def data(reappraisal_rows):
    return reappraisal_rows(3)


def _worker(data, server, storage, *extra):
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    return subprocess.Popen([sys.executable, "-m", "spri_dspy.cli", "tune", str(data), "--lm", "openai/tune-model",
                             "--api-base", server.url, "--storage", storage, "--study", "shared", "--n-trials",
                             str(BUDGET), "--max-tokens", "64", "--no-cache", "--heartbeat", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _trials(storage):
    try:
        return optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def test_three_workers_one_killed_mid_trial_end_with_exactly_the_budget(data, postgres_url, tmp_path):
    """Started together on a fresh database (the schema race), one killed with SIGKILL while it runs a trial:
    the survivors fail that trial by its missing heartbeat, retry it, and stop at exactly BUDGET complete."""
    with FakeOpenAIServer(latency=0.1, critic_scores=(2, 5)) as server:
        workers = [_worker(data, server, postgres_url) for _ in range(3)]
        victim, deadline = workers[0], time.monotonic() + 90
        while time.monotonic() < deadline:  # until the victim is inside a trial of its own
            running = [t for t in _trials(postgres_url) if t.state == optuna.trial.TrialState.RUNNING
                       and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
            if running:
                break
            assert victim.poll() is None, victim.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("the victim never started a trial")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        outcomes = [w.communicate(timeout=180) for w in workers[1:]]
    assert [w.returncode for w in workers] == [-signal.SIGKILL, 0, 0], [err for _, err in outcomes]
    trials = _trials(postgres_url)
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == BUDGET
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    (killed,) = [t for t in trials if t.number == running[0].number]
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert [t.state for t in retries] == [optuna.trial.TrialState.COMPLETE]
    assert killed.params.items() <= retries[0].params.items()  # what it had suggested before it died
    # every trial beyond the budget was one that found it claimed and did not run
    assert all("budget" in t.user_attrs for t in trials if t.state == optuna.trial.TrialState.PRUNED)
    assert len(trials) == BUDGET + 1 + sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    # the shared study gives what a single worker's does: the Pareto front and the plots
    from spri_dspy.experiments.ablate import plot_study
    from spri_dspy.optimizers.tune import pareto_front

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    assert pareto_front(study) and [p.name for p in plot_study(study, tmp_path / "plots")] == [
        "pareto_front.png", "param_importances.png"]
    for out, _ in outcomes:
        assert "; best:\n  trial " in out
        assert f": {BUDGET} complete trials of {len(trials)}; 1 failed (e.g. trial {killed.number}: its worker " \
               "stopped sending heartbeats; retried)" in out


def test_a_second_worker_on_one_sqlite_file_is_refused(data, tmp_path, capsys, monkeypatch):
    from spri_dspy.optimizers.tune import one_sqlite_worker

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    monkeypatch.setattr(cli_build, "make_lm", lambda *a, **k: pytest.fail("no LM before the storage is checked"))
    with one_sqlite_worker(storage):
        assert cli.main(["tune", str(data), "--storage", storage]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (f"spri: error: --storage: {storage} is in use by another tuning process (pid {os.getpid()}); an "
                   "SQLite file serves one worker at a time: to tune with several, give every worker the same "
                   "PostgreSQL URL as --storage (postgresql://HOST/DB) and the same --study")


def test_the_dashboard_serves_the_study(tmp_path):
    """optuna-dashboard, started as the README and spri tune say, lists the study over HTTP on localhost."""
    import shutil
    import socket

    dashboard = shutil.which("optuna-dashboard") or os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    if not os.path.exists(dashboard):
        pytest.skip("optuna-dashboard is in the test extra")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="watched", directions=["maximize", "minimize"]).optimize(
        lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([dashboard, storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the dashboard did not start"
                time.sleep(0.3)
        assert [(s["study_name"], len(s["directions"])) for s in studies] == [("watched", 2)]
    finally:
        server.terminate()
        server.wait(timeout=10)
