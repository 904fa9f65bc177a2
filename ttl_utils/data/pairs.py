"""The set of image pairs every other module works on, and opening images as RGB.

A `PairSet` is an ordered list of pairs (`ids[i]`, `left[i]`, `right[i]`), where an
image is either a file path or an in-memory `uint8` array (the demo data). It carries
a fingerprint of its content so that splits and cached results can be keyed by it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..config import max_pixels
from ..digests import content_digest, source_digests
from ..errors import UnreadableImage

__all__ = ["IMAGE_EXTENSIONS", "ImageSource", "PairSet", "admit_pixels", "open_rgb",
           "to_rgb"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

# The project checks the pixel count from the header itself (`max_pixels`), before decoding;
# Pillow's own warning for large images would only repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ImageSource = Path | np.ndarray


def admit_pixels() -> int:
    """Return `max_pixels()`, after making sure Pillow's own bomb check admits as many (it refuses
    twice its `MAX_IMAGE_PIXELS` when opening a file, before the project's check can say why)."""
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit >= Image.MAX_IMAGE_PIXELS * 2:
        Image.MAX_IMAGE_PIXELS = limit
    return limit


def to_rgb(image: Image.Image) -> Image.Image:
    """Return `image` as an 8-bit RGB image, whatever its mode.

    Transparent images are composited on white (their hidden colour is often black);
    16- and 32-bit greyscale is scaled to 8 bits.
    """
    if image.mode == "RGB":
        return image.copy()
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or image.info.get("bit_depth", image.info.get("bits")) == 16:
            values = values / 257.0  # a 16-bit image: its whole range onto 8 bits, the same for every image
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # floats in [0, 1]
        return Image.fromarray(np.rint(np.clip(values, 0, 255)).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def open_rgb(source: ImageSource | str, min_side: int | None = None) -> Image.Image:
    """Return the image at `source` (a path or an `HxWx3` uint8 array) as RGB.

    The EXIF orientation is applied, so a phone photo stands the right way up. With
    `min_side` (what the model needs, e.g. 256 px), a large JPEG is decoded reduced by a
    power of two (Pillow's `draft`), keeping at least `min_side` pixels a side: much less
    memory and time for a phone photo. The pixel count is checked from the header against
    `max_pixels()` before decoding. Raises `FileNotFoundError` for a missing file and
    `UnreadableImage` (an `OSError` naming the file) for one that cannot be decoded.
    """
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
            raise ValueError(f"An in-memory image must be HxWx3 uint8, got {source.dtype} {source.shape}.")
        return Image.fromarray(source, "RGB")
    limit = admit_pixels()
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width * height > limit:
                reason = f"too many pixels ({width} x {height}, more than {limit:,}; TTL_MAX_PIXELS raises the limit)"
                raise UnreadableImage(f"{source}: {reason}.", reason)
            if min_side and image.format == "JPEG" and min(width, height) >= 2 * min_side:
                image.draft("RGB", (min_side, min_side))
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (FileNotFoundError, UnreadableImage):
        raise
    except Image.DecompressionBombError as err:
        reason = f"too many pixels (more than {limit:,}; TTL_MAX_PIXELS raises the limit)"
        raise UnreadableImage(f"{source}: {reason}.", reason) from err
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as err:
        what = "truncated" if "truncated" in str(err).lower() else "not a readable image"
        raise UnreadableImage(f"{source}: {what}.", what) from err


@dataclass(frozen=True, eq=False)
class PairSet:
    """Return-value type of the loaders: pairs of images in a stable order.

    `name` and `layout` say where the pairs come from (`official`, `pairs-csv`, `demo`);
    `no_faces` is the official metadata's mask of pairs without faces, where known.
    `fingerprint` changes whenever the names or the content of the images change; `digests`
    holds one content digest a pair (both images' bytes), computed when first asked for.
    """

    name: str
    layout: str
    ids: tuple[str, ...]
    left: Sequence[ImageSource]
    right: Sequence[ImageSource]
    fingerprint: str
    root: Path | None = None
    no_faces: np.ndarray | None = field(default=None, repr=False)
    digests: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.left) != n or len(self.right) != n:
            raise ValueError(f"ids, left and right differ in length: {n}, {len(self.left)}, {len(self.right)}")
        if len(set(self.ids)) != n:
            raise ValueError("Pair ids must be unique.")
        if self.no_faces is not None and len(self.no_faces) != n:
            raise ValueError(f"no_faces has {len(self.no_faces)} entries for {n} pairs.")
        if self.digests is not None and len(self.digests) != n:
            raise ValueError(f"digests has {len(self.digests)} entries for {n} pairs.")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"PairSet({self.describe()})"

    def describe(self, where: bool = True) -> str:
        """Return a one-line description: name, layout, number of pairs, and (with `where`) the folder."""
        where = f" at {self.root}" if where and self.root is not None else ""
        faces = f", {int(self.no_faces.sum())} without faces" if self.no_faces is not None else ""
        return f"{self.name} ({self.layout} layout, {len(self)} pairs{faces}){where}"

    def left_image(self, i: int) -> Image.Image:
        """Return the left image of pair `i` as RGB."""
        return open_rgb(self.left[i])

    def right_image(self, i: int) -> Image.Image:
        """Return the right image of pair `i` as RGB."""
        return open_rgb(self.right[i])

    def pair_digests(self) -> tuple[str, ...]:
        """Return one digest a pair, of both images' content: equal digests, the same two pictures."""
        if self.digests is None:
            left, right = source_digests(self.left), source_digests(self.right)
            object.__setattr__(self, "digests", tuple(content_digest(a, b) for a, b in zip(left, right)))
        return self.digests

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """Return the positions of `ids` in this set; unknown ids raise `KeyError`."""
        where = {pair_id: i for i, pair_id in enumerate(self.ids)}
        missing = [pair_id for pair_id in ids if pair_id not in where]
        if missing:
            raise KeyError(f"{len(missing)} ids are not in {self.name}: {missing[:5]}")
        return np.array([where[pair_id] for pair_id in ids], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> PairSet:
        """Return the pairs at `indices`, in that order, with their own fingerprint."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        ids = tuple(self.ids[i] for i in idx)
        return PairSet(
            name=name or self.name,
            layout=self.layout,
            ids=ids,
            left=[self.left[i] for i in idx],
            right=[self.right[i] for i in idx],
            fingerprint=content_digest(self.fingerprint, ids),
            root=self.root,
            no_faces=None if self.no_faces is None else self.no_faces[idx],
            digests=None if self.digests is None else tuple(self.digests[i] for i in idx),
        )

    def to_frame(self):
        """Return a `pandas.DataFrame` with one row a pair: id, left, right (and no_faces)."""
        import pandas as pd

        def label(source: ImageSource) -> str:
            return source.name if isinstance(source, Path) else "<in memory>"

        frame = pd.DataFrame({
            "id": list(self.ids),
            "left": [label(s) for s in self.left],
            "right": [label(s) for s in self.right],
        })
        if self.no_faces is not None:
            frame["no_faces"] = self.no_faces.astype(bool)
        return frame
