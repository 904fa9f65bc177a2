"""Judging a model on a pair set: cached embeddings, every metric with its CI, both directions.

>>> report = evaluate_model(build_embedder(), Preprocessing.for_size(224), pairs)   # doctest: +SKIP
>>> print(format_report(report))                                                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial

import torch

from .models import Embedder
from .pairs import PairSet
from .retrieval import (
    bootstrap_ci,
    candidate_ranks,
    embed,
    mean_reciprocal_rank,
    median_rank,
    rank_of_match,
    recall_at_k,
)
from .storage import cache_path, load_torch, save_torch
from .transforms import Preprocessing

__all__ = ["RECALL_KS", "model_fingerprint", "embed_pairs", "direction_report", "evaluate_model", "format_report", "summary"]

log = logging.getLogger(__name__)

RECALL_KS = (1, 5, 10, 20, 25, 50, 100)
N_CANDIDATES, CANDIDATE_TOP = 20, 2


def model_fingerprint(model: torch.nn.Module) -> str:
    """Return a digest of the model's weights and buffers: equal digests, equal models."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def embed_pairs(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                device: str = "cpu", num_workers: int | None = None, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the embeddings of the left and of the right images of `pairs`.

    With `cache`, they are stored under `artifacts/embeddings/`, keyed by the model's
    weights, its layers and head, the preprocessing and the dataset's fingerprint, and
    read from there the next time.
    """
    key = {"model": model_fingerprint(embedder), "describe": embedder.describe(),
           "preprocessing": preprocessing.to_dict(), "data": pairs.fingerprint}
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


def _cell(value, interval, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def format_report(report: dict) -> str:
    """Return the report as a text table: one row a metric, one column a direction."""
    back = report["right_to_left"]
    model = report["model"]
    title = (f"{report['dataset']}: {report['n_queries']} queries among {report['n_candidates']} candidates; "
             f"{model['backbone']} ({model['weights']}) {'+'.join(model['layers'])}"
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

