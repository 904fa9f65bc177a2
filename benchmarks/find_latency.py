"""Query latency of `find` against the gallery size, and the memory the gallery takes.

    python benchmarks/find_latency.py [--sizes 1000,6016,10000,30000,100000] [--queries 20] [--json out.json]

In a warm process, one query is: open and preprocess the picture, one forward pass of the
model, the cosine against every gallery embedding, the top 5. Gallery embeddings are
synthetic (random unit vectors of the model's width): the time does not depend on their
values. Two models: the profile's backbone zero-shot (1280 numbers a picture) and the chosen
fine-tuned model (layer3 + layer4 in 4 x 4 cells: 22272). Goal on 2 cores: the median under
1 s with 6016 gallery pictures (the full TTL). Sizes whose embeddings would take over 40% of
the available memory are skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ttl_utils.config import get_profile
from ttl_utils.evaluate.embeddings import embed_queries
from ttl_utils.evaluate.ranking import search
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.runtime import physical_memory
from ttl_utils.train.finetune import build_model, zero_shot_reference
from ttl_utils.train.recipes import FinetuneConfig

GOAL_S, GOAL_SIZE = 1.0, 6016


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _query_seconds(model, preprocessing, gallery: torch.Tensor, picture: Path, n: int) -> list[float]:
    times = []
    for _ in range(n + 1):  # the first is a warm-up
        start = time.perf_counter()
        with Image.open(picture) as image:
            query = embed_queries(model, preprocessing, [image.convert("RGB")])
        search(query, gallery, 5)
        times.append(time.perf_counter() - start)
    return times[1:]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,6016,10000,30000,100000")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = FinetuneConfig.for_profile(get_profile("cpu"), device="cpu", image_size=args.image_size)
    models = {"zero-shot": zero_shot_reference(config).eval(), "chosen fine-tuned": build_model(config).eval()}
    preprocessing = Preprocessing.for_size(args.image_size)
    picture = Path(tempfile.mkdtemp(prefix="find-latency-")) / "query.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (245, 200, 3), dtype=np.uint8)).save(picture)
    budget = 0.4 * physical_memory()
    rows = []
    print(f"{torch.get_num_threads()} threads; {args.queries} queries a size; goal: median under {GOAL_S} s "
          f"at {GOAL_SIZE} pictures")
    for name, model in models.items():
        with torch.no_grad():
            dim = model(preprocessing(Image.open(picture).convert("RGB"))[None]).shape[1]
        for size in (int(s) for s in args.sizes.split(",")):
            gigabytes = size * dim * 4 / 2**30
            if gigabytes * 2**30 > budget:
                print(f"{name:>18} {size:>7} pictures x {dim}: skipped ({gigabytes:.1f} GB of embeddings, over 40% "
                      "of the memory)")
                continue
            gallery = torch.randn(size, dim)
            gallery /= gallery.norm(dim=1, keepdim=True)  # in place: one copy of the embeddings in memory
            times = _query_seconds(model, preprocessing, gallery, picture, args.queries)
            row = {"model": name, "dim": dim, "gallery": size, "embeddings_gb": gigabytes,
                   "median_s": statistics.median(times), "max_s": max(times), "peak_rss_gb": _peak_rss_gb()}
            rows.append(row)
            print(f"{name:>18} {size:>7} pictures x {dim}: median {row['median_s'] * 1000:.0f} ms, max "
                  f"{row['max_s'] * 1000:.0f} ms; embeddings {gigabytes:.2f} GB, peak memory {row['peak_rss_gb']:.1f} GB")
            del gallery
    picture.unlink(missing_ok=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
