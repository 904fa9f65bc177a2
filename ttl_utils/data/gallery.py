"""A gallery: any pictures to search, from a folder (searched recursively) or one side of a pair set.

>>> from ttl_utils.data.demo import make_demo_pairs
>>> Gallery.from_pairs(make_demo_pairs(3, 32), "both").labels[:2]
['left/demo00000', 'left/demo00001']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .folders import load_pairs
from .inputs import image_files
from .pairs import ImageSource, PairSet, open_rgb

__all__ = ["SIDES", "Gallery"]

SIDES = ("left", "right", "both")


@dataclass
class Gallery:
    """Pictures to search: `labels[i]` names `images[i]` (a path, or an array for the demo data)."""

    name: str
    labels: list[str]
    images: list[ImageSource]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int):
        """Return picture `i` as a PIL image."""
        return open_rgb(self.images[i])

    def subset(self, indices: Sequence[int]) -> Gallery:
        """Return the pictures at `indices`, in that order."""
        return Gallery(self.name, [self.labels[i] for i in indices], [self.images[i] for i in indices])

    def index_of(self, labels: Sequence[str]) -> list[int]:
        """Return the positions of the pictures labelled `labels` (the true partners of queries); raises
        `InputError` naming those not here."""
        where = {label: i for i, label in enumerate(self.labels)}
        missing = [label for label in labels if label not in where]
        if missing:
            raise InputError(f"Partners not in the gallery {self.name}: {', '.join(missing[:5])}.")
        return [where[label] for label in labels]

    @classmethod
    def from_pairs(cls, pairs: PairSet, side: str = "right") -> Gallery:
        """Return one side of a pair set (or both) as a gallery, labelled `side/ID`."""
        if side not in SIDES:
            raise InputError(f"--side {side}: choose one of {', '.join(SIDES)}.")
        sides = ("left", "right") if side == "both" else (side,)
        labels = [f"{s}/{pair_id}" for s in sides for pair_id in pairs.ids]
        images = [image for s in sides for image in getattr(pairs, s)]
        return cls(f"{pairs.name} ({side})", labels, images)

    @classmethod
    def from_folder(cls, root: str | Path, side: str = "right") -> Gallery:
        """Return the gallery at `root`: a dataset (`left/` and `right/`, or `pairs.csv`) by `side`,
        else every image under it."""
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"--gallery {root}: no such folder.")
        if ((root / "left").is_dir() and (root / "right").is_dir()) or (root / "pairs.csv").is_file():
            return cls.from_pairs(load_pairs(root), side)
        files = image_files([root], "gallery image")
        return cls(str(root), [str(p.relative_to(root)) for p in files], list(files))
