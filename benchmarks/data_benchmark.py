"""Timing of the data layer: demo rendering, and load_pairs on a real folder.

    python benchmarks/data_benchmark.py [--data ../shared/ttl-dev] [--difficulty]

Prints seconds for rendering 1000 demo pairs at 128 px (goal: under 10 s on 2 cores), for
`load_pairs(..., validate=True)` on the folder, and with --difficulty the EfficientNet-Lite0
R@1 among 500 demo pairs (goal: between 5% and 50%) against raw pixels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import load_pairs
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.evaluate.metrics import recall_at_k
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - start:.2f} s")
    return result


def difficulty(n_pairs: int = 500, size: int = 128) -> None:
    pairs = make_demo_pairs(n_pairs, size)
    model = build_embedder("efficientnet_lite0")
    native = Preprocessing(resize=size, crop=size)
    left, right = (embed(model, side, native, num_workers=0) for side in (pairs.left, pairs.right))
    features = recall_at_k(rank_of_match(left, right), 1)
    pixels = recall_at_k(rank_of_match(*(torch.from_numpy(np.stack(s)).float().flatten(1)
                                         for s in (pairs.left, pairs.right))), 1)
    print(f"R@1 among {n_pairs} demo pairs at {size} px: EfficientNet-Lite0 {features:.3f}, raw pixels {pixels:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "ttl-dev")
    parser.add_argument("--difficulty", action="store_true")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    timed("make_demo_pairs(1000, 128)", lambda: make_demo_pairs(1000, 128))
    if args.data.is_dir():
        pairs = timed(f"load_pairs({args.data}, validate=True)", lambda: load_pairs(args.data, validate=True))
        print(f"  {pairs.describe()}")
        timed("load_pairs again (structure only)", lambda: load_pairs(args.data))
    if args.difficulty:
        difficulty()


if __name__ == "__main__":
    main()
