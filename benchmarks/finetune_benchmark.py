"""Time and memory of `python -m ttl_utils finetune`, from images to checkpoint.

    python benchmarks/finetune_benchmark.py                                  # ../shared/ttl-dev, else the demo
    python benchmarks/finetune_benchmark.py --data data/ttl -- --device cuda --batch-size 256
    python benchmarks/finetune_benchmark.py --data DIR -- --unfreeze 0 --grid 0   # any finetune flags after --

Runs the command once, cold (`--no-cache`: the frozen trunk's outputs are computed, not read
back), with its checkpoint in a temporary folder, and prints the wall time split into the
frozen trunk and setup (everything outside the epochs) and the epochs themselves, the peak
resident memory of the process (and the peak CUDA memory on a GPU) and the kept epoch.

Goal (issue 7) on 2 CPU cores, 700 training pairs of ../shared/ttl-dev at the defaults:
within 15 minutes end to end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from ttl_utils.cli import main as ttl_main
from ttl_utils.storage import load_torch
from ttl_utils.train.state import state_path

GOAL_S = 15 * 60
TTL_DEV = Path(__file__).resolve().parents[2] / "shared" / "ttl-dev"


def peak_rss_gb() -> float:
    """The process's peak resident memory so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(data: Path | None, extra: list[str]) -> dict:
    """Run `finetune` once into a temporary folder; return the measurements."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "ft.pt"
        argv = ["-q", "finetune", "--out", str(out), "--no-cache", *(["--data", str(data)] if data else []), *extra]
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        code = ttl_main(argv)
        total = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"finetune failed (exit status {code}); its error is printed above.")
        state = load_torch(state_path(out))
    epochs = [h["seconds"] for h in state["history"][1:]]
    result = {"total_s": round(total, 1), "epochs_s": round(sum(epochs), 1), "trunk_and_setup_s": round(total - sum(epochs), 1),
              "epochs": len(epochs), "best_epoch": state["best_epoch"], "peak_rss_gb": round(peak_rss_gb(), 2),
              "threads": torch.get_num_threads(), "goal_s": GOAL_S}
    result["best"] = {k: round(v, 3) for k, v in state["best"].items() if k.startswith("val_")}
    result["train_losses"] = [round(h["train_loss"], 5) for h in state["history"][1:]]
    if torch.cuda.is_available():
        result["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def report(result: dict) -> str:
    lines = [f"finetune end to end: {result['total_s']:.1f} s ({result['threads']} threads), "
             f"goal {result['goal_s'] // 60} min: {'met' if result['total_s'] <= result['goal_s'] else 'NOT met'}",
             f"  frozen trunk and setup: {result['trunk_and_setup_s']:.1f} s; {result['epochs']} epochs: "
             f"{result['epochs_s']:.1f} s ({result['epochs_s'] / max(result['epochs'], 1):.1f} s each)",
             f"  kept epoch {result['best_epoch']}" + "".join(f", {k} {v:.3f}" for k, v in result["best"].items()),
             f"  peak resident memory {result['peak_rss_gb']:.2f} GB"
             + (f", peak CUDA memory {result['peak_cuda_gb']:.2f} GB" if "peak_cuda_gb" in result else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (default: ../shared/ttl-dev if present, else $TTL_DATA, data/ttl, demo)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args(own)
    data = args.data or (TTL_DEV if TTL_DEV.is_dir() else None)
    result = run(data, extra)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
