"""Optuna tuning of SPRI's settings on SQLite: multi-objective front, resume, pruning."""

from __future__ import annotations

import dspy
import optuna
import pytest

from spri_dspy.optimizers import tune


def script():
    """Critics score unrefined texts 3 and refined ones 5; a response is good once refined."""

    def critic(call):
        text = list(call.inputs.values())[-1]
        return {"feedback": "refine it", "score": 5 if text.endswith("+") else 3}

    return {
        "principle_critic": critic,
        "response_critic": critic,
        "principle_refiner": lambda call: {"principles": call.inputs["draft_principles"] + "+"},
        "response_refiner": lambda call: {"response": call.inputs["draft_response"] + "+"},
    }


def metric(example, prediction, trace=None):
    return float(prediction.response.endswith("+"))


DEVSET = [dspy.Example(query=f"q{i}").with_inputs("query") for i in range(4)]


def test_pareto_front_of_quality_and_cost_and_resume(scripted, tmp_path):
    engine, lm = scripted(script())
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with dspy.context(lm=lm):
        first = tune(DEVSET, metric, storage=storage, study_name="s", n_trials=6)
        assert len(first.study.trials) == 6
        again = tune(DEVSET, metric, storage=storage, study_name="s", n_trials=6)
        assert len(again.study.trials) == 6  # n_trials is the study's budget: already spent
        second = tune(DEVSET, metric, storage=storage, study_name="s", n_trials=9)
    assert len(second.study.trials) == 9
    params = [tuple(sorted(t.params.items())) for t in second.study.trials]
    assert len(set(params)) == 9  # the resumed study explores new settings
    loaded = optuna.load_study(study_name="s", storage=storage)
    assert len(loaded.trials) == 9 and loaded.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                                             optuna.study.StudyDirection.MINIMIZE]
    for trial in loaded.trials:
        refines = trial.params["threshold"] >= 4 and trial.params["max_rounds"] >= 2
        assert trial.values[0] == (1.0 if refines else 0.0)
        assert trial.values[1] == trial.user_attrs["lm_calls_per_input"] == (8 if refines else 4)
    front = second.best
    assert front and all(set(p) == {"trial", "metric", "lm_calls_per_input", "params"} for p in front)
    assert {(p["metric"], p["lm_calls_per_input"]) for p in front} <= {(1.0, 8), (0.0, 4)}


def test_single_objective_prunes_behind_the_median(scripted, tmp_path):
    engine, lm = scripted(script())
    devset = DEVSET * 2
    with dspy.context(lm=lm):
        result = tune(devset, metric, storage=f"sqlite:///{tmp_path / 's.db'}", study_name="p", n_trials=12,
                      cost=False)
    states = [t.state for t in result.study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    assert result.best[0]["metric"] == 1.0


def test_empty_devset():
    with pytest.raises(ValueError, match="non-empty dev set"):
        tune([], metric)


def test_the_word_limit_is_tuned_and_reaches_the_prompts(scripted, tmp_path):
    engine, lm = scripted(script())
    with dspy.context(lm=lm):
        result = tune(DEVSET[:1], metric, storage=f"sqlite:///{tmp_path / 'w.db'}", study_name="w", n_trials=6)
    limits = [t.params["max_words"] for t in result.study.trials]
    assert set(limits) <= {64, 128, 256, None} and len(set(limits)) > 1
    writers = [c for c in engine.calls if c.step == "principle_generator"]
    assert len(writers) == 6
    for trial, call in zip(result.study.trials, writers):
        limit = trial.params["max_words"]
        said = " ".join(call.instructions.split())
        assert (f"Use at most {limit} words." in said) if limit else ("at most" not in said)


def test_a_failed_trial_is_recorded_and_the_study_goes_on(scripted, tmp_path):
    """One unparseable answer used to end the whole study with a traceback."""
    from spri_dspy.optimizers.tune import TrialFailed

    answers = script()
    fail = {"on": True}
    answers["responder"] = lambda call: "not json at all" if fail["on"] and call.inputs["query"] == "q1" else {
        "response": "r"}
    engine, lm = scripted(answers)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        with pytest.raises(TrialFailed, match="every one of the 2 trials failed; the first: 1 of 4 examples failed 3 times"):
            tune(DEVSET, metric, storage=storage, study_name="f", n_trials=2)
        assert sum(c.step == "responder" and c.inputs["query"] == "q1" for c in engine.calls) == 2 * 3
        fail["on"] = False  # the faulty server recovers: the same study goes on
        result = tune(DEVSET, metric, storage=storage, study_name="f", n_trials=2)
    states = [t.state for t in result.study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 2 + [optuna.trial.TrialState.COMPLETE] * 2
    assert "AdapterParseError" in result.study.trials[0].user_attrs["error"]
    assert result.best and all(row["trial"] in (2, 3) for row in result.best)
    q1 = [c for c in engine.calls if c.step == "responder" and c.inputs["query"] == "q1"]
    assert len(q1) == 2 * 3 + 2  # tried 3 times in each failed trial, once in each later one


def test_a_warm_cache_does_not_move_the_cost_objective(tmp_path):
    """A new study repeating earlier settings used to score them at 0.00 calls per input."""
    import uuid

    from spri_dspy.testing import ScriptedEngine

    engine = ScriptedEngine(script())
    lm = dspy.LM(f"scripted/{uuid.uuid4().hex[:8]}", engine=engine, cache=True)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with dspy.context(lm=lm):
        cold = tune(DEVSET, metric, storage=storage, study_name="cold", n_trials=4)
        calls = len(engine.calls)
        warm = tune(DEVSET, metric, storage=storage, study_name="warm", n_trials=4)  # the same sampler seed
    assert len(engine.calls) == calls
    assert [t.values for t in warm.study.trials] == [t.values for t in cold.study.trials]
    assert all(t.user_attrs["lm_calls_made_per_input"] == 0 for t in warm.study.trials)


def test_a_waiting_retry_this_worker_runs_counts_as_its_own(tmp_path):
    """A WAITING trial (a dead worker's trial, queued for retry) that fails here is this worker's failure: the
    worker stops at its budget of failures instead of starting another trial on top of it."""
    from spri_dspy.optimizers.tune import TrialFailed, open_study

    class Broken(dspy.Module):
        def forward(self, query):
            raise RuntimeError("the server is down")

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(storage, "s").enqueue_trial({"x": 1.0})
    with pytest.raises(TrialFailed, match="every one of the 1 trials failed"):
        tune(DEVSET, metric, storage=storage, study_name="s", n_trials=1, retries=0,
             build=lambda trial: (trial.suggest_float("x", 0, 2), Broken())[1])
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [(t.number, t.state.name, t.params) for t in trials] == [(0, "FAIL", {"x": 1.0})]


# --- The budget and the heartbeat: each test fails when its one line is changed (issue 27's mutants) -------------


def _study_holding(states):
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for state in states:
        if state == TrialState.WAITING:
            study.enqueue_trial({})
        else:
            study.add_trial(create_trial(values=[1.0, 1.0]))
    number = study._storage.create_new_trial(study._study_id)  # the trial a worker starts now
    return optuna.Trial(study, number)


@pytest.mark.parametrize("held, budget, pruned", [(["COMPLETE", "COMPLETE"], 2, True), (["COMPLETE"], 2, False),
                                                  (["COMPLETE", "WAITING"], 2, True)])
def test_a_trial_past_the_budget_is_pruned_and_says_so(held, budget, pruned):
    """Earlier trials that hold the budget (complete, running, or waiting to be retried) leave no room: the
    trial is pruned before any LM call, with the reason in its 'budget' attribute."""
    from optuna.trial import TrialState

    from spri_dspy.optimizers.tune import _objective

    trial = _study_holding([TrialState[name] for name in held])
    built = []
    objective = _objective([], lambda *a: 1.0, lambda t: built.append(t) or (_ for _ in ()).throw(RuntimeError("built")),
                           cost=True, report_every=1, retries=0, budget=budget)
    if pruned:
        with pytest.raises(optuna.TrialPruned):
            objective(trial)
        assert built == [] and trial.user_attrs["budget"].startswith(f"spent: {len(held)} earlier trials")
    else:
        with pytest.raises(RuntimeError, match="built"):
            objective(trial)
        assert "budget" not in trial.user_attrs


def test_the_heartbeat_reaches_the_storage(tmp_path, monkeypatch):
    import importlib

    tuning = importlib.import_module("spri_dspy.optimizers.tune")  # the module (the package exports its function)

    study = tuning.open_study(f"sqlite:///{tmp_path / 'beat.db'}", "beat", heartbeat=7)
    assert (study._storage.get_heartbeat_interval(), study._storage._backend.grace_period) == (7, 14)
    seen = {}

    def opened(storage, name, *, cost, heartbeat):
        seen["heartbeat"] = heartbeat
        raise RuntimeError("stop here")

    monkeypatch.setattr(tuning, "open_study", opened)
    with pytest.raises(RuntimeError, match="stop here"):
        tuning.tune([dspy.Example(query="q").with_inputs("query")], metric, storage=f"sqlite:///{tmp_path / 'b.db'}",
                    n_trials=1, heartbeat=11)
    assert seen == {"heartbeat": 11}


def test_tune_reports_each_trials_progress(scripted, tmp_path):
    engine, lm = scripted(script())
    devset = [dspy.Example(query=f"q{i}").with_inputs("query") for i in range(2)]
    seen = []
    with dspy.context(lm=lm):
        tune(devset, metric, storage=f"sqlite:///{tmp_path / 'p.db'}", n_trials=2,
             progress=lambda what, done, total: seen.append((what, done, total)))
    assert {what for what, _, _ in seen} == {"trial 0", "trial 1"} and ("trial 1", 2, 2) in seen


def test_a_study_records_its_models_and_prompt_format_and_refuses_another(scripted, tmp_path):
    """Trials of one study must compare: a resume with another model or prompt format is refused before any trial,
    naming what differs; a study from before the setup was recorded gets it on its next run."""
    from spri_dspy import CompactJSONAdapter
    from spri_dspy.optimizers.tune import SETUP, StudyMismatchError

    engine, lm = scripted(script())
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        tune(DEVSET, metric, storage=storage, study_name="s", n_trials=2)
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[SETUP] == {"lm": lm.model, "critic_lm": None,
                                       "adapter": {"class": "CompactJSONAdapter", "instruction": "first"}}
    calls = len(engine.calls)
    with dspy.context(lm=lm, adapter=CompactJSONAdapter(instruction="last")):
        with pytest.raises(StudyMismatchError, match=r'adapter \{"class": "CompactJSONAdapter", "instruction": '
                                                     r'"first"\} -> \{"class": "CompactJSONAdapter", "instruction": "last"\}'):
            tune(DEVSET, metric, storage=storage, study_name="s", n_trials=4)
    _, other = scripted(script(), model="scripted/other")
    with dspy.context(lm=other, adapter=CompactJSONAdapter()), pytest.raises(StudyMismatchError, match="lm "):
        tune(DEVSET, metric, storage=storage, study_name="s", n_trials=4)
    assert len(engine.calls) == calls and len(optuna.load_study(study_name="s", storage=storage).trials) == 2
    with dspy.context(lm=lm, adapter=CompactJSONAdapter()):
        assert len(tune(DEVSET, metric, storage=storage, study_name="s", n_trials=3).study.trials) == 3

    old = optuna.create_study(storage=storage, study_name="old", directions=["maximize", "minimize"])
    assert SETUP not in old.user_attrs  # as a study from before the setup was recorded
    with dspy.context(lm=lm):
        tune(DEVSET, metric, storage=storage, study_name="old", n_trials=1)
    assert optuna.load_study(study_name="old", storage=storage).user_attrs[SETUP]["adapter"] is None
