"""Images a second through the frozen forward pass: the project's path from files, bare ONNX Runtime, torch eager.

    python benchmarks/embedding_throughput.py [--data DIR] [--images 512] [--image-size 224]
                                              [--backbone efficientnet_lite0] [--resnet50] [--json out.json]

Three numbers for one backbone (ImageNet weights where they ship offline, else random:
the time does not depend on the values), in one process:

- **project, from files**: `retrieval.embed` on `--images` image files (JPEGs of `--data`'s
  right/ folder, else demo pictures written as 200 x 245 JPEGs, TTL's size), with the
  default data-loading workers: decoding, resizing, the engine, pooling, the head;
- **ONNX Runtime on tensors**: the same exported graph on ready-made batches (no decoding);
- **torch eager**: the backbone in PyTorch, fp32, on the same batches (what the project ran
  before the engine).

Goals on 2 cores, EfficientNet-Lite0 at 224 px: the project's path at least 85 images/s and
within 15% of bare ONNX Runtime. `--resnet50` adds the three numbers for ResNet-50.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.models.catalog import BACKBONES
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.engine import engine_name, frozen_maps
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.runtime import decode_threads

GOAL_IMAGES_S, GOAL_GAP = 85.0, 0.15


def _files(data: Path | None, n: int, scratch: Path) -> list[Path]:
    if data is not None:
        files = sorted((data / "right").glob("*.jp*g"))[:n]
        if len(files) < n:
            raise SystemExit(f"{data}/right holds {len(files)} JPEGs; --images {n} asks for more.")
        return files
    pairs = make_demo_pairs(n, 224, seed=0)
    files = []
    for i in range(n):
        path = scratch / f"{i:05d}.jpg"
        pairs.left_image(i).resize((200, 245)).save(path, quality=90)
        files.append(path)
    return files


def _rate(run, batches: list[torch.Tensor], repeats: int = 1) -> float:
    run(batches[0][:2])  # warm-up: an export or a session's first run are not throughput
    start = time.perf_counter()
    for _ in range(repeats):
        for batch in batches:
            run(batch)
    return repeats * sum(len(b) for b in batches) / (time.perf_counter() - start)


def measure(backbone: str, files: list[Path], image_size: int, batch_size: int) -> dict:
    """Return the three rates (images/s) for `backbone` on `files`."""
    weights = "imagenet" if backbone.startswith("efficientnet_lite0") else None
    embedder = build_embedder(backbone, weights)
    preprocessing = Preprocessing.for_size(image_size)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(batch_size, 3, image_size, image_size, generator=gen) for _ in range(max(2, 128 // batch_size))]

    maps = frozen_maps(embedder.backbone, embedder.layers)
    onnx = _rate(maps, batches)

    def eager(x):
        with torch.inference_mode():
            return embedder.backbone(x, embedder.layers)

    eager_rate = _rate(eager, batches[:2])
    embed(embedder, files[:4], preprocessing, batch_size=batch_size, num_workers=0)  # the export, before timing
    start = time.perf_counter()
    embed(embedder, files, preprocessing, batch_size=batch_size)
    project = len(files) / (time.perf_counter() - start)
    return {"backbone": backbone, "weights": weights or "random", "image_size": image_size, "batch_size": batch_size,
            "images": len(files), "decode_threads": decode_threads(), "threads": torch.get_num_threads(),
            "engine": engine_name(), "project_from_files": round(project, 1), "onnxruntime_tensors": round(onnx, 1),
            "torch_eager": round(eager_rate, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a dataset folder (its right/ JPEGs are read)")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="efficientnet_lite0")
    parser.add_argument("--resnet50", action="store_true", help="also measure ResNet-50 (random weights)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("TTL_HOME", scratch)  # the exports go to a scratch artifacts/ unless one is chosen
        files = _files(args.data, args.images, Path(scratch))
        for backbone in [args.backbone] + (["resnet50"] if args.resnet50 else []):
            rows.append(measure(backbone, files, args.image_size, args.batch_size))
    for row in rows:
        gap = 1 - row["project_from_files"] / row["onnxruntime_tensors"]
        row["gap_to_onnxruntime"] = round(gap, 3)
        print(f"{row['backbone']} ({row['weights']}), {row['image_size']} px, batch {row['batch_size']}, "
              f"{row['threads']} engine threads, {row['decode_threads']} decoding threads, engine {row['engine']}:")
        print(f"  project, from {row['images']} files  {row['project_from_files']:7.1f} images/s")
        print(f"  ONNX Runtime on tensors   {row['onnxruntime_tensors']:7.1f} images/s")
        print(f"  torch eager on tensors    {row['torch_eager']:7.1f} images/s "
              f"(the engine: {row['onnxruntime_tensors'] / row['torch_eager']:.1f}x)")
        if row["backbone"] == "efficientnet_lite0" and row["image_size"] == 224:
            met = row["project_from_files"] >= GOAL_IMAGES_S and gap <= GOAL_GAP
            print(f"  goal (>= {GOAL_IMAGES_S:.0f} images/s from files, within {GOAL_GAP:.0%} of ONNX Runtime): "
                  f"{'met' if met else 'missed'} ({gap:+.0%} below)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
