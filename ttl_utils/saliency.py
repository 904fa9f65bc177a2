"""Why does the network call two images similar? Attributing `s(A, B) = cos(f(A), f(B))`.

Attribution methods explain one scalar per example. Here that scalar is the similarity:
to explain image A, B's embedding is computed once and held fixed, and Captum gets a
forward function `x -> cos(f(x), e_B)` of shape `(N,)` with `target=None` and `e_B` in
`additional_forward_args`. Swapping the roles explains B. Grad-CAM must work this way,
one image at a time: a layer hook on a backbone that runs twice in one forward keeps only
the second run (see `joint_similarity`, kept to show the pitfall).

For global-average-pooled features and cosine similarity there is also an exact
decomposition (Stylianou et al., WACV 2019): the similarity is a sum over pairs of
locations, so each location of A and of B gets a share, and the maps sum to `s`.

>>> maps = explain_pair(embedder, x_a, x_b, preprocessing)           # doctest: +SKIP
>>> maps["integrated_gradients"].map_a.shape                         # doctest: +SKIP
torch.Size([224, 224])
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from .models import Embedder
from .runtime import model_fingerprint
from .storage import cached
from .transforms import Preprocessing, denormalise

__all__ = [
    "METHODS", "BASELINES", "Explanation", "similarity_given", "joint_similarity", "make_baseline", "attribute",
    "explain_pair", "gradcam", "has_decomposition", "similarity_decomposition", "point_to_point", "strongest_point",
    "deletion_insertion", "infidelity_score", "sensitivity_score", "randomised_copy",
    "cached_explanations", "faithfulness_table", "rank_correlation", "plot_pair_maps", "to_image", "faithfulness",
    "overlay",
]

log = logging.getLogger(__name__)

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "occlusion", "gradcam")
BASELINES = ("blur", "grey", "black")
NOISE_LEVEL = 0.15  # SmoothGrad noise, as a fraction of the input's value range


def similarity_given(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return `f(x, e_b) = cos(model(x), e_b)`, shape `(N,)`: the function Captum explains."""
    def similarity(x: torch.Tensor, e_b: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(model(x), e_b, dim=1)
    return similarity


def joint_similarity(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return `f(x_a, x_b) = cos(model(x_a), model(x_b))`: fine for input attributions, wrong for
    layer methods (the backbone runs twice and a layer hook keeps only the second run)."""
    def similarity(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(model(x_a), model(x_b), dim=1)
    return similarity


def make_baseline(x: torch.Tensor, kind: str, preprocessing: Preprocessing) -> torch.Tensor:
    """Return the reference image for `x`: `blur` (a strongly blurred copy), `grey` or `black`.

    `x` is a normalised batch; grey and black are built in pixel space and normalised the same way.
    """
    if kind == "blur":
        size = x.shape[-1] // 4 * 2 + 1
        return TF.gaussian_blur(x, kernel_size=[size, size], sigma=x.shape[-1] / 8)
    if kind in ("grey", "black"):
        value = 0.5 if kind == "grey" else 0.0
        mean = torch.tensor(preprocessing.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(preprocessing.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return ((value - mean) / std).expand_as(x).clone()
    raise ValueError(f"Unknown baseline {kind!r}; choose one of: {', '.join(BASELINES)}.")


@dataclass
class Explanation:
    """Attribution maps (`H x W`) of one method for both images, and IG's convergence deltas."""

    method: str
    map_a: torch.Tensor
    map_b: torch.Tensor
    delta_a: float | None = None
    delta_b: float | None = None


def _to_map(attr: torch.Tensor) -> torch.Tensor:
    """Sum an attribution over colour channels: `1 x C x H x W` -> `H x W` (signed)."""
    return attr.detach().sum(dim=1)[0]


def gradcam(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """Return Grad-CAM of `cos(f(x), e_other)` on stage `layer` (default: the deepest), upsampled to `x`."""
    from captum.attr import LayerAttribution, LayerGradCam

    module = embedder.backbone.stage_output_module(layer or embedder.layers[-1])
    cam = LayerGradCam(similarity_given(embedder), module).attribute(
        x, additional_forward_args=(e_other,), relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear").detach()[0, 0]


@contextmanager
def _seeded(seed: int):
    """Seed torch and numpy (Captum samples noise and baselines with both) without touching the caller's state."""
    state = np.random.get_state()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def attribute(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, method: str, preprocessing: Preprocessing,
              baseline: str = "blur", ig_steps: int = 64, samples: int = 8, seed: int = 0) -> tuple[torch.Tensor, float | None]:
    """Return the `H x W` attribution of `cos(f(x), e_other)` to the pixels of `x` by `method`,
    and the convergence delta (integrated gradients only; else None).

    Methods that sample (SmoothGrad, GradientSHAP) draw with `seed`: the same call gives the
    same map. A baseline whose embedding is (nearly) the zero vector makes cosine
    similarity degenerate: a warning says so and the delta shows it.
    """
    with _seeded(seed):
        return _attribute(embedder, x, e_other, method, preprocessing, baseline, ig_steps, samples)


def _attribute(embedder, x, e_other, method, preprocessing, baseline, ig_steps, samples):
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    forward = similarity_given(embedder)
    args = (e_other,)
    x = x.detach().clone().requires_grad_(True)
    reference = make_baseline(x.detach(), baseline, preprocessing)
    value_range = float(x.detach().max() - x.detach().min())
    if method == "saliency":
        return _to_map(Saliency(forward).attribute(x, additional_forward_args=args, abs=True)), None
    if method == "integrated_gradients":
        with torch.no_grad():
            if embedder(reference).norm() < 1e-3:
                log.warning("The %s baseline maps to a near-zero embedding: cosine similarity degenerates there, "
                            "so integrated gradients will not add up. Use the blur or grey baseline.", baseline)
        attr, delta = IntegratedGradients(forward).attribute(
            x, baselines=reference, additional_forward_args=args, n_steps=ig_steps,
            internal_batch_size=ig_steps, return_convergence_delta=True)
        return _to_map(attr), float(delta.item())
    if method == "smoothgrad":
        attr = NoiseTunnel(Saliency(forward)).attribute(
            x, nt_type="smoothgrad", nt_samples=samples, stdevs=NOISE_LEVEL * value_range,
            additional_forward_args=args, abs=True)
        return _to_map(attr), None
    if method == "gradient_shap":
        references = torch.cat([reference, make_baseline(x, "grey", preprocessing)])
        attr = GradientShap(forward).attribute(
            x, baselines=references, n_samples=samples, stdevs=0.05 * value_range, additional_forward_args=args)
        return _to_map(attr), None
    if method == "occlusion":
        window = max(4, x.shape[-1] // 7)
        attr = Occlusion(forward).attribute(
            x, sliding_window_shapes=(3, window, window), strides=(3, window // 2, window // 2),
            baselines=reference, additional_forward_args=args, perturbations_per_eval=16)
        return _to_map(attr), None
    if method == "gradcam":
        return gradcam(embedder, x, e_other), None
    raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")


def explain_pair(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor, preprocessing: Preprocessing,
                 methods: Sequence[str] = METHODS, baseline: str = "blur", **kwargs) -> dict[str, Explanation]:
    """Return each method's maps of `s(A, B)` for A (B held fixed) and for B (A held fixed)."""
    embedder = embedder.eval()
    with torch.no_grad():
        e_a, e_b = embedder(x_a), embedder(x_b)
    out = {}
    for method in methods:
        map_a, delta_a = attribute(embedder, x_a, e_b, method, preprocessing, baseline, **kwargs)
        map_b, delta_b = attribute(embedder, x_b, e_a, method, preprocessing, baseline, **kwargs)
        out[method] = Explanation(method, map_a, map_b, delta_a, delta_b)
    return out


def has_decomposition(embedder: Embedder) -> bool:
    """Return whether `similarity_decomposition` applies: one pooled layer and no head."""
    return len(embedder.layers) == 1 and embedder.head_config["kind"] == "none"


def _feature_maps(embedder: Embedder, x: torch.Tensor) -> torch.Tensor:
    if not has_decomposition(embedder):
        raise ValueError("The similarity decomposition needs one pooled layer and no head "
                         f"(got layers {embedder.layers}, head {embedder.head_config['kind']!r}).")
    return embedder.backbone(x, embedder.layers)[embedder.layers[0]][0]  # C x h x w


@torch.no_grad()
def similarity_decomposition(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return `(map_a, map_b, s)`: each feature-map location's exact share of `s = cos(f(A), f(B))`.

    With pooled vectors `p_A = mean_i a_i`, `s = sum_i <a_i, p_B> / (N_A |p_A| |p_B|)`, so
    location `i` of A gets `<a_i, p_B> / (N_A |p_A| |p_B|)` (and B symmetrically); each map sums to `s`.
    """
    a, b = _feature_maps(embedder, x_a), _feature_maps(embedder, x_b)
    p_a, p_b = a.mean(dim=(1, 2)), b.mean(dim=(1, 2))
    scale = p_a.norm() * p_b.norm()
    n_a, n_b = a.shape[1] * a.shape[2], b.shape[1] * b.shape[2]
    map_a = torch.einsum("chw,c->hw", a, p_b) / (n_a * scale)
    map_b = torch.einsum("chw,c->hw", b, p_a) / (n_b * scale)
    return map_a, map_b, float((p_a @ p_b) / scale)


@torch.no_grad()
def point_to_point(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor, point: tuple[int, int]) -> torch.Tensor:
    """Return which locations of B match the location of A at pixel `point = (row, col)`.

    Entry `j` is that location's term `<a_i, b_j> / (N_A N_B |p_A| |p_B|)` of the similarity;
    summed over every `i` and `j` the terms give `s`.
    """
    a, b = _feature_maps(embedder, x_a), _feature_maps(embedder, x_b)
    row = min(int(point[0] * a.shape[1] / x_a.shape[-2]), a.shape[1] - 1)
    col = min(int(point[1] * a.shape[2] / x_a.shape[-1]), a.shape[2] - 1)
    p_a, p_b = a.mean(dim=(1, 2)), b.mean(dim=(1, 2))
    n_a, n_b = a.shape[1] * a.shape[2], b.shape[1] * b.shape[2]
    return torch.einsum("c,chw->hw", a[:, row, col], b) / (n_a * n_b * p_a.norm() * p_b.norm())


def strongest_point(map_: torch.Tensor, size: int) -> tuple[int, int]:
    """Return the pixel `(row, col)` at the centre of `map_`'s largest cell, in a square image of `size`
    pixels: the point `point_to_point` is asked about."""
    row, col = np.unravel_index(int(map_.argmax()), tuple(map_.shape))
    return int((row + 0.5) * size / map_.shape[0]), int((col + 0.5) * size / map_.shape[1])


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
                     n_perturb: int = 8, noise: float = 0.1) -> float:
    """Return Captum's infidelity of a map (lower is better): how badly it predicts the change of
    the similarity under small Gaussian perturbations of the input."""
    from captum.metrics import infidelity

    def perturb(inputs):
        noise_ = noise * torch.randn_like(inputs)
        return noise_, inputs - noise_

    attributions = saliency_map.view(1, 1, *saliency_map.shape).expand_as(x) / x.shape[1]
    with torch.no_grad():
        # normalize: rescale the map first, so methods on different scales compare
        score = infidelity(similarity_given(embedder), perturb, x, attributions,
                           additional_forward_args=(e_other,), n_perturb_samples=n_perturb, normalize=True)
    return float(score.item())


def sensitivity_score(embedder: Embedder, x: torch.Tensor, e_other: torch.Tensor, method: str,
                      preprocessing: Preprocessing, n_perturb: int = 4, radius: float = 0.02, **kwargs) -> float:
    """Return Captum's max-sensitivity of a method (lower is better): the largest change of its map
    under input perturbations of `radius`."""
    from captum.metrics import sensitivity_max

    def explanation(inputs, e_b):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs  # Captum passes a tuple
        e_b = e_b.expand(len(inputs), -1) if len(e_b) == 1 else e_b
        maps = [attribute(embedder, inputs[i:i + 1], e_b[i:i + 1], method, preprocessing, **kwargs)[0]
                for i in range(len(inputs))]
        return torch.stack(maps).unsqueeze(1)

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


def to_image(x: torch.Tensor, preprocessing: Preprocessing) -> np.ndarray:
    """Return a normalised `1 x 3 x H x W` batch as an `H x W x 3` image in [0, 1], for plotting."""
    return denormalise(x, preprocessing.mean, preprocessing.std)


def rank_correlation(map_1: torch.Tensor, map_2: torch.Tensor) -> float:
    """Return Spearman's rank correlation between two maps of the same shape."""
    def ranks(values: torch.Tensor) -> torch.Tensor:
        return torch.argsort(torch.argsort(values.flatten())).double()
    r1, r2 = ranks(map_1), ranks(map_2)
    r1, r2 = r1 - r1.mean(), r2 - r2.mean()
    return float((r1 @ r2) / (r1.norm() * r2.norm()))


def overlay(ax, image: np.ndarray, saliency_map: torch.Tensor | None, signed: bool) -> None:
    """Draw `image` on `ax` with `saliency_map` over it: red/blue for a signed map, a heat scale otherwise.

    Each map is scaled to its own 99th percentile of |value| (so colours compare within a panel,
    not across). A magnitude map with nothing above zero (Grad-CAM keeps only the evidence that
    raises the similarity) is drawn as the bare image with a note, not as a dark veil.
    `saliency_map=None` draws the image alone.
    """
    ax.imshow(image)
    ax.axis("off")
    if saliency_map is None:
        return
    values = saliency_map.detach().cpu().numpy()
    limit = np.percentile(np.abs(values), 99) or float(np.abs(values).max()) or 0.0
    extent = (0, image.shape[1], image.shape[0], 0)
    if signed:
        ax.imshow(values, cmap="bwr", vmin=-(limit or 1.0), vmax=limit or 1.0, alpha=0.55, extent=extent,
                  interpolation="bilinear")
    elif limit <= 0 or values.max() <= 0:
        ax.text(0.5, 0.5, "nothing here\nraises the similarity", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="white", bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})
    else:
        ax.imshow(np.clip(values / limit, 0, 1), cmap="inferno", alpha=0.6, extent=extent, interpolation="bilinear")


SIGNED_METHODS = ("integrated_gradients", "gradient_shap", "occlusion", "decomposition")


def plot_pair_maps(image_a: np.ndarray, image_b: np.ndarray, maps: dict[str, tuple[torch.Tensor | None, torch.Tensor]],
                   title: str | None = None, signed: Sequence[str] = SIGNED_METHODS):
    """Return a figure: a row for A and a row for B, the image first, then one column a method,
    and under the panels a key for each kind of map shown.

    Signed maps (red raises the similarity, blue lowers it) for the methods in `signed`;
    magnitude maps (how much a pixel matters, either way) for the others. A map given as None
    shows the image alone.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cols = len(maps) + 1
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 6.2), squeeze=False,
                             gridspec_kw={"hspace": 0.08, "wspace": 0.05, "bottom": 0.2})
    for row, image, name in zip(axes, (image_a, image_b), ("A", "B")):
        row[0].imshow(image)
        row[0].axis("off")
        row[0].text(-0.06, 0.5, name, transform=row[0].transAxes, rotation=90, ha="right", va="center",
                    fontsize=14, fontweight="bold")
    axes[0, 0].set_title("image", fontsize=10)
    for col, (method, (map_a, map_b)) in enumerate(maps.items(), start=1):
        for row, image, saliency_map in zip(axes, (image_a, image_b), (map_a, map_b)):
            overlay(row[col], image, saliency_map, method in signed)
        kind = "signed" if method in signed else "magnitude"
        axes[0, col].set_title(f"{method.replace('_', ' ')}\n({kind})", fontsize=10)
    kinds = [kind for kind, present in (("signed", any(m in signed for m in maps)),
                                        ("magnitude", any(m not in signed for m in maps))) if present]
    for k, kind in enumerate(kinds):
        width = 0.8 / len(kinds) - 0.04
        cax = fig.add_axes((0.1 + k * (width + 0.08), 0.1, width, 0.025))
        if kind == "signed":
            bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), "bwr"), cax=cax, orientation="horizontal")
            bar.set_ticks([-1, 0, 1], labels=["lowers", "0", "raises"])
            bar.set_label("signed maps: effect on the similarity", fontsize=9)
        else:
            bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "inferno"), cax=cax, orientation="horizontal")
            bar.set_ticks([0, 1], labels=["0", "most"])
            bar.set_label("magnitude maps: how much it matters", fontsize=9)
        bar.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=12, y=0.97)
    return fig


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


def cached_explanations(embedder: Embedder, x_a: torch.Tensor, x_b: torch.Tensor, preprocessing: Preprocessing,
                        name: str, data: str, baseline: str = "blur", ig_steps: int = 32) -> dict[str, dict]:
    """Return `explain_pair`'s maps of every method as `{method: {"a", "b", "delta_a", "delta_b"}}`, computed
    once under `artifacts/saliency_maps/`, keyed by the model's weights, the pair's `name`, the data's
    fingerprint `data` and the settings."""
    def compute():
        return {method: {"a": e.map_a, "b": e.map_b, "delta_a": e.delta_a, "delta_b": e.delta_b}
                for method, e in explain_pair(embedder, x_a, x_b, preprocessing, baseline=baseline,
                                              ig_steps=ig_steps).items()}

    return cached("saliency_maps", compute, model=model_fingerprint(embedder), data=data, pair=name,
                  size=preprocessing.crop, baseline=baseline, ig_steps=ig_steps)


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
                  pairs=[pairs.ids[i] for i in indices], size=preprocessing.crop, baseline=baseline, ig_steps=ig_steps)
