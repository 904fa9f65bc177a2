"""Writing files atomically and the cache of expensive results under `artifacts/`.

`cached` is the cache-or-compute call for values (embeddings, ranks, saliency maps);
training runs, which write checkpoints and resume, go through `training_state.cached_training`,
built on the same `cache_path`.

A file is written to a temporary name beside its target, then renamed over it, so a
crash or a full disk never leaves half a checkpoint or half a split behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import artifacts_dir
from .runtime import content_digest

__all__ = ["atomic_write", "cache_path", "cached", "load_torch", "save_json", "save_torch"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`; return `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result gets a new file's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_json(content: Any, path: str | Path) -> Path:
    """Write `content` as indented JSON to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(content, indent=1) + "\n"))


def save_torch(obj: Any, path: str | Path) -> Path:
    """`torch.save` `obj` to `path`, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Return what `save_torch` wrote, loaded with `weights_only=True` (no code is run)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def cache_path(kind: str, **key: Any) -> Path:
    """Return `artifacts/<kind>/<digest of key>.pt`: one file per distinct key."""
    return artifacts_dir() / kind / f"{content_digest(sorted(key.items()))}.pt"


def cached(kind: str, compute: Callable[[], Any], **key: Any) -> Any:
    """Return `compute()`, stored under `artifacts/<kind>/` by `key` and loaded from there next time.

    The result must be saveable with `weights_only` loading: tensors, numbers, strings,
    lists and dicts of them.
    """
    path = cache_path(kind, **key)
    if path.is_file():
        return load_torch(path)
    result = compute()
    save_torch(result, path)
    return result
