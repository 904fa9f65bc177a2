"""Learning from candidate lists: unlabelled left pictures whose partner is one of a few right pictures.

An unlabelled pool (`data.pool`) may come with `candidates.csv`: each left picture's partner
is one of its 20 candidate right pictures, and each right picture is the partner of one
left picture. Two ways to learn from that:

- **pseudo-labels** (`pseudo_pairs`): the current model scores every left picture against
  its candidates; `assign_one_to_one` pairs them, using each right picture once: greedily,
  best score first, or (`method="optimal"`) the pairing of the highest total score (the
  Hungarian algorithm); the pairs whose margin (assigned score minus the best other
  candidate's) is among the top `keep` share join the labelled pairs as if labelled.
- **MIL-NCE** (`mil_nce_loss`, Miech et al. 2020): a query's positive is its whole bag of
  candidates, the log of their summed softmax probability against the rest of the batch.

How accurate pseudo-labels are can only be measured where the partner is known: labelled
pairs whose partner is hidden among foils (`hidden_candidates`, `assignment_accuracy`).

>>> scores = torch.tensor([[0.9, 0.8], [0.85, 0.1]])   # left 1 prefers right 0, as left 0 does
>>> index = torch.tensor([[0, 1], [0, 1]])
>>> assign_one_to_one(scores, index, n_right=2)[0].tolist()   # one-to-one: left 1 gets right 1
[0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .recipes import ASSIGNMENTS

__all__ = ["ASSIGNMENTS", "PoolSides", "assign_one_to_one", "assignment_accuracy", "candidate_index", "hidden_candidates",
           "pseudo_label_records",
           "mil_nce_loss", "pseudo_pairs"]


@dataclass(frozen=True)
class PoolSides:
    """A pool's left and right pictures as the trunk cache reads pairs' (`left`, `right`, `fingerprint`)."""

    left: tuple
    right: tuple
    fingerprint: str


def candidate_index(candidates: dict[str, list[str]], left: tuple, right: tuple) -> torch.Tensor:
    """Return the `n_left x C` positions in `right` of each left picture's candidates (`-1` pads shorter
    lists); `left` and `right` are the pool's pictures (paths), `candidates` maps stems to stems."""
    where = {path.stem: i for i, path in enumerate(right)}
    lists = [[where[stem] for stem in candidates.get(path.stem, []) if stem in where] for path in left]
    width = max((len(found) for found in lists), default=0)
    index = torch.full((len(left), width), -1, dtype=torch.long)
    for i, found in enumerate(lists):
        index[i, :len(found)] = torch.tensor(found, dtype=torch.long)
    return index


def assign_one_to_one(scores: torch.Tensor, index: torch.Tensor, n_right: int,
                      method: str = "greedy") -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(assigned, margin)` for each left picture: the right picture it is paired with (-1: none
    left free) and its score minus the best score among its other candidates (`inf` with no other).

    `scores[i, j]` is left `i`'s similarity to its candidate `index[i, j]` (`-1`: no candidate).
    Each left and each right picture is used at most once. `greedy` takes the pairs the highest
    score first; `optimal` pairs as many left pictures as can be and, among those pairings, the
    one of the highest total score (`scipy.optimize.linear_sum_assignment`), so that a left picture
    whose best candidate is taken by a more certain one need not lose all its good ones.
    """
    if scores.shape != index.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and index {tuple(index.shape)} must have the same shape.")
    if method not in ASSIGNMENTS:
        raise ValueError(f"Unknown assignment {method!r}; choose one of: {', '.join(ASSIGNMENTS)}.")
    scores, index = scores.detach().float().cpu(), index.cpu()
    valid = index >= 0
    if not bool(torch.isfinite(scores[valid]).all()):
        raise ValueError("Scores must be finite where index names a candidate (a NaN or infinite similarity: "
                         "are the embeddings finite?).")
    assigned = torch.full((len(index),), -1, dtype=torch.long)
    chosen_col = torch.full((len(index),), -1, dtype=torch.long)
    pick = _optimal if method == "optimal" else _greedy
    for i, j in pick(scores, index, valid, n_right):
        assigned[i], chosen_col[i] = int(index[i, j]), j
    margin = torch.full((len(index),), float("-inf"))
    for i in torch.nonzero(assigned >= 0, as_tuple=True)[0].tolist():
        others = scores[i][valid[i]].clone()
        own = scores[i, chosen_col[i]]
        mask = torch.ones(len(others), dtype=torch.bool)
        mask[int(valid[i][:chosen_col[i]].sum())] = False  # the assigned candidate among the valid ones
        margin[i] = own - others[mask].max() if mask.any() else float("inf")
    return assigned, margin


def _greedy(scores: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, n_right: int) -> list[tuple[int, int]]:
    """Return `(left, column)` pairs taken the highest score first, each left and right picture once."""
    rows, cols = torch.nonzero(valid, as_tuple=True)
    order = torch.argsort(scores[rows, cols], descending=True, stable=True)
    left_taken, right_taken = np.zeros(len(index), dtype=bool), np.zeros(n_right, dtype=bool)
    chosen = []
    for edge in order.tolist():
        i, j = int(rows[edge]), int(cols[edge])
        r = int(index[i, j])
        if not left_taken[i] and not right_taken[r]:
            left_taken[i] = right_taken[r] = True
            chosen.append((i, j))
    return chosen


def _optimal(scores: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, n_right: int) -> list[tuple[int, int]]:
    """Return `(left, column)` pairs of the largest one-to-one pairing over candidate edges, of the
    highest total score among those (each edge weighs a constant more than any score difference)."""
    rows, cols = torch.nonzero(valid, as_tuple=True)
    if len(rows) == 0:
        return []
    edge = scores[rows, cols].double().numpy()
    spread = edge.max() - edge.min()
    # every edge weighs more than 0 (no edge), and one edge more outweighs any difference of score totals
    weight = (edge - edge.min()) + 1.0 + len(index) * spread
    order = np.argsort(edge, kind="stable")  # a right picture named twice in one list: its higher score is written last
    gain = np.zeros((len(index), n_right))
    column = np.full((len(index), n_right), -1, dtype=np.int64)
    targets = index[rows, cols].numpy()[order]
    gain[rows.numpy()[order], targets] = weight[order]
    column[rows.numpy()[order], targets] = cols.numpy()[order]
    left, right = linear_sum_assignment(gain, maximize=True)
    return [(int(i), int(column[i, r])) for i, r in zip(left, right) if column[i, r] >= 0]


def _scores(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Return the cosine of each left embedding with each of its candidates (`-inf` where none)."""
    left, right = F.normalize(left.float(), dim=1), F.normalize(right.float(), dim=1)
    found = torch.einsum("nd,ncd->nc", left, right[index.clamp(min=0)])
    return found.masked_fill(index < 0, float("-inf"))


def pseudo_pairs(left: torch.Tensor, right: torch.Tensor, index: torch.Tensor,
                 keep: float, method: str = "greedy") -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(left ids, right ids)` of the pseudo-pairs kept: the one-to-one assignment (`method`, see
    `assign_one_to_one`) of `left`'s embeddings to their candidates' (`right`, rows of `index`), the
    top `keep` share by margin.

    Every right picture appears at most once; ties in the margin keep the lower left id.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be a share in (0, 1], got {keep}.")
    assigned, margin = assign_one_to_one(_scores(left, right, index), index, len(right), method)
    paired = torch.nonzero(assigned >= 0, as_tuple=True)[0]
    n_kept = int(round(keep * len(paired)))
    best = paired[torch.argsort(margin[paired], descending=True, stable=True)[:n_kept]]
    best = best.sort().values
    return best, assigned[best]


def hidden_candidates(n_pairs: int, n_candidates: int = 20, seed: int = 0) -> torch.Tensor:
    """Return candidate lists for labelled pairs, as `candidates.csv` gives them: left `i`'s partner,
    right `i`, hidden at a random place among `n_candidates - 1` other right pictures (the foils),
    each right picture a candidate of about `n_candidates` left pictures."""
    if n_pairs < n_candidates:
        raise ValueError(f"Hiding a partner among {n_candidates - 1} foils needs at least {n_candidates} pairs, "
                         f"got {n_pairs}.")
    g = torch.Generator().manual_seed(seed)
    index = torch.empty((n_pairs, n_candidates), dtype=torch.long)
    for i in range(n_pairs):
        foils = torch.randperm(n_pairs - 1, generator=g)[:n_candidates - 1]
        foils = foils + (foils >= i).long()  # every right picture but the partner
        place = int(torch.randint(n_candidates, (1,), generator=g))
        index[i] = torch.cat([foils[:place], torch.tensor([i]), foils[place:]])
    return index


def assignment_accuracy(left: torch.Tensor, right: torch.Tensor, keep: float, n_candidates: int = 20,
                        seed: int = 0, method: str = "greedy") -> dict[str, float]:
    """Return how accurate pseudo-labels are on labelled pairs (`left[i]` matches `right[i]`), each
    partner hidden among `n_candidates - 1` foils: `kept` (the share kept), `accuracy` (of those kept),
    `accuracy_all` (of every assigned pair) and `chance` (1 / n_candidates)."""
    index = hidden_candidates(len(left), n_candidates, seed)
    assigned, _ = assign_one_to_one(_scores(left, right, index), index, len(right), method)
    ids, partners = pseudo_pairs(left, right, index, keep, method)
    paired = assigned >= 0
    return {"kept": len(ids) / len(left), "accuracy": float((partners == ids).float().mean()) if len(ids) else 0.0,
            "accuracy_all": float((assigned[paired] == torch.nonzero(paired, as_tuple=True)[0]).float().mean()),
            "chance": 1 / n_candidates}


def mil_nce_loss(queries: torch.Tensor, candidates: torch.Tensor, in_bag: torch.Tensor,
                 temperature: float = 0.05) -> torch.Tensor:
    """Return the MIL-NCE loss: for each query, minus the log of the summed softmax probability of the
    candidates in its bag, the softmax taken over all `candidates` (the rest of the batch: negatives).

    `queries` is `B x D`, `candidates` `M x D`, `in_bag` a `B x M` mask (each row with at least one).
    """
    if in_bag.shape != (len(queries), len(candidates)):
        raise ValueError(f"in_bag must be {len(queries)} x {len(candidates)}, got {tuple(in_bag.shape)}.")
    if not bool(in_bag.any(dim=1).all()):
        raise ValueError("Every query needs at least one candidate in its bag.")
    logits = F.normalize(queries, dim=1) @ F.normalize(candidates, dim=1).T / temperature
    positive = torch.logsumexp(logits.masked_fill(~in_bag, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - positive).mean()


def pseudo_label_records(history: list[dict]) -> list[dict]:
    """Return the pseudo-label records of a fine-tuning history (`finetune(..., pool=)`), one per assignment:
    `assigned before epoch` (the model of the epoch before assigned them), `pseudo-pairs`, and when
    measured, `accuracy of those kept` and `accuracy of all assigned` on the validation pairs, each
    partner hidden among 19 foils."""
    return [{"assigned before epoch": h["epoch"], "pseudo-pairs": h["pseudo_pairs"],
             **({"accuracy of those kept": h["pseudo_val_accuracy"], "accuracy of all assigned": h["pseudo_val_accuracy_all"]}
                if "pseudo_val_accuracy" in h else {})}
            for h in history if "pseudo_pairs" in h]
