"""Writing files atomically, locks on outputs, and tensors saved and loaded safely.

A file is written to a temporary name beside its target, then renamed over it, so a
crash or a full disk never leaves half a checkpoint or half a split behind.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import BusyError

__all__ = ["atomic_write", "exclusive", "load_torch", "remove_stale_temporaries", "save_json",
           "save_torch"]


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


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files that interrupted writes of `path` left beside it; return them.

    A temporary file is named `.<name>.<host>-<pid>.<random>.tmp`: it is stale when its
    process (on this host) no longer runs. One in another form is removed after a day.
    """
    path = Path(path)
    removed = []
    host = _host()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        owner = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        name, _, pid = owner.rpartition("-")
        try:
            if pid.isdigit() and name == host:
                stale = not _alive(int(pid))
            else:
                stale = not pid.isdigit() and time.time() - tmp.stat().st_mtime > _STALE_SECONDS
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`; return `path`.

    Temporary files that an interrupted earlier write left (its process is gone) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host()}-{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result gets a new file's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def exclusive(path: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Hold `<path>.lock` while a run writes `path`: a second run on the same path is refused
    with one line (`BusyError`). A lock whose process is gone (killed) is taken over."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{_host()} {os.getpid()}"
    for attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", ""
            if attempt < 2 and host == _host() and pid.isdigit() and not _alive(int(pid)):
                lock.unlink(missing_ok=True)  # left by a run that was killed
                continue
            who = f"process {pid} on {host}" if pid else "another process"
            raise BusyError(f"{flag} {path}: another run ({who}) is writing it; wait for it to finish or choose "
                            f"another {flag} (if no run is left, remove {lock}).") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)


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

