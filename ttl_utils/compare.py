"""Several models ranked on the same pairs: one table with CIs, paired gains over the first, verdicts.

The engine of `python -m ttl_utils compare` and of notebook 06. Each model ranks every right
image for each left image (and back) on the same pairs; the table gives R@1/5/10/25, the
median rank, the MRR and the 20-candidate top-2 accuracy with 95% bootstrap CIs, and the
paired bootstrap gain of every model over the first. The verdict sentences are printed from
the left -> right R@1 interval, never written by hand.

A MODEL is a checkpoint this project writes (`finetune`, `pretrain`) or a backbone name,
optionally with its weights (`resnet50:barlowtwins`), used zero-shot.

>>> ranked = [rank_embeddings("A", left_a, right_a), rank_embeddings("B", left_b, right_b)]  # doctest: +SKIP
>>> print(format_comparison(comparison_table(ranked), verdicts(ranked)))                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Profile
from .evaluation import embed_pairs, embeddings_cached
from .models import BACKBONES, Embedder, build_embedder, load_checkpoint
from .pairs import PairSet
from .report import CANDIDATE_TOP, N_CANDIDATES, interval, paired_gain, verdict
from .retrieval import (
    bootstrap_ci,
    candidate_ranks,
    mean_reciprocal_rank,
    median_rank,
    rank_of_match,
    recall_at_k,
)
from .transforms import Preprocessing

__all__ = ["DIRECTIONS", "Ranked", "comparison_summary", "comparison_table", "disagreements", "format_comparison",
           "compare_models", "load_model", "load_models", "rank_embeddings", "rank_model", "rank_on_subsets", "unique_names",
           "verdicts", "head_to_head", "first_place_counts"]

log = logging.getLogger(__name__)

DIRECTIONS = ("left -> right", "right -> left")
TABLE_KS = (1, 5, 10, 25)
GAIN_KS = (1, 10)


@dataclass
class Ranked:
    """One model's ranks of the true partner on a pair set, in both directions.

    `ranks[direction]` holds the rank among all candidates; `candidates[direction]` the rank among
    the partner and 19 random foils (None where there are fewer than 20 pairs, or for a model that
    scores pairs rather than embedding images: then only what it has is reported).
    """

    name: str
    ranks: dict[str, np.ndarray]
    candidates: dict[str, np.ndarray | None]

    @classmethod
    def one_way(cls, name: str, ranks: np.ndarray) -> Ranked:
        """Return the ranks of a model that scores pairs (left -> right only, no 20-candidate protocol)."""
        return cls(name, {DIRECTIONS[0]: np.asarray(ranks), DIRECTIONS[1]: None}, {d: None for d in DIRECTIONS})

    @property
    def n_queries(self) -> int:
        return len(self.ranks[DIRECTIONS[0]])


def rank_embeddings(name: str, left: torch.Tensor, right: torch.Tensor, seed: int = 0) -> Ranked:
    """Return the ranks of `left[i]`'s partner `right[i]` (and back) by cosine similarity."""
    enough = len(left) >= N_CANDIDATES
    ranks, candidates = {}, {}
    for direction, (query, gallery) in zip(DIRECTIONS, ((left, right), (right, left))):
        ranks[direction] = rank_of_match(query, gallery)
        candidates[direction] = candidate_ranks(query, gallery, N_CANDIDATES, seed) if enough else None
    return Ranked(name, ranks, candidates)


def load_model(spec: str, profile: Profile) -> tuple[Embedder, Preprocessing]:
    """Return `(embedder, preprocessing)` for a MODEL: a checkpoint file of this project, or a backbone
    name with optional `:weights` (zero-shot, pooled last stage, the profile's image size)."""
    path = Path(spec)
    if path.is_file():
        embedder, preprocessing, _ = load_checkpoint(path)
        return embedder, preprocessing
    name, _, weights = spec.partition(":")
    if name in BACKBONES:
        weights = None if weights == "none" else weights or "imagenet"  # none: random weights, a floor
        embedder = build_embedder(name, weights, seed=0)  # random weights with a fixed seed: reproducible, cached
        return embedder, Preprocessing.for_size(profile.image_size)
    known = ", ".join(sorted(BACKBONES))
    if path.suffix or "/" in spec:
        raise FileNotFoundError(f"MODEL {spec}: no such checkpoint file (a MODEL is a checkpoint or a backbone: {known}).")
    raise ValueError(f"MODEL {spec}: neither a checkpoint file nor a backbone (backbones: {known}).")


def rank_model(name: str, embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, device: str = "cpu",
               batch_size: int = 32, num_workers: int | None = None, cache: bool = True, seed: int = 0) -> Ranked:
    """Return the ranks of `embedder` on `pairs`, its embeddings read from (or written to) the cache."""
    if cache and embeddings_cached(embedder, preprocessing, pairs):
        log.info("%s: embeddings from the cache (no forward pass)", name)
    left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device, num_workers, cache)
    return rank_embeddings(name, left, right, seed)


def _cells(ranks: np.ndarray, candidates: np.ndarray | None, n_bootstrap: int, seed: int) -> dict[str, str]:
    def ci(metric, values=ranks, digits=3):
        return interval(*bootstrap_ci(values, metric, n=n_bootstrap, seed=seed), digits=digits)

    cells = {f"R@{k}": ci(lambda r, k=k: recall_at_k(r, k)) for k in TABLE_KS}
    cells["median rank"] = ci(median_rank, digits=1)
    cells["MRR"] = ci(mean_reciprocal_rank)
    top = f"top-{CANDIDATE_TOP} of {N_CANDIDATES}"
    cells[top] = "n/a" if candidates is None else ci(lambda r: recall_at_k(r, CANDIDATE_TOP), candidates)
    return cells


def _gain(model: Ranked, reference: Ranked, direction: str, k: int | None, n_bootstrap: int, seed: int) -> dict:
    return paired_gain(model.ranks[direction], reference.ranks[direction], k, n_bootstrap, seed)


def _check_same_queries(ranked: Sequence[Ranked]) -> None:
    sizes = {model.name: model.n_queries for model in ranked}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Models must be ranked on the same pairs; got query counts {sizes}.")


def comparison_table(ranked: Sequence[Ranked], n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Return one row per (direction, model): metrics with 95% CIs, and paired gains over the first model."""
    _check_same_queries(ranked)
    rows = {}
    for direction in DIRECTIONS:
        for model in ranked:
            if model.ranks.get(direction) is None:
                continue
            row = {"N": str(model.n_queries),
                   **_cells(model.ranks[direction], model.candidates.get(direction), n_bootstrap, seed)}
            reference = ranked[0]
            if model is not reference and reference.ranks.get(direction) is not None:
                for k in (*GAIN_KS, None):
                    gain = _gain(model, reference, direction, k, n_bootstrap, seed)
                    label = "MRR" if k is None else f"R@{k}"
                    row[f"{label} gain"] = interval(gain["difference"], gain["low"], gain["high"], signed=True)
            rows[(direction, model.name)] = row
    table = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["direction", "model"])
    return table


def verdicts(ranked: Sequence[Ranked], n_bootstrap: int = 1000, seed: int = 0) -> list[str]:
    """Return one sentence per model after the first, from the paired CI of left -> right R@1."""
    _check_same_queries(ranked)
    reference, lines = ranked[0], []
    for model in ranked[1:]:
        gain = _gain(model, reference, DIRECTIONS[0], 1, n_bootstrap, seed)
        ahead = verdict(gain, better=model.name, worse=reference.name, same="")
        if ahead == model.name:
            shown, behind = gain, reference.name
        elif ahead:
            shown = {"difference": -gain["difference"], "low": -gain["high"], "high": -gain["low"]}
            behind = model.name
        else:
            lines.append(f"{model.name} vs {reference.name}: no clear difference "
                         f"(R@1 {interval(gain['difference'], gain['low'], gain['high'], signed=True)})")
            continue
        lines.append(f"{ahead} finds the partner first more often than {behind}: "
                     f"{interval(shown['difference'], shown['low'], shown['high'], signed=True)}")
    return lines


def format_comparison(table: pd.DataFrame, lines: Sequence[str], title: str = "") -> str:
    """Return the table as text, one block per direction, then the verdicts."""
    out = [title] if title else []
    for direction in table.index.get_level_values("direction").unique():
        part = table.xs(direction, level="direction")
        gains = [c for c in part.columns if c.endswith(" gain")]
        out += ["", f"{direction} (95% bootstrap CIs):", part.drop(columns=gains).to_string()]
        if gains:
            rows = part[gains][(part[gains] != "").any(axis=1)]  # the reference has no gain over itself
            out += ["", f"{direction}, paired gain over {table.index[0][1]}:", rows.to_string()]
    if lines:
        out += ["", "Verdicts (left -> right R@1, paired bootstrap):", *(f"- {line}" for line in lines)]
    return "\n".join(out)


def comparison_summary(ranked: Sequence[Ranked], table: pd.DataFrame, lines: Sequence[str], **about) -> dict:
    """Return what `compare --json` writes: `about` (data, split, ...), the table's cells, the verdicts,
    and every model's ranks (so the figures can be redrawn without the models)."""
    return {
        **about,
        "n_queries": ranked[0].n_queries,
        "models": [model.name for model in ranked],
        "table": {f"{direction} | {name}": row for (direction, name), row in table.to_dict(orient="index").items()},
        "verdicts": list(lines),
        "ranks": {model.name: {d: r.tolist() for d, r in model.ranks.items() if r is not None} for model in ranked},
    }


def disagreements(a: np.ndarray, b: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Return the queries where `a` puts the partner in its top `k` and `b` does not, and the reverse,
    each ordered by how far apart the two ranks are (largest first)."""
    a, b = np.asarray(a), np.asarray(b)
    only_a = np.flatnonzero((a <= k) & (b > k))
    only_b = np.flatnonzero((b <= k) & (a > k))
    return (only_a[np.argsort(-(b - a)[only_a], kind="stable")],
            only_b[np.argsort(-(a - b)[only_b], kind="stable")])


def unique_names(names: Sequence[str]) -> list[str]:
    """Return `names` with repeats told apart: `a, a` -> `a, a (2)`."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def load_models(models: dict[str, str], profile: Profile) -> dict[str, tuple[Embedder, Preprocessing]]:
    """Return `{name: (embedder, preprocessing)}` for `{name: MODEL}`: all loaded before any runs, so a
    wrong MODEL stops the comparison at once."""
    return {name: load_model(spec, profile) for name, spec in models.items()}


def compare_models(loaded: dict[str, tuple[Embedder, Preprocessing]], pairs: PairSet, device: str = "cpu",
                   batch_size: int = 32, num_workers: int | None = None, cache: bool = True) -> list[Ranked]:
    """Return the ranks of each `{name: (embedder, preprocessing)}` on `pairs`, in order; embeddings
    come from the cache when there (and it says when no forward pass was needed)."""
    cached_already = sum(cache and embeddings_cached(e, p, pairs) for e, p in loaded.values())
    ranked = [rank_model(name, embedder, preprocessing, pairs, device, batch_size, num_workers, cache)
              for name, (embedder, preprocessing) in loaded.items()]
    if cached_already == len(loaded):
        log.info("All %d models' embeddings came from the cache (artifacts/embeddings/): no forward pass.", len(loaded))
    else:
        log.info("Embedded %d of %d models, %d from the cache.", len(loaded) - cached_already, len(loaded),
                 cached_already)
    return ranked


def rank_on_subsets(loaded: dict[str, tuple[Embedder, Preprocessing]], pairs: PairSet,
                    subsets: dict[str, np.ndarray], device: str = "cpu", batch_size: int = 32,
                    seed: int = 0) -> dict[str, list[Ranked]]:
    """Return `{subset: [Ranked, ...]}`: each model embeds `pairs` once (cached) and is ranked within
    each subset of indices (its candidates are that subset's right images only)."""
    out: dict[str, list[Ranked]] = {name: [] for name in subsets}
    for model, (embedder, preprocessing) in loaded.items():
        left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device)
        for name, indices in subsets.items():
            idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
            out[name].append(rank_embeddings(model, left[idx], right[idx], seed))
    return out


def head_to_head(ranked: Sequence[Ranked], matches: Sequence[tuple[str, str]], n_bootstrap: int = 1000,
                 seed: int = 0) -> list[str]:
    """Return the verdict of each `(reference, challenger)` pair of model names present in `ranked`."""
    by_name = {model.name: model for model in ranked}
    return [verdicts([by_name[a], by_name[b]], n_bootstrap, seed)[0] for a, b in matches
            if a in by_name and b in by_name]


def first_place_counts(ranked: Sequence[Ranked], direction: str = DIRECTIONS[0]) -> dict[str, int]:
    """Return how many queries each model answered with the true partner first: the study's count."""
    return {model.name: int((model.ranks[direction] == 1).sum()) for model in ranked
            if model.ranks.get(direction) is not None}
