"""Images a user hands in: found, opened and checked, each problem said in one line naming the file.

Shared by every command that reads pictures it did not make (`find`'s queries and gallery,
the dataset checks of `data`): a file that is missing, empty, truncated, not an image, too
small or a decompression bomb raises `InputError` (a `ValueError`) whose message names it.

>>> why_unreadable("no/such/file.jpg")
'no such file'
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from ..errors import InputError, UnreadableImage
from .pairs import IMAGE_EXTENSIONS, admit_pixels, open_rgb

log = logging.getLogger(__name__)

__all__ = ["CHECK_SIDE", "MIN_SIDE", "header_pixels", "header_problem", "image_files", "link_loops", "read_image",
           "why_unreadable"]

MIN_SIDE = 32  # pixels: below this a picture holds too little for any backbone here
CHECK_SIDE = 512  # a JPEG being checked is decoded reduced to at least this: every byte is still read


def header_problem(path: str | Path, min_side: int = MIN_SIDE) -> str | None:
    """Return what the image header of `path` says is wrong (a few words), or None.

    Cheap (the header only, no decoding): a missing or empty file, one that is no image,
    too many pixels (`max_pixels()`) or smaller than `min_side` (by default `MIN_SIDE`: the one
    picture rule of `check`, `evaluate`, training and `find`). A file whose header is fine may still
    be truncated further on: `why_unreadable` decodes it.
    """
    path = Path(path)
    if not path.is_file():
        return "no such file" if not path.is_symlink() else "broken link (its target does not exist)"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    limit = admit_pixels()
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        return f"too many pixels (more than {limit:,}; TTL_MAX_PIXELS raises the limit)"
    except (OSError, SyntaxError, ValueError) as err:
        return "truncated" if "truncated" in str(err).lower() else "not a readable image"
    if width * height > limit:
        return f"too many pixels ({width} x {height}, more than {limit:,}; TTL_MAX_PIXELS raises the limit)"
    if min(width, height) < min_side:
        return f"too small ({width} x {height} px; at least {min_side} px a side)"
    return None


def header_pixels(path: str | Path) -> int:
    """Return how many pixels the image header of `path` declares (0 when it cannot be read)."""
    try:
        with Image.open(path) as image:
            return image.size[0] * image.size[1]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 0


def why_unreadable(path: str | Path, min_side: int = MIN_SIDE) -> str | None:
    """Return why the image at `path` cannot be used (a few words), or None when it can.

    The header is checked first (`header_problem`), then the whole file is decoded (a
    large JPEG reduced, as `open_rgb` does for a model, so checking needs little memory).
    """
    reason = header_problem(path, min_side)
    if reason:
        return reason
    try:
        open_rgb(path, min_side=CHECK_SIDE)
    except UnreadableImage as err:
        return err.reason
    except OSError:
        return "not a readable image"
    return None


def read_image(path: str | Path, min_side: int = MIN_SIDE) -> Image.Image:
    """Return the image at `path` as RGB, or raise `InputError` saying in one line what is wrong."""
    reason = why_unreadable(path, min_side)
    if reason:
        raise InputError(f"{path}: {reason}.")
    return open_rgb(path, min_side=1024)  # a query is shown in figures too: kept sharp


def link_loops(path: Path) -> bool:
    """Whether `path` is a link whose chain of links never reaches a file (ELOOP)."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def image_files(sources: Iterable[str | Path], what: str = "image") -> list[Path]:
    """Return the image files among `sources`: files as given, folders searched recursively (hidden
    entries skipped), sorted within a folder. Raises `InputError` for a missing source or no images."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            candidates = [p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                          and not any(part.startswith(".") for part in p.relative_to(source).parts)]
            loops = [p for p in candidates if p.is_symlink() and link_loops(p)]
            if loops:
                log.warning("Skipped %d link(s) that lead back to themselves in %s: %s", len(loops), source,
                            ", ".join(str(p.relative_to(source)) for p in loops[:5]) + (" ..." if len(loops) > 5 else ""))
            found = sorted(p for p in candidates if p.is_file())
            if not found:
                raise InputError(f"{source}: no {what} files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder.")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise InputError(f"{source}: no such file or folder.")
    return files
