"""Images a user hands in: found, opened and checked, each problem said in one line naming the file.

Shared by every command that reads pictures it did not make (`find`'s queries and gallery,
the dataset checks of `data`): a file that is missing, empty, truncated, not an image, too
small or a decompression bomb raises `InputError` (a `ValueError`) whose message names it.

>>> why_unreadable("no/such/file.jpg")
'no such file'
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from .pairs import IMAGE_EXTENSIONS, open_rgb

__all__ = ["MIN_SIDE", "InputError", "image_files", "read_image", "why_unreadable"]

MIN_SIDE = 32  # pixels: below this a picture holds too little for any backbone here


class InputError(ValueError):
    """An input file or folder that cannot be used; the message names it."""


def why_unreadable(path: str | Path, min_side: int = 0) -> str | None:
    """Return why the image at `path` cannot be used (a few words), or None when it can."""
    path = Path(path)
    if not path.is_file():
        return "no such file"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        image = open_rgb(path)
    except Image.DecompressionBombError:
        return "too many pixels (decompression bomb)"
    except (OSError, SyntaxError, ValueError) as err:
        return "truncated" if "truncated" in str(err).lower() else "not a readable image"
    if min(image.size) < min_side:
        return f"too small ({image.size[0]} x {image.size[1]} px; at least {min_side} px a side)"
    return None


def read_image(path: str | Path, min_side: int = MIN_SIDE) -> Image.Image:
    """Return the image at `path` as RGB, or raise `InputError` saying in one line what is wrong."""
    reason = why_unreadable(path, min_side)
    if reason:
        raise InputError(f"{path}: {reason}.")
    return open_rgb(path)


def image_files(sources: Iterable[str | Path], what: str = "image") -> list[Path]:
    """Return the image files among `sources`: files as given, folders searched recursively (hidden
    entries skipped), sorted within a folder. Raises `InputError` for a missing source or no images."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(source).parts))
            if not found:
                raise InputError(f"{source}: no {what} files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder.")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise InputError(f"{source}: no such file or folder.")
    return files
