"""Notebook 06's statistics: per-query values averaged over seeds before the paired bootstrap, Holm's
correction, the pre-registered test, the seed table and the budget curve's sentences."""

from __future__ import annotations

import numpy as np
import pytest

from ttl_utils.evaluate.metrics import holm, holm_levels, per_query, seed_paired_gain
from ttl_utils.evaluate.report import budget_findings, preregistered_findings, preregistered_test, seed_comparison, seed_table


def test_per_query_values_average_to_the_metric():
    ranks = np.array([1, 2, 5, 1])
    assert per_query(ranks, "R@1").tolist() == [1, 0, 0, 1]
    assert per_query(ranks, "R@2").tolist() == [1, 1, 0, 1]
    assert per_query(ranks, "MRR").tolist() == [1, 0.5, 0.2, 1]
    with pytest.raises(ValueError, match="Unknown metric 'median'"):
        per_query(ranks, "median")


def test_each_query_is_averaged_over_seeds_before_the_bootstrap():
    # model A: two seeds that each find one of the two partners first; model B: one seed finding neither.
    # Averaged first, every query's difference is 0.5, so every resample's mean is 0.5: a zero-width
    # interval. Seeds pooled as separate queries would give values of 1 and 0, and a wide interval.
    gain = seed_paired_gain([np.array([1, 5]), np.array([5, 1])], [np.array([5, 5])], "R@1", n_bootstrap=500)
    assert gain["difference"] == 0.5 and gain["low"] == gain["high"] == 0.5 and gain["p"] == 0.0


def test_the_seed_averaged_difference_and_its_interval_by_hand():
    runs_a = [np.array([1, 2, 1, 5]), np.array([1, 1, 3, 5])]  # R@1 a query, averaged: 1, .5, .5, 0
    runs_b = [np.array([2, 2, 1, 5])]                          # 0, 0, 1, 0
    gain = seed_paired_gain(runs_a, runs_b, "R@1", n_bootstrap=1000, seed=3)
    diffs = np.array([1, 0.5, -0.5, 0])
    assert gain["difference"] == pytest.approx(0.25)
    means = diffs[np.random.default_rng(3).integers(0, 4, size=(1000, 4))].mean(axis=1)
    assert gain["low"] == pytest.approx(np.percentile(means, 2.5))
    assert gain["high"] == pytest.approx(np.percentile(means, 97.5))
    assert gain["p"] == pytest.approx(2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    mrr = seed_paired_gain(runs_a, runs_b, "MRR", n_bootstrap=10)
    assert mrr["difference"] == pytest.approx(np.mean([(1 + 1) / 2 - 0.5, (0.5 + 1) / 2 - 0.5, (1 + 1 / 3) / 2 - 1, 0]))
    with pytest.raises(ValueError, match="same queries"):
        seed_paired_gain([np.array([1, 2])], [np.array([1, 2, 3])], "R@1")


def test_holm_against_hand_computed_values():
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08, raised to the 0.09 before it; 0.20 x 1
    assert holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 x 2 = 1.0, capped, and never below an earlier one
    assert holm([0.02]) == [0.02]
    assert holm_levels([0.01, 0.04, 0.03, 0.20]) == pytest.approx([1 - 0.05 / 4, 1 - 0.05 / 2, 1 - 0.05 / 3, 0.95])


def _views(*runs_by_view):
    return dict(zip(("left -> right", "right -> left"), runs_by_view))


def test_the_preregistered_test_corrects_only_the_secondary_ones():
    rng = np.random.default_rng(0)
    better, worse = rng.integers(1, 3, 200), rng.integers(3, 50, 200)  # A finds every partner higher
    same = rng.integers(1, 50, 200)
    runs_a = _views([better, better], [same, same])
    runs_b = _views([worse], [same])
    table = preregistered_test(runs_a, runs_b, ("left -> right", "R@10"),
                               [("right -> left", "R@1"), ("left -> right", "MRR")], n_bootstrap=500)
    assert list(table.index) == ["left -> right R@10", "right -> left R@1", "left -> right MRR"]
    assert list(table.role) == ["primary", "secondary", "secondary"]
    assert list(table.verdict) == ["A", "no clear difference", "A"]
    assert table.level.tolist() == pytest.approx([0.95, 0.95, 0.975])  # the smaller p is tested at 0.05 / 2
    assert table["p (Holm)"].iloc[1] == 1.0 and table.difference.iloc[1] == 0
    lines = preregistered_findings(table, "A model", "B model")
    assert lines[0].startswith("Primary test, left -> right R@10: A model beats B model (the first minus the second: +")
    assert lines[0].endswith(", 95% interval).")
    assert "no clear difference between A model and B model" in lines[1] and "Holm-adjusted p 1.000" in lines[1]
    assert "97.5% interval" in lines[2]


def test_seed_table_rows_and_means():
    rows = [{"start": "ImageNet", "pretraining seed": None, "seed": s, "pictures seen": 0,
             "left -> right": np.array(r)} for s, r in ((0, [1, 1, 3, 20]), (1, [1, 2, 3, 20]))]
    rows.append({"start": "Barlow Twins", "pretraining seed": 0, "seed": 0, "pictures seen": 300,
                 "left -> right": np.array([2, 2, 2, 2])})
    table = seed_table(rows)
    assert list(table.columns) == ["pictures seen", "R@1", "R@10", "MRR"]
    assert table.loc[("ImageNet", "", 0), "R@1"] == 0.5 and table.loc[("ImageNet", "", 1), "R@1"] == 0.25
    assert table.loc[("ImageNet", "", "mean"), "R@1"] == 0.375
    assert table.loc[("ImageNet", "", "mean"), "R@10"] == 0.75
    assert table.loc[("Barlow Twins", 0, 0), "MRR"] == 0.5 and table.loc[("Barlow Twins", "", "mean"), "pictures seen"] == 300


def test_seed_comparison_and_budget_sentences():
    sentence, gain = seed_comparison("A", [np.array([1, 1, 1, 1])], "B", [np.array([2, 2, 2, 2])], n_bootstrap=100)
    assert sentence == "A beats B: R@1 1.000 (1 run) against 0.000 (1 run), difference +1.000 [+1.000, +1.000]."
    assert gain["difference"] == 1.0
    lines = budget_findings({"none": (0, [0.20, 0.22]), "full": (3000, [0.30, 0.26]), "short": (1000, [0.25])})
    assert lines[0] == "none: 0 pictures seen, R@1 0.210 (runs 0.200 to 0.220, 2 runs)"
    assert lines[1].startswith("short: 1,000 pictures seen") and lines[2].startswith("full: 3,000")
    assert lines[3].startswith("The mean R@1 rises with every step of budget (0.210 -> 0.250 -> 0.280)")
    down = budget_findings({"none": (0, [0.3]), "short": (10, [0.2]), "full": (20, [0.25])})
    assert "does not move one way" in down[-1]
