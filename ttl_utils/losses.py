"""Losses. The Barlow Twins loss (Zbontar et al. 2021), correct under DDP.

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
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["barlow_twins_loss", "cross_correlation", "off_diagonal"]


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
