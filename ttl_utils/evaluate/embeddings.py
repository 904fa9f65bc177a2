"""Embeddings: of pair sets, of a gallery, of query pictures and of pictures with a cue taken away,
and their cache keys. The one place a model runs over pictures without gradients.

Pictures are decoded in threads beside the inference engine on CPU (`data.loading`); an
`Embedder`'s backbone runs through the engine (`models.engine`: ONNX Runtime on CPU), its
pooling and head in torch. Pair-set embeddings are kept under `artifacts/embeddings/`, a
gallery's under `artifacts/gallery/` (one row per distinct picture content), each keyed by the
model's weights, its layers and head, the preprocessing and the pictures' content.

>>> left, right = embed_pairs(build_embedder(), Preprocessing.for_size(224), pairs)   # doctest: +SKIP
>>> kept, vectors = gallery_embeddings(embedder, preprocessing, Gallery.from_folder("photos/"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..cache import cache_path
from ..data.gallery import Gallery
from ..data.inputs import why_unreadable
from ..data.loading import batches
from ..data.pairs import ImageSource, PairSet, open_rgb
from ..digests import model_fingerprint, source_digests
from ..errors import InputError
from ..models.embedder import Embedder
from ..models.engine import frozen_embedder
from ..models.preprocessing import CUES, CuePreprocessing, Preprocessing
from ..progress import progress
from ..storage import read_cache, save_cache

__all__ = ["cue_embeddings", "embed", "embed_pairs", "embed_queries", "embedding_files", "flip_averaged",
           "gallery_embeddings"]

log = logging.getLogger(__name__)


class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], transform: Callable):
        self.sources, self.transform = sources, transform

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        if isinstance(self.transform, Preprocessing):  # uint8 pixels; `embed` normalises whole batches
            # a large JPEG is decoded reduced to what the resize keeps
            return self.transform.pixels(open_rgb(self.sources[i], min_side=self.transform.resize))
        return self.transform(open_rgb(self.sources[i]))


def embed(model: nn.Module, images: Sequence[ImageSource], transform: Callable, batch_size: int = 32,
          device: str | torch.device = "cpu", num_workers: int | None = None, desc: str = "Embedding") -> torch.Tensor:
    """Return `model`'s embeddings of `images` (paths or arrays) as an `N x D` float32 CPU tensor.

    Images are opened and transformed while the model runs: on CPU in threads of this
    process (`data.loading.threaded_batches`; `num_workers` of them, 0: one after the other), on a
    GPU in `num_workers` worker processes. No autograd graph is built. An `Embedder`'s backbone runs
    through the inference engine (`models.engine.frozen_maps`: ONNX Runtime on CPU), its pooling and
    head in torch; any other model runs in torch, in channels-last memory format. With a
    `Preprocessing` whose `flip` is set, each embedding is the mean of the picture's and its mirror
    image's unit embeddings, made unit length again (twice the forward passes).
    """
    device = torch.device(device)
    loader = batches(_Images(images, transform), batch_size, device, num_workers)
    with torch.no_grad():  # not inference mode: the moved weights must stay usable for training and attribution
        model = model.eval().to(device, memory_format=torch.channels_last)
    finish = transform.normalise if isinstance(transform, Preprocessing) else (lambda batch: batch)
    if isinstance(model, Embedder):
        embedding = frozen_embedder(model, device)

        def forward(batch: torch.Tensor) -> torch.Tensor:
            return embedding(finish(batch))
    else:
        def forward(batch: torch.Tensor) -> torch.Tensor:
            return model(finish(batch).to(device, non_blocking=True, memory_format=torch.channels_last))
    if getattr(transform, "flip", False):
        forward = flip_averaged(forward)
    with torch.inference_mode():
        out = [forward(batch).float().cpu() for batch in progress(loader, desc=desc, unit="batch", leave=False,
                                                                   total=-(-len(images) // batch_size))]
    return torch.cat(out) if out else torch.empty(0, 0)


def flip_averaged(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return `forward` made to embed each picture of a batch (`N x 3 x H x W`) as the mean of its own and
    its mirror image's unit embeddings, made unit length again.

    >>> import torch
    >>> [round(v, 4) for v in flip_averaged(lambda x: x.mean(dim=(1, 2)))(torch.tensor([[[[1.0, 3.0]]]]))[0].tolist()]
    [0.7071, 0.7071]
    """
    def both(batch: torch.Tensor) -> torch.Tensor:
        mean = F.normalize(forward(batch).float(), dim=1) + F.normalize(forward(batch.flip(-1)).float(), dim=1)
        return F.normalize(mean, dim=1)

    return both


def _embedding_key(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet) -> dict:
    return {"model": model_fingerprint(embedder), "describe": embedder.describe(),
            "preprocessing": preprocessing.to_dict(), "data": pairs.fingerprint}


def embedding_files(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet) -> tuple[tuple[int, int] | None, ...]:
    """Return the identity (device, inode) of each side's embedding cache file, None where there is none.

    `embed_pairs` reads a sound file in place and replaces (a new file) one it computes again, a
    damaged one included: the identities before and after it tell whether it made a forward pass."""
    key = _embedding_key(embedder, preprocessing, pairs)
    identities = []
    for side in ("left", "right"):
        try:
            found = cache_path("embeddings", side=side, **key).stat()
            identities.append((found.st_dev, found.st_ino))
        except OSError:
            identities.append(None)
    return tuple(identities)


def _holds(found: Any, ids) -> bool:
    """Whether a cached embedding file holds one row for each of `ids`, in order."""
    return (isinstance(found, dict) and list(found.get("ids", ())) == list(ids)
            and isinstance(found.get("embeddings"), torch.Tensor) and len(found["embeddings"]) == len(ids))


def _gallery_store(found: Any) -> bool:
    """Whether a cached gallery file holds one embedding row for each of its digests."""
    return (isinstance(found, dict) and isinstance(found.get("digests"), list)
            and isinstance(found.get("embeddings"), torch.Tensor)
            and (len(found["embeddings"]) == len(found["digests"]) or not found["digests"]))


def embed_pairs(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                device: str = "cpu", num_workers: int | None = None, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the embeddings of the left and of the right images of `pairs`.

    With `cache`, they are stored under `artifacts/embeddings/`, keyed by the model's
    weights, its layers and head, the preprocessing and the dataset's fingerprint, and
    read from there the next time.
    """
    key = _embedding_key(embedder, preprocessing, pairs)
    out = []
    for side, images in (("left", pairs.left), ("right", pairs.right)):
        path = cache_path("embeddings", side=side, **key)
        saved = read_cache(path, lambda found: _holds(found, pairs.ids)) if cache else None
        if saved is not None:
            log.info("Loaded cached %s embeddings from %s", side, path)
            out.append(saved["embeddings"])
            continue
        vectors = embed(embedder, images, preprocessing, batch_size=batch_size, device=device,
                        num_workers=num_workers, desc=f"Embedding {side} images")
        if cache:
            save_cache({"ids": list(pairs.ids), "embeddings": vectors, "key": repr(key)}, path)
        out.append(vectors)
    return out[0], out[1]


def cue_embeddings(embedder, preprocessing: Preprocessing, pairs: PairSet, cues: Sequence[str] = tuple(CUES),
                   device: str = "cpu") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return, for each cue, the unit embeddings of `pairs`' left and right images with that cue
    taken away from both (`original`: unchanged; `models.preprocessing.CUES`)."""
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


def _digests(images: list[ImageSource]) -> list[str]:
    """Return a digest of each picture's content (remembered while a file's size and time are
    unchanged); "" for a file that cannot be read at all (gone, no permission): it is then
    reported as unreadable."""
    try:
        return source_digests(images, desc="Reading the gallery")
    except OSError:
        found = []
        for image in images:
            try:
                found += source_digests([image])
            except OSError:
                found.append("")
        return found


def _unreadable(gallery: Gallery, indices: list[int], digests: list[str]) -> dict[int, str]:
    reasons = {}
    for i in indices:
        if isinstance(gallery.images[i], np.ndarray):
            continue
        reason = why_unreadable(gallery.images[i]) if digests[i] else "cannot be read"
        if reason:
            reasons[i] = reason
    return reasons


GALLERY_CHUNK = 256  # gallery pictures embedded, then saved, at a time


def _embed_chunk(embedder: Embedder, preprocessing: Preprocessing, gallery: Gallery, indices: list[int],
                 digests: list[str], device, batch_size: int, num_workers: int | None, desc: str
                 ) -> tuple[torch.Tensor, dict[int, str]]:
    """Return the embeddings of the gallery pictures `indices`, and those that could not be read (gone or
    changed since they were checked: `{index: why}`), which are left out."""
    images = [gallery.images[i] for i in indices]
    try:
        return embed(embedder, images, preprocessing, batch_size=batch_size, device=device,
                     num_workers=num_workers, desc=desc), {}
    except OSError:  # a file vanished or turned unreadable while the gallery was embedded
        gone = {i: why for i in indices if (why := _unreadable(gallery, [i], digests).get(i))}
        kept = [i for i in indices if i not in gone]
        if not gone or not kept:
            if not kept:
                return torch.empty(0, 0), gone
            raise
        vectors, more = _embed_chunk(embedder, preprocessing, gallery, kept, digests, device, batch_size,
                                     num_workers, desc)
        return vectors, {**gone, **more}


def gallery_embeddings(embedder: Embedder, preprocessing: Preprocessing, gallery: Gallery, device: str = "cpu",
                       batch_size: int = 32, num_workers: int | None = None, cache: bool = True
                       ) -> tuple[Gallery, torch.Tensor]:
    """Return `(readable gallery, its unit-length embeddings)`, embedding only pictures whose content is
    not in this model's cache yet (with `cache=False` every picture, and the cache is neither read
    nor written); unreadable files are skipped and listed in one warning."""
    path = cache_path("gallery", model=model_fingerprint(embedder), describe=embedder.describe(),
                      preprocessing=preprocessing.to_dict())
    empty = {"digests": [], "embeddings": torch.empty(0, 0)}
    store = (read_cache(path, _gallery_store) if cache else None) or empty
    known = {d: i for i, d in enumerate(store["digests"])}
    digests = _digests(list(gallery.images))
    todo = [i for i, d in enumerate(digests) if d not in known]
    bad = _unreadable(gallery, todo, digests)
    todo = [i for i in todo if i not in bad and digests[i] not in known]
    fresh = list(dict.fromkeys(digests[i] for i in todo))  # a picture present twice is embedded once
    first: dict[str, int] = {}
    for i in todo:
        first.setdefault(digests[i], i)
    chunks = [fresh[start:start + GALLERY_CHUNK] for start in range(0, len(fresh), GALLERY_CHUNK)]
    for number, chunk in enumerate(chunks):  # each chunk is saved as it finishes: a kill costs one chunk
        vectors, gone = _embed_chunk(embedder, preprocessing, gallery, [first[d] for d in chunk], digests, device,
                                     batch_size, num_workers, f"Embedding the gallery ({number + 1}/{len(chunks)})")
        bad.update(gone)
        chunk = [d for d in chunk if first[d] not in gone]
        if chunk:
            old = store["embeddings"]
            store = {"digests": store["digests"] + chunk,
                     "embeddings": torch.cat([old, vectors]) if len(old) else vectors}
            if cache:
                save_cache(store, path)
    known = {d: i for i, d in enumerate(store["digests"])}
    if bad:
        listed = "; ".join(f"{gallery.labels[i]} ({why})" for i, why in list(bad.items())[:10])
        log.warning("Skipped %d unreadable gallery file(s): %s%s", len(bad), listed, " ..." if len(bad) > 10 else "")
    log.info("Gallery %s: %d pictures, %d embedded now, %d from the cache (%s)", gallery.name,
             len(gallery) - len(bad), len(fresh), len(gallery) - len(bad) - len(fresh), path if cache else "not kept")
    kept = [i for i in range(len(gallery)) if i not in bad and digests[i] in known]
    if not kept:
        raise InputError(f"--gallery {gallery.name}: no readable pictures.")
    rows = torch.as_tensor([known[digests[i]] for i in kept], dtype=torch.long)
    return gallery.subset(kept), F.normalize(store["embeddings"][rows].float(), dim=1)


@torch.no_grad()
def embed_queries(embedder: Embedder, preprocessing: Preprocessing, images: Sequence, batch_size: int = 32
                  ) -> torch.Tensor:
    """Return the unit-length embeddings of query pictures (PIL images), `batch_size` at a time, on
    the device the embedder is on."""
    embedder = embedder.eval()
    forward = frozen_embedder(embedder, next(embedder.parameters()).device)  # the inference engine on CPU
    if preprocessing.flip:
        forward = flip_averaged(forward)
    out = [forward(torch.stack([preprocessing(image) for image in images[start:start + batch_size]]))
           for start in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out).float().cpu(), dim=1)
