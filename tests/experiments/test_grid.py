"""Grid files: the shipped ones reproduce the task grids, bad ones are one line, overrides reach their step only."""

from __future__ import annotations

import dspy
import pytest

from helpers import spri_script
from spri_dspy import cli
from spri_dspy.experiments.grid import GridError, build_variant, load_grid, variant_inputs
from spri_dspy.experiments.tasks import TASKS
from spri_dspy.experiments.tasks.task import response_variants

SEEDS = [dspy.Example(query="q", goal="g", principles="p")]


def effective(settings, variant) -> dict:
    return {**settings, **variant.settings, **dict.fromkeys(variant.without)}


@pytest.mark.parametrize("seeds", [None, SEEDS])
@pytest.mark.parametrize("max_words", [128, None])
@pytest.mark.parametrize("seed_match", ["all", "goal"])
@pytest.mark.parametrize("task, old", [
    ("reappraisal", lambda s: response_variants(s, per_goal=True, oracle=lambda e: {**e.inputs(),
                                                                                     "principles": e.constitution})),
    ("instructions", response_variants),
    ("preferences", lambda s: {"spri_both_orders": ("spri", {}), "spri_one_order": ("spri", {"swap": False})}),
])
def test_the_shipped_grids_give_the_task_grids(task, old, seeds, max_words, seed_match):
    settings = {"threshold": 4, "max_rounds": 4, "seeds": seeds, "max_words": max_words, "seed_match": seed_match}
    grid = load_grid(TASKS[task].grid_path, TASKS[task].kind)
    chosen = {variant.name: variant for variant in grid.chosen(settings)}
    expected = old(settings)
    assert list(chosen) == list(expected)
    for name, variant in chosen.items():
        program, own = (expected[name] if isinstance(expected[name], tuple)
                        else (expected[name].program, expected[name].settings))
        assert (variant.program, effective(settings, variant)) == (program, {**settings, **own}), name
    example = dspy.Example(query="post", goal="aim", constitution="expert").with_inputs("query", "goal")
    if "oracle" in chosen:
        assert variant_inputs(chosen["oracle"])(example) == expected["oracle"].inputs(example)
    assert grid.baseline == ("spri_one_order" if task == "preferences" else "vanilla")


def write(tmp_path, text, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = '[variants.vanilla]\nprogram = "vanilla"\nbaseline = true\n'


@pytest.mark.parametrize("text, message", [
    (BASE + '[variants.x]\nprogram = "spri"\ncolour = "red"\n',
     "variant x: colour: unknown key; a variant takes program, baseline"),
    (BASE + '[variants.x]\nprogram = "nope"\n', "variant x: program: unknown response program 'nope'; known: spri"),
    (BASE + '[variants.x]\nprogram = "spri"\nsettings = { swap = false }\n',
     "variant x: settings.swap: spri has no setting 'swap'; it takes threshold"),
    (BASE + '[variants.x]\nprogram = "missing.json"\n', "variant x: program: no such file "),
    (BASE + '[variants.x]\nprogram = "spri"\ninstructions = { principle_critic = { file = "gone.txt" } }\n',
     "variant x: instructions.principle_critic: no such file "),
    ('[variants.x]\nprogram = "spri"\n', "baseline: exactly one variant needs baseline = true, found 0"),
    (BASE + '[variants.x]\nprogram = "spri"\nbaseline = true\n',
     "baseline: exactly one variant needs baseline = true, found 2 (vanilla, x)"),
    ("[variants.x\n", "not TOML"),
    (BASE + '[variants.x]\nprogram = "spri"\nsettings = 3\n', "variant x: settings: must be a table"),
    (BASE + '[variants.x]\nprogram = "spri"\nwithout = "seeds"\n', "variant x: without: must be a list of setting"),
    (BASE + '[variants.x]\nprogram = "spri"\ndemos = "no"\n', "variant x: demos: must be true or false, got 'no'"),
    (BASE + '[variants.x]\nprogram = "spri"\nwhen = "sedes"\n', "variant x: when: spri has no setting 'sedes'"),
    ('title = "mine"\n' + BASE, "a grid holds [variants.NAME] tables only; unknown ['title']"),
])
def test_a_bad_grid_is_one_line_naming_file_variant_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GridError) as error:
        load_grid(path, "response")
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_an_unknown_step_is_named_when_the_variant_is_built(tmp_path):
    path = write(tmp_path, BASE + '[variants.x]\nprogram = "spri"\ninstructions = { critic = "Be strict." }\n')
    variant = load_grid(path, "response").variants[1]
    with pytest.raises(GridError, match="variant x: instructions.critic: spri has no such step; its steps: "
                                        "principle_generator, principle_critic"):
        build_variant(variant, "response", {}, path)


@pytest.fixture
def scripted_models(cli_models):
    """Every model the command builds scripted; critics never accept (score 2)."""
    return cli_models(lambda: spri_script((2,) * 50, (2,) * 50))


def run_grid(tmp_path, grid, *flags):
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "How do I fix a flat tyre?"}\n{"instruction": "Plan a picnic."}\n')
    return cli.main(["ablate", str(data), "--task", "instructions", "--metric", "adherence", "--grid", str(grid),
                     "--output", str(tmp_path / "out"), "--max-rounds", "2", *flags])


def test_an_instruction_override_reaches_that_step_only_and_a_step_lm_its_steps(tmp_path, scripted_models):
    (tmp_path / "critic.txt").write_text("Score the principles like a strict editor.\n")
    grid = write(tmp_path, BASE + '[variants.strict]\nprogram = "spri"\n'
                 'instructions = { principle_critic = { file = "critic.txt" } }\nlms = { critic = "other" }\n'
                 '[variants.plain]\nprogram = "spri"\n')
    assert run_grid(tmp_path, grid) == 0
    base, other = scripted_models["embedded"], scripted_models["other"]
    critics = [c for c in other.calls if c.step == "principle_critic"]
    assert len(critics) == 4 and all("like a strict editor" in c.instructions for c in critics)  # strict: 2 x 2
    assert {c.step for c in other.calls} == {"principle_critic", "response_critic"}  # the kind's steps, nothing else
    plain = [c for c in base.calls if c.step in ("principle_critic", "principle_generator", "response_critic")]
    assert plain and not any("strict editor" in c.instructions for c in plain)  # the other variant, other steps


def test_a_bad_grid_stops_the_command_before_any_model(tmp_path, scripted_models, capsys):
    grid = write(tmp_path, '[variants.x]\nprogram = "spri"\n')
    assert run_grid(tmp_path, grid) == 2
    assert capsys.readouterr().err == (f"spri: error: {grid}: baseline: exactly one variant needs baseline = true, "
                                       "found 0\n")
    assert scripted_models == {}


def test_print_grid_writes_the_tasks_grid_which_runs_as_it_is(tmp_path, scripted_models, capsys):
    assert cli.main(["ablate", "--print-grid", "--task", "instructions"]) == 0
    printed = capsys.readouterr().out
    assert printed == TASKS["instructions"].grid_path.read_text().rstrip() + "\n"
    assert run_grid(tmp_path, write(tmp_path, printed), "--variants", "vanilla,self_refine") == 0
    assert "| self_refine | all | 2 |" in capsys.readouterr().out


def test_demos_off_drops_every_steps_demos(tmp_path):
    path = write(tmp_path, BASE + '[variants.x]\nprogram = "spri"\ndemos = false\n[variants.y]\nprogram = "spri"\n')
    off, on = (build_variant(v, "response", {"seeds": SEEDS}, path) for v in load_grid(path, "response").variants[1:])
    assert all(predictor.demos == [] for predictor in off.predictors())
    assert len(on.principle_generator.predict.demos) == 1  # the seed, shown as a demo when demos are on
