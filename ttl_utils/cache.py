"""The cache of expensive results under `artifacts/`, keyed by what they depend on.

`cached` is the cache-or-compute call for values (embeddings, ranks, saliency maps);
training runs, which write checkpoints and resume, go through `train.state.cached_training`,
built on the same `cache_path`. Every file is written atomically with a header
(`storage.save_cache`); one that is damaged or misplaced is computed again with a warning.

>>> cache_path("ranks", data="abc").name
'c9d62ae183a63453.pt'
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import artifacts_dir
from .digests import content_digest
from .storage import read_cache, save_cache, stale_temporary

__all__ = ["cache_files", "cache_path", "cached", "prune"]


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


def cache_files(root: Path) -> dict[str, list[Path]]:
    """Return the files under `root` (`artifacts/`) by kind: its first-level folders; loose files under "other"."""
    kinds: dict[str, list[Path]] = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                kind = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else "other"
                kinds.setdefault(kind, []).append(path)
    return kinds


# Results to look at, not caches: `cache --prune` removes them only when `--kind` names them.
OUTPUT_PREFIXES = ("figures-", "notebooks-")
# Picture folders written whole and then read as they are: removed whole, never a picture at a time.
FOLDER_KINDS = frozenset({"pretrain-images", "pretrain-pool", "demo-pool"})


def _units(root: Path, kinds: dict[str, list[Path]]) -> list[tuple[float, int, str, Path, list[Path]]]:
    """Return what pruning removes, one entry a unit: (last used, bytes, kind, path, its files). A unit is
    a file, or a whole folder of a `FOLDER_KINDS` kind (last used: its newest file, or the folder itself,
    whose time is refreshed whenever a run reuses it)."""
    groups: dict[tuple[str, Path], list[tuple[Path, os.stat_result]]] = {}
    for kind, files in kinds.items():
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            parts = path.relative_to(root).parts
            unit = root / kind / parts[1] if kind in FOLDER_KINDS and len(parts) > 2 else path
            groups.setdefault((kind, unit), []).append((path, stat))
    units = []
    for (kind, unit), members in groups.items():
        used = max(stat.st_mtime for _, stat in members)
        if unit.is_dir():
            used = max(used, unit.stat().st_mtime)
        units.append((used, sum(stat.st_size for _, stat in members), kind, unit, [path for path, _ in members]))
    return units


def _interrupted(path: Path) -> bool:
    """Whether `path` is what an interrupted write left (a stale temporary file, a `.partial` folder a day old)."""
    if path.name.endswith(".tmp"):
        return stale_temporary(path)
    return path.name.endswith(".partial") and time.time() - path.stat().st_mtime > 24 * 3600


def prune(root: Path, kinds: dict[str, list[Path]], remove_kinds: tuple[str, ...] = (), older_than: float | None = None,
          max_bytes: int | None = None) -> list[tuple[Path, int]]:
    """Remove cache files under `root` (`kinds` from `cache_files`, updated in place); return each removed
    file or folder with its size.

    Removed: everything of `remove_kinds`; what interrupted writes left (`_interrupted`: never a
    write in progress); what was last used before the time `older_than` (seconds since the epoch; a
    read refreshes a file's time); then the least recently used until at most `max_bytes` remain.
    Each is computed again when needed. The notebooks' figures and copies (`OUTPUT_PREFIXES`) are
    removed only when `remove_kinds` names them, and never counted against `max_bytes`.
    """
    units = [unit for unit in _units(root, kinds) if unit[2] in remove_kinds or not unit[2].startswith(OUTPUT_PREFIXES)]
    doomed = {path for used, _, kind, path, _ in units if kind in remove_kinds or _interrupted(path)
              or (older_than is not None and used < older_than)}
    if max_bytes is not None:
        total = sum(size for _, size, _, path, _ in units if path not in doomed)
        for _, size, _, path, _ in sorted(units, key=lambda unit: unit[0]):
            if total <= max_bytes:
                break
            if path not in doomed:
                doomed.add(path)
                total -= size
    removed = []
    for _, size, kind, path, files in units:
        if path in doomed:
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError:
                continue
            kinds[kind] = [f for f in kinds[kind] if f not in files]
            removed.append((path, size))
            _remove_empty_folders(path.parent, root)
    return removed


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to `root` (not included) while they are empty."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
