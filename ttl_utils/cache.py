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


def prune(kinds: dict[str, list[Path]], remove_kinds: tuple[str, ...] = (), older_than: float | None = None,
          max_bytes: int | None = None) -> list[tuple[Path, int]]:
    """Remove cache files from `kinds` (`cache_files`, updated in place); return each removed file with its size.

    Removed: every file of `remove_kinds`; temporary files interrupted writes left; files last used
    before the time `older_than` (seconds since the epoch; a read refreshes a file's time); then the
    least recently used until at most `max_bytes` remain. Each is computed again when needed.
    """
    entries = []
    for kind, files in kinds.items():
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((stat.st_mtime, stat.st_size, kind, path))
    doomed = {path for used, _, kind, path in entries if kind in remove_kinds or path.name.endswith(".tmp")
              or (older_than is not None and used < older_than)}
    if max_bytes is not None:
        total = sum(size for _, size, _, path in entries if path not in doomed)
        for _, size, _, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= max_bytes:
                break
            if path not in doomed:
                doomed.add(path)
                total -= size
    removed = []
    for _, size, kind, path in entries:
        if path in doomed:
            try:
                path.unlink()
            except OSError:
                continue
            kinds[kind].remove(path)
            removed.append((path, size))
    return removed
