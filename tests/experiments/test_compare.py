"""Paired comparisons against a baseline, checked against figures worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from spri_dspy.experiments.compare import compare, comparison_table, holm

BASELINE = [1.0, 2.0, 3.0, 4.0, 5.0]
SCORES = {"base": BASELINE, "a": [2.0, 3.0, 3.0, 6.0, None], "same": list(BASELINE)}
GROUPS = ["x", "x", "y", "y", "y"]


def sign_flip_p(differences):
    """The exact two-sided sign-flip p-value, by enumerating every sign assignment."""
    observed = sum(differences) / len(differences)
    means = [sum(s * d for s, d in zip(signs, differences)) / len(differences)
             for signs in itertools.product((1, -1), repeat=len(differences))]
    greater = sum(m >= observed - 1e-12 for m in means) / len(means)
    less = sum(m <= observed + 1e-12 for m in means) / len(means)
    return min(1.0, 2 * min(greater, less))


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04, raised to the running 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan]) == [0.5, pytest.approx(math.nan, nan_ok=True)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_paired_figures_by_hand():
    rows = {(r.variant, r.group): r for r in compare(SCORES, "base", GROUPS)}
    assert [(r.variant, r.group) for r in compare(SCORES, "base", GROUPS)] == [
        ("a", "all"), ("a", "x"), ("a", "y"), ("same", "all"), ("same", "x"), ("same", "y")]
    a = rows["a", "all"]
    # input 4 failed for "a": the pairs are inputs 0-3, differences 1, 1, 0, 2
    assert (a.n, a.unpaired, a.mean_difference) == (4, [4], 1.0)
    assert a.effect_size == pytest.approx(1.0 / np.std([1, 1, 0, 2], ddof=1))  # 1 / sqrt(2/3) = 1.2247
    assert a.p_value == pytest.approx(sign_flip_p([1, 1, 0, 2])) == pytest.approx(0.25)
    assert 0.0 <= a.ci_low < 1.0 < a.ci_high <= 2.0
    same = rows["same", "all"]
    assert (same.n, same.mean_difference, same.p_value, same.ci_low, same.ci_high) == (5, 0.0, 1.0, 0.0, 0.0)
    assert math.isnan(same.effect_size)
    assert (a.p_holm, same.p_holm) == (pytest.approx(0.5), 1.0)  # Holm over the two variants: 2 x 0.25, then 1
    x, y = rows["a", "x"], rows["a", "y"]
    assert (x.n, x.mean_difference, x.p_value) == (2, 1.0, pytest.approx(sign_flip_p([1, 1])))
    assert (y.n, y.unpaired, y.mean_difference, y.p_value) == (2, [4], 1.0, pytest.approx(sign_flip_p([0, 2])))
    assert y.effect_size == pytest.approx(1.0 / np.std([0, 2], ddof=1))


def test_one_group_only_is_not_repeated_and_bad_input_is_named():
    assert [r.group for r in compare(SCORES, "base", ["g"] * 5)] == ["all", "all"]
    with pytest.raises(ValueError, match="baseline 'nope'"):
        compare(SCORES, "nope")
    with pytest.raises(ValueError, match="one score per input"):
        compare({"base": [1.0], "a": [1.0, 2.0]}, "base")
    with pytest.raises(ValueError, match="groups names 2 inputs, the scores 5"):
        compare(SCORES, "base", ["x", "y"])


def test_the_table_says_how_to_read_it():
    table = comparison_table(compare(SCORES, "base"), "alignment")
    assert table.startswith("Paired against the baseline **base** (alignment)")
    assert "| a | all | 4 | +1.000 (" in table and "| 0.250 | 0.500 | 1.22 | 1 (inputs 4) |" in table
