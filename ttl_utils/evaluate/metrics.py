"""Metrics on ranks, their bootstrap intervals, and `Ranked`: one model's ranks in both directions.

A rank is where a query's true partner lands among the candidates (1 is first). Everything
here works on ranks alone, with numpy: no model, no torch, so reports and slides stay light.
Every interval of the project is made by `metric_intervals` (or `paired_gain` for a
difference), always by the same percentile bootstrap over queries.

>>> recall_at_k(np.array([1, 3, 8]), 5)
0.6666666666666666
>>> metric_intervals(np.array([1, 1, 2, 4]), ["R@1"], n_bootstrap=200)["R@1"][0]
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

__all__ = ["CANDIDATE_TOP", "DIRECTIONS", "N_CANDIDATES", "RECALL_KS", "Ranked", "bootstrap_ci", "cmc_band",
           "cmc_curve", "disagreements", "first_place_counts", "holm", "holm_levels", "mean_reciprocal_rank",
           "median_rank", "metric", "metric_intervals", "paired_bootstrap", "paired_gain", "per_query", "rank_histogram",
           "recall_at_k", "retrieval_metrics", "seed_paired_gain"]

Metric = Callable[[np.ndarray], float]

DIRECTIONS = ("left -> right", "right -> left")
RECALL_KS = (1, 5, 10, 20, 25, 50, 100)
# the protocol of the 2023 University of Melbourne TTL challenge: the partner among 20 candidates, top 2
N_CANDIDATES, CANDIDATE_TOP = 20, 2
TOP_OF_CANDIDATES = f"top-{CANDIDATE_TOP} of {N_CANDIDATES}"


@dataclass
class Ranked:
    """One model's ranks of the true partner on a pair set, in both directions.

    `ranks[direction]` holds the rank among all candidates; `candidates[direction]` the rank among
    `N_CANDIDATES` (the partner and random foils), or None where not measured. A direction a
    model cannot rank (a learned score of left -> right pairs) is None.
    """

    name: str
    ranks: dict[str, np.ndarray | None]
    candidates: dict[str, np.ndarray | None]

    @classmethod
    def one_way(cls, name: str, ranks: np.ndarray) -> Ranked:
        """Return the ranks of a model that scores pairs (left -> right only, no 20-candidate protocol)."""
        return cls(name, {DIRECTIONS[0]: np.asarray(ranks), DIRECTIONS[1]: None}, {d: None for d in DIRECTIONS})

    @property
    def n_queries(self) -> int:
        return len(self.ranks[DIRECTIONS[0]])

    @property
    def left_to_right(self) -> np.ndarray:
        """The ranks of the left -> right direction."""
        return self.ranks[DIRECTIONS[0]]

    def both_ways(self) -> np.ndarray:
        """Return an `N x 2` array: each pair's partner rank left -> right and right -> left (a bootstrap
        over its rows resamples pairs, both directions together)."""
        return np.stack([self.ranks[DIRECTIONS[0]], self.ranks[DIRECTIONS[1]]], axis=1)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Return the fraction of queries whose match is within the top `k`."""
    return float(np.mean(np.asarray(ranks) <= k))


def median_rank(ranks: np.ndarray) -> float:
    """Return the median rank of the true match (1 is perfect)."""
    return float(np.median(ranks))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Return the mean of 1 / rank (1 is perfect, 1/N is the worst)."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


def retrieval_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 10, 20)) -> dict[str, float]:
    """Return `{"R@k": ..., "MRR": ...}` over all the ranks given (both directions pooled, for `N x 2`)."""
    return {**{f"R@{k}": recall_at_k(ranks, k) for k in ks}, "MRR": mean_reciprocal_rank(ranks)}


def metric(name: str) -> Metric:
    """Return the metric called `name` as a function of ranks: `R@k`, `MRR`, `median rank`, or
    `top-2 of 20` (R@2, meant for the ranks among 20 candidates)."""
    if name == "MRR":
        return mean_reciprocal_rank
    if name == "median rank":
        return median_rank
    if name == TOP_OF_CANDIDATES:
        return partial(recall_at_k, k=CANDIDATE_TOP)
    if name.startswith("R@") and name[2:].isdigit():
        return partial(recall_at_k, k=int(name[2:]))
    raise ValueError(f"Unknown metric {name!r}: R@k, MRR, median rank or {TOP_OF_CANDIDATES}.")


def _k_metric(k: int | None) -> Metric:
    """Return R@k, or the MRR for `k=None`."""
    return metric("MRR" if k is None else f"R@{k}")


def rank_histogram(ranks: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """Return the "frequency vector": entry `r - 1` counts the queries whose match is at rank `r`.

    Its length is `n_items` (the gallery size), else the largest rank seen.
    """
    ranks = np.asarray(ranks)
    n_items = n_items or int(ranks.max(initial=1))
    if ranks.size and (ranks.min() < 1 or ranks.max() > n_items):
        raise ValueError(f"Ranks must lie in 1..{n_items}, got {ranks.min()}..{ranks.max()}.")
    return np.bincount(ranks - 1, minlength=n_items)


def cmc_curve(ranks: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """Return the cumulative match curve: entry `k - 1` is recall@k, for k = 1 .. n_items."""
    counts = rank_histogram(ranks, n_items)
    return np.cumsum(counts) / max(len(ranks), 1)


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def cmc_band(ranks: np.ndarray, n_items: int | None = None, n: int = 200, seed: int = 0,
             level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return `(curve, low, high)`: the cumulative match curve and its pointwise percentile bootstrap
    band over queries (entry `k - 1` is recall@k)."""
    ranks = np.asarray(ranks)
    n_items = n_items or int(ranks.max(initial=1))
    curve = cmc_curve(ranks, n_items)
    resampled = ranks[_resample_indices(len(ranks), n, seed)]
    counts = np.stack([np.bincount(r - 1, minlength=n_items) for r in resampled])
    curves = np.cumsum(counts, axis=1) / max(len(ranks), 1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return curve, low, high


def bootstrap_ci(ranks: np.ndarray, metric: Metric, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Return `(metric(ranks), low, high)`: the percentile bootstrap interval over queries."""
    ranks = np.asarray(ranks)
    values = np.array([metric(ranks[idx]) for idx in _resample_indices(len(ranks), n, seed)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return metric(ranks), float(low), float(high)


def metric_intervals(ranks: np.ndarray, names: Sequence[str], candidates: np.ndarray | None = None,
                     n_bootstrap: int = 1000, seed: int = 0) -> dict[str, tuple[float, float, float] | None]:
    """Return `{name: (value, low, high)}` for each metric of `names` (see `metric`): 95% bootstrap
    intervals over the queries. `top-2 of 20` is measured on `candidates` (the ranks among 20
    candidates), None without them."""
    out: dict[str, tuple[float, float, float] | None] = {}
    for name in names:
        values = candidates if name == TOP_OF_CANDIDATES else ranks
        out[name] = None if values is None else bootstrap_ci(np.asarray(values), metric(name), n=n_bootstrap, seed=seed)
    return out


def paired_bootstrap(ranks_a: np.ndarray, ranks_b: np.ndarray, metric: Metric, n: int = 1000, seed: int = 0,
                     level: float = 0.95, higher_is_better: bool = True) -> dict[str, float]:
    """Compare two models on the same queries: the difference A - B, its CI, and how often A wins.

    The same resampled queries are used for both models, so the interval reflects the
    difference between them rather than the spread of query difficulty. Returns
    `{"difference", "low", "high", "a_better"}`, where `a_better` is the share of resamples
    in which A beats B (by `higher_is_better`).
    """
    ranks_a, ranks_b = np.asarray(ranks_a), np.asarray(ranks_b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"Paired ranks must have the same queries, got {ranks_a.shape} and {ranks_b.shape}.")
    diffs = np.array([metric(ranks_a[idx]) - metric(ranks_b[idx])
                      for idx in _resample_indices(len(ranks_a), n, seed)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    wins = diffs > 0 if higher_is_better else diffs < 0
    return {"difference": metric(ranks_a) - metric(ranks_b), "low": float(low), "high": float(high),
            "a_better": float(np.mean(wins))}


def paired_gain(ranks: np.ndarray, reference: np.ndarray, k: int | None = None, n_bootstrap: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """Return the paired-bootstrap gain of `ranks` over `reference` on the same queries in R@k
    (the MRR for `k=None`): `{"difference", "low", "high", "a_better"}`."""
    return paired_bootstrap(np.asarray(ranks), np.asarray(reference), _k_metric(k), n=n_bootstrap, seed=seed)


def disagreements(a: np.ndarray, b: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Return the queries where `a` puts the partner in its top `k` and `b` does not, and the reverse,
    each ordered by how far apart the two ranks are (largest first)."""
    a, b = np.asarray(a), np.asarray(b)
    only_a = np.flatnonzero((a <= k) & (b > k))
    only_b = np.flatnonzero((b <= k) & (a > k))
    return (only_a[np.argsort(-(b - a)[only_a], kind="stable")],
            only_b[np.argsort(-(a - b)[only_b], kind="stable")])


def first_place_counts(ranked: Sequence[Ranked], direction: str = DIRECTIONS[0]) -> dict[str, int]:
    """Return how many queries each model answered with the true partner first: the study's count."""
    return {model.name: int((model.ranks[direction] == 1).sum()) for model in ranked
            if model.ranks.get(direction) is not None}


def per_query(ranks: np.ndarray, name: str) -> np.ndarray:
    """Return each query's share of metric `name` (its mean over queries is the metric): `R@k` (1 when
    the partner is in the top k, else 0) or `MRR` (1 / rank)."""
    ranks = np.asarray(ranks)
    if name == "MRR":
        return 1.0 / ranks.astype(np.float64)
    if name.startswith("R@") and name[2:].isdigit():
        return (ranks <= int(name[2:])).astype(np.float64)
    raise ValueError(f"Unknown metric {name!r} for per-query values: R@k or MRR.")


def seed_paired_gain(runs_a: Sequence[np.ndarray], runs_b: Sequence[np.ndarray], name: str, level: float = 0.95,
                     n_bootstrap: int = 2000, seed: int = 0) -> dict[str, float]:
    """Compare two models, each trained with several seeds (`runs_a`, `runs_b`: one array of ranks a
    seed, the same queries in the same order), on metric `name` (`R@k`, `MRR`).

    Each query's value is averaged over a model's seeds first, then the difference A - B is
    bootstrapped over queries (the same resampled queries for both). Returns `{"difference",
    "low", "high", "p", "level"}`: the `level` percentile interval and the two-sided bootstrap p-value
    (twice the smaller share of resampled differences on either side of zero).
    """
    a = np.mean([per_query(r, name) for r in runs_a], axis=0)
    b = np.mean([per_query(r, name) for r in runs_b], axis=0)
    if a.shape != b.shape:
        raise ValueError(f"Both models must be ranked on the same queries, got {a.shape} and {b.shape}.")
    diffs = a - b
    means = diffs[_resample_indices(len(diffs), n_bootstrap, seed)].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    p = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    return {"difference": float(diffs.mean()), "low": float(low), "high": float(high), "p": float(p), "level": level}


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm's step-down adjusted p-values, in the order given: the i-th smallest p times the number
    of hypotheses not yet tested (m - i + 1), never below an earlier one, at most 1.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for step, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - step) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Return the confidence level of each hypothesis's interval under Holm's procedure: the i-th smallest
    p is tested at `alpha / (m - i + 1)`, so its interval is at `1 - alpha / (m - i + 1)`."""
    m = len(p_values)
    levels = [0.0] * m
    for step, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        levels[i] = 1 - alpha / (m - step)
    return levels
