"""The frozen trunk of a fine-tuned model: what it computes once, cached, and what trains on top.

When only the last stages (and the head) of a backbone train, the stages below them, the
*trunk*, compute the same thing every epoch. So they run once: on the clean image and on
`views` augmented views of every training image (`PairAugmentation`); each training step
draws one cached view per image. With `unfreeze=0` the cache holds pooled feature vectors,
with `unfreeze=1` the `layer3` maps, with `unfreeze=2` the `layer2` maps (float16). A trunk
that ends later is derived from the cached outputs of one that ends earlier.

>>> inputs = trunk_inputs(embedder, pairs, config, augmented=True)   # doctest: +SKIP
>>> inputs["left"].shape    # N x (views + 1) x C x H x W                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..cache import cache_path
from ..data.loading import threaded_batches
from ..data.pairs import ImageSource, PairSet, open_rgb
from ..digests import model_fingerprint
from ..models.catalog import LAYERS
from ..models.embedder import Embedder
from ..models.engine import frozen_maps
from ..models.preprocessing import Preprocessing
from ..progress import progress
from ..runtime import decode_threads, loader_workers, physical_memory
from ..storage import read_cache, save_cache
from .augment import PairAugmentation
from .recipes import FinetuneConfig

__all__ = ["top_forward", "trunk_inputs", "trunk_runner"]

log = logging.getLogger(__name__)

_TRUNK_VERSION = 1  # of what the trunk cache holds: a change must bump it


def trunk_runner(embedder: Embedder, config: FinetuneConfig,
                 device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the frozen part as a function of normalised images (on any device) to its outputs on
    `device`, the input of the trainable part; its stages run in the inference engine
    (`models.engine.frozen_maps`: ONNX Runtime on CPU), exported once per weights of those stages."""
    device = torch.device(device)
    if config.unfreeze == len(LAYERS):
        return lambda images: images.to(device)
    if config.unfreeze == 0:
        pooled = frozen_maps(embedder.backbone, embedder.layers, device=device)

        def run(images: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return embedder.pool({k: v.to(device) for k, v in pooled(images).items()})

        return run
    before = LAYERS[LAYERS.index(config.start) - 1]
    maps = frozen_maps(embedder.backbone, (before,), device=device)
    return lambda images: maps(images)[before].to(device)


def top_forward(embedder: Embedder, inputs: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    """Return L2-normalised embeddings from the trunk's outputs."""
    if config.unfreeze == 0:
        return embedder.embed_features(inputs)
    return embedder(inputs, start=config.start)


class _Views(Dataset):
    """Image `i`, clean (view 0) or augmented (view v > 0) with a seed fixed by (seed, v, i)."""

    def __init__(self, sources: list[ImageSource], view_ids: list[int], config: FinetuneConfig, salt: int = 0):
        self.sources, self.view_ids, self.salt = sources, view_ids, salt
        self.clean = Preprocessing.for_size(config.image_size)
        self.augment = PairAugmentation(config.image_size, config.min_scale)
        self.seed = config.views_seed

    def __len__(self) -> int:
        return len(self.sources) * len(self.view_ids)

    def __getitem__(self, k: int) -> torch.Tensor:
        i, v = divmod(k, len(self.view_ids))
        view = self.view_ids[v]
        if view == 0:  # decoded as `evaluate` decodes it (a large JPEG reduced to the resize), the same pixels
            return self.clean(open_rgb(self.sources[i], min_side=self.clean.resize))
        image = open_rgb(self.sources[i], min_side=2 * self.clean.crop)  # room for the random crops
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.salt, view, i)) % 2**62)
            return self.augment(image)


def _allocate(shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Return an empty float16 tensor for the trunk's outputs, after checking that it fits in memory."""
    size = int(np.prod(shape)) * 2
    log.info("%s: %s float16 values, %.2f GB", what, " x ".join(map(str, shape)), size / 2**30)
    total = physical_memory()
    if total is not None and size > 0.6 * total:
        raise ValueError(f"{what} would take {size / 2**30:.1f} GB, more than 60% of this machine's "
                         f"{total / 2**30:.0f} GB: use fewer --views (0 augments every step instead of caching), "
                         "a smaller --image-size, or --unfreeze 0 (pooled features only).")
    return torch.empty(shape, dtype=torch.float16)


def _run_trunk(embedder: Embedder, sources: list[ImageSource], view_ids: list[int], config: FinetuneConfig,
               device: torch.device, desc: str, salt: int = 0) -> torch.Tensor:
    """Return the trunk's outputs for every image and view: `N x V x ...`, float16 on the CPU."""
    views = _Views(sources, view_ids, config, salt)
    if view_ids == [0] and device.type == "cpu":  # clean images only: no random state, decoded in threads
        loader = threaded_batches(views, 32, decode_threads(config.workers))
    else:  # augmented views draw from torch's random state, which each worker process has its own of
        loader = DataLoader(views, batch_size=32, num_workers=loader_workers(config.workers))
    forward = trunk_runner(embedder, config, device)
    out, filled = None, 0
    for batch in progress(loader, desc=desc, unit="batch", leave=False, total=-(-len(views) // 32)):
        result = forward(batch).half().cpu()
        if out is None:  # filled in place: no second copy of what may be gigabytes
            out = _allocate((len(sources) * len(view_ids), *result.shape[1:]), desc)
        out[filled:filled + len(result)] = result
        filled += len(result)
    return out.reshape(len(sources), len(view_ids), *out.shape[1:])


def _cut(unfreeze: int) -> str:
    """Where the trunk ends: `pooled` (features), a stage name (its feature map), or `images`."""
    return "pooled" if unfreeze == 0 else "images" if unfreeze == len(LAYERS) else LAYERS[len(LAYERS) - 1 - unfreeze]


def _continue_trunk(embedder: Embedder, stored: torch.Tensor, cut: str, unfreeze: int) -> torch.Tensor:
    """Run the stages between the stored outputs at stage `cut` and the end of `unfreeze`'s trunk."""
    start = LAYERS[LAYERS.index(cut) + 1]
    target = _cut(unfreeze)
    flat = stored.flatten(0, 1)
    out, filled = None, 0
    layers = embedder.layers if target == "pooled" else (target,)
    # a pooled cut may need the stored stage itself: the engine then starts after it
    needed = tuple(layer for layer in layers if LAYERS.index(layer) >= LAYERS.index(start))
    device = next(embedder.parameters()).device
    maps = frozen_maps(embedder.backbone, needed, start=start, device=device) if needed else None
    with torch.no_grad():
        for chunk in flat.split(64):
            chunk = chunk.float().to(device)
            found = maps(chunk) if maps is not None else {}
            if cut in layers:
                found[cut] = chunk
            result = embedder.pool(found) if target == "pooled" else found[target]
            if out is None:
                out = _allocate((len(flat), *result.shape[1:]), f"Trunk outputs at {target}")
            out[filled:filled + len(result)] = result.half()
            filled += len(result)
    return out.reshape(*stored.shape[:2], *out.shape[1:])


def _trunk_key(embedder: Embedder, pairs: PairSet, config: FinetuneConfig, view_ids: list[int], unfreeze: int) -> dict:
    """Return what the trunk's outputs at `unfreeze`'s cut depend on."""
    described = {"model": model_fingerprint(embedder.backbone), "backbone": embedder.backbone.name,
                 "cut": _cut(unfreeze), "image_size": config.image_size, "views": view_ids,
                 "min_scale": config.min_scale, "seed": config.views_seed, "data": pairs.fingerprint,
                 "version": _TRUNK_VERSION}
    if unfreeze == 0:  # pooled features also depend on the layers
        described["layers"] = list(embedder.layers)
        if embedder.grid:
            described["grid"] = embedder.grid
    return described


def _earlier_cache(embedder: Embedder, pairs: PairSet, config: FinetuneConfig, view_ids: list[int]):
    """Return `(path, cut)` of cached outputs of an earlier-ending trunk to derive from, or None."""
    usable = [u for u in range(config.unfreeze + 1, len(LAYERS))  # a pooled cut needs every layer after the stored one
              if config.unfreeze > 0 or all(LAYERS.index(layer) >= LAYERS.index(_cut(u)) for layer in embedder.layers)]
    for u in usable:
        path = cache_path("finetune-inputs", **_trunk_key(embedder, pairs, config, view_ids, u))
        if path.is_file():
            return path, _cut(u)
    return None


def trunk_inputs(embedder: Embedder, pairs: PairSet, config: FinetuneConfig, augmented: bool,
                 device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Return `{"left", "right"}` trunk outputs of `pairs` (`N x V x ...`): view 0 is the clean image,
    views 1.. are augmented when `augmented`.

    With `config.cache` they are kept under `artifacts/finetune-inputs/`; a trunk that ends
    later is derived from the cached outputs of one that ends earlier (unfreeze 2 -> 1 -> 0),
    which costs a fraction of running it on the images again.
    """
    device = torch.device(device)
    view_ids = list(range(config.views + 1)) if augmented else [0]
    path = cache_path("finetune-inputs", **_trunk_key(embedder, pairs, config, view_ids, config.unfreeze))
    expected = {"left": len(pairs.left), "right": len(pairs.right)}
    found = read_cache(path, lambda value: _fits(value, expected, len(view_ids))) if config.cache else None
    if found is not None:
        log.info("Loaded the cached trunk outputs from %s", path)
        return found
    embedder.to(device).eval()
    earlier = _earlier_cache(embedder, pairs, config, view_ids) if config.cache else None
    stored = read_cache(earlier[0], lambda value: _fits(value, expected, len(view_ids))) if earlier else None
    if stored is not None:
        source, cut = earlier
        log.info("Deriving the trunk outputs from the cached %s maps in %s", cut, source)
        result = {side: _continue_trunk(embedder, stored[side], cut, config.unfreeze) for side in ("left", "right")}
    else:
        result = {side: _run_trunk(embedder, list(getattr(pairs, side)), view_ids, config, device,
                                   desc=f"Frozen trunk, {side} images", salt=s)
                  for s, side in enumerate(("left", "right"))}
    if config.cache:
        save_cache(result, path)
    return result


def _fits(value, expected: dict[str, int], views: int) -> bool:
    """Whether cached trunk outputs hold, for each side, one row of `views` views for each picture."""
    return isinstance(value, dict) and all(
        isinstance(value.get(side), torch.Tensor) and value[side].dim() >= 2 and value[side].shape[:2] == (n, views)
        for side, n in expected.items())
