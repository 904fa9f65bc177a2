"""The reporting layer: intervals, paired gains, verdicts and tables, each checked on hand-made ranks."""

from __future__ import annotations

import numpy as np

from ttl_utils.report import format_rows, interval, metric_cells, metric_table, paired_gain, variant_row, verdict


def test_interval_formats_values_and_signed_gains():
    assert interval(0.25, 0.2, 0.3) == "0.250 [0.200, 0.300]"
    assert interval(0.05, -0.01, 0.09, signed=True) == "+0.050 [-0.010, +0.090]"
    assert interval(None, 0, 0) == "n/a"


def test_a_model_against_itself_gains_nothing_and_differs_from_nothing():
    ranks = np.array([1, 3, 2, 8, 1, 5, 2, 1])
    gain = paired_gain(ranks, ranks, k=1, n_bootstrap=200)
    assert gain["difference"] == 0 and gain["low"] == 0 and gain["high"] == 0
    assert verdict(gain) == "does not clearly differ from"


def test_a_clearly_better_model_is_found_better_and_a_worse_one_worse():
    rng = np.random.default_rng(0)
    worse = rng.integers(2, 50, size=200)
    better = np.where(rng.random(200) < 0.6, 1, worse)
    gain = paired_gain(better, worse, k=1, n_bootstrap=500)
    assert gain["low"] > 0.4 and verdict(gain) == "beats"
    assert verdict(paired_gain(worse, better, k=None, n_bootstrap=500), worse="loses to") == "loses to"


def test_metric_table_rows_cells_and_gains():
    ranks = {"zero-shot": np.array([4, 4, 4, 4]), "tuned": np.array([1, 1, 4, 4])}
    table = metric_table(ranks, ks=(1, 5), mrr=True, reference="zero-shot", gain_ks=(1,), n_bootstrap=100)
    assert list(table.columns) == ["R@1", "R@5", "MRR", "R@1 gain"]
    assert table.loc["tuned", "R@1"].startswith("0.500 [") and table.loc["zero-shot", "R@1 gain"] == ""
    assert table.loc["tuned", "R@1 gain"].startswith("+0.500 [")
    assert metric_cells(ranks["zero-shot"], ks=(5,), n_bootstrap=50) == {"R@5": "1.000 [1.000, 1.000]"}


def test_variant_rows_as_markdown():
    rows = [variant_row("zero-shot", np.array([[2, 3], [4, 1]]), None, (1, 10), 50),
            variant_row("tuned", np.array([[1, 1], [1, 2]]), np.array([[2, 3], [4, 1]]), (1, 10), 50)]
    assert rows[0]["R@1"] == 0.25 and rows[1]["R@1"] == 0.75 and rows[1]["R@1 gain"][0] == 0.5
    text = format_rows(rows)
    assert text.splitlines()[0] == "| variant | R@1 | R@10 | MRR | R@1 gain | R@10 gain | MRR gain |"
    assert "| tuned | 0.750 | 1.000 |" in text and "+0.500 [" in text
