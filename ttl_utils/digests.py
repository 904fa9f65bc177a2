"""Every digest the project computes: of values (cache keys), of a model's weights, of a file's bytes,
of a dataset, and of files remembered while their size and time are unchanged.

Every cache of the project is keyed by what the images *hold*, not by their names or
sizes: swapping two same-sized pictures changes the key. Reading every byte of a dataset
on every run would be slow, so a digest is remembered under `artifacts/file-digests/`
(one small JSON file a folder) with the file's size, times and inode, and read again only
when one of them changes (a copy that keeps the modification time still changes the inode).
Touching a file without changing it recomputes its digest, which comes out the same, so
nothing downstream is recomputed.

>>> content_digest("demo", 1)
'e2646ea5fda75dee'
>>> file_digests(["data/ttl/left/00018.jpg"])     # doctest: +SKIP
['3f1c0d9e2b7a64c1e0f5a9d8b2c47e10']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import artifacts_dir
from .progress import progress
from .runtime import io_threads
from .storage import save_json

__all__ = ["array_digest", "bytes_digest", "content_digest", "dataset_fingerprint", "file_digests", "model_fingerprint",
           "sha256_file", "source_digests"]

_CHUNK = 1 << 20
_INDEX_VERSION = 2


def content_digest(*parts: object) -> str:
    """Return a short hex digest of `parts` (their reprs), for fingerprints and cache keys."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """Return a digest of a torch module's weights and buffers: equal digests, equal models."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def sha256_file(path: str | Path) -> str:
    """Return the SHA-256 of the file's bytes as 64 hex digits, read in chunks (what `SHA256SUMS` records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bytes_digest(path: str | Path) -> str:
    """Return the SHA-256 of the file's bytes, its first 32 hex digits (a picture's content key)."""
    return sha256_file(path)[:32]


def dataset_fingerprint(layout: str, rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    """Return a dataset's fingerprint from its layout and one row a pair: (id, left name, left digest,
    right name, right digest)."""
    h = hashlib.sha256(f"{layout}\tcontent\n".encode())
    for row in rows:
        h.update(("\t".join(row) + "\n").encode())
    return h.hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    """Return a digest of an in-memory image: its shape, type and bytes."""
    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:32]


def _stamp(st: os.stat_result) -> list[int]:
    """What must be unchanged for a remembered digest to hold: size, modification time, and the
    inode's change time and number (which a copy that keeps the time, `cp -p`, still changes)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _index_path(folder: Path) -> Path:
    return artifacts_dir() / "file-digests" / f"{content_digest(str(folder))}.json"


def _read_index(folder: Path) -> dict[str, list]:
    try:
        saved = json.loads(_index_path(folder).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or saved.get("version") != _INDEX_VERSION or saved.get("folder") != str(folder):
        return {}
    files = saved.get("files")
    return files if isinstance(files, dict) else {}


def file_digests(paths: Sequence[str | Path], desc: str = "Reading images") -> list[str]:
    """Return the digest of each file's bytes, in order.

    A digest remembered with the same size, modification time, change time and inode is
    reused; the others are computed (in threads) and remembered. Raises `OSError` for a
    file that cannot be read.
    """
    paths = [Path(p).absolute() for p in paths]
    stats = [p.stat() for p in paths]
    folders: dict[Path, dict[str, list]] = {}
    for path in paths:
        if path.parent not in folders:
            folders[path.parent] = _read_index(path.parent)
    digests: list[str | None] = []
    for path, st in zip(paths, stats):
        known = folders[path.parent].get(path.name)
        fresh = isinstance(known, list) and len(known) == 5 and known[:4] == _stamp(st)
        digests.append(known[4] if fresh else None)
    todo = [i for i, d in enumerate(digests) if d is None]
    if todo:
        with ThreadPoolExecutor(io_threads()) as pool:  # hashing releases the GIL
            computed = list(progress(pool.map(bytes_digest, [paths[i] for i in todo]), total=len(todo),
                                     desc=desc, unit="file", leave=False, disable=len(todo) < 500))
        changed: set[Path] = set()
        for i, digest in zip(todo, computed):
            digests[i] = digest
            folders[paths[i].parent][paths[i].name] = [*_stamp(stats[i]), digest]
            changed.add(paths[i].parent)
        for folder in changed:
            try:
                save_json({"version": _INDEX_VERSION, "folder": str(folder), "files": folders[folder]},
                          _index_path(folder))
            except OSError:
                pass  # a read-only artifacts/ only means the digests are computed again next time
    return [str(d) for d in digests]


def source_digests(sources: Iterable[Path | np.ndarray], desc: str = "Reading images") -> list[str]:
    """Return the content digest of each image source: a file's bytes or an in-memory array's."""
    sources = list(sources)
    files = [i for i, s in enumerate(sources) if not isinstance(s, np.ndarray)]
    on_disk = dict(zip(files, file_digests([sources[i] for i in files], desc))) if files else {}
    return [on_disk[i] if i in on_disk else array_digest(s) for i, s in enumerate(sources)]
