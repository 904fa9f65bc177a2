"""What is in a pair set: image sizes, colour statistics, near-duplicates.

>>> from ttl_utils.data.demo import make_demo_pairs
>>> images = image_table(make_demo_pairs(2, 32))
>>> images.shape
(4, 10)
>>> image_findings(images)[0]
'Image sizes (width x height): 32x32: 4'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..progress import progress
from .pairs import PairSet

__all__ = ["image_table", "image_summary", "image_findings", "near_duplicates", "duplicate_threshold", "GREY_TOLERANCE"]

GREY_TOLERANCE = 4.0  # mean |R-G| + |G-B| below this (of 255) counts as a greyscale image


def _colour_stats(rgb: np.ndarray) -> dict[str, float]:
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    high, low = pixels.max(axis=1), pixels.min(axis=1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    spread = np.abs(pixels[:, 0] - pixels[:, 1]).mean() + np.abs(pixels[:, 1] - pixels[:, 2]).mean()
    return {
        "mean_r": float(pixels[:, 0].mean()), "mean_g": float(pixels[:, 1].mean()), "mean_b": float(pixels[:, 2].mean()),
        "saturation": float(saturation.mean()), "greyscale": bool(spread < GREY_TOLERANCE),
    }


def image_table(pairs: PairSet) -> pd.DataFrame:
    """Return one row an image: pair id, side, width, height, aspect ratio, mean colour,
    mean saturation (0..1) and whether it is greyscale."""
    rows = []
    for i in progress(range(len(pairs)), desc="Reading images", unit="pair", leave=False):
        for side, image in (("left", pairs.left_image(i)), ("right", pairs.right_image(i))):
            rgb = np.asarray(image)
            rows.append({"id": pairs.ids[i], "side": side, "width": image.width, "height": image.height,
                         "aspect": image.width / image.height, **_colour_stats(rgb)})
    return pd.DataFrame(rows)


def image_summary(images: pd.DataFrame) -> pd.DataFrame:
    """Return one row a side of `image_table`'s rows: image count, median size and aspect, mean
    colour and saturation, and the share of greyscale images."""
    return images.groupby("side").agg(
        images=("id", "size"),
        width=("width", "median"), height=("height", "median"), aspect=("aspect", "median"),
        mean_r=("mean_r", "mean"), mean_g=("mean_g", "mean"), mean_b=("mean_b", "mean"),
        saturation=("saturation", "mean"), greyscale_share=("greyscale", "mean"),
    )


def image_findings(images: pd.DataFrame) -> list[str]:
    """Return two sentences on `image_table`'s rows: how many images of each size, and each side's
    brightness (mean of R, G, B), saturation and share of greyscale images."""
    sizes = images.groupby(["width", "height"]).size()
    summary = image_summary(images)
    brightness = summary[["mean_r", "mean_g", "mean_b"]].mean(axis=1)
    left, right = summary.loc["left"], summary.loc["right"]
    return [
        f"Image sizes (width x height): {', '.join(f'{w}x{h}: {n}' for (w, h), n in sizes.items())}",
        f"Mean brightness left {brightness['left']:.0f}, right {brightness['right']:.0f} (of 255); "
        f"saturation left {left.saturation:.2f}, right {right.saturation:.2f}; "
        f"greyscale left {left.greyscale_share:.1%}, right {right.greyscale_share:.1%}",
    ]


def near_duplicates(left: torch.Tensor, right: torch.Tensor, ids: list[str] | tuple[str, ...],
                    threshold: float = 0.95) -> pd.DataFrame:
    """Return pairs of nearly identical images (embedding cosine >= `threshold`), most similar first.

    Kinds: `within pair` (a pair's left and right are almost the same picture: a trivial
    match), `left-left` and `right-right` (two pairs share almost the same image, so one
    can steal the other's match in retrieval), and `left-right` (one pair's left image is
    almost another pair's right image: in left -> right retrieval that right image outranks
    the partner).
    """
    left, right = F.normalize(left.float(), dim=1), F.normalize(right.float(), dim=1)
    rows = []
    cross = left @ right.T
    within = cross.diagonal()
    rows += [("within pair", ids[i], ids[i], float(within[i])) for i in torch.nonzero(within >= threshold).flatten()]
    off = cross.masked_fill(torch.eye(len(cross), dtype=torch.bool), -2.0)
    rows += [("left-right", ids[a], ids[b], float(off[a, b])) for a, b in torch.nonzero(off >= threshold).tolist()]
    for kind, vectors in (("left-left", left), ("right-right", right)):
        sims = torch.triu(vectors @ vectors.T, diagonal=1)
        for a, b in torch.nonzero(sims >= threshold).tolist():
            rows.append((kind, ids[a], ids[b], float(sims[a, b])))
    table = pd.DataFrame(rows, columns=["kind", "a", "b", "cosine"])
    return table.sort_values("cosine", ascending=False, ignore_index=True)


def duplicate_threshold(left: torch.Tensor, right: torch.Tensor, quantile: float = 0.9999,
                        floor: float = 0.9) -> tuple[float, float]:
    """Return the cosine from which two images count as near-duplicates, and the quantile it came from.

    The threshold is set by the data: the `quantile` of the cosines of non-partner images (the
    left image of one pair against the right image of another), so only pairs of images more
    alike than almost any two unrelated pictures are flagged, but never below `floor` (the TTL
    paper's cosine distance 0.1). On features where every image looks alike, that quantile is
    high and fewer pairs are flagged than a fixed 0.9 would.
    """
    if len(left) < 2:
        raise ValueError("A threshold from non-partner images needs at least 2 pairs.")
    left, right = F.normalize(left.float(), dim=1), F.normalize(right.float(), dim=1)
    sims = left @ right.T
    others = sims[~torch.eye(len(sims), dtype=torch.bool)].numpy()
    value = float(np.quantile(others, quantile))
    return max(floor, value), value
