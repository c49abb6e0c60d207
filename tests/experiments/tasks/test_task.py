"""The task registry: each task one object that the CLI, compile, tune and ablate read."""

from __future__ import annotations

import json

import dspy

from spri_dspy import cli
from spri_dspy.cli import build as cli_build
from spri_dspy.experiments.tasks import TASKS, Task
from spri_dspy.experiments.tasks.task import response_variants


def test_the_tasks_are_registered():
    assert {name: (task.kind, task.metrics[0]) for name, task in TASKS.items()} == {
        "reappraisal": ("response", "alignment"), "instructions": ("response", "adherence"),
        "judgements": ("judge", "agreement"), "preferences": ("pairwise", "preference-accuracy")}
    assert TASKS["reappraisal"].framing and TASKS["reappraisal"].has_goal and TASKS["judgements"].variants is None


def test_response_grid_follows_the_settings():
    assert list(response_variants({"max_words": None})) == ["spri_no_seeds", "vanilla", "self_refine"]
    grid = TASKS["reappraisal"].variants({"max_words": 128, "seeds": "s.jsonl"})
    assert list(grid) == ["spri_no_seeds", "vanilla", "self_refine", "spri_no_word_limit", "spri_seeds",
                          "seed_principles", "spri_seed_per_dimension", "oracle"]
    assert grid["seed_principles"].settings == {"seed_match": "goal"}
    example = dspy.Example(query="q", goal="g", constitution="c").with_inputs("query", "goal")
    assert grid["oracle"].inputs(example) == {"query": "q", "goal": "g", "principles": "c"}
    program = grid["spri_no_word_limit"].build("response", {"threshold": 2, "max_words": 128, "seeds": None})
    assert (type(program).__name__, program.threshold, program.max_words) == ("SPRI", 2, None)


def test_a_new_task_is_one_object(tmp_path, monkeypatch, scripted, capsys):
    """Registering a Task is all `spri ablate --task NAME` needs."""
    rows = [{"question": f"q{i}"} for i in range(3)]
    (tmp_path / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    toy = Task(name="toy", kind="response", metrics=("adherence",), framing="Answer in one line.",
               load=lambda data, field=None: [dspy.Example(query=json.loads(line)["question"]).with_inputs("query")
                                              for line in open(data)],
               variants=lambda settings: {"plain": response_variants(settings)["vanilla"]})
    monkeypatch.setitem(TASKS, "toy", toy)
    engines = {}

    def make_lm(model, **options):
        engines[model], lm = scripted({"adherence_judge": lambda call: {"rationale": "r", "score": 4}},
                                      model=f"scripted/{model}")
        return lm

    monkeypatch.setattr(cli_build, "make_lm", make_lm)
    assert cli.main(["ablate", str(tmp_path / "toy.jsonl"), "--task", "toy", "--output", str(tmp_path / "out"),
                     "--metric", "adherence"]) == 0
    assert "plain" in capsys.readouterr().out
    responders = [c for c in engines["embedded"].calls if c.step == "direct_responder"]
    assert len(responders) == 3 and all("Answer in one line." in c.instructions for c in responders)
