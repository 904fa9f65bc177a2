"""Does a saliency map say what the model does? Faithfulness without labels, and the pitfalls notebook 03 shows.

Deletion and insertion curves (Petsiuk et al. 2018), Captum's infidelity and max-sensitivity,
the model-randomisation check (Adebayo et al. 2018), the reference images of integrated
gradients, and Grad-CAM of a joint similarity. Each function returns numbers or sentences;
the notebook prints and plots them.

>>> faithfulness_sample(10, 3).tolist()
[5, 9, 6]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..cache import cached
from ..digests import model_fingerprint
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from .saliency import (
    BASELINES,
    METHODS,
    attribute,
    gradcam,
    joint_similarity,
    make_baseline,
    seeded,
    similarity_given,
)

__all__ = ["FAITHFULNESS_COLUMNS", "baseline_table", "baseline_verdict", "deletion_insertion", "faithfulness",
           "faithfulness_sample", "faithfulness_summary", "faithfulness_table", "faithfulness_verdict",
           "infidelity_score", "joint_gradcam_check", "randomised_copy", "rank_correlation", "sensitivity_score"]

FAITHFULNESS_COLUMNS = ["deletion_auc", "insertion_auc", "infidelity", "sensitivity", "randomisation_correlation",
                        "seconds"]


@torch.no_grad()
def deletion_insertion(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, saliency_map: torch.Tensor,
                       preprocessing: Preprocessing, steps: int = 16) -> dict[str, np.ndarray | float]:
    """Return the deletion and insertion curves of `cos(f(x'), e_other)` and their AUCs (Petsiuk et al. 2018).

    Deletion replaces the most salient pixels of `x` first with black (a faithful map makes
    the similarity fall fast: low AUC); insertion reveals them first on a blurred copy (it
    rises fast: high AUC). Curves have `steps + 1` points, from 0% to 100% of the pixels.
    """
    forward = similarity_given(embedder)
    order = torch.argsort(saliency_map.flatten(), descending=True)
    n = order.numel()
    black, blurred = make_baseline(x, "black", preprocessing), make_baseline(x, "blur", preprocessing)
    deleted, inserted = [], []
    for k in np.linspace(0, n, steps + 1).astype(int):
        mask = torch.zeros(n, dtype=x.dtype, device=x.device)
        mask[order[:k]] = 1
        mask = mask.view(1, 1, *x.shape[-2:])
        deleted.append(x * (1 - mask) + black * mask)
        inserted.append(blurred * (1 - mask) + x * mask)
    curves = {}
    for name, images in (("deletion", deleted), ("insertion", inserted)):
        batch = torch.cat(images)
        curves[name] = forward(batch, e_other.expand(len(batch), -1)).cpu().numpy()
    auc = {f"{name}_auc": float(np.trapezoid(curve, dx=1 / steps)) for name, curve in curves.items()}
    return {**curves, **auc}


def infidelity_score(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, saliency_map: torch.Tensor,
                     n_perturb: int = 8, noise: float = 0.1, seed: int = 0) -> float:
    """Return Captum's infidelity of a map (lower is better): how badly it predicts the change of
    the similarity under small Gaussian perturbations of the input, drawn with `seed`."""
    from captum.metrics import infidelity

    def perturb(inputs):
        noise_ = noise * torch.randn_like(inputs)
        return noise_, inputs - noise_

    attributions = saliency_map.view(1, 1, *saliency_map.shape).expand_as(x) / x.shape[1]
    with torch.no_grad(), seeded(seed):
        # normalize: rescale the map first, so methods on different scales compare
        score = infidelity(similarity_given(embedder), perturb, x, attributions,
                           additional_forward_args=(e_other,), n_perturb_samples=n_perturb, normalize=True)
    return float(score.item())


def sensitivity_score(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, method: str,
                      preprocessing: Preprocessing, n_perturb: int = 4, radius: float = 0.02, seed: int = 0,
                      **kwargs) -> float:
    """Return Captum's max-sensitivity of a method (lower is better): the largest change of its map
    under input perturbations of `radius`, drawn with `seed` (so a rerun gives the same score)."""
    from captum.metrics import sensitivity_max

    def explanation(inputs, e_b):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs  # Captum passes a tuple
        e_b = e_b.expand(len(inputs), -1) if len(e_b) == 1 else e_b
        maps = [attribute(embedder, inputs[i:i + 1], e_b[i:i + 1], method, preprocessing, **kwargs)[0]
                for i in range(len(inputs))]
        return torch.stack(maps).unsqueeze(1)

    with seeded(seed):
        score = sensitivity_max(explanation, x, perturb_radius=radius, n_perturb_samples=n_perturb,
                                e_b=e_other)
    return float(score.item())


def randomised_copy(embedder: Embedder, layer: str | None = None, seed: int = 0) -> Embedder:
    """Return a copy of `embedder` whose stage `layer` (default: the deepest) has fresh random weights
    (the model-randomisation sanity check of Adebayo et al. 2018)."""
    torch.manual_seed(seed)
    randomised = copy.deepcopy(embedder)
    for module in randomised.backbone.stage_modules(layer or randomised.layers[-1]):
        for child in module.modules():
            if hasattr(child, "reset_parameters"):
                child.reset_parameters()
    return randomised.eval()


def rank_correlation(map_1: torch.Tensor, map_2: torch.Tensor) -> float:
    """Return Spearman's rank correlation between two maps of the same shape."""
    def ranks(values: torch.Tensor) -> torch.Tensor:
        return torch.argsort(torch.argsort(values.flatten())).double()
    r1, r2 = ranks(map_1), ranks(map_2)
    r1, r2 = r1 - r1.mean(), r2 - r2.mean()
    return float((r1 @ r2) / (r1.norm() * r2.norm()))


def faithfulness(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor, preprocessing: Preprocessing,
                 methods: Sequence[str] = METHODS, sensitivity: bool = True, **kwargs) -> list[dict]:
    """Return one row a method for explaining A (B held fixed): deletion and insertion AUC,
    infidelity, max-sensitivity (if asked; it re-runs the method) and the rank correlation of
    the map with the map of a copy whose top stage is re-initialised (low = the map depends
    on what the network learned, as it should)."""
    randomised = randomised_copy(embedder)
    with torch.no_grad():
        e_b, e_b_random = embedder(x_b), randomised(x_b)
    rows = []
    for method in methods:
        start = time.perf_counter()
        saliency_map, delta = attribute(embedder, x_a, e_b, method, preprocessing, **kwargs)
        seconds = time.perf_counter() - start
        curves = deletion_insertion(embedder, x_a, e_b, saliency_map, preprocessing)
        random_map, _ = attribute(randomised, x_a, e_b_random, method, preprocessing, **kwargs)
        rows.append({
            "method": method, "seconds": seconds, "ig_delta": delta,
            "deletion_auc": curves["deletion_auc"], "insertion_auc": curves["insertion_auc"],
            "deletion": curves["deletion"].tolist(), "insertion": curves["insertion"].tolist(),
            "infidelity": infidelity_score(embedder, x_a, e_b, saliency_map),
            "sensitivity": sensitivity_score(embedder, x_a, e_b, method, preprocessing, n_perturb=2, **kwargs)
            if sensitivity else None,
            "randomisation_correlation": rank_correlation(saliency_map, random_map),
        })
    return rows


def faithfulness_table(embedder: Embedder, pairs, indices: Sequence[int], preprocessing: Preprocessing, data: str,
                       baseline: str = "blur", ig_steps: int = 32) -> list[dict]:
    """Return `faithfulness`' rows for the pairs `indices` of `pairs` (explaining each left image with
    its partner fixed), each with its `"pair"` id; computed once under `artifacts/faithfulness/`."""
    def compute():
        return [{"pair": pairs.ids[i], **row} for i in indices
                for row in faithfulness(embedder, preprocessing.batch(pairs.left_image(i)),
                                        preprocessing.batch(pairs.right_image(i)), preprocessing,
                                        baseline=baseline, ig_steps=ig_steps)]

    return cached("faithfulness", compute, model=model_fingerprint(embedder), data=data,
                  pairs=[pairs.ids[i] for i in indices], size=preprocessing.crop, baseline=baseline, ig_steps=ig_steps,
                  perturbations="seeded")  # rows cached before the perturbations were seeded are not reused


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
    `faithfulness_table`."""
    return np.random.default_rng(seed).choice(n_pairs, size=min(n, n_pairs), replace=False)


def faithfulness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Return the mean of each `FAITHFULNESS_COLUMNS` a method, methods in the order of `table`
    (`faithfulness_table`'s rows as a DataFrame)."""
    return table.groupby("method", sort=False)[FAITHFULNESS_COLUMNS].mean()


def faithfulness_verdict(table: pd.DataFrame) -> list[str]:
    """Return three sentences on `faithfulness_table`'s rows (as a DataFrame): the methods with
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
