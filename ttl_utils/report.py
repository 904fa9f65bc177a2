"""The one reporting layer: metric tables with 95% bootstrap CIs, paired gains, verdicts, text tables.

`evaluate`, the ablation tool, `compare` and every notebook format their numbers here, so
an interval always reads `0.250 [0.200, 0.300]` and a gain `+0.050 [+0.010, +0.090]`, and a
verdict is printed from the interval, never written by hand.

>>> interval(0.25, 0.2, 0.3)
'0.250 [0.200, 0.300]'
>>> verdict({"difference": 0.05, "low": 0.01, "high": 0.09})
'beats'
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
import torch

from .retrieval import (
    bootstrap_ci,
    candidate_ranks,
    mean_reciprocal_rank,
    median_rank,
    paired_bootstrap,
    rank_of_match,
    recall_at_k,
    retrieval_metrics,
)

__all__ = ["CANDIDATE_TOP", "N_CANDIDATES", "RECALL_KS", "direction_report", "format_report", "format_rows", "gain_cells",
           "interval", "metric_cells", "metric_table", "paired_gain", "summary", "variant_row", "verdict"]

RECALL_KS = (1, 5, 10, 20, 25, 50, 100)
N_CANDIDATES, CANDIDATE_TOP = 20, 2


def interval(value: float | None, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    """Return `value [low, high]` with `digits` decimals (`+` signs with `signed`; "n/a" for None)."""
    if value is None:
        return "n/a"
    sign = "+" if signed else ""
    return f"{value:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def _metric(k: int | None):
    """Return R@k as a function of ranks, or the mean reciprocal rank for `k=None`."""
    return mean_reciprocal_rank if k is None else partial(recall_at_k, k=k)


def paired_gain(ranks: np.ndarray, reference: np.ndarray, k: int | None = None, n_bootstrap: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """Return the paired-bootstrap gain of `ranks` over `reference` on the same queries in R@k
    (the MRR for `k=None`): `{"difference", "low", "high", "a_better"}`."""
    return paired_bootstrap(np.asarray(ranks), np.asarray(reference), _metric(k), n=n_bootstrap, seed=seed)


def verdict(gain: dict, better: str = "beats", worse: str = "loses to",
            same: str = "does not clearly differ from") -> str:
    """Return `better` when the gain's interval lies above zero, `worse` below, else `same`."""
    return better if gain["low"] > 0 else worse if gain["high"] < 0 else same


def metric_cells(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10, 25), mrr: bool = False, n_bootstrap: int = 1000,
                 seed: int = 0) -> dict[str, str]:
    """Return `{"R@k": "value [low, high]", ...}` (and the MRR with `mrr`), 95% bootstrap CIs over queries."""
    cells = {}
    for k in (*ks, None) if mrr else ks:
        cells["MRR" if k is None else f"R@{k}"] = interval(*bootstrap_ci(np.asarray(ranks), _metric(k), n=n_bootstrap,
                                                                         seed=seed))
    return cells


def gain_cells(ranks: np.ndarray, reference: np.ndarray, ks: Sequence[int] = (1, 10), mrr: bool = False,
               n_bootstrap: int = 1000, seed: int = 0) -> dict[str, str]:
    """Return `{"R@k gain": "+difference [+low, +high]", ...}`: paired gains over `reference`."""
    cells = {}
    for k in (*ks, None) if mrr else ks:
        gain = paired_gain(ranks, reference, k, n_bootstrap, seed)
        cells[f"{'MRR' if k is None else f'R@{k}'} gain"] = interval(gain["difference"], gain["low"], gain["high"],
                                                                     signed=True)
    return cells


def metric_table(ranks: dict[str, np.ndarray], ks: Sequence[int] = (1, 5, 10, 25), mrr: bool = False,
                 reference: str | None = None, gain_ks: Sequence[int] = (), n_bootstrap: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Return a table, one row a model: R@k (and MRR) with CIs, and the gains over the row `reference`."""
    rows = {}
    for name, r in ranks.items():
        rows[name] = metric_cells(r, ks, mrr, n_bootstrap, seed)
        if reference is not None and name != reference and gain_ks:
            rows[name] |= gain_cells(r, ranks[reference], gain_ks, n_bootstrap=n_bootstrap, seed=seed)
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def direction_report(query: torch.Tensor, gallery: torch.Tensor, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Return every metric of one retrieval direction with its 95% bootstrap CI, and the ranks."""
    ranks = rank_of_match(query, gallery)
    cand = candidate_ranks(query, gallery, N_CANDIDATES, seed=seed) if len(gallery) >= N_CANDIDATES else None

    def ci(metric, values=ranks):
        value, low, high = bootstrap_ci(values, metric, n=n_bootstrap, seed=seed)
        return value, [low, high]

    report: dict = {"n_queries": len(query), "n_candidates": len(gallery), "recall": {}, "recall_ci": {}}
    for k in RECALL_KS:
        report["recall"][str(k)], report["recall_ci"][str(k)] = ci(partial(recall_at_k, k=k))
    report["median_rank"], report["median_rank_ci"] = ci(median_rank)
    report["mrr"], report["mrr_ci"] = ci(mean_reciprocal_rank)
    if cand is not None:
        report["candidate_top2"], report["candidate_top2_ci"] = ci(partial(recall_at_k, k=CANDIDATE_TOP), cand)
    else:
        report["candidate_top2"], report["candidate_top2_ci"] = None, None
    report["ranks"] = ranks.tolist()
    return report


def _cell(value, bounds, digits: int = 3) -> str:
    return interval(value, *(bounds or (0.0, 0.0)), digits=digits)


def format_report(report: dict) -> str:
    """Return an `evaluation.evaluate_model` report as a text table: one row a metric, one column a direction."""
    back = report["right_to_left"]
    model = report["model"]
    title = (f"{report['dataset']}: {report['n_queries']} queries among {report['n_candidates']} candidates; "
             f"{model['backbone']} ({model['weights'] or 'none'}) {'+'.join(model['layers'])}"
             + (f" + {model['grid']}x{model['grid']} grid" if model.get("grid") else "")
             + f", {report['preprocessing']['crop']} px; 95% bootstrap CIs")
    rows = [("N", str(report["n_queries"]), str(back["n_queries"]))]
    for k in RECALL_KS:
        rows.append((f"R@{k}", _cell(report["recall"][str(k)], report["recall_ci"][str(k)]),
                     _cell(back["recall"][str(k)], back["recall_ci"][str(k)])))
    rows.append(("median rank", _cell(report["median_rank"], report["median_rank_ci"], 1),
                 _cell(back["median_rank"], back["median_rank_ci"], 1)))
    rows.append(("MRR", _cell(report["mrr"], report["mrr_ci"]), _cell(back["mrr"], back["mrr_ci"])))
    rows.append((f"top-{CANDIDATE_TOP} of {N_CANDIDATES}", _cell(report["candidate_top2"], report["candidate_top2_ci"]),
                 _cell(back["candidate_top2"], back["candidate_top2_ci"])))
    width = max(len(r[1]) for r in rows) + 2
    lines = [title, f"{'metric':<14}{'left -> right':<{width}}{'right -> left'}"]
    lines += [f"{name:<14}{a:<{width}}{b}" for name, a, b in rows]
    return "\n".join(lines)


def summary(report: dict) -> dict:
    """Return the report without the per-query ranks (for JSON files people read)."""
    def strip(part: dict) -> dict:
        return {k: v for k, v in part.items() if k != "ranks"}

    return {**strip(report), "right_to_left": strip(report["right_to_left"])}


def variant_row(name: str, ranks: np.ndarray, reference: np.ndarray | None, ks: tuple[int, ...],
                n_bootstrap: int) -> dict:
    """Return one row of the recipe table: R@k and MRR over all `ranks`, and with a `reference`, the gains in
    R@ks[0], R@ks[-1] and MRR as `(difference, low, high)`."""
    row = {"variant": name, **retrieval_metrics(ranks, ks)}
    if reference is not None:
        for k in (ks[0], ks[-1], None):
            gain = paired_gain(ranks, reference, k, n_bootstrap)
            row[f"{'MRR' if k is None else f'R@{k}'} gain"] = (gain["difference"], gain["low"], gain["high"])
    return row


def format_rows(rows: list[dict]) -> str:
    """Return the rows as a Markdown table (gains as `+0.050 [+0.010, +0.090]`)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, tuple):
            return interval(*value, signed=True)
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)
