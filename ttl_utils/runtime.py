"""Where and how wide a run goes: the device, and the one policy for worker counts and batch sizes.

Nothing here knows about pairs, models or training. torch is imported only by the
functions that need it, so that choosing a profile or reading a policy stays light.

>>> decode_workers(cores=16, memory=8 * 2**30, largest_pixels=128_000_000)
2
>>> from ttl_utils.config import get_profile
>>> inference_batch(get_profile("cpu"), "cpu")
32
"""

from __future__ import annotations

import os

from .config import Profile, max_pixels

__all__ = ["choose_device", "cuda_available", "decode_threads", "decode_workers", "inference_batch", "io_threads",
           "loader_workers", "physical_memory", "training_batch"]

_BYTES_A_PIXEL = 8  # decoding a picture holds about this many bytes a pixel at once (RGB, conversions)


def cuda_available() -> bool:
    """Return whether a CUDA GPU can be used here."""
    import torch

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


def _cores() -> int:
    return os.cpu_count() or 1


def loader_workers(requested: int | None = None, default: int | None = None) -> int:
    """Return how many data-loading processes to use: `requested`, else `default` (a recipe's),
    else one per spare core, at most 4."""
    if requested is not None:
        return requested
    if default is not None:
        return default
    return max(0, min(4, _cores() - 1))


def decode_threads(requested: int | None = None) -> int:
    """Return how many threads decode images for the inference engine: `requested` when given (0: in
    the calling thread), else one more than the cores (decoding waits on reads; at most 8)."""
    if requested is not None:
        return max(0, requested)
    return min(8, _cores() + 1)


def io_threads() -> int:
    """Return how many threads read files at once (headers, digests): two a core, at most 16."""
    return min(16, 2 * _cores())


def decode_workers(cores: int | None = None, memory: int | None = None, largest_pixels: int | None = None) -> int:
    """Return how many threads may decode whole images at once: two a core (at most 16), and no more
    than a quarter of the memory allows for the largest picture (`largest_pixels`, else the limit)."""
    cores = cores or _cores()
    memory = memory or physical_memory() or 4 * 2**30
    largest = max(1, largest_pixels or max_pixels())
    by_memory = (memory // 4) // (largest * _BYTES_A_PIXEL)
    return int(max(1, min(16, 2 * cores, by_memory)))


def inference_batch(profile: Profile, device: str, requested: int | None = None) -> int:
    """Return the batch of a forward pass without gradients: `requested`, else the profile's on a GPU,
    else 32 (on a CPU larger batches only cost memory)."""
    return requested or (profile.batch_size if device.startswith("cuda") else 32)


def training_batch(profile: Profile, device: str) -> int:
    """Return the pairs a fine-tuning batch holds: the profile's on a GPU, at most 64 on a CPU."""
    return profile.batch_size if device.startswith("cuda") else min(profile.batch_size, 64)


def physical_memory() -> int | None:
    """Return this machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None

