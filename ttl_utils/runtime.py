"""Low-level helpers every layer may use: digests, the device, worker counts, memory.

Nothing here knows about pairs, models or training; everything above imports from here
instead of from each other (training does not import evaluation for a fingerprint).

>>> content_digest("demo", 1)
'e2646ea5fda75dee'
"""

from __future__ import annotations

import hashlib
import os

import torch

__all__ = ["choose_device", "content_digest", "cuda_available", "default_workers", "model_fingerprint",
           "physical_memory"]


def content_digest(*parts: object) -> str:
    """Return a short hex digest of `parts` (their reprs), for fingerprints and cache keys."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Return a digest of the model's weights and buffers: equal digests, equal models."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def cuda_available() -> bool:
    """Return whether a CUDA GPU can be used here."""
    return torch.cuda.is_available()


def choose_device(requested: str | None = None) -> str:
    """Return the device to run on: `requested`, else "cuda" when a GPU is available, else "cpu".

    Raises `ValueError` (one line, naming the flag) when CUDA is asked for and not available.
    """
    if requested is None:
        return "cuda" if cuda_available() else "cpu"
    if requested.startswith("cuda") and not cuda_available():
        raise ValueError(f"--device {requested} was asked for, but CUDA is not available here; use --device cpu.")
    return requested


def default_workers() -> int:
    """Return how many data-loading processes to use: one per spare core, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def physical_memory() -> int | None:
    """Return this machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
