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

Faithfulness metrics (does a map say what the model does?) are in `faithfulness`; the
pictures are drawn by `present.pictures`.

>>> maps = explain_pair(embedder, x_a, x_b, preprocessing)           # doctest: +SKIP
>>> maps["integrated_gradients"].map_a.shape                         # doctest: +SKIP
torch.Size([224, 224])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from ..cache import cached
from ..data.faces import face_table
from ..data.gallery import Gallery
from ..data.pairs import PairSet
from ..digests import model_fingerprint
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing, denormalise

__all__ = [
    "BASELINES", "METHODS", "Explanation", "PairMaps", "attribute", "cached_explanations", "example_pairs",
    "explain_matches", "explain_pair", "face_and_generic_maps", "gradcam", "has_decomposition", "joint_similarity",
    "make_baseline", "point_to_point", "similarity_decomposition", "similarity_given", "strongest_point", "to_image",
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
def seeded(seed: int):
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
    with seeded(seed):
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


def to_image(x: torch.Tensor, preprocessing: Preprocessing) -> np.ndarray:
    """Return a normalised `1 x 3 x H x W` batch as an `H x W x 3` image in [0, 1], for plotting."""
    return denormalise(x, preprocessing.mean, preprocessing.std)


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


def explain_matches(embedder: Embedder, preprocessing: Preprocessing, query, gallery: Gallery, matches: Sequence,
                    method: str = "gradcam", baseline: str = "blur", ig_steps: int = 32
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return, for each match (with its gallery `index`), the saliency of the similarity on the query
    (match held fixed) and on the match (query held fixed), by `explain_pair`'s `method`."""
    device = next(embedder.parameters()).device  # where the gallery's embedding left it
    x_query = preprocessing.batch(query).to(device)
    maps = []
    for match in matches:
        x_match = preprocessing.batch(gallery.image(match.index)).to(device)
        explained = explain_pair(embedder, x_query, x_match, preprocessing, methods=(method,), baseline=baseline,
                                 ig_steps=ig_steps)[method]
        maps.append((explained.map_a.cpu(), explained.map_b.cpu()))
    return maps
