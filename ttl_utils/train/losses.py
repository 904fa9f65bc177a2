"""Losses: Barlow Twins for pretraining; triplet (with in-batch mining) and InfoNCE for fine-tuning.

## Barlow Twins (Zbontar et al. 2021), correct under DDP

Each view's embeddings are normalised along the batch (zero mean, unit variance per
dimension, statistics of that view alone), their cross-correlation matrix is computed over
the *global* batch, and the loss pulls its diagonal to 1 (invariance) and its off-diagonal
to 0 (redundancy reduction):

    loss = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2

Under DDP every process holds a slice of the batch. The batch statistics and the
cross-correlation are summed across processes with an all-reduce that carries gradients
(`torch.distributed.nn.functional.all_reduce`), so every process computes the loss of the
whole batch, and its backward sums the processes' gradients; after DDP averages parameter
gradients, they equal those of one process holding the whole batch. The official code's
plain `all_reduce` carries no gradient, which leaves them divided by the world size.

>>> z1, z2 = torch.randn(32, 8), torch.randn(32, 8)
>>> float(barlow_twins_loss(z1, z1)) < float(barlow_twins_loss(z1, z2))
True

## Triplet loss with in-batch mining, and InfoNCE

A batch holds B pairs. Its 2B embeddings (lefts, then rights) carry the pair index as
label, so every image is an anchor (left->right and right->left), its partner is the
positive, and the other 2B - 2 images are negatives. With L2-normalised embeddings and
Euclidean distance d, a triplet (a, p, n) costs `relu(d(a, p) - d(a, n) + margin)`.
Miners choose the triplets, with the conventions of `pytorch-metric-learning` 2.x
(`TripletMarginMiner`, `BatchHardMiner`; the tests check that they agree):

- `all`: every triplet that violates the margin, `d(a, n) - d(a, p) <= margin`;
- `semihard`: of those, the ones whose negative is still farther than the positive;
- `hard`: batch-hard, one triplet per anchor with its closest negative.

The loss averages over the triplets with a positive loss (`AvgNonZeroReducer`).
`info_nce_loss` is the contrastive alternative: a softmax over the batch in each direction.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .recipes import MINERS

__all__ = ["barlow_twins_loss", "cross_correlation", "info_nce_loss", "mine_triplets", "off_diagonal",
           "pair_labels", "pair_triplet_loss", "pairwise_distances", "triplet_margin_loss"]


def _global_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum `x` over all processes, keeping the autograd graph (identity without DDP)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def _normalise(z: torch.Tensor, n_global: int, eps: float) -> torch.Tensor:
    """Batch-normalise `z` (no affine) with statistics over the global batch."""
    mean = _global_sum(z.sum(dim=0)) / n_global
    centred = z - mean
    var = _global_sum((centred**2).sum(dim=0)) / n_global
    return centred / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Return the `D x D` cross-correlation matrix of two views' embeddings over the global batch."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"Both views must be N x D with the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}.")
    n_global = int(_global_sum(torch.tensor(float(len(z1)), device=z1.device)).item())
    if n_global < 2:
        raise ValueError("Batch statistics need at least 2 samples in the (global) batch.")
    z1n, z2n = _normalise(z1.float(), n_global, eps), _normalise(z2.float(), n_global, eps)
    return _global_sum(z1n.T @ z2n) / n_global


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """Return the off-diagonal entries of a square matrix, flattened."""
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, scale: float = 1.0) -> torch.Tensor:
    """Return the Barlow Twins loss of two views' projections `z1`, `z2` (each `N x D`).

    `lambd` weighs the off-diagonal (redundancy) term, 0.0051 as in the paper for D = 8192;
    `scale` multiplies the whole loss (the paper's code offers it for small D).
    """
    c = cross_correlation(z1, z2)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return scale * (on_diag + lambd * off_diag)


def pair_labels(n_pairs: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Return the labels of a batch of `n_pairs` pairs stacked as (lefts, rights): `0..n-1` twice."""
    return torch.arange(n_pairs, device=device).repeat(2)


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Return the Euclidean distances between the L2-normalised `embeddings` (`N x N`)."""
    z = F.normalize(embeddings, dim=1)
    # sqrt(2 - 2 cos); the floor keeps the gradient finite for identical embeddings
    return (2 - 2 * z @ z.T).clamp(min=1e-12).sqrt()


def mine_triplets(embeddings: torch.Tensor, labels: torch.Tensor, miner: str = "all",
                  margin: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the `(anchor, positive, negative)` indices that `miner` selects (see the module doc)."""
    if miner not in MINERS:
        raise ValueError(f"Unknown miner {miner!r}; choose one of: {', '.join(MINERS)}.")
    with torch.no_grad():
        dist = pairwise_distances(embeddings.detach().float())
        same = labels[:, None] == labels[None, :]
        positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        negative = ~same
        if miner == "hard":
            has_both = positive.any(1) & negative.any(1)
            anchors = torch.nonzero(has_both).squeeze(1)
            far_pos = dist.masked_fill(~positive, -float("inf")).argmax(1)
            near_neg = dist.masked_fill(~negative, float("inf")).argmin(1)
            return anchors, far_pos[anchors], near_neg[anchors]
        a, p, n = torch.where(positive[:, :, None] & negative[:, None, :])
        gap = dist[a, n] - dist[a, p]
        keep = gap <= margin
        if miner == "semihard":
            keep &= gap > 0
        return a[keep], p[keep], n[keep]


def triplet_margin_loss(embeddings: torch.Tensor, triplets: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                        margin: float = 0.2) -> torch.Tensor:
    """Return the mean of `relu(d(a, p) - d(a, n) + margin)` over the `triplets` with a positive loss
    (zero, with a gradient, when there are none)."""
    a, p, n = triplets
    dist = pairwise_distances(embeddings)
    losses = F.relu(dist[a, p] - dist[a, n] + margin)
    active = losses > 0
    if not active.any():
        return embeddings.sum() * 0.0
    return losses[active].mean()


def pair_triplet_loss(left: torch.Tensor, right: torch.Tensor, miner: str = "all", margin: float = 0.2) -> torch.Tensor:
    """Return the triplet loss of a batch of pairs (`left[i]` matches `right[i]`), anchors on both sides."""
    embeddings = torch.cat([left, right])
    labels = pair_labels(len(left), device=left.device)
    return triplet_margin_loss(embeddings, mine_triplets(embeddings, labels, miner, margin), margin)


def info_nce_loss(left: torch.Tensor, right: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Return the symmetric InfoNCE loss: each image must pick its partner among the other side's batch."""
    logits = F.normalize(left, dim=1) @ F.normalize(right, dim=1).T / temperature
    target = torch.arange(len(left), device=left.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
