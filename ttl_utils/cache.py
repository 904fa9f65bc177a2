"""The cache of expensive results under `artifacts/`, keyed by what they depend on.

`cached` is the cache-or-compute call for values (embeddings, ranks, saliency maps);
training runs, which write checkpoints and resume, go through `train.state.cached_training`,
built on the same `cache_path`. Every file is written atomically with a header
(`storage.save_cache`); one that is damaged or misplaced is computed again with a warning.

>>> cache_path("ranks", data="abc").name
'c9d62ae183a63453.pt'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import artifacts_dir
from .digests import content_digest
from .storage import read_cache, save_cache

__all__ = ["cache_path", "cached"]


def cache_path(kind: str, **key: Any) -> Path:
    """Return `artifacts/<kind>/<digest of key>.pt`: one file per distinct key."""
    return artifacts_dir() / kind / f"{content_digest(sorted(key.items()))}.pt"


def cached(kind: str, compute: Callable[[], Any], **key: Any) -> Any:
    """Return `compute()`, stored under `artifacts/<kind>/` by `key` and loaded from there next time.

    The result must be saveable with `weights_only` loading: tensors, numbers, strings,
    lists and dicts of them.
    """
    path = cache_path(kind, **key)
    found = read_cache(path)
    if found is not None:
        return found
    result = compute()
    save_cache(result, path)
    return result
