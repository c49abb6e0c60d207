"""Compiling with DSPy's optimizers on a scripted task whose quality depends on demos or instructions."""

from __future__ import annotations

import dspy
import pytest

from spri_dspy import SPRI, Vanilla
from spri_dspy.optimizers import compile_program, evaluate

KEYWORD = "CAREFUL"


def quality(call):
    """The scripted model answers the even questions well by itself, and the others only when a demo it is
    shown holds a good answer of this very step, or when told to be careful. A raw data row, or a demo of
    another step, does not help."""
    number = int(call.inputs["query"].split()[-1]) if call.inputs["query"].split()[-1].isdigit() else 1
    good = number % 2 == 0 or any("good answer" in answer for answer in call.demo_answers) or KEYWORD in call.instructions
    return "good answer" if good else "bad answer"


def default(call):
    if any("instruction" in name for name in call.outputs):  # MIPROv2's proposer, GEPA's reflection
        return {name: f"Be {KEYWORD} and answer well." for name in call.outputs}
    return {name: 5 if name == "score" else f"{call.step} output" for name in call.outputs}


SCRIPT = {
    "responder": lambda call: {"response": quality(call)},
    "direct_responder": lambda call: {"response": quality(call)},
    "principle_critic": lambda call: {"feedback": "fine", "score": 5},
    "response_critic": lambda call: {"feedback": "fine", "score": 5},
}


def metric(example, prediction, trace=None):
    return float(prediction.response.startswith("good"))


def split():
    examples = [dspy.Example(query=f"question {i}", source="forum").with_inputs("query") for i in range(8)]
    return examples[:4], examples[4:]


@pytest.mark.parametrize("optimizer, program", [("bootstrap", SPRI), ("mipro", SPRI), ("gepa", Vanilla)])
def test_optimizer_improves_the_metric(scripted, optimizer, program):
    engine, lm = scripted(SCRIPT, default=default)
    trainset, devset = split()
    with dspy.context(lm=lm):
        compiled, report = compile_program(program(), trainset, devset, metric, optimizer=optimizer,
                                           max_metric_calls=40, num_trials=4, num_candidates=2)
        assert evaluate(compiled, devset, metric).score == report.after
    assert (report.before, report.after) == (0.5, 1.0)
    assert report.train_size == 4 and report.dev_size == 4
    for name, predictor in compiled.named_predictors():  # only demos of that step, never a data row
        signature = predictor.signature
        assert all(set(demo.keys()) - {"augmented"} <= {*signature.input_fields, *signature.output_fields}
                   and all(demo.get(out) is not None for out in signature.output_fields) for demo in predictor.demos)


def test_every_step_is_its_own_predictor(scripted):
    engine, lm = scripted(SCRIPT, default=default)
    trainset, devset = split()
    with dspy.context(lm=lm):
        compiled, _ = compile_program(SPRI(), trainset, devset, metric, optimizer="bootstrap", max_demos=2)
    demos = {name: len(p.demos) for name, p in compiled.named_predictors()}
    assert set(demos) == {f"{s}.predict" for s in ("principle_generator", "principle_critic", "principle_refiner",
                                                   "responder", "response_critic", "response_refiner")}
    assert demos["responder.predict"] == 2
    responder = compiled.responder.predict.demos
    assert all(d["augmented"] and d["response"] == "good answer" and d["principles"] for d in responder)


def test_compiled_program_saves_and_loads_with_identical_behaviour(scripted, tmp_path):
    engine, lm = scripted(SCRIPT, default=default)
    trainset, devset = split()
    with dspy.context(lm=lm):
        compiled, _ = compile_program(SPRI(), trainset, devset, metric, optimizer="bootstrap")
        compiled.save(tmp_path / "program.json")
        fresh = SPRI()
        fresh.load(tmp_path / "program.json")
        assert evaluate(fresh, devset, metric).score == 1.0
        assert fresh(query="q").toDict() == compiled(query="q").toDict()


def test_bad_optimizer_and_empty_split():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        compile_program(Vanilla(), [dspy.Example(query="q")], [dspy.Example(query="q")], metric, optimizer="adam")
    with pytest.raises(ValueError, match="non-empty train split"):
        compile_program(Vanilla(), [], [dspy.Example(query="q")], metric)


def test_compiled_program_behaves_the_same_in_a_fresh_process(scripted, tmp_path):
    import json
    import subprocess
    import sys

    engine, lm = scripted(SCRIPT, default=default)
    trainset, devset = split()
    with dspy.context(lm=lm):
        compiled, _ = compile_program(SPRI(), trainset, devset, metric, optimizer="bootstrap")
        compiled.save(tmp_path / "program.json")
        here = compiled(query="fresh question").toDict()
    code = (
        "import json, dspy\n"
        "from spri_dspy import SPRI\n"
        "from spri_dspy.testing import ScriptedEngine, scripted_lm\n"
        "from tests.optimizers.test_compile import SCRIPT, default\n"
        f"program = SPRI(); program.load({str(tmp_path / 'program.json')!r})\n"
        "with dspy.context(lm=scripted_lm(ScriptedEngine(SCRIPT, default=default))):\n"
        "    print(json.dumps(program(query='fresh question').toDict()))\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env={**__import__("os").environ, "PYTHONPATH": root + "/tests"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(here))


def test_the_compiled_program_keeps_its_critic_lm(scripted):
    """BootstrapFewShot resets the student's steps, dropping critic_lm: the 'after' figure ran critics on the base LM."""
    engine, lm = scripted(SCRIPT, default=default)
    critic_engine, critic = scripted(SCRIPT, default=default, model="scripted/critic")
    trainset, devset = split()
    with dspy.context(lm=lm):
        compiled, _ = compile_program(SPRI(critic_lm=critic, max_rounds=1), trainset, devset, metric)
    assert compiled.principle_critic.predict.lm is critic and compiled.response_critic.predict.lm is critic
    assert compiled.responder.predict.lm is None
    assert "principle_critic" not in engine.steps() and critic_engine.steps().count("principle_critic") >= 8


def test_compile_reports_progress_before_during_and_after(scripted):
    engine, lm = scripted(SCRIPT, default=default)
    trainset, devset = split()
    seen = []
    with dspy.context(lm=lm):
        compile_program(SPRI(), trainset, devset, metric, optimizer="bootstrap", max_demos=1,
                        progress=lambda what, done, total: seen.append((what, done, total)))
    n = len(devset)
    assert seen == ([("dev, before", i, n) for i in range(1, n + 1)] + [("compiling (bootstrap)", 0, 1),
                    ("compiling (bootstrap)", 1, 1)] + [("dev, after", i, n) for i in range(1, n + 1)])


def test_the_cli_draws_the_progress_on_stderr():
    import io

    from spri_dspy.runtime.progress import WorkProgress

    stream = io.StringIO()
    progress = WorkProgress("spri ablate", stream)
    for done in (1, 2, 3):
        progress("variant 1/2 spri", done, 3)
    assert "spri ablate variant 1/2 spri" in stream.getvalue() and "3/3" in stream.getvalue()
    assert progress._bars == {}  # closed when done
