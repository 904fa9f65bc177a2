"""Resident memory of one process that evaluates several models in a row (a notebook, `compare`): the
ONNX Runtime sessions it keeps, and the exports left under `artifacts/engine`.

    python benchmarks/engine_memory.py [--models 6] [--size 224] [--keep 4] [--json out.json]

Each model is the profile's backbone with its own random weights (a fresh export each, as six
fine-tuned checkpoints would be); each embeds one batch through the inference engine, and the
process's resident memory (RSS) is read after each. `--keep` sets how many sessions stay loaded
(`models.engine.MAX_SESSIONS`): run it once with `--keep 100` (every session kept, as before the
bound) and once with the default. A fresh `TTL_HOME` keeps the exports apart from the project's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=6, help="models evaluated in one process (default 6)")
    parser.add_argument("--size", type=int, default=224, help="input size in pixels (default 224)")
    parser.add_argument("--keep", type=int, default=None, help="sessions kept loaded (default: the engine's bound)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    os.environ["TTL_HOME"] = tempfile.mkdtemp(prefix="engine-memory-")
    import psutil
    import torch

    from ttl_utils.models import engine
    from ttl_utils.models.embedder import build_embedder

    if args.keep is not None:
        engine.MAX_SESSIONS = args.keep
    process = psutil.Process()
    batch = torch.rand(8, 3, args.size, args.size)
    rss = [round(process.memory_info().rss / 2**20)]
    for seed in range(args.models):
        embedder = build_embedder("efficientnet_lite0", None, seed=seed)
        engine.frozen_embedder(embedder)(batch)
        del embedder
        rss.append(round(process.memory_info().rss / 2**20))
        print(f"model {seed + 1}: RSS {rss[-1]} MB, {len(engine._sessions)} sessions loaded", flush=True)
    folder = Path(os.environ["TTL_HOME"]) / "artifacts" / "engine"
    found = {"models": args.models, "size": args.size, "sessions_kept": engine.MAX_SESSIONS, "rss_mb": rss,
             "engine_folder_mb": round(sum(p.stat().st_size for p in folder.glob("*.onnx")) / 2**20, 1)}
    print(json.dumps(found))
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
