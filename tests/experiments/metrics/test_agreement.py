"""Agreement figures against values computed by hand."""

import math

import pytest

from spri_dspy.experiments.metrics import agreement_by_group, krippendorff_alpha, mae, pearson, spearman


def test_pearson_by_hand():
    # x = 1,2,3,4; y = 2,4,5,9: mean 2.5 / 5; sxy = 11.0, sxx = 5, syy = 26 -> 11 / sqrt(130)
    assert pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([3, 3, 3], [1, 2, 3]))


def test_spearman_with_ties_by_hand():
    # ranks x: 1, 2.5, 2.5, 4; ranks y: 1, 2, 3, 4 -> pearson of ranks = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([1, 5, 9], [2, 3, 100]) == pytest.approx(1.0)


def test_mae_by_hand():
    assert mae([1, 2, 5], [2, 2, 3]) == pytest.approx(1.0)


def test_krippendorff_alpha_by_hand():
    # pairs (1,2), (3,3), (5,4): n = 6 values 1,3,5,2,3,4 (mean 3); spread = 4+0+4+1+0+1 = 10;
    # disagreement sum = 1+0+1 = 2 -> alpha = 1 - 5*2 / (6*10) = 5/6
    assert krippendorff_alpha([1, 3, 5], [2, 3, 4]) == pytest.approx(5 / 6)
    assert krippendorff_alpha([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_group_average_drops_missing_model_scores_only():
    rows = [("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("a", None, 5),
            ("b", 1, 3), ("b", 2, 2), ("b", 3, 1), ("b", 5, -1)]
    result = agreement_by_group(rows)
    assert result["groups"]["a"]["n"] == 3 and result["groups"]["b"]["n"] == 4
    assert result["groups"]["a"]["pearson"] == pytest.approx(1.0)
    b = pearson([1, 2, 3, 5], [3, 2, 1, -1])
    assert result["average"]["pearson"] == pytest.approx((1.0 + b) / 2)
    assert result["average"]["n"] == 7


def test_constitution_overlap_by_hand():
    import dspy

    from spri_dspy.experiments.metrics import ConstitutionOverlap, token_f1

    # content words: name, feeling, first (3) against name, feeling, gently, now (4); "the" is a stopword.
    # common 2 -> precision 2/3, recall 2/4 -> F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
    assert token_f1("Name the feeling first.", "name the feeling, gently, now") == pytest.approx(4 / 7)
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)  # multiplicity: common x, y = 2 of 3 each
    assert token_f1("The answer to this question is that", "the question") == pytest.approx(2 / 3)
    assert token_f1("", "x") == 0.0 and token_f1("x", "y") == 0.0
    metric = ConstitutionOverlap(pass_score=0.5)
    example = dspy.Example(constitution="Name the feeling.")
    assert metric(example, dspy.Prediction(principles="Name the feeling.")) == pytest.approx(1.0)
    assert metric(example, dspy.Prediction(principles="Something else."), trace=[]) is False
    assert metric(example, dspy.Prediction(principles=None)) == 0.0
