"""Judging a model on a pair set: cached embeddings, every metric with its CI, both directions.

The tables and their formatting live in `report`.

>>> report = evaluate_model(build_embedder(), Preprocessing.for_size(224), pairs)   # doctest: +SKIP
>>> print(format_report(report))                                                     # doctest: +SKIP
"""

from __future__ import annotations

import logging

import torch

from .models import Embedder
from .pairs import PairSet
from .report import direction_report
from .retrieval import embed
from .runtime import model_fingerprint
from .storage import cache_path, load_torch, save_torch
from .transforms import Preprocessing

__all__ = ["embed_pairs", "embeddings_cached", "evaluate_model", "training_overlap"]

log = logging.getLogger(__name__)


def _embedding_key(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet) -> dict:
    return {"model": model_fingerprint(embedder), "describe": embedder.describe(),
            "preprocessing": preprocessing.to_dict(), "data": pairs.fingerprint}


def embeddings_cached(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet) -> bool:
    """Return whether `embed_pairs` would read both sides from the cache (no forward pass)."""
    key = _embedding_key(embedder, preprocessing, pairs)
    return all(cache_path("embeddings", side=side, **key).is_file() for side in ("left", "right"))


def embed_pairs(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                device: str = "cpu", num_workers: int | None = None, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the embeddings of the left and of the right images of `pairs`.

    With `cache`, they are stored under `artifacts/embeddings/`, keyed by the model's
    weights, its layers and head, the preprocessing and the dataset's fingerprint, and
    read from there the next time.
    """
    key = _embedding_key(embedder, preprocessing, pairs)
    out = []
    for side, images in (("left", pairs.left), ("right", pairs.right)):
        path = cache_path("embeddings", side=side, **key)
        if cache and path.is_file():
            saved = load_torch(path)
            if list(saved["ids"]) == list(pairs.ids):
                log.info("Loaded cached %s embeddings from %s", side, path)
                out.append(saved["embeddings"])
                continue
        vectors = embed(embedder, images, preprocessing, batch_size=batch_size, device=device,
                        num_workers=num_workers, desc=f"Embedding {side} images")
        if cache:
            save_torch({"ids": list(pairs.ids), "embeddings": vectors, "key": repr(key)}, path)
        out.append(vectors)
    return out[0], out[1]


def evaluate_model(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                   device: str = "cpu", num_workers: int | None = None, cache: bool = True,
                   n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Return the retrieval report of `embedder` on `pairs`: left->right at the top level,
    right->left under `"right_to_left"`, plus what was evaluated."""
    left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device, num_workers, cache)
    return {
        "dataset": pairs.name,
        "fingerprint": pairs.fingerprint,
        "model": {**embedder.describe(), "fingerprint": model_fingerprint(embedder)},
        "preprocessing": preprocessing.to_dict(),
        **direction_report(left, right, n_bootstrap, seed),
        "right_to_left": direction_report(right, left, n_bootstrap, seed),
    }


def training_overlap(extra: dict, pairs: PairSet) -> int:
    """Return how many of `pairs` a checkpoint was fine-tuned on (its `extra`, as `load_checkpoint`
    returns it, records the digests of its training pairs); 0 when it records none."""
    trained_on = (extra.get("finetune") or {}).get("trained_on") if isinstance(extra, dict) else None
    if not trained_on:
        return 0
    return len(set(pairs.pair_digests()) & set(trained_on))
