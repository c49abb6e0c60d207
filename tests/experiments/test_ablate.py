"""Ablation grids: the table, its numbers and the plots."""

from __future__ import annotations

import csv

import dspy
import pytest

from helpers import spri_script
from spri_dspy import SPRI, OraclePrinciples, SelfRefine, Vanilla
from spri_dspy.experiments.ablate import ablate, bootstrap_ci, plot_study

DEVSET = [dspy.Example(query=f"q{i}", constitution=f"oracle {i}").with_inputs("query") for i in range(4)]


def metric(example, prediction, trace=None):
    return 1.0 if "principles" in prediction.response or "oracle" in prediction.response else 0.0


def test_ablation_table_and_plots(scripted, tmp_path):
    script = spri_script((5,) * 8, (5,) * 8)
    script["responder"] = lambda call: {"response": f"answer under {call.inputs['principles']}"}
    script["direct_responder"] = lambda call: {"response": "plain answer"}
    script["direct_critic"] = lambda call: {"feedback": "ok", "score": 5}
    engine, lm = scripted(script)
    variants = {"spri": SPRI(), "vanilla": Vanilla(), "self_refine": SelfRefine(), "oracle": OraclePrinciples()}
    with dspy.context(lm=lm):
        rows = ablate(variants, DEVSET, metric, tmp_path,
                      inputs={"oracle": lambda e: {**e.inputs(), "principles": e.constitution}})
    table = {r.variant: r for r in rows}
    assert (table["spri"].metric, table["vanilla"].metric, table["oracle"].metric) == (1.0, 0.0, 1.0)
    assert table["spri"].lm_calls_needed_per_input == 4 and table["vanilla"].lm_calls_needed_per_input == 1
    assert table["self_refine"].lm_calls_needed_per_input == 2 and table["oracle"].lm_calls_needed_per_input == 2
    assert table["vanilla"].tokens_per_input > 0 and all(r.failed == 0 for r in rows)
    with (tmp_path / "ablation.csv").open() as handle:
        saved = list(csv.DictReader(handle))
    assert [r["variant"] for r in saved] == ["spri", "vanilla", "self_refine", "oracle"]
    assert float(saved[0]["lm_calls_needed_per_input"]) == 4.0
    markdown = (tmp_path / "ablation.md").read_text().splitlines()
    assert markdown[0] == "Metric: metric; mean over the inputs that ran, with its 95% bootstrap CI."
    assert markdown[2].startswith("| variant |") and markdown[5].startswith("| vanilla | 4 | 0 | 0.000 (0.000-0.000) | 1.00 |")
    assert "## Failures" not in markdown
    for name in ("metric_by_variant.png", "quality_vs_cost.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 5000


def test_failures_are_counted_not_scored(scripted, tmp_path):
    engine, lm = scripted({"direct_responder": lambda call: {"response": "principles"}})
    with dspy.context(lm=lm):
        rows = ablate({"oracle_without_input": OraclePrinciples(), "vanilla": Vanilla()}, DEVSET, metric, tmp_path)
    assert rows[0].failed == 4 and rows[1].failed == 0 and rows[1].metric == 1.0
    assert rows[0].failure_reasons.startswith("4 x TypeError: ") and "principles" in rows[0].failure_reasons
    markdown = (tmp_path / "ablation.md").read_text()
    assert "## Failures\n\n- **oracle_without_input**: 4 of 4 inputs failed\n  - 4 x TypeError: " in markdown


def _rows_sharing_costs():
    from spri_dspy.experiments.ablate import VariantResult

    # the reappraisal grid's shape: three SPRI variants at one cost, two baselines at another
    names = [("spri_no_seeds", 16.0, 0.41), ("spri_seeds", 16.0, 0.43), ("spri_seed_per_dimension", 16.0, 0.42),
             ("self_refine", 4.0, 0.30), ("oracle", 4.0, 0.31), ("vanilla", 1.0, 0.2)]
    return [VariantResult(name, 30, int(name == "oracle"), metric, metric - 0.05, metric + 0.05, cost, 900.0)
            for name, cost, metric in names]


@pytest.mark.parametrize("figure_of", ["metric_figure", "cost_figure"])
def test_plots_name_the_metric_and_no_labels_overlap(figure_of):
    import matplotlib

    matplotlib.use("Agg")
    import spri_dspy.experiments.ablate as ablate_module

    rows = _rows_sharing_costs()
    figure = getattr(ablate_module, figure_of)(rows, "empathy (judge's 1-5 / 5)")
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    labels = [t for t in texts if t.get_text().split(" (")[0] in {r.variant for r in rows}]
    assert sorted(t.get_text() for t in labels) == sorted(
        f"{r.variant} (n=30" + (", 1 failed)" if r.variant == "oracle" else ")") for r in rows)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two variant labels overprint"
    assert any("empathy (judge's 1-5 / 5)" in t.get_text() for t in texts)


def test_bootstrap_ci_brackets_the_mean():
    low, high = bootstrap_ci([0, 1, 1, 0, 1, 1, 1, 0])
    assert low < 0.625 < high and 0 <= low and high <= 1
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)


def test_study_plots(tmp_path):
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("y", 1, 4)), n_trials=8)
    written = plot_study(study, tmp_path)
    assert [p.name for p in written] == ["pareto_front.png", "param_importances.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_empty_dataset(tmp_path):
    with pytest.raises(ValueError, match="non-empty dataset"):
        ablate({"vanilla": Vanilla()}, [], metric, tmp_path)


def test_cost_figures_are_the_same_on_a_cold_and_a_warm_cache(tmp_path):
    """A second ablation used to report 0.00 LM calls per input for every variant."""
    import uuid

    from spri_dspy.testing import ScriptedEngine

    def critic(call):  # unrefined texts score 2, refined ones 5
        return {"feedback": "refine it", "score": 5 if list(call.inputs.values())[-1].endswith("+") else 2}

    engine = ScriptedEngine({"principle_critic": critic, "response_critic": critic, "direct_critic": critic,
                             "principle_refiner": lambda c: {"principles": c.inputs["draft_principles"] + "+"},
                             "response_refiner": lambda c: {"response": c.inputs["draft_response"] + "+"},
                             "direct_refiner": lambda c: {"response": c.inputs["draft_response"] + "+"}})
    lm = dspy.LM(f"scripted/{uuid.uuid4().hex[:8]}", engine=engine, cache=True)
    variants = {"spri": SPRI(), "vanilla": Vanilla(), "self_refine": SelfRefine()}
    with dspy.context(lm=lm):
        cold = ablate(variants, DEVSET, metric, tmp_path / "cold")
        calls = len(engine.calls)
        warm = ablate(variants, DEVSET, metric, tmp_path / "warm")
    assert len(engine.calls) == calls  # the warm run reached the model not once
    assert [(r.variant, r.lm_calls_needed_per_input) for r in cold] == [(r.variant, r.lm_calls_needed_per_input) for r in warm] == [
        ("spri", 8.0), ("vanilla", 1.0), ("self_refine", 4.0)]
    # self-refine's first answer is vanilla's very request: DSPy's cache answers it even on the cold run
    assert [r.lm_calls_made_per_input for r in cold] == [8.0, 1.0, 3.0]
    assert [r.lm_calls_made_per_input for r in warm] == [0.0, 0.0, 0.0] and all(r.tokens_per_input == 0 for r in warm)
    assert "| spri | 4 | 0 |" in (tmp_path / "warm" / "ablation.md").read_text()


def test_a_variant_whose_scores_are_all_equal_plots(scripted, tmp_path):
    """Equal scores whose mean rounds a hair off their value (0.7, 0.7, 0.7 -> 0.6999999999999998): the interval
    holds the mean as computed, and the plots are written (matplotlib refused a negative error bar)."""
    import numpy as np

    from spri_dspy.experiments.ablate import VariantResult, cost_figure, metric_figure

    scores = [0.7, 0.7, 0.7]
    low, high = bootstrap_ci(scores)
    assert low <= float(np.mean(scores)) <= high
    row = VariantResult("flat", 3, 0, 0.7000000000000001, 0.7, 0.7, 4.0, 100.0)  # an interval just below its mean
    metric_figure([row]).savefig(tmp_path / "metric.png")
    cost_figure([row]).savefig(tmp_path / "cost.png")
    assert (tmp_path / "metric.png").stat().st_size and (tmp_path / "cost.png").stat().st_size


def test_ablate_reports_progress_per_variant_and_input(scripted, tmp_path):
    engine, lm = scripted(spri_script())
    devset = [dspy.Example(query=f"q{i}").with_inputs("query") for i in range(3)]
    seen = []
    with dspy.context(lm=lm):
        ablate({"spri": SPRI(max_rounds=1), "vanilla": Vanilla()}, devset, lambda *a: 1.0, tmp_path,
               progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("variant 1/2 spri", i, 3) for i in (1, 2, 3)] + [("variant 2/2 vanilla", i, 3) for i in (1, 2, 3)]


def test_a_baseline_adds_the_paired_comparison(scripted, tmp_path):
    script = spri_script((5,) * 8, (5,) * 8)
    script["responder"] = lambda call: {"response": f"answer under {call.inputs['principles']}"}
    script["direct_responder"] = lambda call: {"response": "plain answer"}
    engine, lm = scripted(script)
    with dspy.context(lm=lm):
        ablate({"spri": SPRI(), "vanilla": Vanilla()}, DEVSET, metric, tmp_path, baseline="vanilla",
               groups=["a", "a", "b", "b"])
    with (tmp_path / "comparison.csv").open() as handle:
        saved = list(csv.DictReader(handle))
    # SPRI scores 1 and vanilla 0 on each of the 4 inputs: every difference is +1, so the interval is
    # the point, and the exact sign-flip p is 2 x 1/16; the differences do not vary, so d_z is undefined
    assert [(r["variant"], r["group"], r["n"]) for r in saved] == [("spri", "all", "4"), ("spri", "a", "2"),
                                                                    ("spri", "b", "2")]
    assert [float(saved[0][k]) for k in ("mean_difference", "ci_low", "ci_high", "p_value", "p_holm")] == \
        [1.0, 1.0, 1.0, 0.125, 0.125]
    assert saved[0]["effect_size"] == "nan" and saved[0]["unpaired"] == ""
    markdown = (tmp_path / "ablation.md").read_text()
    assert "## Against the baseline\n\nPaired against the baseline **vanilla** (metric)" in markdown
    assert "| spri | all | 4 | +1.000 (+1.000 to +1.000) | 0.125 | 0.125 | nan | 0 |" in markdown
    with (tmp_path / "ablation.csv").open() as handle:
        assert "scores" not in next(csv.reader(handle))


def test_an_unknown_baseline_is_refused_before_any_call(scripted, tmp_path):
    engine, lm = scripted(spri_script())
    with dspy.context(lm=lm), pytest.raises(ValueError, match="the baseline 'nope' is not one of the variants"):
        ablate({"vanilla": Vanilla()}, DEVSET, metric, tmp_path, baseline="nope")
    assert engine.calls == []


def test_repeats_average_each_input_and_report_the_spread(scripted, tmp_path):
    from spri_dspy.experiments.ablate import resampled

    engine, lm = scripted({"direct_responder": lambda call: {"response": "plain"}})
    # the metric scores repeat 1 with 1.0 and repeat 2 with 0.0 for the variant, 0.5 always for the baseline
    seen = {}

    def varying(example, prediction, trace=None):
        key = (prediction.response, example.query)
        seen[key] = seen.get(key, 0) + 1
        return 0.5 if prediction.response == "base" else (1.0 if seen[key] == 1 else 0.0)

    class Base(dspy.Module):
        def forward(self, query):
            return dspy.Prediction(response="base")

    with dspy.context(lm=lm):
        rows = ablate({"vanilla": Vanilla(), "base": Base()}, DEVSET, varying, tmp_path, baseline="base", repeats=2)
    vanilla = rows[0]
    assert (vanilla.repeats, vanilla.scores, vanilla.metric) == (2, [0.5] * 4, 0.5)  # (1.0 + 0.0) / 2 per input
    assert vanilla.repeat_spread == pytest.approx(0.7071, abs=1e-4)  # the repeats' means 1.0 and 0.0
    assert len([c for c in engine.calls if c.step == "direct_responder"]) == 8  # 4 inputs x 2 repeats, no cache
    with (tmp_path / "comparison.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert (float(row["mean_difference"]), float(row["repeat_spread"])) == (0.0, pytest.approx(0.7071, abs=1e-4))
    assert "| vanilla | 4 | 0 | 0.500 ± 0.707 (" in (tmp_path / "ablation.md").read_text()
    program = Vanilla()
    assert resampled(program, 0) is program
    assert {p.config.get("seed") for p in resampled(program, 3).predictors()} == {3}
    assert all("seed" not in p.config for p in program.predictors())  # the original is left as it was
    with pytest.raises(ValueError, match="repeats must be a whole number of at least 1, got 0"):
        ablate({"vanilla": Vanilla()}, DEVSET, metric, tmp_path, repeats=0)


def test_each_repeat_reaches_the_model_past_dspys_cache(tmp_path):
    from spri_dspy.testing import ScriptedEngine

    engine = ScriptedEngine({"direct_responder": lambda call: {"response": "plain"}})
    lm = dspy.LM("scripted/cached-repeats", engine=engine, cache=True, temperature=0.7)
    with dspy.context(lm=lm):
        ablate({"vanilla": Vanilla()}, DEVSET[:2], metric, tmp_path, repeats=3)
        ablate({"vanilla": Vanilla()}, DEVSET[:2], metric, tmp_path / "again", repeats=3)
    # 2 inputs x 3 repeats reach the model once each; the rerun is answered by the cache, repeat by repeat
    assert len(engine.calls) == 6
