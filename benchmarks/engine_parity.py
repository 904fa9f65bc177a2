"""Parity of the inference engine with the torch path on real pictures: embeddings, ranks, near-ties, time.

    python benchmarks/engine_parity.py --data DIR [--checkpoint ft.pt] [--split all] [--json out.json]

For the profile's backbone zero-shot (ImageNet weights) and, when given, a fine-tuned
checkpoint: embeds every image of the split twice, once through the engine (ONNX Runtime on
CPU) and once through torch (`TTL_ENGINE=torch`), without the cache, and reports the largest
difference of an embedding's coordinates (goal: under 1e-4), how many queries get another
rank (left -> right and back), and for those whether the swap is a near-tie (the partner's
similarity within 1e-4 of another candidate's). The seconds of each path are the embedding
time of `evaluate` with a cold cache.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ttl_utils.config import get_profile
from ttl_utils.data.folders import load_pairs
from ttl_utils.data.splits import split_pairs
from ttl_utils.evaluate.embeddings import embed_pairs
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.models.checkpoints import load_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing

GOAL_DIFF, NEAR_TIE = 1e-4, 1e-4


def _embed(embedder, preprocessing, pairs, engine: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    before = os.environ.get("TTL_ENGINE")
    os.environ["TTL_ENGINE"] = engine
    try:
        start = time.perf_counter()
        left, right = embed_pairs(embedder, preprocessing, pairs, cache=False)
        return left, right, time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("TTL_ENGINE")
        else:
            os.environ["TTL_ENGINE"] = before


def _swaps(query: torch.Tensor, gallery: torch.Tensor, ranks: np.ndarray, other: np.ndarray) -> dict:
    """Count the queries whose rank differs between the two paths, and those of them that are near-ties."""
    changed = np.flatnonzero(np.asarray(ranks) != np.asarray(other)).tolist()
    near = 0
    for i in changed:
        scores = gallery @ query[i]
        gaps = (scores - scores[i]).abs()
        gaps[i] = float("inf")
        near += int(gaps.min().item() < NEAR_TIE)
    return {"changed": len(changed), "near_ties": near}


def measure(name: str, embedder, preprocessing, pairs) -> dict:
    fast_l, fast_r, fast_s = _embed(embedder, preprocessing, pairs, "onnxruntime")
    slow_l, slow_r, slow_s = _embed(embedder, preprocessing, pairs, "torch")
    diff = max((fast_l - slow_l).abs().max().item(), (fast_r - slow_r).abs().max().item())
    row = {"model": name, "pairs": len(pairs), "images": 2 * len(pairs), "max_abs_diff": diff,
           "engine_s": round(fast_s, 1), "torch_s": round(slow_s, 1)}
    for direction, (fq, fg, sq, sg) in {"left -> right": (fast_l, fast_r, slow_l, slow_r),
                                        "right -> left": (fast_r, fast_l, slow_r, slow_l)}.items():
        row[direction] = _swaps(fq, fg, rank_of_match(fq, fg), rank_of_match(sq, sg))
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--split", choices=("test", "all"), default="all")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    pairs = load_pairs(args.data)
    if args.split == "test":
        pairs = split_pairs(pairs)["test"]
    models = {f"{profile.backbone} zero-shot": (build_embedder(profile.backbone), Preprocessing.for_size(profile.image_size))}
    if args.checkpoint:
        embedder, preprocessing, _ = load_checkpoint(args.checkpoint)
        models[f"{args.checkpoint.name} (fine-tuned)"] = (embedder, preprocessing)
    rows = [measure(name, e, p, pairs) for name, (e, p) in models.items()]
    for row in rows:
        ok = "met" if row["max_abs_diff"] < GOAL_DIFF else "missed"
        print(f"{row['model']} on {row['images']} images: max |difference| {row['max_abs_diff']:.2e} "
              f"(goal under {GOAL_DIFF:g}: {ok}); engine {row['engine_s']} s, torch {row['torch_s']} s")
        for direction in ("left -> right", "right -> left"):
            swaps = row[direction]
            print(f"  {direction}: {swaps['changed']} of {row['pairs']} ranks differ, {swaps['near_ties']} of them "
                  f"near-ties (within {NEAR_TIE:g})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
