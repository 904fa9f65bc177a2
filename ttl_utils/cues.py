"""What a model matches on: how much a partner stands out when both images lose one cue.

Saliency maps (notebook 03) say *where* a model looks in one pair; this module asks *what*
it relies on, over many pairs at once. Each pair is embedded as it is and with a cue taken
away from both images: colour (`greyscale`), fine detail (`blurred`), everything but the
outlines (`edges`). A partner's **margin** is its similarity minus the mean similarity of
the other candidates; when a cue matters, taking it away shrinks the margin. The drop is
reported with a bootstrap interval over the pairs, for any subsets (faces vs generic).

>>> from ttl_utils.demo import make_demo_pairs
>>> sorted(CUES)
['blurred', 'edges', 'greyscale', 'original']
>>> remove_cue(make_demo_pairs(1, 32).left_image(0), "greyscale").mode
'RGB'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, ImageOps

from .pairs import PairSet
from .report import interval
from .retrieval import embed, rank_of_match, recall_at_k
from .transforms import Preprocessing

__all__ = ["CUES", "TAKES_AWAY", "remove_cue", "CuePreprocessing", "cue_embeddings", "margins", "cue_table",
           "cue_findings", "cue_headline"]

TAKES_AWAY = {"greyscale": "colour", "blurred": "fine detail and texture",
              "edges": "shading, colour and texture (all but the outlines)"}
CUES = {
    "original": "the images as they are",
    "greyscale": "colour removed",
    "blurred": "fine detail removed (Gaussian blur, radius 1/25 of the shorter side)",
    "edges": "only outlines kept (edge map of the greyscale image)",
}


def remove_cue(image: Image.Image, cue: str) -> Image.Image:
    """Return `image` (RGB) with `cue` taken away: one of `CUES`."""
    if cue == "original":
        return image
    if cue == "greyscale":
        return image.convert("L").convert("RGB")
    if cue == "blurred":
        return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(image.size) / 25)))
    if cue == "edges":
        grey = image.convert("L").filter(ImageFilter.GaussianBlur(radius=1))
        return ImageOps.invert(ImageOps.autocontrast(grey.filter(ImageFilter.FIND_EDGES))).convert("RGB")
    raise ValueError(f"Unknown cue {cue!r}: choose among {', '.join(CUES)}.")


@dataclass(frozen=True)
class CuePreprocessing(Preprocessing):
    """The model's preprocessing, after taking `cue` away from the image."""

    cue: str = "original"

    def pixels(self, image: Image.Image) -> torch.Tensor:
        return super().pixels(remove_cue(image.convert("RGB"), self.cue))


def cue_embeddings(embedder, preprocessing: Preprocessing, pairs: PairSet, cues: Sequence[str] = tuple(CUES),
                   device: str = "cpu") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return, for each cue, the unit embeddings of `pairs`' left and right images with that cue
    taken away from both (`original`: unchanged)."""
    out = {}
    for cue in cues:
        if cue not in CUES:
            raise ValueError(f"Unknown cue {cue!r}: choose among {', '.join(CUES)}.")
        transform = CuePreprocessing(resize=preprocessing.resize, crop=preprocessing.crop, mean=preprocessing.mean,
                                     std=preprocessing.std, cue=cue)
        left, right = (F.normalize(embed(embedder, images, transform, device=device, desc=f"Embedding ({cue})"), dim=1)
                       for images in (pairs.left, pairs.right))
        out[cue] = (left, right)
    return out


def margins(left: torch.Tensor, right: torch.Tensor) -> np.ndarray:
    """Return each left image's cosine with its partner minus its mean cosine with the other right images."""
    sims = left @ right.T
    n = len(sims)
    if n < 2:
        raise ValueError("Margins need at least 2 pairs (a partner and another candidate).")
    others = (sims.sum(dim=1) - sims.diagonal()) / (n - 1)
    return (sims.diagonal() - others).numpy()


def _mean_ci(values: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_bootstrap, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


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
            drop, low, high = _mean_ci(lost, n_bootstrap, seed)
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
                      f"{row['margin lost']:.0%} [{row.low:.0%}, {row.high:.0%}]" for cue, row in part.iterrows())
    worst = part.index[0]
    verdict = (f"the network leans most on {TAKES_AWAY.get(worst, worst)}" if part.iloc[0].low > 0 else
               "no single cue clearly matters on this many pairs")
    return f"Over {int(part.pairs.iloc[0])} test pairs, the partner's margin falls by: {costs}; {verdict}."
