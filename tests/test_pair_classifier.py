"""The learned-distance baseline: negatives, the scorer, the loss, and a short training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.train.pair_classifier import PairScorer, fit_pair_classifier, pair_loss, sample_negatives
from ttl_utils.train.recipes import PairTrainingConfig


def test_negatives_never_pick_the_partner_and_cover_the_others():
    negatives = sample_negatives(5, 400, np.random.default_rng(0))
    assert negatives.shape == (5, 400)
    for i in range(5):
        assert i not in negatives[i] and set(negatives[i]) == set(range(5)) - {i}
    with pytest.raises(ValueError, match="at least 2"):
        sample_negatives(1, 3, np.random.default_rng(0))


def test_scorer_shapes_symmetry_and_score_matrix():
    torch.manual_seed(0)
    scorer = PairScorer(8, "absdiff_prod", hidden=16).eval()
    a, b = torch.randn(4, 8), torch.randn(6, 8)
    assert scorer(a, b[:4]).shape == (4,)
    assert torch.allclose(scorer(a, b[:4]), scorer(b[:4], a))  # |a-b| and a*b do not care about order
    matrix = scorer.score_matrix(a, b)
    assert matrix.shape == (4, 6) and torch.allclose(matrix[2, 5], scorer(a[2:3], b[5:6])[0])
    with pytest.raises(ValueError, match="Unknown pair features"):
        PairScorer(8, "cosine")


def test_a_constant_scorer_ranks_every_match_last():
    scorer = PairScorer(4, "absdiff", hidden=0)
    torch.nn.init.zeros_(scorer.mlp[0].weight)
    assert scorer.rank(torch.randn(7, 4), torch.randn(7, 4)).tolist() == [7] * 7


def test_pair_loss_is_balanced_between_pairs_and_negatives():
    scorer = PairScorer(2, "absdiff", hidden=0)
    torch.nn.init.zeros_(scorer.mlp[0].weight)
    torch.nn.init.zeros_(scorer.mlp[0].bias)
    a = torch.randn(3, 2)
    loss = pair_loss(scorer, a, a, a.repeat(5, 1))  # every logit is 0
    assert loss.item() == pytest.approx(2 * np.log(2))


def test_training_learns_a_hidden_mapping_and_records_history():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=g)
    left = torch.randn(300, 16, generator=g)
    right = left @ mix + 0.1 * torch.randn(300, 16, generator=g)  # partners in another "style"
    train, val = slice(0, 240), slice(240, 300)
    config = PairTrainingConfig(features="concat", hidden=64, epochs=25, negatives=8, probe_size=50, seed=0)
    scorer, history = fit_pair_classifier(left[train], right[train], left[val], right[val], config)
    assert len(history) == 25 and {"train_loss", "val_loss", "train_R@1", "val_R@25"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    learned = scorer.rank(left[val], right[val])
    cosine = rank_of_match(left[val], right[val])
    assert np.mean(learned <= 5) > np.mean(cosine <= 5) + 0.1
    again, _ = fit_pair_classifier(left[train], right[train], left[val], right[val], config)
    assert torch.equal(again.score_matrix(left[:3], right[:3]), scorer.score_matrix(left[:3], right[:3]))
