"""Check the notebooks with nbval in two processes at once (`make notebooks`): about a quarter less time on 2 cores.

A notebook's cells must run in order in one kernel, and two notebooks must not train the same cached
run at once: the second is refused (`train.state.cached_training`). So the notebooks that train or
load such runs, or compute a result another of them reads (they call one of `SHARED_RESULTS`:
notebook 06 ranks 02's learned distance and quotes its finding), go to one process, in order, and
the others to a second one. Each process's kernels use one PyTorch thread (`OMP_NUM_THREADS=1`), so
the two do not fight over the cores. Each group's output is printed as soon as it ends; the exit
status is non-zero when any group failed (or was killed).

    python tools/nbval_groups.py                     # notebooks/, two processes
    python tools/nbval_groups.py --workers 1         # one process, all notebooks in order
    python tools/nbval_groups.py notebooks -- -x     # arguments after -- go to pytest
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED_RESULTS = ("finetuned", "cached_finetune", "barlow_twins", "barlow_twins_scale", "cached_pretrain",
                  "seed_runs", "pseudo_labelled", "study_resnet50", "study_scope", "learned_distance")
_CALLS = re.compile(r"\b(" + "|".join(SHARED_RESULTS) + r")\(")
NBVAL = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env", "-p", "no:python"]


def trains_shared_runs(notebook: Path) -> bool:
    """Return whether a code cell of `notebook` calls one of `SHARED_RESULTS` (a cached run or result that
    another notebook trains, computes or reads)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(_CALLS.search("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code")


def notebook_groups(notebooks: list[Path], workers: int = 2) -> list[list[Path]]:
    """Return `notebooks` (sorted) in at most `workers` groups to run at once: those that share
    trained runs in one group, the rest in the other (one group when `workers` is 1 or either is empty)."""
    notebooks = sorted(notebooks)
    shared = [notebook for notebook in notebooks if trains_shared_runs(notebook)]
    alone = [notebook for notebook in notebooks if notebook not in shared]
    return [notebooks] if workers <= 1 or not shared or not alone else [alone, shared]


def exit_status(codes: list[int]) -> int:
    """Return the run's exit status from its groups': 0 when all passed, else the first failure's, and 1
    for a group killed by a signal (a negative code).

    >>> exit_status([0, 0]), exit_status([0, 1]), exit_status([-9, 0]), exit_status([2, 1])
    (0, 1, 1, 2)
    """
    failed = [code for code in codes if code != 0]
    return 0 if not failed else (failed[0] if failed[0] > 0 else 1)


def run_groups(groups: list[list[Path]], pytest_args: list[str]) -> int:
    """Run nbval on each group in its own process, all at once; print each group's output as soon as
    it ends; return `exit_status` of them all."""
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if len(groups) > 1 else {}))
    started = time.perf_counter()
    running = []
    for group in groups:  # each writes to a file of its own: a full pipe would stall a process not being read
        log = tempfile.TemporaryFile(mode="w+")
        running.append((group, log, subprocess.Popen([sys.executable, *NBVAL, *map(str, group), *pytest_args],
                                                     env=env, stdout=log, stderr=subprocess.STDOUT, text=True)))
    codes = []
    while running:
        for entry in [entry for entry in running if entry[2].poll() is not None]:
            group, log, process = entry
            names = ", ".join(notebook.name[:2] for notebook in group)
            print(f"== notebooks {names}: exit {process.returncode}, {time.perf_counter() - started:.0f} s",
                  flush=True)
            log.seek(0)
            print(log.read(), end="", flush=True)
            log.close()
            codes.append(process.returncode)
            running.remove(entry)
        time.sleep(0.2)
    return exit_status(codes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("notebooks"), help="default: notebooks/")
    parser.add_argument("--workers", type=int, default=2, help="2 (default): two processes at once; 1: one, in order")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder}: no such folder", file=sys.stderr)
        return 2
    notebooks = sorted(args.folder.glob("[0-9]*.ipynb"))
    if not notebooks:
        print(f"error: {args.folder}: no numbered notebooks (NN_name.ipynb) to check", file=sys.stderr)
        return 2
    return run_groups(notebook_groups(notebooks, args.workers), pytest_args)


if __name__ == "__main__":
    sys.exit(main())
