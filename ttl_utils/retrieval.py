"""Retrieval metrics: where does each query's true match land among all gallery items?

Query `i`'s true match is gallery item `i`. Similarity is cosine; a gallery item that
ties with the true match counts as ranked above it (pessimistic), so a model that maps
everything to one point gets the worst rank, not the best.

>>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> rank_of_match(q, q).tolist()
[1, 1]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["rank_of_match", "recall_at_k"]


@torch.no_grad()
def rank_of_match(query: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 1024) -> np.ndarray:
    """Return, for each query `i`, the 1-based rank of gallery item `i` by cosine similarity.

    Ties with the true match count against it. Works on `chunk_size` queries at a time,
    so memory grows with `chunk_size x len(gallery)`, not with `len(query)**2`.
    """
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query and gallery must be N x D and M x D, got {tuple(query.shape)} and {tuple(gallery.shape)}.")
    if len(query) > len(gallery):
        raise ValueError(f"Query i's match is gallery item i, but there are {len(query)} queries for {len(gallery)} items.")
    query = F.normalize(query.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    ranks = []
    for start in range(0, len(query), chunk_size):
        sims = query[start:start + chunk_size] @ gallery.T
        rows = torch.arange(len(sims))
        true = sims[rows, rows + start].unsqueeze(1)
        # every other item at least as similar as the match is ranked above it
        ranks.append((sims >= true).sum(dim=1))
    return torch.cat(ranks).cpu().numpy().astype(np.int64)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Return the fraction of queries whose match is within the top `k`."""
    return float(np.mean(np.asarray(ranks) <= k))
