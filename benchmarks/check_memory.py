"""Peak memory and time of `check` on a dataset of phone-sized photos, and on one over the pixel limit.

    python benchmarks/check_memory.py [--pairs 4] [--side 8000] [--json out.json]

Writes a scratch dataset of `--pairs` pairs of `--side` x `--side` JPEGs (noise, so they
do not compress to nothing), runs `python -m ttl_utils check` on it in a fresh process
and reads that process's peak resident memory. A second dataset holds one 13000 x 13000
JPEG (169 megapixels, over the default limit of 128): `check` must refuse it from its
header, without decoding it. Before the pixel limit, JPEG reduction and the memory bound
on decoding threads, four 13000 x 13000 JPEGs took `check` to 8.8 GB. Goal: under 1.5 GB
for four pairs of 64-megapixel photos.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

GOAL_GB = 1.5


def _photo(path: Path, width: int, height: int, seed: int) -> None:
    """Write a JPEG of `width` x `height` noise, built in strips to keep this script's own memory low."""
    rng = np.random.default_rng(seed)
    tile = Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8))
    image = Image.new("RGB", (width, height))
    for top in range(0, height, 512):
        for left in range(0, width, 512):
            image.paste(tile, (left, top))
    image.save(path, quality=85)


def _dataset(root: Path, pairs: int, side: int) -> Path:
    for part in ("left", "right"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        for k, part in enumerate(("left", "right")):
            _photo(root / part / f"{i:05d}.jpg", side, side, 2 * i + k)
    return root


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout + done.stderr)
print(f"@@ {done.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def _run_check(data: Path, home: Path) -> dict:
    """Run `check` in a child process of its own; return its exit status, seconds, peak memory and the
    line naming the problem (or its OK line)."""
    env = {**os.environ, "TTL_HOME": str(home), "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "ttl_utils", "-q", "check",
                           "--data", str(data)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    rc, peak_kb = (int(x) for x in lines[-1].split()[1:])
    said = [line for line in lines[:-1] if line.startswith(("OK", "- "))]
    return {"rc": rc, "seconds": round(seconds, 2), "peak_rss_gb": round(peak_kb / 2**20, 3),
            "said": said[0].strip() if said else ""}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--side", type=int, default=8000, help="pixels a side (8000: 64 megapixels)")
    parser.add_argument("--huge-side", type=int, default=13000, help="the over-the-limit picture's side")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photos = _dataset(scratch / "photos", args.pairs, args.side)
        ok = _run_check(photos, scratch / "home")
        huge = _dataset(scratch / "huge", 1, 64)
        _photo(huge / "right" / "00000.jpg", args.huge_side, args.huge_side, 99)
        refused = _run_check(huge, scratch / "home")
    result = {"pairs": args.pairs, "side": args.side, "photos": ok, "huge_side": args.huge_side, "huge": refused,
              "goal_gb": GOAL_GB}
    mp = args.side * args.side / 1e6
    print(f"check on {args.pairs} pairs of {args.side} x {args.side} JPEGs ({mp:.0f} MP): rc {ok['rc']}, "
          f"{ok['seconds']:.1f} s, peak {ok['peak_rss_gb']:.2f} GB (goal under {GOAL_GB} GB: "
          f"{'met' if ok['peak_rss_gb'] < GOAL_GB else 'missed'})")
    print(f"check on one {args.huge_side} x {args.huge_side} JPEG: rc {refused['rc']}, {refused['seconds']:.1f} s, "
          f"peak {refused['peak_rss_gb']:.2f} GB")
    print(f"  it said: {refused['said']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
