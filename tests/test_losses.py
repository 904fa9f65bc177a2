"""The Barlow Twins loss: its formula, and equality under DDP with the single-process loss."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ttl_utils.losses import barlow_twins_loss, cross_correlation, off_diagonal


def reference_loss(z1, z2, lambd):
    """The formula written out with numpy-style loops, for a single process."""
    n, d = z1.shape
    z1n = (z1 - z1.mean(0)) / z1.var(0, unbiased=False).add(1e-5).sqrt()
    z2n = (z2 - z2.mean(0)) / z2.var(0, unbiased=False).add(1e-5).sqrt()
    c = z1n.T @ z2n / n
    loss = 0.0
    for i in range(d):
        for j in range(d):
            loss = loss + ((1 - c[i, j]) ** 2 if i == j else lambd * c[i, j] ** 2)
    return loss


def test_loss_matches_the_written_out_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)
    assert float(barlow_twins_loss(z1, z2, lambd=0.1)) == pytest.approx(float(reference_loss(z1, z2, 0.1)), rel=1e-5)


def test_identical_views_have_a_unit_diagonal_and_off_diagonal_helper():
    z = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    c = cross_correlation(z, z)
    assert torch.allclose(torch.diagonal(c), torch.ones(5), atol=1e-4)
    assert off_diagonal(torch.arange(9.0).view(3, 3)).tolist() == [1, 2, 3, 5, 6, 7]
    with pytest.raises(ValueError, match="same shape"):
        barlow_twins_loss(z, z[:, :3])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, z1, z2, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = len(z1) // world
        a = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        b = z2[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        loss = barlow_twins_loss(a, b, lambd=0.05)
        loss.backward()
        out[rank] = (float(loss.detach()), a.grad.clone())
    finally:
        dist.destroy_process_group()


def test_ddp_loss_and_gradients_equal_the_single_process_ones():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(12, 4, generator=g), torch.randn(12, 4, generator=g)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    single = barlow_twins_loss(a, b, lambd=0.05)
    single.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, _free_port(), z1, z2, out), nprocs=2, join=True)
        results = dict(out)
    for rank in range(2):
        loss, grad = results[rank]
        assert loss == pytest.approx(float(single.detach()), rel=1e-5)
        # Every process computes the same global loss and the all-reduce's backward sums their
        # gradients: world_size x its slice. DDP then averages parameter gradients over the
        # processes, which leaves exactly the single-process gradient (a plain all_reduce would
        # leave it divided by the world size).
        assert torch.allclose(grad, 2 * a.grad[rank * 6:(rank + 1) * 6], atol=1e-6)
