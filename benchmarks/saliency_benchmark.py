"""Seconds per pair for each attribution method, EfficientNet-Lite0 at 224 px.

    python benchmarks/saliency_benchmark.py [--data ../shared/ttl-dev] [--pairs 2]

Explains both images of each pair (A with B fixed, then B with A fixed), as notebook 03 does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import load_pairs
from ttl_utils.explain.saliency import METHODS, attribute, similarity_decomposition
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "ttl-dev")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    pairs = load_pairs(args.data) if args.data.is_dir() else make_demo_pairs(args.pairs, 200)
    embedder = build_embedder("efficientnet_lite0")
    pre = Preprocessing.for_size(args.image_size)
    print(f"{pairs.name}, {args.pairs} pairs, {args.image_size} px, torch threads {torch.get_num_threads()}")
    inputs = [(pre(pairs.left_image(i))[None], pre(pairs.right_image(i))[None]) for i in range(args.pairs)]
    with torch.no_grad():
        attribute(embedder, inputs[0][0], embedder(inputs[0][1]), "saliency", pre)  # warm-up
    for method in METHODS:
        start = time.perf_counter()
        for x_a, x_b in inputs:
            with torch.no_grad():
                e_a, e_b = embedder(x_a), embedder(x_b)
            attribute(embedder, x_a, e_b, method, pre)
            attribute(embedder, x_b, e_a, method, pre)
        print(f"{method:22s} {(time.perf_counter() - start) / args.pairs:6.2f} s per pair (both images)")
    start = time.perf_counter()
    for x_a, x_b in inputs:
        similarity_decomposition(embedder, x_a, x_b)
    print(f"{'decomposition':22s} {(time.perf_counter() - start) / args.pairs:6.2f} s per pair (both maps)")


if __name__ == "__main__":
    main()
