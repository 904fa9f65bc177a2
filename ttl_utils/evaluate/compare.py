"""Judging models on a pair set: one model's full report (`evaluate`), or several ranked on the same
pairs (`compare`), their embeddings cached.

Each model ranks every right image for each left image (and back) on the same pairs; the
tables, paired gains and verdicts are made by `report`. A MODEL is a checkpoint this project
writes or a backbone name with optional weights (`models.checkpoints.load_model`).

>>> ranked = compare_models({"A": (embedder_a, pre_a), "B": (embedder_b, pre_b)}, pairs)   # doctest: +SKIP
>>> print(format_comparison(comparison_table(ranked), verdicts(ranked)))                   # doctest: +SKIP
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..config import Profile
from ..data.pairs import PairSet
from ..digests import model_fingerprint
from ..models.checkpoints import load_model
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from .embeddings import embed_pairs, embeddings_cached
from .metrics import DIRECTIONS, Ranked
from .ranking import rank_pairs
from .report import direction_report

__all__ = ["compare_models", "evaluate_model", "load_models", "rank_model", "rank_on_subsets", "training_overlap"]

log = logging.getLogger(__name__)


def rank_model(name: str, embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, device: str = "cpu",
               batch_size: int = 32, num_workers: int | None = None, cache: bool = True, seed: int = 0) -> Ranked:
    """Return the ranks of `embedder` on `pairs` (both directions, and among 20 candidates), its
    embeddings read from (or written to) the cache."""
    if cache and embeddings_cached(embedder, preprocessing, pairs):
        log.info("%s: embeddings from the cache (no forward pass)", name)
    left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device, num_workers, cache)
    return rank_pairs(name, left, right, seed)


def evaluate_model(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                   device: str = "cpu", num_workers: int | None = None, cache: bool = True,
                   n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Return the retrieval report of `embedder` on `pairs`: left->right at the top level,
    right->left under `"right_to_left"`, plus what was evaluated (what `evaluate --json` writes)."""
    ranked = rank_pairs("", *embed_pairs(embedder, preprocessing, pairs, batch_size, device, num_workers, cache), seed)
    forth, back = (direction_report(ranked.ranks[d], ranked.candidates[d], len(pairs), n_bootstrap, seed)
                   for d in DIRECTIONS)
    return {
        "dataset": pairs.name,
        "fingerprint": pairs.fingerprint,
        "model": {**embedder.describe(), "fingerprint": model_fingerprint(embedder)},
        "preprocessing": preprocessing.to_dict(),
        **forth,
        "right_to_left": back,
    }


def training_overlap(extra: dict, pairs: PairSet) -> int:
    """Return how many of `pairs` a checkpoint was fine-tuned on (its `extra`, as `load_checkpoint`
    returns it, records the digests of its training pairs); 0 when it records none."""
    trained_on = (extra.get("finetune") or {}).get("trained_on") if isinstance(extra, dict) else None
    if not trained_on:
        return 0
    return len(set(pairs.pair_digests()) & set(trained_on))


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
            out[name].append(rank_pairs(model, left[idx], right[idx], seed))
    return out
