"""The reporting layer: intervals, paired gains, verdicts and tables, each checked on hand-made ranks."""

from __future__ import annotations

import numpy as np
import pytest

from ttl_utils.evaluate.metrics import paired_gain
from ttl_utils.evaluate.report import (
    correlation_findings,
    direction_report,
    format_rows,
    gain_text,
    interval,
    learned_distance_summary,
    lookalike_finding,
    metric_cells,
    metric_table,
    separation_findings,
    variant_row,
    verdict,
)


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
    assert metric_cells(ranks["zero-shot"], ("R@5",), n_bootstrap=50) == {"R@5": "1.000 [1.000, 1.000]"}
    cells = metric_cells(np.array([1, 1, 3, 40]), ("median rank", "MRR", "top-2 of 20"), n_bootstrap=50)
    assert cells["median rank"].startswith("2.0 [") and cells["top-2 of 20"] == "n/a"  # no candidate ranks given
    assert metric_cells(np.array([1, 1]), ("top-2 of 20",), np.array([3, 1]), n_bootstrap=50)["top-2 of 20"].startswith(
        "0.500 [")
    with pytest.raises(ValueError, match="Unknown metric 'R@x'"):
        metric_cells(np.array([1]), ("R@x",))


def test_variant_rows_as_markdown():
    rows = [variant_row("zero-shot", np.array([[2, 3], [4, 1]]), None, (1, 10), 50),
            variant_row("tuned", np.array([[1, 1], [1, 2]]), np.array([[2, 3], [4, 1]]), (1, 10), 50)]
    assert rows[0]["R@1"] == 0.25 and rows[1]["R@1"] == 0.75 and rows[1]["R@1 gain"][0] == 0.5
    text = format_rows(rows)
    assert text.splitlines()[0] == "| variant | R@1 | R@10 | MRR | R@1 gain | R@10 gain | MRR gain |"
    assert "| tuned | 0.750 | 1.000 |" in text and "+0.500 [" in text


def test_one_formatter_for_gains_and_shares():
    assert gain_text({"difference": -0.05, "low": -0.1, "high": 0.0}) == "-0.050 [-0.100, +0.000]"
    assert interval(0.63, 0.45, 0.771, digits=0, percent=True) == "63% [45%, 77%]"
    assert interval(0.05, 0.01, 0.09, digits=1, signed=True, percent=True) == "+5.0% [+1.0%, +9.0%]"


def test_direction_report_holds_every_metric_with_its_interval():
    ranks = np.array([1, 2, 3, 40])
    report = direction_report(ranks, None, n_candidates=50, n_bootstrap=50)
    assert report["n_queries"] == 4 and report["n_candidates"] == 50 and report["ranks"] == [1, 2, 3, 40]
    assert report["recall"]["1"] == 0.25 and len(report["recall_ci"]["1"]) == 2 and report["median_rank"] == 2.5
    assert report["candidate_top2"] is None and report["candidate_top2_ci"] is None
    assert direction_report(ranks, np.array([1, 1, 3, 2]), 50, n_bootstrap=50)["candidate_top2"] == 0.75


def test_the_sentences_notebooks_print_come_from_their_numbers():
    lines = correlation_findings({"before": {"diagonal": 0.2, "off_diagonal": 0.1},
                                  "after": {"diagonal": 0.8, "off_diagonal": 0.05}})
    assert lines[0] == "before: mean diagonal 0.200, mean |off-diagonal| 0.100"
    assert lines[-1] == ("The diagonal moved towards 1 (0.20 -> 0.80, more than half of the way); the off-diagonal "
                         "shrank (0.100 -> 0.050).")
    gaps = {"zero-shot": {"partner": 1.0, "others": 1.2, "spread": 0.1, "separation": 2.0},
            "fine-tuned": {"partner": 0.9, "others": 1.1, "spread": 0.05, "separation": 4.0}}
    lines = separation_findings(gaps)
    assert lines[1] == "fine-tuned: mean distance to the partner 0.900, to the others 1.100, gap 4.00 sd"
    assert lines[-1].endswith("(x0.50): most of the gain comes from a narrower spread, the others packed at one "
                              "distance, not a wider gap.")
    sentence, numbers = lookalike_finding(np.array([1, 1, 4, 9, 30]), top=5, gallery_size=100)
    assert numbers == {"first": 2, "in_top": 3, "median_rank": 4.0}
    assert sentence == ("Searching all 100 pictures, the true partner ranked first for 2 of 5 test queries, in the top 5 "
                        "for 3 (60.0%); median rank 4.")


def test_the_learned_distance_heads_are_summed_up_from_their_table():
    import pandas as pd

    from ttl_utils.train.recipes import PairTrainingConfig, pair_classifier_variants

    base = PairTrainingConfig(negatives=4)
    heads = pair_classifier_variants(base)
    assert list(heads)[0] == "MLP on [|a-b|, a*b], 4 negatives" and len(heads) == 6
    rows = {"cosine (frozen), no training": {"test R@25": 0.5}}
    rows |= {label: {"test R@25": 0.1 * k, "val R@25": 0.05 * k} for k, label in enumerate(heads, start=1)}
    table = pd.DataFrame(rows).T
    assert learned_distance_summary(table, heads, base) == [
        "Test R@25 with 1 / 4 / 16 negatives: 0.200 / 0.100 / 0.300",
        "Heads, ranked on validation R@25: best linear on [|a-b|, a*b] (0.30), worst MLP on [|a-b|, a*b], 4 negatives "
        "(0.05); test R@25 of all six from 0.100 to 0.600",
    ]
