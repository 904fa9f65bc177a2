"""The learned-distance baseline: a Siamese pair classifier on frozen embeddings.

The study's first attempt: a frozen backbone embeds both images; "adaptive layers" on
top learn whether two embeddings are a pair. It trains on cached embeddings, so it runs
in seconds on a CPU.

>>> scorer, history = fit_pair_classifier(train_left, train_right, val_left, val_right)   # doctest: +SKIP
>>> ranks = scorer.rank(test_left, test_right)                                             # doctest: +SKIP
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate.metrics import recall_at_k
from ..evaluate.ranking import rank_of_match_by
from .recipes import PairTrainingConfig

__all__ = ["PAIR_FEATURES", "PairScorer", "fit_pair_classifier", "pair_loss", "sample_negatives",
           "evaluate_pair_classifier"]

log = logging.getLogger(__name__)

PAIR_FEATURES = {
    # symmetric in (a, b): the classic Siamese "distance" features
    "absdiff_prod": lambda a, b: torch.cat([(a - b).abs(), a * b], dim=1),
    "absdiff": lambda a, b: (a - b).abs(),
    # the two embeddings themselves as well: more capacity, and more to over-fit
    "concat": lambda a, b: torch.cat([a, b, (a - b).abs(), a * b], dim=1),
}


class PairScorer(nn.Module):
    """Returns a logit per pair of embeddings: high when `a` and `b` look like a TTL pair."""

    def __init__(self, dim: int, features: str = "absdiff_prod", hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        if features not in PAIR_FEATURES:
            raise ValueError(f"Unknown pair features {features!r}; choose one of: {', '.join(PAIR_FEATURES)}.")
        self.features = features
        width = PAIR_FEATURES[features](torch.zeros(1, dim), torch.zeros(1, dim)).shape[1]
        layers: list[nn.Module] = [nn.Linear(width, 1)] if hidden == 0 else [
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return the logits of the pairs `(a[i], b[i])`, shape `(N,)`."""
        return self.mlp(PAIR_FEATURES[self.features](a, b)).squeeze(1)

    @torch.no_grad()
    def score_matrix(self, query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        """Return the `len(query) x len(gallery)` logits of every query against every gallery item."""
        n, m = len(query), len(gallery)
        a = query.repeat_interleave(m, dim=0)
        b = gallery.repeat(n, 1)
        return self(a, b).view(n, m)

    @torch.no_grad()
    def rank(self, query: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 16) -> np.ndarray:
        """Return the rank of each query's match among all gallery items by this learned score."""
        was_training = self.training
        self.eval()
        ranks = rank_of_match_by(lambda block: self.score_matrix(query[block], gallery), torch.arange(len(query)),
                                 chunk_size)
        self.train(was_training)
        return ranks


def sample_negatives(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Return an `n x k` array of partner indices `j != i` drawn at random for each `i`."""
    if n < 2:
        raise ValueError("Negatives need at least 2 pairs.")
    picks = rng.integers(0, n - 1, size=(n, k))
    return picks + (picks >= np.arange(n)[:, None])  # skip i itself


def pair_loss(scorer: PairScorer, a: torch.Tensor, b: torch.Tensor, negative_b: torch.Tensor) -> torch.Tensor:
    """Return the balanced BCE of pairs `(a[i], b[i])` (label 1) and `(a[i], negative_b[i*k + j])` (label 0).

    Positives and negatives are averaged separately, so `k` negatives a pair do not drown the pairs.
    """
    k = len(negative_b) // len(a)
    logits_pos = scorer(a, b)
    logits_neg = scorer(a.repeat_interleave(k, dim=0), negative_b)
    return (F.binary_cross_entropy_with_logits(logits_pos, torch.ones_like(logits_pos))
            + F.binary_cross_entropy_with_logits(logits_neg, torch.zeros_like(logits_neg)))


def fit_pair_classifier(train_left: torch.Tensor, train_right: torch.Tensor, val_left: torch.Tensor | None = None,
                        val_right: torch.Tensor | None = None, config: PairTrainingConfig | None = None,
                        ) -> tuple[PairScorer, list[dict]]:
    """Train a `PairScorer` with binary cross-entropy: true pairs vs `negatives` random non-pairs each.

    Fresh negatives are drawn every epoch. Returns the scorer (in eval mode) and its history:
    one dict an epoch with train and val loss (val negatives are drawn once, so the curve
    is comparable across epochs) and train / val recall@k of ranking by the learned score,
    each among `probe_size` pairs (the same number on both sides, so they compare).
    """
    config = config or PairTrainingConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    scorer = PairScorer(train_left.shape[1], config.features, config.hidden, config.dropout)
    optimiser = torch.optim.AdamW(scorer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n, k = len(train_left), config.negatives
    has_val = val_left is not None and val_right is not None
    val_negatives = sample_negatives(len(val_left), k, np.random.default_rng(config.seed + 1)) if has_val else None
    # recall is tracked on equally many train and val pairs, so the two curves are comparable
    probe_size = min(config.probe_size, n, len(val_left) if has_val else n)
    probe_rng = np.random.default_rng(config.seed + 2)
    train_probe = np.sort(probe_rng.choice(n, probe_size, replace=False))
    val_probe = np.sort(probe_rng.choice(len(val_left), probe_size, replace=False)) if has_val else None
    history = []
    for epoch in range(1, config.epochs + 1):
        scorer.train()
        negatives = sample_negatives(n, k, rng)
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            negative_b = train_right[torch.from_numpy(negatives[idx].reshape(-1))]
            loss = pair_loss(scorer, train_left[idx], train_right[idx], negative_b)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item() * len(idx))
        scorer.eval()
        row = {"epoch": epoch, "train_loss": sum(losses) / n}
        with torch.no_grad():
            train_ranks = scorer.rank(train_left[train_probe], train_right[train_probe])
            row.update({f"train_R@{kk}": recall_at_k(train_ranks, kk) for kk in config.eval_ks})
            if has_val:
                val_negative_b = val_right[torch.from_numpy(val_negatives.reshape(-1))]
                row["val_loss"] = pair_loss(scorer, val_left, val_right, val_negative_b).item()
                val_ranks = scorer.rank(val_left[val_probe], val_right[val_probe])
                row.update({f"val_R@{kk}": recall_at_k(val_ranks, kk) for kk in config.eval_ks})
        history.append(row)
        log.debug("epoch %d: %s", epoch, row)
    return scorer.eval(), history


def evaluate_pair_classifier(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                         test: tuple[torch.Tensor, torch.Tensor], config: PairTrainingConfig) -> dict:
    """Train on the `(left, right)` embeddings `train` (validating on `val`); return the test split's
    `"ranks"` by the learned score, the `"history"`, and the `"scores"` (logits) of true pairs and of
    non-pairs (each left image with the next pair's right image) on the train and test splits."""
    scorer, history = fit_pair_classifier(*train, *val, config)
    with torch.no_grad():
        scores = {}
        for part, (left, right) in (("train", train), ("test", test)):
            scores[f"{part} pairs"] = scorer(left, right)
            scores[f"{part} non-pairs"] = scorer(left, right.roll(1, 0))
    return {"ranks": torch.from_numpy(scorer.rank(*test)), "history": history, "scores": scores}
