"""Optimisers and schedules for self-supervised pretraining: LARS as in Barlow Twins.

LARS scales each weight matrix's update by a trust ratio `eta * |w| / |g|`, so every layer
moves by a similar fraction of its size whatever its gradient's scale: what makes very
large batches trainable. As in the paper, biases and normalisation parameters (the 1-D
tensors) get neither weight decay nor the adaptation, and their own learning rate.

>>> model = torch.nn.Linear(4, 2)
>>> optimiser = LARS(barlow_twins_param_groups(model, batch_size=256), lr=0.0)
>>> [round(g["lr"], 4) for g in optimiser.param_groups]
[0.2, 0.0048]
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LARS", "barlow_twins_param_groups", "warmup_cosine"]


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017), as Barlow Twins uses it.

    A group with `adapt=False` (biases, norms) is plain SGD with momentum and no weight decay.
    """

    def __init__(self, params, lr: float, weight_decay: float = 1.5e-6, momentum: float = 0.9, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["adapt"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.norm(p), torch.norm(update)
                    one = torch.ones_like(param_norm)
                    trust = torch.where(param_norm > 0,
                                        torch.where(update_norm > 0, group["eta"] * param_norm / update_norm, one), one)
                    update = update.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss


def barlow_twins_param_groups(model: nn.Module, batch_size: int, lr_weights: float = 0.2,
                              lr_biases: float = 0.0048) -> list[dict]:
    """Return LARS parameter groups: weights (adapted, decayed) and 1-D parameters (neither),
    with the paper's learning rates scaled by `batch_size / 256`."""
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    others = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    scale = batch_size / 256
    return [
        {"params": weights, "lr": lr_weights * scale, "base_lr": lr_weights * scale},
        {"params": others, "lr": lr_biases * scale, "base_lr": lr_biases * scale, "adapt": False, "weight_decay": 0.0},
    ]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_ratio: float = 0.001) -> float:
    """Return the learning-rate multiplier at `step`: linear warm-up from 0, then cosine decay to `final_ratio`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
