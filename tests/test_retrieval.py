"""Ranks of the true match and recall@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttl_utils.retrieval import rank_of_match, recall_at_k


def test_hand_computed_ranks_with_a_tie_counted_against_the_match():
    query = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    gallery = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    # query 0: match (1,0) is the most similar -> 1
    # query 1 (45 deg): all three items... (1,0) and (0,1) and (0,3) all at cos 0.707 -> tie of 3 -> 3
    # query 2: match (0,3) ties with (0,1) -> 2
    assert rank_of_match(query, gallery).tolist() == [1, 3, 2]


def test_chunked_equals_unchunked_and_brute_force():
    g = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(57, 8, generator=g), torch.randn(70, 8, generator=g)
    sims = (query / query.norm(dim=1, keepdim=True)) @ (gallery / gallery.norm(dim=1, keepdim=True)).T
    brute = [int((sims[i] >= sims[i, i]).sum()) for i in range(57)]
    assert rank_of_match(query, gallery).tolist() == brute
    assert rank_of_match(query, gallery, chunk_size=5).tolist() == brute


def test_recall_and_shape_errors():
    assert recall_at_k(np.array([1, 2, 5, 10]), 2) == 0.5
    with pytest.raises(ValueError, match="N x D and M x D"):
        rank_of_match(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="4 queries for 3 items"):
        rank_of_match(torch.zeros(4, 2), torch.zeros(3, 2))
