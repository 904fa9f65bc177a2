"""Ranks of the true match, metrics, bootstrap intervals, the 20-candidate protocol, embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.evaluate.metrics import (
    DIRECTIONS,
    bootstrap_ci,
    cmc_curve,
    mean_reciprocal_rank,
    median_rank,
    metric,
    metric_intervals,
    paired_bootstrap,
    rank_histogram,
    recall_at_k,
)
from ttl_utils.evaluate.ranking import (
    candidate_accuracy,
    candidate_ranks,
    partner_ranks,
    rank_of_match,
    rank_of_match_by,
    rank_pairs,
)
from ttl_utils.models.preprocessing import Preprocessing


def test_hand_computed_ranks_with_ties_counted_against_the_match():
    query = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    gallery = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    # query 0: its match (2,0) is the most similar -> 1
    # query 1 at 45 degrees: all three items have cosine 0.707, a three-way tie -> 3
    # query 2: its match (0,3) ties with (0,1) -> 2
    assert rank_of_match(query, gallery).tolist() == [1, 3, 2]


def test_duplicate_embeddings_rank_last_among_their_copies():
    g = torch.Generator().manual_seed(0)
    gallery = torch.randn(50, 32, generator=g)
    gallery[10:20] = gallery[10]          # ten identical items
    ranks = rank_of_match(gallery, gallery)
    assert ranks[10:20].tolist() == [10] * 10
    collapsed = torch.ones(30, 4)         # a model that maps everything to one point is the worst
    assert rank_of_match(collapsed, collapsed).tolist() == [30] * 30


def brute_force_ranks(query, gallery):
    q = query / query.norm(dim=1, keepdim=True)
    g = gallery / gallery.norm(dim=1, keepdim=True)
    sims = (q.double() @ g.double().T).numpy()
    return np.array([(sims[i] >= sims[i, i]).sum() for i in range(len(q))])


def test_chunked_equals_unchunked_and_brute_force():
    g = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(57, 8, generator=g), torch.randn(70, 8, generator=g)
    brute = brute_force_ranks(query, gallery)
    assert rank_of_match(query, gallery).tolist() == brute.tolist()
    assert rank_of_match(query, gallery, chunk_size=5).tolist() == brute.tolist()


def test_metrics_against_brute_force_definitions():
    g = torch.Generator().manual_seed(3)
    query, gallery = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g)
    gallery[:100] += 2 * query[:100]      # half the queries find their match easily
    ranks = rank_of_match(query, gallery)
    brute = brute_force_ranks(query, gallery)
    for k in (1, 5, 25):
        assert recall_at_k(ranks, k) == sum(r <= k for r in brute) / 200
    assert median_rank(ranks) == float(np.median(brute))
    assert mean_reciprocal_rank(ranks) == pytest.approx(sum(1 / r for r in brute) / 200)
    hist = rank_histogram(ranks, 200)
    assert hist.sum() == 200 and hist[0] == (brute == 1).sum() and len(hist) == 200
    cmc = cmc_curve(ranks, 200)
    assert cmc[4] == recall_at_k(ranks, 5) and cmc[-1] == 1.0 and np.all(np.diff(cmc) >= 0)


def test_histogram_refuses_ranks_beyond_the_gallery():
    with pytest.raises(ValueError, match="1..3"):
        rank_histogram(np.array([1, 4]), 3)


def test_bootstrap_is_reproducible_and_brackets_the_value():
    ranks = np.random.default_rng(0).integers(1, 100, size=300)
    a = bootstrap_ci(ranks, lambda r: recall_at_k(r, 10), n=500, seed=1)
    assert a == bootstrap_ci(ranks, lambda r: recall_at_k(r, 10), n=500, seed=1)
    assert a != bootstrap_ci(ranks, lambda r: recall_at_k(r, 10), n=500, seed=2)
    value, low, high = a
    assert low <= value <= high and 0.02 < high - low < 0.15


def test_paired_bootstrap_sees_a_real_difference_and_no_difference():
    rng = np.random.default_rng(0)
    b = rng.integers(1, 50, size=400)
    a = np.maximum(1, b - 10)             # A ranks every match higher than B does
    result = paired_bootstrap(a, b, mean_reciprocal_rank, n=300)
    assert result["difference"] > 0 and result["low"] > 0 and result["a_better"] == 1.0
    same = paired_bootstrap(b, b, mean_reciprocal_rank, n=300)
    assert same["difference"] == 0 and same["a_better"] == 0.0
    lower = paired_bootstrap(a, b, median_rank, n=300, higher_is_better=False)
    assert lower["high"] < 0 and lower["a_better"] == 1.0
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(a, b[:10], median_rank)


def test_candidate_protocol_perfect_random_and_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    assert candidate_accuracy(x, x) == 1.0
    chance = candidate_accuracy(x, torch.randn(300, 8, generator=g), seed=0)
    assert 0.05 < chance < 0.16          # top-2 of 20 by chance: 0.10
    # brute force: draw the same foils, rank the match among them
    query, gallery = torch.randn(40, 8, generator=g), torch.randn(40, 8, generator=g)
    rng = np.random.default_rng(7)
    expected = []
    sims = torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T
    for i in range(40):
        foils = rng.choice(39, size=19, replace=False)
        foils = foils + (foils >= i)
        assert i not in foils and len(set(foils)) == 19
        expected.append(1 + int((sims[i, foils] >= sims[i, i] - 1e-6).sum()))
    assert candidate_ranks(query, gallery, seed=7).tolist() == expected


def test_embed_opens_paths_and_arrays_and_keeps_order(tmp_path):
    pairs = make_demo_pairs(5, 32)
    paths = []
    for i in range(len(pairs)):
        pairs.left_image(i).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    pre = Preprocessing(resize=16, crop=16)
    from_arrays = embed(model, pairs.left, pre, batch_size=2, num_workers=0)
    from_files = embed(model, paths, pre, batch_size=3, num_workers=1)
    assert from_arrays.shape == (5, 4) and torch.allclose(from_arrays, from_files, atol=1e-5)
    assert not from_arrays.requires_grad
    single = embed(model, pairs.left[3:4], pre, num_workers=0)
    assert torch.allclose(single[0], from_arrays[3], atol=1e-5)


def test_partner_distances_and_their_separation():
    from ttl_utils.evaluate.ranking import partner_distances

    left = torch.eye(4)
    out = partner_distances(left, left.clone())
    assert out["partner"] == pytest.approx(0.0) and out["others"] == pytest.approx(2 ** 0.5)
    assert out["spread"] == pytest.approx(0.0, abs=1e-6) and out["separation"] > 10  # all others equally far
    shuffled = partner_distances(left, left.roll(1, 0))
    assert shuffled["partner"] == pytest.approx(2 ** 0.5) and shuffled["separation"] < 0


def test_one_kernel_ranks_any_scores_against_any_partner_column():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.2, 0.7], [0.3, 0.3 + 5e-7, 0.1]])
    # row 0: partner column 1 has one higher score -> 2; row 1: partner 0 ties with column 1 and lies under 0.7 -> 3;
    # row 2: partner 0 and a score within the tolerance above it -> 2
    assert rank_of_match_by(lambda block: scores[block], [1, 0, 0], chunk_size=2).tolist() == [2, 3, 2]
    assert rank_of_match_by(lambda block: scores[block], []).tolist() == []


def test_partner_ranks_in_a_gallery_and_both_ways_in_one_result():
    gallery = torch.eye(3)
    queries = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.2, 1.0]])
    assert partner_ranks(queries, [0, 1, 2], gallery).tolist() == [1, 2, 1]
    left = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    right = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.9]])
    ranked = rank_pairs("toy", left, right)
    assert ranked.name == "toy" and ranked.n_queries == 3
    assert ranked.both_ways()[:, 0].tolist() == ranked.left_to_right.tolist() == rank_of_match(left, right).tolist()
    assert ranked.both_ways()[:, 1].tolist() == rank_of_match(right, left).tolist()
    assert ranked.candidates[DIRECTIONS[0]] is None  # fewer pairs than the 20 candidates of the protocol


def test_metric_names_and_their_intervals():
    ranks = np.array([1, 2, 2, 30])
    assert metric("R@2")(ranks) == 0.75 and metric("MRR")(ranks) == mean_reciprocal_rank(ranks)
    assert metric("median rank")(ranks) == 2.0 and metric("top-2 of 20")(np.array([1, 3])) == 0.5
    with pytest.raises(ValueError, match="Unknown metric 'R@'"):
        metric("R@")
    found = metric_intervals(ranks, ["R@1", "top-2 of 20"], n_bootstrap=100)
    assert found["R@1"] == bootstrap_ci(ranks, metric("R@1"), n=100) and found["top-2 of 20"] is None
