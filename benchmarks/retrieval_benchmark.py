"""Speed of retrieval: exact ranks at TTL scale and beyond, and embedding throughput.

    python benchmarks/retrieval_benchmark.py [--data ../shared/ttl-dev] [--images 256]

Goals on 2 cores: `rank_of_match` 6016 x 6016 under 1 s and 20 000 x 20 000 under 10 s
(1280-d, EfficientNet-Lite0's width); `embed` at 224 px within 20% of the bare model's
forward pass on pre-loaded tensors (data loading hidden behind the model).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import load_pairs
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


def time_ranks(n: int, dim: int = 1280) -> None:
    g = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    rank_of_match(query[:64], gallery[:64])  # warm-up
    start = time.perf_counter()
    rank_of_match(query, gallery)
    print(f"rank_of_match {n} x {n} ({dim}-d): {time.perf_counter() - start:.2f} s, "
          f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


def time_embedding(images, n_images: int, batch_size: int = 32) -> None:
    model = build_embedder("efficientnet_lite0").to(memory_format=torch.channels_last)
    pre = Preprocessing.for_size(224)
    images = list(images)[:n_images]
    batch = torch.stack([pre(make_demo_pairs(1, 224).left_image(0))] * batch_size).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        model(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(max(1, n_images // batch_size)):
            model(batch)
        bare = max(1, n_images // batch_size) * batch_size / (time.perf_counter() - start)
    print(f"bare forward at 224 px: {bare:.1f} images/s (threads: {torch.get_num_threads()})")
    for workers in (0, 1, 2):
        start = time.perf_counter()
        embed(model, images, pre, batch_size=batch_size, num_workers=workers)
        rate = len(images) / (time.perf_counter() - start)
        print(f"embed with {workers} worker(s): {rate:.1f} images/s ({100 * (1 - rate / bare):.0f}% below bare)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "ttl-dev")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    time_ranks(6016)
    time_ranks(20000)
    images = load_pairs(args.data).left if args.data.is_dir() else make_demo_pairs(args.images, 200).left
    time_embedding(images, args.images)


if __name__ == "__main__":
    main()
