"""What a model matches on: how much a partner stands out when both images lose one cue.

Saliency maps (notebook 03) say *where* a model looks in one pair; this module asks *what*
it relies on, over many pairs at once. Each pair is embedded as it is and with a cue taken
away from both images: colour (`greyscale`), fine detail (`blurred`), everything but the
outlines (`edges`). A partner's **margin** is its similarity minus the mean similarity of
the other candidates; when a cue matters, taking it away shrinks the margin. The drop is
reported with a bootstrap interval over the pairs, for any subsets (faces vs generic).

The images with a cue taken away are made by `models.preprocessing.remove_cue` and embedded
by `evaluate.embeddings.cue_embeddings`.

>>> import torch
>>> margins(torch.eye(3), torch.eye(3)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..evaluate.metrics import bootstrap_ci, recall_at_k
from ..evaluate.ranking import rank_of_match
from ..evaluate.report import interval

__all__ = ["TAKES_AWAY", "cue_findings", "cue_headline", "cue_table", "margins"]

TAKES_AWAY = {"greyscale": "colour", "blurred": "fine detail and texture",
              "edges": "shading, colour and texture (all but the outlines)"}


def margins(left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
    """Return each left image's cosine with its partner minus its mean cosine with the other right images."""
    sims = left @ right.T
    n = len(sims)
    if n < 2:
        raise ValueError("Margins need at least 2 pairs (a partner and another candidate).")
    others = (sims.sum(dim=1) - sims.diagonal()) / (n - 1)
    return (sims.diagonal() - others).numpy()


def cue_table(embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]], subsets: dict[str, np.ndarray],
              n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Return one row a subset and cue: pairs, R@1 (left -> right, among all the pairs), the mean
    margin, and the share of the original margin lost (`drop`, with a 95% bootstrap interval
    over the subset's pairs: the same resampled pairs for both, so the interval is paired).

    `subsets` maps a name to indices of pairs; every pair is ranked among all pairs, so the
    subsets' R@1 are comparable with each other.
    """
    if "original" not in embeddings:
        raise ValueError("cue_table needs the 'original' embeddings to measure drops from.")
    base_margin = margins(*embeddings["original"])
    rows = []
    for cue, (left, right) in embeddings.items():
        margin, ranks = margins(left, right), rank_of_match(left, right)
        for subset, index in subsets.items():
            index = np.asarray(index, dtype=int)
            if not len(index):
                continue
            base = base_margin[index]
            lost = (base - margin[index]) / max(float(base.mean()), 1e-9)
            drop, low, high = bootstrap_ci(lost, np.mean, n_bootstrap, seed)
            rows.append({"subset": subset, "cue": cue, "pairs": len(index), "R@1": recall_at_k(ranks[index], 1),
                         "margin": float(margin[index].mean()), "margin lost": drop, "low": low, "high": high})
    return pd.DataFrame(rows).set_index(["subset", "cue"])


def cue_findings(table: pd.DataFrame) -> list[str]:
    """Return one sentence a subset, printed from `cue_table`'s numbers: what share of the partner's
    margin each cue's removal costs, and which cue the model leans on most."""
    lines = []
    for subset, part in table.groupby(level="subset", sort=False):
        part = part.droplevel("subset").drop(index="original", errors="ignore")
        if part.empty:
            continue
        costs = "; ".join(f"{cue} {interval(row['margin lost'] * 100, row.low * 100, row.high * 100, digits=0, signed=True)}%"
                          for cue, row in part.iterrows())
        worst = part["margin lost"].idxmax()
        clear = part.loc[worst, "low"] > 0
        lines.append(f"{subset} ({int(part.pairs.iloc[0])} pairs): share of the partner's margin lost: {costs}. "
                     + (f"It leans most on {TAKES_AWAY.get(worst, worst)} (what '{worst}' takes away)." if clear else
                        "No removal clearly shrinks the margin on this many pairs."))
    return lines


def cue_headline(table: pd.DataFrame, subset: str) -> str:
    """Return the one-sentence finding of `cue_table` for `subset`, for a slide: each removal's cost
    with its interval, most costly first, and what the model leans on when that cost is clear."""
    part = table.loc[subset].drop(index="original", errors="ignore").sort_values("margin lost", ascending=False)
    costs = ", ".join(f"{'taking away ' + TAKES_AWAY.get(cue, cue) if cue != 'edges' else 'keeping only the outlines'} "
                      f"{interval(row['margin lost'], row.low, row.high, digits=0, percent=True)}"
                      for cue, row in part.iterrows())
    worst = part.index[0]
    verdict = (f"the network leans most on {TAKES_AWAY.get(worst, worst)}" if part.iloc[0].low > 0 else
               "no single cue clearly matters on this many pairs")
    return f"Over {int(part.pairs.iloc[0])} test pairs, the partner's margin falls by: {costs}; {verdict}."
