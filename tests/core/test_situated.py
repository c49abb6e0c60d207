"""Situated: SPRI around a user's own module, on the scripted engine (exact calls, order, types, trace)."""

from __future__ import annotations

import asyncio
from typing import Literal

import dspy
import pytest

from spri_dspy import Situated, load_program, save_program
from spri_dspy.testing import ScriptedEngine, scripted_lm, step_signatures


class Classify(dspy.Signature):
    """Classify the sentiment of a product review."""

    review: str = dspy.InputField(desc="A customer's review.")
    label: Literal["positive", "negative", "mixed"] = dspy.OutputField()
    stars: int = dspy.OutputField(desc="1 to 5")
    reasons: list[str] = dspy.OutputField(desc="What the label rests on.")


class DraftThenPolish(dspy.Module):
    """A user's two-predictor module: a draft answer, then a polished one."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.polish = dspy.Predict("question, draft -> answer")

    def forward(self, question):
        draft = self.draft(question=question).draft
        return self.polish(question=question, draft=draft)


def critic(scores, prefix):
    numbers = iter(scores)
    return lambda call: {"feedback": f"{prefix} feedback on {call.inputs.get('outputs') or call.inputs.get('principles')}",
                         "score": next(numbers)}


def engine_for(program, script):
    engine = ScriptedEngine(script, step_signatures=step_signatures(program))
    return engine, scripted_lm(engine)


def test_a_string_signature_runs_both_stages_in_order():
    program = Situated("question -> answer", max_rounds=3)
    engine, lm = engine_for(program, {
        "principle_writer": lambda call: {"principles": "1. Be exact."},
        "principle_critic": critic([2, 5], "principles"),
        "principle_refiner": lambda call: {"principles": call.inputs["draft_principles"] + " 2. Cite."},
        "module": lambda call: {"answer": "Paris"},
        "output_critic": critic([3, 4], "outputs"),
        "output_refiner": lambda call: {"answer": "Paris, the capital of France."},
    })
    with dspy.context(lm=lm):
        prediction = program(question="Capital of France?")
    assert engine.steps() == ["principle_writer", "principle_critic", "principle_refiner", "principle_critic",
                              "module", "output_critic", "output_refiner", "output_critic"]
    assert prediction.answer == "Paris, the capital of France."
    assert prediction.principles == "1. Be exact. 2. Cite."
    assert [(r["stage"], r["round"], r["score"], r["accepted"]) for r in prediction.trace] == [
        ("principles", 1, 2, False), ("principles", 2, 5, True), ("outputs", 1, 3, False), ("outputs", 2, 4, True)]
    assert prediction.trace[2]["text"] == "answer: Paris"
    module_call = engine.calls[4]  # the wrapped module reads the final principles as an input of its own
    assert module_call.inputs == {"principles": "1. Be exact. 2. Cite.", "question": "Capital of France?"}
    critic_call = engine.calls[5]  # the critic sees the input, the principles and the outputs
    assert critic_call.inputs == {"question": "Capital of France?", "principles": "1. Be exact. 2. Cite.",
                                  "outputs": "answer: Paris"}
    assert "The task: Given the fields `question`, produce the fields `answer`." in engine.calls[0].instructions


def test_typed_outputs_are_refined_as_the_signature_types_them():
    program = Situated(Classify, max_rounds=2)
    engine, lm = engine_for(program, {
        "principle_critic": critic([5], "principles"),
        "module": lambda call: {"label": "positive", "stars": 2, "reasons": ["tasty"]},
        "output_critic": critic([1, 5], "outputs"),
        "output_refiner": lambda call: {"label": "mixed", "stars": 3, "reasons": ["tasty", "slow service"]},
    })
    with dspy.context(lm=lm):
        prediction = program(review="Tasty food, but we waited an hour.")
    assert (prediction.label, prediction.stars, prediction.reasons) == ("mixed", 3, ["tasty", "slow service"])
    assert type(prediction.stars) is int and isinstance(prediction.reasons, list)
    assert prediction.trace[1]["text"] == 'label: positive\nstars: 2\nreasons: ["tasty"]'
    refiner = program.output_refiner.predict.signature
    assert {name: field.annotation for name, field in refiner.output_fields.items()} == {
        "label": Literal["positive", "negative", "mixed"], "stars": int, "reasons": list[str]}


def test_a_refined_label_outside_its_set_is_refused():
    program = Situated(Classify, max_rounds=2)
    _, lm = engine_for(program, {
        "principle_critic": critic([5], "principles"),
        "module": lambda call: {"label": "positive", "stars": 2, "reasons": []},
        "output_critic": critic([1, 5], "outputs"),
        "output_refiner": lambda call: {"label": "ecstatic", "stars": 3, "reasons": []},
    })
    with dspy.context(lm=lm), pytest.raises(Exception, match="label"):
        program(review="Fine.")


def test_a_chain_of_thought_is_wrapped_without_its_reasoning_as_an_output():
    program = Situated(dspy.ChainOfThought(Classify), max_rounds=1)
    engine, lm = engine_for(program, {
        "module": lambda call: {"reasoning": "It praises the food.", "label": "positive", "stars": 4, "reasons": ["food"]},
    })
    with dspy.context(lm=lm):
        prediction = program(review="Lovely food.")
    assert list(program.task.output_fields) == ["label", "stars", "reasons"]
    assert engine.steps() == ["principle_writer", "principle_critic", "module", "output_critic"]
    assert prediction.label == "positive" and "reasoning" not in engine.calls[3].inputs["outputs"]


def test_a_two_predictor_module_gets_the_principles_in_each_predictor():
    program = Situated(DraftThenPolish(), max_rounds=1)
    engine, lm = engine_for(program, {
        "principle_writer": lambda call: {"principles": "1. Short."},
        "module.draft": lambda call: {"draft": "a draft"},
        "module.polish": lambda call: {"answer": "polished"},
    })
    with dspy.context(lm=lm):
        prediction = program(question="Why is the sea salty?")
    assert engine.steps() == ["principle_writer", "principle_critic", "module.draft", "module.polish", "output_critic"]
    assert [engine.calls[i].inputs["principles"] for i in (2, 3)] == ["1. Short.", "1. Short."]
    assert list(program.task.input_fields) == ["question"] and list(program.task.output_fields) == ["answer"]
    assert prediction.answer == "polished"


def test_the_users_module_is_not_changed():
    mine = dspy.ChainOfThought("question -> answer")
    Situated(mine)
    assert "principles" not in mine.predict.signature.input_fields and type(mine.predict) is dspy.Predict


def test_the_critic_lm_runs_both_critics_and_usage_counts_the_module():
    program = Situated("question -> answer", max_rounds=1)
    base_engine, base = engine_for(program, {})
    critic_engine = ScriptedEngine({}, step_signatures=step_signatures(program))
    program.place_critics(scripted_lm(critic_engine, "scripted/critic"))
    from spri_dspy.runtime.usage import StepUsage

    usage = StepUsage()
    with dspy.context(lm=base), usage.context(program):
        from spri_dspy.runtime.usage import name_steps

        name_steps(program)
        program(question="q")
    assert base_engine.steps() == ["principle_writer", "module"]
    assert critic_engine.steps() == ["principle_critic", "output_critic"]
    assert {(step, stage) for step, stage, _ in usage.by_step} == {
        ("principle_writer", "principles"), ("principle_critic", "principles"), ("module", "outputs"),
        ("output_critic", "outputs")}


def test_acall_makes_the_same_calls_and_returns_the_same_prediction():
    def script():
        return {"principle_critic": critic([2, 5], "p"), "output_critic": critic([2, 5], "o"),
                "module": lambda call: {"label": "negative", "stars": 1, "reasons": ["cold"]},
                "output_refiner": lambda call: {"label": "mixed", "stars": 2, "reasons": ["cold", "cheap"]}}

    program = Situated(Classify, max_rounds=2)
    sync_engine, sync_lm = engine_for(program, script())
    async_engine, async_lm = engine_for(program, script())
    with dspy.context(lm=sync_lm):
        expected = program(review="Cold but cheap.")
    with dspy.context(lm=async_lm):
        got = asyncio.run(program.acall(review="Cold but cheap."))
    assert async_engine.steps() == sync_engine.steps()
    assert [c.inputs for c in async_engine.calls] == [c.inputs for c in sync_engine.calls]
    assert dict(got.items()) == dict(expected.items())


def test_save_and_load_round_trip(tmp_path):
    program = Situated(Classify, threshold=3, max_rounds=2, max_words=40)
    program.output_critic.predict.signature = program.output_critic.predict.signature.with_instructions("Be strict.")
    program.module.demos = [dspy.Example(review="Great.", principles="1. x", label="positive", stars=5, reasons=[])]
    path = tmp_path / "situated.json"
    save_program(program, path)  # a Signature class is not in the file: it is given again at load
    loaded = load_program(path, module=Classify)
    assert loaded.output_critic.predict.signature.instructions == "Be strict." and loaded.module.demos[0]["stars"] == 5
    program = Situated("review -> label", threshold=3, max_rounds=2, max_words=40)
    program.module.demos = [dspy.Example(review="Great.", principles="1. x", label="positive")]
    save_program(program, path)
    loaded = load_program(path)
    assert isinstance(loaded, Situated) and (loaded.threshold, loaded.max_rounds, loaded.max_words) == (3, 2, 40)
    assert loaded.module.demos[0]["label"] == "positive" and "principles" in loaded.module.signature.input_fields
    mine = dspy.ChainOfThought(Classify)
    custom = Situated(mine, max_rounds=2)
    save_program(custom, tmp_path / "custom.json")
    with pytest.raises(ValueError, match="load_program\\(path, module=YourModule\\(\\)\\)"):
        load_program(tmp_path / "custom.json")
    again = load_program(tmp_path / "custom.json", module=dspy.ChainOfThought(Classify))
    assert again.max_rounds == 2 and list(again.task.output_fields) == ["label", "stars", "reasons"]


def test_bootstrap_compile_gives_demos_to_the_right_steps():
    from dspy.teleprompt import BootstrapFewShot

    program = Situated("question -> answer", max_rounds=1)
    _, lm = engine_for(program, {"module": lambda call: {"answer": f"answer to {call.inputs['question']}"}})
    trainset = [dspy.Example(question=f"q{i}", answer=f"answer to q{i}").with_inputs("question") for i in range(3)]
    with dspy.context(lm=lm):
        compiled = BootstrapFewShot(metric=lambda example, prediction, trace=None: example.answer == prediction.answer,
                                    max_bootstrapped_demos=2, max_labeled_demos=0).compile(program, trainset=trainset)
    demos = {name: len(predictor.demos) for name, predictor in compiled.named_predictors()}
    assert demos["module"] == 2 and demos["principle_writer.predict"] == 2 and demos["output_critic.predict"] == 2
    assert all("principles" in demo for demo in compiled.module.demos)  # demos hold the principles they were made under


@pytest.mark.parametrize("field", ["principles", "feedback"])
def test_a_field_named_like_situateds_own_is_refused(field):
    with pytest.raises(ValueError, match=f"the task's field '{field}'"):
        Situated(f"question -> {field}")


def test_a_missing_input_is_named():
    program = Situated("question, context -> answer")
    _, lm = engine_for(program, {})
    with dspy.context(lm=lm), pytest.raises(ValueError, match="needs the input field 'context'"):
        program(question="q")


def test_seeds_become_the_principle_writers_demos():
    seeds = [{"question": "What is 2+2?", "principles": "1. Give the number."}]
    program = Situated("question -> answer", seeds=seeds, max_rounds=1)
    engine, lm = engine_for(program, {})
    with dspy.context(lm=lm):
        program(question="What is 3+3?")
    assert engine.calls[0].step == "principle_writer" and engine.calls[0].demos == 1
    with pytest.raises(ValueError, match="seed 1 has no 'principles'"):
        Situated("question -> answer", seeds=[{"question": "x"}])


# --- spri generate --signature / --program FILE.py:NAME -----------------------------------------------------------


@pytest.fixture
def scripted_models(monkeypatch):
    """Every --lm/--critic-lm of the CLI answered by one scripted engine (its defaults: texts naming the step,
    critics scoring 5); the engine is returned to read the calls."""
    from spri_dspy.cli import build as cli_build

    engine = ScriptedEngine()
    monkeypatch.setattr(cli_build, "make_lm", lambda model, **options: scripted_lm(engine, f"scripted/{model}"))
    return engine


def _qa_rows(tmp_path):
    import json

    path = tmp_path / "qa.jsonl"
    rows = [{"id": f"r{i}", "question": f"question {i}", "context": f"context {i}"} for i in range(3)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_generate_with_a_signature_runs_situated_over_the_columns_and_resumes(tmp_path, scripted_models, capsys):
    import json

    from spri_dspy import cli

    source = _qa_rows(tmp_path)
    argv = ["generate", str(source), str(tmp_path / "out"), "--signature", "question, context -> answer",
            "--no-progress", "--max-rounds", "2"]
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["r0", "r1", "r2"]
    output = records[0]["output"]
    assert set(output) == {"answer", "principles", "trace"} and [r["stage"] for r in output["trace"]] == [
        "principles", "outputs"]
    module_calls = [c for c in scripted_models.calls if c.inputs.get("principles") and "context" in c.inputs
                    and "outputs" not in c.inputs and "draft_outputs" not in c.inputs]
    assert {c.inputs["context"] for c in module_calls} == {"context 0", "context 1", "context 2"}
    identity = json.loads((tmp_path / "out" / "run.json").read_text())
    assert identity["program"] == "Situated" and identity["fields"] == {"question": "question", "context": "context"}
    calls = len(scripted_models.calls)
    assert cli.main(argv) == 0 and len(scripted_models.calls) == calls  # a rerun resumes: nothing left to do
    assert "0 done, 0 failed, 3 already done" in capsys.readouterr().out


def test_generate_with_a_module_of_your_own(tmp_path, scripted_models):
    import json

    from spri_dspy import cli

    log = tmp_path / "loaded.log"
    (tmp_path / "mine.py").write_text(f"import dspy\nopen({str(log)!r}, 'a').write('loaded\\n')\n"
                                      "qa = dspy.ChainOfThought('question, context -> answer')\n")
    status = cli.main(["generate", str(_qa_rows(tmp_path)), str(tmp_path / "out"), "--program",
                       f"{tmp_path / 'mine.py'}:qa", "--no-progress", "--max-rounds", "1"])
    assert status == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all("answer" in r["output"] for r in records)
    assert log.read_text() == "loaded\n"  # the user's file runs once


@pytest.mark.parametrize("argv, message", [
    (["--signature", "question -> "], "--signature question -> : the task 'question -> ' needs at least one input"),
    (["--program", "nowhere.py:qa"], "--program nowhere.py:qa: nowhere.py: no such file"),
    (["--signature", "q -> a", "--goal-field", "g"], "--goal-field is for SPRI's query/goal inputs"),
    (["--signature", "question -> answer", "--program", "vanilla"], "--signature and --program both choose"),
])
def test_situated_cli_errors_are_one_line(tmp_path, capsys, scripted_models, argv, message):
    from spri_dspy import cli

    assert cli.main(["generate", str(_qa_rows(tmp_path)), str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spri: error: {message}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.embedded
def test_situated_on_the_embedded_model():
    """The real embedded model through both stages: typed outputs in their set, every text written."""
    from spri_dspy import CompactJSONAdapter, embedded_lm

    program = Situated(Classify, max_rounds=2)
    with dspy.context(lm=embedded_lm(max_tokens=256), adapter=CompactJSONAdapter()):
        prediction = program(review="The battery lasts two days, but the screen scratches easily.")
    assert prediction.label in ("positive", "negative", "mixed") and type(prediction.stars) is int
    assert isinstance(prediction.reasons, list) and prediction.principles.strip()
    assert [r["stage"] for r in prediction.trace][0] == "principles" and "outputs" in [r["stage"] for r in prediction.trace]
    assert all(r["score"] in (1, 2, 3, 4, 5) and r["feedback"].strip() for r in prediction.trace)
