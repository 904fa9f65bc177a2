"""Hubs: pictures that are near everyone and steal first places, and a correction for them.

In a high-dimensional embedding some gallery pictures are close to most queries (hubs). Cross-
domain similarity local scaling (CSLS, Conneau et al. 2018) scores a query `x` and a candidate
`y` by `2 cos(x, y) - r(x) - r(y)`, where `r(y)` is `y`'s mean cosine to its `k` nearest
neighbours among the other side's pictures. Here those neighbours come from a **bank of
training pictures only** (the left pictures of the training pairs for a right candidate), so a
single query (`find`) can use it and no test query looks at another. `r(x)` is the same for all
of one query's candidates, so the ranking only needs `cos(x, y) - r(y) / 2`.

>>> import torch
>>> gallery = torch.eye(3)
>>> bank = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]])
>>> [round(v, 3) for v in hubness(gallery, bank, k=1).tolist()]
[1.0, 0.11, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .ranking import rank_of_match_by

__all__ = ["TrainingBank", "csls_ranks", "gallery_penalty", "hub_first_places", "hub_penalties", "hubness"]


def hubness(gallery: torch.Tensor, bank: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Return each gallery vector's mean cosine to its `k` nearest vectors of `bank` (`k` is capped at
    the bank's size): how much of a hub it is."""
    if len(bank) == 0:
        raise ValueError("The bank of training pictures is empty: CSLS needs at least one.")
    similarity = F.normalize(gallery.float(), dim=1) @ F.normalize(bank.float(), dim=1).T
    return similarity.topk(min(k, len(bank)), dim=1).values.mean(dim=1)


def hub_penalties(left: torch.Tensor, right: torch.Tensor, bank_left: torch.Tensor, bank_right: torch.Tensor,
                  k: int = 10) -> dict[str, torch.Tensor]:
    """Return each direction's CSLS penalty (`ranking.rank_pairs(..., penalties=)`): left -> right ranks
    the right pictures, their hubness against the bank's left pictures; right -> left the reverse."""
    return {"left -> right": hubness(right, bank_left, k), "right -> left": hubness(left, bank_right, k)}


def csls_ranks(queries: torch.Tensor, gallery: torch.Tensor, partners: Sequence[int], bank: torch.Tensor,
               k: int = 10) -> np.ndarray:
    """Return the 1-based rank of each query's partner (`partners[i]`, a row of `gallery`) by CSLS with
    the hubness of `gallery` against `bank` (training pictures of the queries' side)."""
    queries, gallery = F.normalize(queries.float(), dim=1), F.normalize(gallery.float(), dim=1)
    penalty = hubness(gallery, bank, k)

    def score(block: slice) -> torch.Tensor:
        return queries[block] @ gallery.T - penalty[None, :] / 2

    return rank_of_match_by(score, partners)


def hub_first_places(queries: torch.Tensor, gallery: torch.Tensor, share: float = 0.01,
                     penalty: torch.Tensor | None = None) -> tuple[int, int]:
    """Return how many queries put one of the top `share` of hubs first, and how many hubs that is.

    The hubs are the gallery pictures that come first for the most queries (plain cosine, or cosine
    minus `penalty / 2` when the CSLS penalty is given): a measure of how much a few pictures steal.
    """
    queries, gallery = F.normalize(queries.float(), dim=1), F.normalize(gallery.float(), dim=1)
    scores = queries @ gallery.T
    if penalty is not None:
        scores = scores - penalty[None, :] / 2
    first = scores.argmax(dim=1).numpy()
    counts = np.bincount(first, minlength=len(gallery))
    n_hubs = max(1, int(round(share * len(gallery))))
    return int(np.sort(counts)[::-1][:n_hubs].sum()), n_hubs


@dataclass(frozen=True)
class TrainingBank:
    """The bank a fine-tuned checkpoint keeps (`extra["hub_bank"]`, written by `train.finetune`): the
    unit embeddings of its training pairs' left and right pictures, by the model itself. With it,
    `evaluate`, `compare` and `find` correct for hubs without a folder of pictures, and a single
    query needs nothing else."""

    left: torch.Tensor
    right: torch.Tensor
    k: int = 10
    pictures: frozenset = frozenset()  # content digests of the training pictures (`data.digests`)

    @classmethod
    def from_extra(cls, extra: dict | None, k: int = 10) -> TrainingBank | None:
        """Return the bank a checkpoint's `extra` keeps, or None (a backbone, another trainer, an older run)."""
        kept = (extra or {}).get("hub_bank") if isinstance(extra, dict) else None
        if not isinstance(kept, dict) or not all(isinstance(kept.get(s), torch.Tensor) and len(kept[s]) for s in
                                                 ("left", "right")):
            return None
        return cls(kept["left"].float(), kept["right"].float(), k, frozenset(kept.get("pictures") or ()))

    def penalties(self, embedder, preprocessing, left: torch.Tensor, right: torch.Tensor, *args, **kwargs
                  ) -> dict[str, torch.Tensor]:
        """Return each direction's CSLS penalty for these embeddings (the model is the bank's own)."""
        return hub_penalties(left, right, self.left, self.right, self.k)

    def check(self, pairs) -> None:
        """Nothing to check: its pictures are the model's training pairs (`evaluate` warns on those)."""

    def describe(self) -> str:
        return (f"hub correction (CSLS): {self.k} nearest of the {len(self.left)} left and {len(self.right)} right "
                "training pictures the checkpoint keeps")

    def to_dict(self) -> dict:
        return {"bank": "the checkpoint's training pictures", "pictures": [len(self.left), len(self.right)],
                "k": self.k}


def gallery_penalty(vectors: torch.Tensor, labels: Sequence[str], left_bank: torch.Tensor, right_bank: torch.Tensor,
                    k: int = 10) -> torch.Tensor:
    """Return each gallery picture's CSLS penalty for queries of either kind: a right picture (`right/...`)
    against the left bank, a left picture against the right bank, and a picture of neither side (a
    folder gallery) against both banks together."""
    both = torch.cat([left_bank, right_bank])
    side = np.array([label.split("/", 1)[0] if "/" in label else "" for label in labels])
    penalty = hubness(vectors, both, k)
    for name, bank in (("right", left_bank), ("left", right_bank)):
        rows = torch.as_tensor(np.nonzero(side == name)[0], dtype=torch.long)
        if len(rows):
            penalty[rows] = hubness(vectors[rows], bank, k)
    return penalty
