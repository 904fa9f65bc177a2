"""LARS and the warm-up + cosine schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ttl_utils.train.optim import LARS, barlow_twins_param_groups, warmup_cosine


def test_weights_move_by_eta_times_their_norm_and_biases_by_plain_sgd():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    optimiser = LARS(barlow_twins_param_groups(layer, batch_size=256), lr=0.0, weight_decay=0.0, eta=0.01)
    layer.weight.grad = 1000 * torch.randn(3, 5)   # the gradient's scale does not matter to the weights
    layer.bias.grad = torch.full((3,), 2.0)
    optimiser.step()
    step = (layer.weight.detach() - weight).norm()
    assert float(step) == pytest.approx(0.2 * 0.01 * float(weight.norm()), rel=1e-5)
    assert torch.allclose(layer.bias.detach(), bias - 0.0048 * 2.0)


def test_momentum_accumulates_and_groups_scale_with_the_batch():
    layer = nn.Linear(2, 2)
    groups = barlow_twins_param_groups(layer, batch_size=512)
    assert [g["lr"] for g in groups] == [pytest.approx(0.4), pytest.approx(0.0096)]
    assert groups[1]["adapt"] is False and groups[1]["weight_decay"] == 0.0
    optimiser = LARS(groups, lr=0.0)
    for _ in range(2):
        layer.bias.grad = torch.ones(2)
        before = layer.bias.detach().clone()
        optimiser.step()
    assert torch.allclose(before - layer.bias.detach(), torch.full((2,), 0.0096 * 1.9))


def test_warmup_then_cosine():
    assert warmup_cosine(0, 100, 10) == 0.0
    assert warmup_cosine(5, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.001 + 0.999 * 0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.001)
