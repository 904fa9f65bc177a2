"""An ensemble of embedders: their embeddings of the same pictures joined into one.

Each member's rows are made unit length and scaled by 1 / sqrt(N) before the N members are
concatenated, so the joined rows are unit length and the cosine of two joined rows is the mean of
the members' cosines. Anything that ranks by cosine (plain ranking, CSLS against a bank joined the
same way) then ranks by the members' mean similarity.

>>> a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
>>> joined = join_embeddings([a, b])
>>> (joined @ joined.T).round(decimals=3)
tensor([[1.0000, 0.5000],
        [0.5000, 1.0000]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["join_embeddings"]


def join_embeddings(members: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return the members' `N x D_i` embeddings of the same N pictures joined into `N x sum(D_i)` unit rows
    whose cosines are the mean of the members' cosines. One member comes back unit length."""
    if not members:
        raise ValueError("An ensemble needs at least one member's embeddings.")
    rows = {len(member) for member in members}
    if len(rows) != 1:
        raise ValueError(f"The members embedded different numbers of pictures: {sorted(rows)}.")
    scale = 1.0 / math.sqrt(len(members))
    return torch.cat([F.normalize(member.float(), dim=1) * scale for member in members], dim=1)
