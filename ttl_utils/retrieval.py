"""Retrieval: embeddings, the rank of each query's true match, and the metrics on ranks.

Query `i`'s true match is gallery item `i`. Similarity is cosine; a gallery item that
ties with the true match counts as ranked above it (pessimistic), so a model that maps
everything to one point gets the worst rank, not the best.

>>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> rank_of_match(q, q).tolist()
[1, 1]
>>> recall_at_k(np.array([1, 3, 8]), 5)
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .loading import batches
from .pairs import ImageSource, open_rgb
from .progress import progress
from .runtime import default_workers
from .transforms import Preprocessing

__all__ = [
    "embed", "rank_of_match", "rank_of_match_by", "ranks_both_ways", "retrieval_metrics", "partner_distances",
    "recall_at_k", "median_rank",
    "mean_reciprocal_rank", "rank_histogram", "cmc_curve", "cmc_band", "bootstrap_ci", "paired_bootstrap", "candidate_ranks",
    "candidate_accuracy",
]

Metric = Callable[[np.ndarray], float]

TIE_TOLERANCE = 1e-6  # cosine similarities closer than this count as tied


class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], transform: Callable):
        self.sources, self.transform = sources, transform

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        if isinstance(self.transform, Preprocessing):  # uint8 pixels; `embed` normalises whole batches
            # a large JPEG is decoded reduced to what the resize keeps
            return self.transform.pixels(open_rgb(self.sources[i], min_side=self.transform.resize))
        return self.transform(open_rgb(self.sources[i]))


def embed(model: nn.Module, images: Sequence[ImageSource], transform: Callable, batch_size: int = 32,
          device: str | torch.device = "cpu", num_workers: int | None = None, desc: str = "Embedding") -> torch.Tensor:
    """Return `model`'s embeddings of `images` (paths or arrays) as an `N x D` float32 CPU tensor.

    Images are opened and transformed while the model runs: on CPU in threads of this
    process (`loading.threaded_batches`; `num_workers` of them, 0: one after the other), on a
    GPU in `num_workers` worker processes. No autograd graph is built. An `Embedder`'s backbone runs through the inference
    engine (`engine.frozen_maps`: ONNX Runtime on CPU), its pooling and head in torch; any
    other model runs in torch, in channels-last memory format.
    """
    from .engine import frozen_embeddings
    from .models import Embedder

    device = torch.device(device)
    loader = batches(_Images(images, transform), batch_size, device, num_workers, default_workers())
    with torch.no_grad():  # not inference mode: the moved weights must stay usable for training and attribution
        model = model.eval().to(device, memory_format=torch.channels_last)
    finish = transform.normalise if isinstance(transform, Preprocessing) else (lambda batch: batch)
    if isinstance(model, Embedder):
        embedding = frozen_embeddings(model, device)

        def forward(batch: torch.Tensor) -> torch.Tensor:
            return embedding(finish(batch))
    else:
        def forward(batch: torch.Tensor) -> torch.Tensor:
            return model(finish(batch).to(device, non_blocking=True, memory_format=torch.channels_last))
    with torch.inference_mode():
        out = [forward(batch).float().cpu() for batch in progress(loader, desc=desc, unit="batch", leave=False,
                                                                   total=-(-len(images) // batch_size))]
    return torch.cat(out) if out else torch.empty(0, 0)


def rank_of_match(query: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 1024,
                  tie_tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Return, for each query `i`, the 1-based rank of gallery item `i` by cosine similarity.

    Ties with the true match count against it; so do similarities within `tie_tolerance`
    of it, since float32 rounding can split two identical items by a few units in the last
    place. Works on `chunk_size` queries at a time, so memory grows with
    `chunk_size x len(gallery)`, not with `len(query)**2`.
    """
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query and gallery must be N x D and M x D, got {tuple(query.shape)} and {tuple(gallery.shape)}.")
    if len(query) > len(gallery):
        raise ValueError(f"Query i's match is gallery item i, but there are {len(query)} queries for {len(gallery)} items.")
    query = F.normalize(query.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    return rank_of_match_by(lambda block: block @ gallery.T, query, chunk_size, tie_tolerance)


@torch.no_grad()
def rank_of_match_by(score: Callable[[torch.Tensor], torch.Tensor], query: torch.Tensor, chunk_size: int = 1024,
                     tie_tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Return the rank of gallery item `i` for query `i` under any score (higher = more alike).

    `score(block)` returns the `len(block) x M` scores of a block of queries against the
    whole gallery: a learned distance head, for instance. Ties count against the match.
    """
    ranks = []
    for start in range(0, len(query), chunk_size):
        scores = score(query[start:start + chunk_size])
        true = scores[torch.arange(len(scores)), torch.arange(start, start + len(scores))].unsqueeze(1)
        ranks.append((scores >= true - tie_tolerance).sum(dim=1))  # the match itself and all as high
    return torch.cat(ranks).cpu().numpy().astype(np.int64)


def ranks_both_ways(left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
    """Return an `N x 2` array: the rank of each pair's partner, left -> right and right -> left."""
    return np.stack([rank_of_match(left, right), rank_of_match(right, left)], axis=1)


def retrieval_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 10, 20)) -> dict[str, float]:
    """Return `{"R@k": ..., "MRR": ...}` over all the ranks given (both directions pooled, for `N x 2`)."""
    return {**{f"R@{k}": recall_at_k(ranks, k) for k in ks}, "MRR": mean_reciprocal_rank(ranks)}


def partner_distances(left: torch.Tensor, right: torch.Tensor) -> dict[str, float]:
    """Return the mean Euclidean distance of each left embedding to its partner (`partner`) and to
    the other right embeddings (`others`), the standard deviation of the latter (`spread`), and
    the gap between the two means in units of that spread (`separation`): retrieval ranks a
    partner first when that gap is large, which a wider gap or a narrower spread both give."""
    distances = torch.cdist(left, right)
    off = ~torch.eye(len(left), dtype=torch.bool)
    partner, others = distances.diagonal(), distances[off]
    return {"partner": partner.mean().item(), "others": others.mean().item(), "spread": others.std().item(),
            "separation": ((others.mean() - partner.mean()) / others.std()).item()}


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Return the fraction of queries whose match is within the top `k`."""
    return float(np.mean(np.asarray(ranks) <= k))


def median_rank(ranks: np.ndarray) -> float:
    """Return the median rank of the true match (1 is perfect)."""
    return float(np.median(ranks))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Return the mean of 1 / rank (1 is perfect, 1/N is the worst)."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


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


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_ci(ranks: np.ndarray, metric: Metric, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Return `(metric(ranks), low, high)`: the percentile bootstrap interval over queries."""
    ranks = np.asarray(ranks)
    values = np.array([metric(ranks[idx]) for idx in _resample_indices(len(ranks), n, seed)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return metric(ranks), float(low), float(high)


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


@torch.no_grad()
def candidate_ranks(query: torch.Tensor, gallery: torch.Tensor, n_candidates: int = 20, seed: int = 0,
                    chunk_size: int = 1024, tie_tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Return each query's rank of its match among itself and `n_candidates - 1` random foils.

    The protocol of the 2023 University of Melbourne TTL challenge (COMP90086): the foils
    are drawn at random from the other gallery items; ties count against the match.
    """
    n = len(query)
    if n_candidates > len(gallery):
        raise ValueError(f"{n_candidates} candidates need at least as many gallery items, got {len(gallery)}.")
    rng = np.random.default_rng(seed)
    foils = np.stack([rng.choice(len(gallery) - 1, size=n_candidates - 1, replace=False) for _ in range(n)])
    foils += foils >= np.arange(n)[:, None]  # skip the match itself
    candidates = torch.from_numpy(np.concatenate([np.arange(n)[:, None], foils], axis=1))  # match first
    query = F.normalize(query.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    ranks = []
    for start in range(0, n, chunk_size):
        q = query[start:start + chunk_size]
        sims = torch.einsum("nd,nkd->nk", q, gallery[candidates[start:start + len(q)]])
        ranks.append((sims >= sims[:, :1] - tie_tolerance).sum(dim=1))
    return torch.cat(ranks).numpy().astype(np.int64)


def candidate_accuracy(query: torch.Tensor, gallery: torch.Tensor, n_candidates: int = 20, top: int = 2,
                       seed: int = 0) -> float:
    """Return the share of queries whose match is in the `top` of `n_candidates` (chance: top / n_candidates)."""
    return recall_at_k(candidate_ranks(query, gallery, n_candidates, seed), top)
