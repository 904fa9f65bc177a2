"""Time and memory of notebook 06's ResNet-50 rows, on random weights of the real files' shapes.

    python benchmarks/study_resnet50.py [--data ../shared/ttl-dev] [--profile cpu] [--json out.json]

Notebook 06 runs the study's exact setting (ResNet-50, supervised vs Barlow Twins ImageNet
weights, each zero-shot and fine-tuned by `recipes.study_recipe`) only when both weight files
are in torch.hub's cache. This script measures what those rows cost where the files are not
here: it writes stand-in files of the same shapes (random weights) into a temporary
TORCH_HOME, points the project's artifacts at a temporary folder (so nothing it trains is
ever mistaken for the real rows), builds the rows and ranks them on the test split. Goal on
2 CPU cores with 1000 pairs: under 15 minutes and 8 GB of memory for the four rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

GOAL_S, GOAL_GB = 900, 8.0


def stand_in_weights(torch_home: Path) -> None:
    """Write random weights of the two study files' shapes where torch.hub looks under `torch_home`."""
    import torchvision

    state = torchvision.models.resnet50(weights=None).state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "resnet50-11ad3fa6.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, folder / "resnet50.pth")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "ttl-dev")
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--image-size", type=int, default=None, help="override the profile's (a quick check)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="study-resnet50-"))
    saved = {name: os.environ.get(name) for name in ("TORCH_HOME", "TTL_HOME")}
    os.environ["TORCH_HOME"] = str(scratch / "torch")
    os.environ["TTL_HOME"] = str(scratch / "project")  # artifacts of random weights stay out of the real cache
    try:
        stand_in_weights(scratch / "torch")
        return _measure(args, scratch)
    finally:  # the stand-in weights (200 MB) and what was trained on them go
        shutil.rmtree(scratch, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _measure(args: argparse.Namespace, scratch: Path) -> dict:
    from dataclasses import replace

    from ttl_utils.config import get_profile
    from ttl_utils.data.folders import resolve_pairs
    from ttl_utils.data.splits import split_pairs
    from ttl_utils.evaluate.compare import compare_models
    from ttl_utils.pipeline import study_resnet50

    profile = get_profile(args.profile)
    if args.image_size:
        profile = replace(profile, image_size=args.image_size)
    pairs = resolve_pairs(args.data, profile)
    test = split_pairs(pairs)["test"]  # saved under the temporary project, as study_resnet50 does
    start = time.perf_counter()
    models = study_resnet50(profile, pairs)
    built = time.perf_counter() - start
    compare_models(models, test)
    total = time.perf_counter() - start
    result = {"data": pairs.name, "pairs": len(pairs), "test_pairs": len(test), "profile": profile.name,
              "image_size": profile.image_size, "threads": torch.get_num_threads(), "build_and_finetune_s": built,
              "total_s": total, "peak_rss_gb": _peak_rss_gb(), "goal_s": GOAL_S, "goal_gb": GOAL_GB,
              "rows": {name: {"weights": embedder.describe()["weights"], "layers": list(embedder.layers)}
                       for name, (embedder, *_) in models.items()}}
    print(f"ResNet-50 rows on {pairs.name} ({len(pairs)} pairs, {profile.name} profile, {profile.image_size} px, "
          f"{torch.get_num_threads()} threads): fine-tuning both {built:.0f} s, with ranking {total:.0f} s "
          f"(goal {GOAL_S} s); peak memory {result['peak_rss_gb']:.1f} GB (goal {GOAL_GB} GB)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
