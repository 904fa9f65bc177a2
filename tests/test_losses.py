"""Losses: Barlow Twins (formula, DDP equality); triplet mining and loss (hand-made cases,
pytorch-metric-learning); InfoNCE."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ttl_utils.train.losses import (
    barlow_twins_loss,
    cross_correlation,
    info_nce_loss,
    mine_triplets,
    off_diagonal,
    pair_labels,
    pair_triplet_loss,
    pairwise_distances,
    triplet_margin_loss,
)


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


@pytest.mark.slow
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


# --- triplet mining and the fine-tuning losses ---------------------------------------------------

def _circle(*degrees):
    angles = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def _triplets(found):
    return set(zip(*(t.tolist() for t in found)))


# lefts L0 at 0 deg, L1 at 20; rights R0 at 45, R1 at 180 (so L1 lies between L0 and its partner R0)
HAND_MADE = _circle(0, 20, 45, 180)


def test_miners_select_the_expected_triplets_on_hand_made_embeddings():
    labels = pair_labels(2)
    assert labels.tolist() == [0, 1, 0, 1]
    violating = {(0, 2, 1), (1, 3, 0), (1, 3, 2), (2, 0, 1), (3, 1, 0), (3, 1, 2)}
    assert _triplets(mine_triplets(HAND_MADE, labels, "all", margin=0.2)) == violating
    # only R1 -> L1 vs L0 (distances 1.970 vs 2.000) has its negative farther, within the margin
    assert _triplets(mine_triplets(HAND_MADE, labels, "semihard", margin=0.2)) == {(3, 1, 0)}
    # batch-hard: each anchor with its closest negative
    assert _triplets(mine_triplets(HAND_MADE, labels, "hard")) == {(0, 2, 1), (1, 3, 0), (2, 0, 1), (3, 1, 2)}
    # a wider margin lets in the easy triplets too
    assert len(mine_triplets(HAND_MADE, labels, "all", margin=2.5)[0]) == 8
    with pytest.raises(ValueError, match="Unknown miner 'random'"):
        mine_triplets(HAND_MADE, labels, "random")


def test_triplet_loss_is_the_mean_over_active_triplets():
    dist = pairwise_distances(HAND_MADE)
    assert torch.allclose(dist[0, 2], 2 * torch.sin(torch.tensor(45.0, dtype=torch.float64).deg2rad() / 2))
    triplets = (torch.tensor([0, 3, 0]), torch.tensor([2, 1, 2]), torch.tensor([1, 0, 3]))
    losses = [float(dist[0, 2] - dist[0, 1] + 0.2), float(dist[3, 1] - dist[3, 0] + 0.2)]  # the third is easy: 0
    assert triplet_margin_loss(HAND_MADE, triplets, 0.2).item() == pytest.approx(sum(losses) / 2)
    easy = (torch.tensor([0]), torch.tensor([2]), torch.tensor([3]))
    z = HAND_MADE.clone().requires_grad_(True)
    zero = triplet_margin_loss(z, easy, 0.2)
    zero.backward()
    assert zero.item() == 0.0 and torch.count_nonzero(z.grad) == 0


@pytest.mark.parametrize("miner", ["all", "semihard", "hard"])
def test_mining_and_loss_agree_with_pytorch_metric_learning(miner):
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses as pml_losses
    from pytorch_metric_learning import miners as pml_miners

    torch.manual_seed(3)
    left, right = torch.randn(12, 16), torch.randn(12, 16)
    right[:6] = left[:6] + 0.5 * right[:6]  # some pairs close, some not
    embeddings, labels = torch.cat([left, right]), pair_labels(12)
    reference = pml_miners.BatchHardMiner() if miner == "hard" else \
        pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets=miner)
    expected = reference(embeddings, labels)
    found = mine_triplets(embeddings, labels, miner, margin=0.2)
    assert _triplets(found) == _triplets(expected) and len(found[0]) > 0, pml.__version__
    expected_loss = pml_losses.TripletMarginLoss(margin=0.2)(embeddings, labels, expected)
    assert pair_triplet_loss(left, right, miner, 0.2).item() == pytest.approx(expected_loss.item(), rel=1e-5)


def test_info_nce_is_a_symmetric_softmax_over_the_batch():
    torch.manual_seed(0)
    left, right = torch.randn(5, 8), torch.randn(5, 8)
    logits = F.normalize(left, dim=1) @ F.normalize(right, dim=1).T / 0.1
    log_p_rows = logits.log_softmax(1).diag()
    log_p_cols = logits.log_softmax(0).diag()
    expected = -(log_p_rows.mean() + log_p_cols.mean()) / 2
    assert info_nce_loss(left, right, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    assert info_nce_loss(left, left, 0.1) < info_nce_loss(left, right, 0.1)
