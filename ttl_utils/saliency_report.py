"""What notebook 03 shows of `saliency`: example pairs, the baseline and Grad-CAM pitfalls, the faithfulness summary.

Each function returns numbers, maps or sentences; the notebook prints and plots them.

>>> import torch
>>> left, right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
>>> example_pairs(left, right)   # pair 1 is the most alike; right image 0 is left image 1's median neighbour
(1, 0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .faces import face_table
from .models import Embedder
from .pairs import PairSet
from .saliency import (
    BASELINES,
    attribute,
    explain_pair,
    gradcam,
    has_decomposition,
    joint_similarity,
    make_baseline,
    similarity_decomposition,
    similarity_given,
    to_image,
)
from .transforms import Preprocessing

__all__ = ["FAITHFULNESS_COLUMNS", "PairMaps", "example_pairs", "face_and_generic_maps", "baseline_table", "baseline_verdict",
           "joint_gradcam_check", "faithfulness_sample", "faithfulness_summary", "faithfulness_verdict"]

FAITHFULNESS_COLUMNS = ["deletion_auc", "insertion_auc", "infidelity", "sensitivity", "randomisation_correlation",
                        "seconds"]


class PairMaps(NamedTuple):
    """One pair's position, its two images as the model sees them (`H x W x 3`) and maps by method."""

    index: int
    image_a: np.ndarray
    image_b: np.ndarray
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]]


def example_pairs(left: torch.Tensor, right: torch.Tensor) -> tuple[int, int]:
    """Return `(match, other)`: the pair whose unit-length embeddings are most alike, and a typical
    non-partner of its left image (the right image of median similarity to it)."""
    if left.shape != right.shape:
        raise ValueError(f"left and right embeddings differ in shape: {tuple(left.shape)} and {tuple(right.shape)}.")
    match = int((left * right).sum(dim=1).argmax())
    other = int((left[match] @ right.T).argsort()[len(left) // 2])
    return match, other


def face_and_generic_maps(embedder: Embedder, pairs: PairSet, preprocessing: Preprocessing, first: int = 40,
                          methods: tuple[str, ...] = ("smoothgrad", "gradcam")) -> dict[str, PairMaps | None]:
    """Return `{"face pair": ..., "generic pair": ...}`: the first pair of each kind among the first `first`
    of `pairs` (OpenCV's face detector decides) with its maps by `methods`, and the exact decomposition
    where the model has one (`has_decomposition`); None for a kind that is not there."""
    kinds = face_table(pairs.subset(range(min(first, len(pairs))))).face_pair.to_numpy()
    shown: dict[str, PairMaps | None] = {}
    for kind, found in (("face pair", np.flatnonzero(kinds)), ("generic pair", np.flatnonzero(~kinds))):
        if not len(found):
            shown[kind] = None
            continue
        i = int(found[0])
        x_1, x_2 = preprocessing.batch(pairs.left_image(i)), preprocessing.batch(pairs.right_image(i))
        maps = {m: (e.map_a, e.map_b) for m, e in explain_pair(embedder, x_1, x_2, preprocessing, methods=methods).items()}
        if has_decomposition(embedder):
            maps["decomposition"] = similarity_decomposition(embedder, x_1, x_2)[:2]
        shown[kind] = PairMaps(i, to_image(x_1, preprocessing), to_image(x_2, preprocessing), maps)
    return shown


def baseline_table(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor, preprocessing: Preprocessing,
                   ig_steps: int = 32) -> pd.DataFrame:
    """Return one row a reference image of integrated gradients (explaining A, B fixed): `s(A)`,
    `s(baseline)`, the sum of the attributions, IG's convergence delta (sum minus
    `s(A) - s(baseline)`: zero when the attributions add up) and the length of the baseline's
    pooled features before normalisation, relative to A's (`pooled norm vs A`). Near zero, the
    direction of the features (all that cosine similarity sees) is set by noise, and the path
    from the baseline to A starts where the similarity is ill-defined."""
    similarity = similarity_given(embedder)

    def pooled_norm(x: torch.Tensor) -> float:
        maps = embedder.backbone(x, embedder.layers)
        return float(sum(maps[layer].mean(dim=(2, 3)).norm() for layer in embedder.layers))

    with torch.no_grad():
        e_b = embedder(x_b)
        norm_a = pooled_norm(x_a)
    rows = {}
    for kind in BASELINES:
        attribution, delta = attribute(embedder, x_a, e_b, "integrated_gradients", preprocessing, baseline=kind,
                                       ig_steps=ig_steps)
        with torch.no_grad():
            reference = make_baseline(x_a, kind, preprocessing)
            rows[kind] = {"s(A)": float(similarity(x_a, e_b)), "s(baseline)": float(similarity(reference, e_b)),
                          "sum of attributions": float(attribution.sum()), "delta": delta,
                          "pooled norm vs A": pooled_norm(reference) / max(norm_a, 1e-12)}
    return pd.DataFrame(rows).T


def baseline_verdict(table: pd.DataFrame) -> str:
    """Return one sentence from `baseline_table`: which baseline's attributions miss their total most,
    and which sits closest to zero features."""
    worst = table["delta"].abs().idxmax()
    nearest = table["pooled norm vs A"].idxmin()
    return (f"Largest |delta|: {worst} ({table.loc[worst, 'delta']:+.4f}); smallest: {table['delta'].abs().idxmin()} "
            f"({table.loc[table['delta'].abs().idxmin(), 'delta']:+.4f}). Features nearest zero: {nearest} "
            f"({table.loc[nearest, 'pooled norm vs A']:.2f} of A's length).")


def joint_gradcam_check(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor,
                        atol: float = 1e-5) -> tuple[bool, bool]:
    """Return whether Grad-CAM of the joint `cos(f(A), f(B))` equals B's own map and whether it equals
    A's own map (`gradcam`, the other image held fixed). A layer hook on a backbone that runs twice
    keeps the second run, so the first is true and the second false: the pitfall notebook 03 shows."""
    from captum.attr import LayerAttribution, LayerGradCam

    module = embedder.backbone.stage_output_module(embedder.layers[-1])
    joint = LayerGradCam(joint_similarity(embedder), module).attribute((x_a, x_b), relu_attributions=True)
    joint = LayerAttribution.interpolate(joint, tuple(x_a.shape[-2:]), "bilinear")[0, 0].detach()
    with torch.no_grad():
        e_a, e_b = embedder(x_a), embedder(x_b)
    return (bool(torch.allclose(joint, gradcam(embedder, x_b, e_a), atol=atol)),
            bool(torch.allclose(joint, gradcam(embedder, x_a, e_b), atol=atol)))


def faithfulness_sample(n_pairs: int, n: int, seed: int = 0) -> np.ndarray:
    """Return the positions of `min(n, n_pairs)` of `n_pairs` pairs drawn at random with `seed`, for
    `saliency.faithfulness_table`."""
    return np.random.default_rng(seed).choice(n_pairs, size=min(n, n_pairs), replace=False)


def faithfulness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Return the mean of each `FAITHFULNESS_COLUMNS` a method, methods in the order of `table`
    (`saliency.faithfulness_table`'s rows as a DataFrame)."""
    return table.groupby("method", sort=False)[FAITHFULNESS_COLUMNS].mean()


def faithfulness_verdict(table: pd.DataFrame) -> list[str]:
    """Return three sentences on `saliency.faithfulness_table`'s rows (as a DataFrame): the methods with
    the lowest deletion and the highest insertion AUC, the maps that pass the randomisation check
    (Spearman < 0.5) and the median and largest |delta| of integrated gradients."""
    summary = faithfulness_summary(table)
    passes = summary.index[summary.randomisation_correlation < 0.5].tolist()
    ig = table[table.method == "integrated_gradients"].ig_delta.abs()
    return [
        f"Lowest deletion AUC: {summary.deletion_auc.idxmin()} ({summary.deletion_auc.min():.3f}); "
        f"highest insertion AUC: {summary.insertion_auc.idxmax()} ({summary.insertion_auc.max():.3f})",
        f"Maps that change when the top stage is re-initialised (Spearman < 0.5): {', '.join(passes) or 'none'}",
        f"IG convergence |delta| over the sample: median {ig.median():.3f}, max {ig.max():.3f}",
    ]
