"""Batches of decoded images, prepared in threads while the inference engine runs.

On CPU the engine (ONNX Runtime) and image decoding share the cores. Worker processes
(PyTorch's `DataLoader`) pay for a second Python, for pickling every batch and for
spinning up; decoding (Pillow) and the engine both release the GIL, so threads in this
process keep the engine fed for less: on 2 cores, 168 images/s from JPEG files instead of
148 (`benchmarks/embedding_throughput.py`). On a GPU the `DataLoader`'s processes stay.

>>> for batch in threaded_batches(dataset, 32, threads=3):   # doctest: +SKIP
...     run(batch)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ..runtime import decode_threads, loader_workers

__all__ = ["batches", "threaded_batches"]


def threaded_batches(dataset: Dataset, batch_size: int, threads: int, ahead: int | None = None) -> Iterator:
    """Yield the batches of `dataset` in order (collated like a `DataLoader`'s), each made in one of
    `threads` threads, up to `ahead` batches (default: one more than the threads) before they are
    needed; `threads=0` makes them here."""
    starts = range(0, len(dataset), batch_size)
    ahead = ahead or threads + 1

    def make(start: int):
        return default_collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])

    if threads == 0:
        for start in starts:
            yield make(start)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        pending = deque(pool.submit(make, start) for start in starts[:ahead])
        following = iter(starts[ahead:])
        while pending:
            batch = pending.popleft().result()
            start = next(following, None)
            if start is not None:
                pending.append(pool.submit(make, start))
            yield batch


def batches(dataset: Dataset, batch_size: int, device: torch.device, workers: int | None = None):
    """Return an iterable of `dataset`'s batches for a forward pass on `device`: threads on CPU
    (`threaded_batches`, `runtime.decode_threads`), a `DataLoader` with processes on a GPU
    (`runtime.loader_workers`); `workers` overrides either count."""
    if device.type == "cpu":
        return threaded_batches(dataset, batch_size, decode_threads(workers))
    return DataLoader(dataset, batch_size=batch_size, num_workers=loader_workers(workers),
                      pin_memory=device.type == "cuda", persistent_workers=False)
