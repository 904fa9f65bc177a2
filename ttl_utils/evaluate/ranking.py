"""Ranking: where each query's true partner lands among the candidates, by one tie-aware kernel.

Every rank in the project comes from `rank_of_match_by`: the partner's score is compared
with every candidate's, and a candidate that ties with the partner (or comes within
`TIE_TOLERANCE`, since float32 rounding can split two identical items by a few units in the
last place) counts as ranked above it. So a model that maps everything to one point gets
the worst rank, not the best. The callers differ only in their scores: cosine against a
gallery (`rank_of_match`), against 20 candidates (`candidate_ranks`), a learned score
(`train.pair_classifier`), a found look-alike's gallery (`partner_ranks`).

>>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> rank_of_match(q, q).tolist()
[1, 1]
>>> rank_pairs("same", q, q).both_ways().tolist()
[[1, 1], [1, 1]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import DIRECTIONS, N_CANDIDATES, Ranked, recall_at_k

__all__ = ["TIE_TOLERANCE", "candidate_accuracy", "candidate_ranks", "distances_to_partners", "partner_distances",
           "partner_ranks", "rank_of_match", "rank_of_match_by", "rank_pairs", "search"]

TIE_TOLERANCE = 1e-6  # scores closer than this count as tied


@torch.no_grad()
def rank_of_match_by(score: Callable[[slice], torch.Tensor], partners: Sequence[int] | torch.Tensor,
                     chunk_size: int = 1024, tie_tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Return, for each query `i`, the 1-based rank of its partner (candidate `partners[i]`) by `score`.

    `score(block)` returns the scores (higher = more alike) of the queries in the slice
    `block` against all their candidates, `len(block) x M`. Ties count against the partner,
    as do scores within `tie_tolerance` of it. Works on `chunk_size` queries at a time, so
    memory grows with `chunk_size x M`, not with the number of queries squared.
    """
    partners = torch.as_tensor(partners, dtype=torch.long)
    ranks = []
    for start in range(0, len(partners), chunk_size):
        block = slice(start, start + chunk_size)
        scores = score(block)
        true = scores.gather(1, partners[block, None].to(scores.device))
        ranks.append((scores >= true - tie_tolerance).sum(dim=1))  # the partner itself and all as high
    return torch.cat(ranks).cpu().numpy().astype(np.int64) if ranks else np.empty(0, dtype=np.int64)


def rank_of_match(query: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 1024,
                  tie_tolerance: float = TIE_TOLERANCE, penalty: torch.Tensor | None = None) -> np.ndarray:
    """Return, for each query `i`, the 1-based rank of gallery item `i` by cosine similarity (with
    `penalty`, each gallery item's hubness, by CSLS: cosine minus half the penalty)."""
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query and gallery must be N x D and M x D, got {tuple(query.shape)} and {tuple(gallery.shape)}.")
    if len(query) > len(gallery):
        raise ValueError(f"Query i's match is gallery item i, but there are {len(query)} queries for {len(gallery)} items.")
    query = F.normalize(query.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    shift = torch.zeros(len(gallery)) if penalty is None else penalty.float() / 2
    return rank_of_match_by(lambda block: query[block] @ gallery.T - shift[None, :], torch.arange(len(query)),
                            chunk_size, tie_tolerance)


def candidate_ranks(query: torch.Tensor, gallery: torch.Tensor, n_candidates: int = N_CANDIDATES, seed: int = 0,
                    chunk_size: int = 1024, tie_tolerance: float = TIE_TOLERANCE,
                    penalty: torch.Tensor | None = None) -> np.ndarray:
    """Return each query's rank of its match among itself and `n_candidates - 1` random foils (with
    `penalty`, by CSLS as `rank_of_match`).

    The protocol of the 2023 University of Melbourne TTL challenge (COMP90086): the foils
    are drawn at random from the other gallery items; ties count against the match.
    """
    n = len(query)
    if n_candidates > len(gallery):
        raise ValueError(f"{n_candidates} candidates need at least as many gallery items, got {len(gallery)}.")
    rng = np.random.default_rng(seed)
    foils = np.stack([rng.choice(len(gallery) - 1, size=n_candidates - 1, replace=False) for _ in range(n)])
    foils += foils >= np.arange(n)[:, None]  # skip the match itself
    candidates = torch.from_numpy(np.concatenate([np.arange(n)[:, None], foils], axis=1))  # match first
    query = F.normalize(query.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    shift = torch.zeros(len(gallery)) if penalty is None else penalty.float() / 2
    return rank_of_match_by(lambda block: torch.einsum("nd,nkd->nk", query[block], gallery[candidates[block]])
                            - shift[candidates[block]], torch.zeros(n, dtype=torch.long), chunk_size, tie_tolerance)


def candidate_accuracy(query: torch.Tensor, gallery: torch.Tensor, n_candidates: int = N_CANDIDATES, top: int = 2,
                       seed: int = 0) -> float:
    """Return the share of queries whose match is in the `top` of `n_candidates` (chance: top / n_candidates)."""
    return recall_at_k(candidate_ranks(query, gallery, n_candidates, seed), top)


def rank_pairs(name: str, left: torch.Tensor, right: torch.Tensor, seed: int = 0, candidates: bool = True,
               penalties: dict[str, torch.Tensor] | None = None) -> Ranked:
    """Return the ranks of `left[i]`'s partner `right[i]` (and back) by cosine similarity, and with
    `candidates` among 20 candidates too (when there are that many pairs). `penalties` gives, for a
    direction, its gallery's hubness (`evaluate.hubs.hub_penalties`): that direction ranks by CSLS."""
    enough = candidates and len(left) >= N_CANDIDATES
    ranks, among = {}, {}
    for direction, (query, gallery) in zip(DIRECTIONS, ((left, right), (right, left))):
        penalty = (penalties or {}).get(direction)
        ranks[direction] = rank_of_match(query, gallery, penalty=penalty)
        among[direction] = candidate_ranks(query, gallery, N_CANDIDATES, seed, penalty=penalty) if enough else None
    return Ranked(name, ranks, among)


def partner_ranks(queries: torch.Tensor, partners: Sequence[int], gallery: torch.Tensor) -> np.ndarray:
    """Return where each query's true partner (`partners[i]`, a row of `gallery`) lands among all the
    gallery's rows by cosine (1: first; ties count against it)."""
    queries = F.normalize(queries.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    return rank_of_match_by(lambda block: queries[block] @ gallery.T, torch.as_tensor(partners))


def search(queries: torch.Tensor, gallery: torch.Tensor, top: int, penalty: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(scores, indices)`, each `Q x top`: the `top` most similar gallery rows per query, by cosine,
    or with `penalty` (each row's hubness, `evaluate.hubs.hubness`) by CSLS, cosine minus half the
    penalty; the scores returned are the cosines either way.

    The gallery's rows must be unit length already (as `embeddings.gallery_embeddings` returns them):
    a large gallery is not copied for every query."""
    top = min(top, len(gallery))
    scores = F.normalize(queries.float(), dim=1) @ gallery.T
    if penalty is None:
        return scores.topk(top, dim=1)
    indices = (scores - penalty[None, :] / 2).topk(top, dim=1).indices
    return scores.gather(1, indices), indices


def distances_to_partners(left: torch.Tensor, right: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Return the Euclidean distances of each left embedding to its partner (`N`) and to every other
    right embedding (`N x (N - 1)` values, flattened)."""
    distances = torch.cdist(left, right).numpy()
    return np.diagonal(distances).copy(), distances[~np.eye(len(distances), dtype=bool)]


def partner_distances(left: torch.Tensor, right: torch.Tensor) -> dict[str, float]:
    """Return the mean Euclidean distance of each left embedding to its partner (`partner`) and to
    the other right embeddings (`others`), the standard deviation of the latter (`spread`), and
    the gap between the two means in units of that spread (`separation`): retrieval ranks a
    partner first when that gap is large, which a wider gap or a narrower spread both give."""
    distances = torch.cdist(left, right)
    off = ~torch.eye(len(left), dtype=torch.bool)
    partner, others = distances.diagonal(), distances[off]
    return {"partner": partner.mean().item(), "others": others.mean().item(), "spread": others.std().item(),
            "separation": ((others.mean() - partner.mean()) / others.std()).item()}
