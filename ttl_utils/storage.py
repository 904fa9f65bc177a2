"""Writing files atomically, locks on outputs, and tensors saved and loaded safely.

A file is written to a temporary name beside its target, then renamed over it, so a
crash or a full disk never leaves half a checkpoint or half a split behind.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import BusyError, DiskFullError

__all__ = ["CACHE_FORMAT", "atomic_write", "cannot_write", "exclusive", "folder_lock", "load_torch", "read_cache",
           "remove_stale_temporaries", "save_cache", "save_json", "save_torch", "unreadable_torch"]

log = logging.getLogger(__name__)

CACHE_FORMAT = "ttl_utils.cache/1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Return whether a process `pid` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, run by someone else
    return True


def _host() -> str:
    """Return this machine's short name, fit for a file name."""
    return "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum() or c == "-") or "host"


_STALE_SECONDS = 24 * 3600  # a temporary file that names no process is left alone for a day


def stale_temporary(tmp: Path) -> bool:
    """Whether `tmp` was left by an interrupted write: a temporary file `.<name>.<host>-<pid>.<random>.tmp`
    whose process (on this host) no longer runs; one in another form (or another host's), a day after it
    was last written."""
    parts = tmp.name[1:].removesuffix(".tmp").rsplit(".", 2)
    name, _, pid = (parts[-2] if len(parts) == 3 else "").rpartition("-")
    if pid.isdigit() and name == _host():
        return not _alive(int(pid))
    try:
        return time.time() - tmp.stat().st_mtime > _STALE_SECONDS
    except OSError:
        return False


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files that interrupted writes of `path` left beside it (`stale_temporary`);
    return them."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if stale_temporary(tmp):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def cannot_write(path: str | Path) -> str | None:
    """Return why nothing can be written at `path` (a file, or a folder to be filled), or None when it can.

    Tried before a run's work, so that an output place that will fail says so at once: the nearest
    folder that exists on the way to `path` must take a new file (one is made and removed again; no
    folder is created). Permissions alone cannot tell (root may write anywhere the disk allows).
    """
    path = Path(path)
    place = path if path.is_dir() else path.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        return f"{place} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=place, prefix=".ttl-probe.", suffix=".tmp")
    except OSError as err:
        return f"nothing can be written in {place} ({err.strerror or err}); choose another place"
    os.close(fd)
    os.unlink(probe)
    return None


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`; return `path`.

    Temporary files that an interrupted earlier write left (its process is gone) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp")
    except OSError as err:
        if err.errno in _FULL:
            raise DiskFullError(f"{path}: the disk is full (no space left on device); nothing was written. Free "
                                "some space and run again.") from None
        raise OSError(f"{path}: cannot be written ({err.strerror or err}); nothing was written") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result gets a new file's usual mode
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(err, path.parent):
            kept = "what it held before is kept" if path.exists() else "no partial file is left"
            raise DiskFullError(f"{path}: the disk is full (no space left on device); {kept}. Free some space "
                                "and run again.") from None
        raise
    return path


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write failed for lack of space: the OS says so, or PyTorch's writer stopped short
    (it reports a short write as a RuntimeError) on a disk with almost nothing left."""
    if isinstance(err, OSError) and err.errno in _FULL:
        return True
    if isinstance(err, RuntimeError) and any(s in str(err) for s in ("unexpected pos", "file write failed")):
        try:
            return shutil.disk_usage(folder).free < 64 * 2**20
        except OSError:
            return False
    return False


@contextmanager
def exclusive(path: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Hold `<path>.lock` while a run writes `path`: a second run on the same path is refused with one
    line (`BusyError`). The lock is the operating system's (`flock`): it ends with its process, so a
    killed run leaves nothing to take over, and two runs starting at once cannot both hold it."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{_host()} {os.getpid()}"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as err:
            if err.errno in _FULL:
                raise DiskFullError(f"{lock}: the disk is full (no space left on device); nothing was written. "
                                    "Free some space and run again.") from None
            raise OSError(f"{flag} {path}: cannot be written ({err.strerror or err}); nothing was written") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", ""
            who = f"process {pid} on {host}" if pid else "another process"
            raise BusyError(f"{flag} {path}: another run ({who}) is writing it; wait for it to finish or choose "
                            f"another {flag}.") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except OSError:
            same = False
        if same:  # not a lock file another run removed while this one opened it
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, me.encode())
    except OSError as err:  # the name only tells a refused run who holds the lock: the lock holds without it
        if err.errno not in _FULL:
            os.close(fd)
            raise
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)  # removed while still held: a run that opened it meanwhile tries again
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the operating system's lock (`flock`) on `folder` itself while a file in it is read, changed
    and written again: a second process waits for the first, so two notebooks recording at once both
    keep their entry. Nothing is left in the folder (the lock is on the folder), and it ends with its
    process."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def save_json(content: Any, path: str | Path) -> Path:
    """Write `content` as indented JSON to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(content, indent=1) + "\n"))


def save_torch(obj: Any, path: str | Path) -> Path:
    """`torch.save` `obj` to `path`, atomically."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, map_location: Any = "cpu") -> Any:
    """Return what `save_torch` wrote, loaded with `weights_only=True` (no code is run)."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)



def unreadable_torch(path: str | Path) -> str | None:
    """Return why `path` cannot be loaded as `save_torch` wrote it (zero bytes, truncated, not PyTorch's,
    refused by `weights_only`), or None when it loads."""
    try:
        if Path(path).stat().st_size == 0:
            return "zero bytes"
        load_torch(path)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file; each means "unreadable"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"unreadable: {type(err).__name__}: {first[:100]}"
    return None


def save_cache(value: Any, path: str | Path) -> Path:
    """Write a cache file: `value` with a header naming the format and the key it was stored under
    (the file's name), atomically, so that `read_cache` tells a damaged or misplaced file from a good one."""
    path = Path(path)
    return save_torch({"format": CACHE_FORMAT, "key": path.stem, "value": value}, path)


def read_cache(path: str | Path, check: Callable[[Any], bool] | None = None) -> Any | None:
    """Return the value `save_cache` wrote at `path`, or None when there is none or it cannot be trusted.

    A file that is truncated, empty, not PyTorch's, without the header, stored under another key
    (another cache's file copied over it), or whose value fails `check` (e.g. the wrong number of
    rows) is treated as missing: one warning names it, and the caller computes the value again and
    rewrites the file."""
    path = Path(path)
    if not path.is_file():
        return None
    why = None
    try:
        content = load_torch(path) if path.stat().st_size else None
    except Exception as err:  # noqa: BLE001 - see unreadable_torch
        content, why = None, f"unreadable: {type(err).__name__}"
    if why is None:
        if content is None:
            why = "zero bytes"
        elif not isinstance(content, dict) or content.get("format") != CACHE_FORMAT:
            why = "no cache header (written by an older ttl_utils, or not a cache file)"
        elif content.get("key") != path.stem:
            why = f"it holds the cache stored under {str(content.get('key'))[:16]!r}, not this key"
        elif check is not None and not check(content["value"]):
            why = "its content does not match what it is stored for"
    if why is not None:
        log.warning("Cache file %s is damaged (%s): computing it again.", path, why)
        return None
    try:
        os.utime(path)  # its time says when it was last used (`python -m ttl_utils cache --prune`)
    except OSError:
        pass
    return content["value"]
