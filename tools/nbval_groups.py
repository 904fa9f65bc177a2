"""Check the notebooks with nbval in two processes at once (`make notebooks`), about a third faster on 2 cores.

A notebook's cells must run in order in one kernel, and two notebooks must not train the same cached
run at once: the second is refused (`train.state.cached_training`). So the notebooks that train or
load such runs (they call one of `TRAINED_RUNS`) go to one process, in order, and the others to a
second one. Each process's kernels use one PyTorch thread (`OMP_NUM_THREADS=1`), so the two do not
fight over the cores. Each group's output is printed when it ends; the exit status is non-zero
when any group failed.

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

TRAINED_RUNS = ("finetuned", "cached_finetune", "barlow_twins", "seed_runs", "pseudo_labelled")
_CALLS = re.compile(r"\b(" + "|".join(TRAINED_RUNS) + r")\(")
NBVAL = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env", "-p", "no:python"]


def trains_shared_runs(notebook: Path) -> bool:
    """Return whether a code cell of `notebook` calls one of `TRAINED_RUNS` (a cached, locked training run)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(_CALLS.search("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code")


def notebook_groups(notebooks: list[Path], workers: int = 2) -> list[list[Path]]:
    """Return `notebooks` (sorted) in at most `workers` groups to run at once: those that share
    trained runs in one group, the rest in the other (one group when `workers` is 1 or either is empty)."""
    notebooks = sorted(notebooks)
    shared = [notebook for notebook in notebooks if trains_shared_runs(notebook)]
    alone = [notebook for notebook in notebooks if notebook not in shared]
    return [notebooks] if workers <= 1 or not shared or not alone else [alone, shared]


def run_groups(groups: list[list[Path]], pytest_args: list[str]) -> int:
    """Run nbval on each group in its own process, all at once; print each output as it ends; return
    the largest exit status."""
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if len(groups) > 1 else {}))
    started = time.perf_counter()
    running = []
    for group in groups:  # each writes to a file of its own: a full pipe would stall a process not being read
        log = tempfile.TemporaryFile(mode="w+")
        running.append((group, log, subprocess.Popen([sys.executable, *NBVAL, *map(str, group), *pytest_args],
                                                     env=env, stdout=log, stderr=subprocess.STDOUT, text=True)))
    status = 0
    for group, log, process in running:
        process.wait()
        names = ", ".join(notebook.name[:2] for notebook in group)
        print(f"== notebooks {names}: exit {process.returncode}, {time.perf_counter() - started:.0f} s", flush=True)
        log.seek(0)
        print(log.read(), end="", flush=True)
        log.close()
        status = max(status, process.returncode)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("notebooks"), help="default: notebooks/")
    parser.add_argument("--workers", type=int, default=2, help="processes at once (default 2; 1: in order)")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    notebooks = sorted(args.folder.glob("[0-9]*.ipynb"))
    if not notebooks:
        print(f"error: {args.folder}: no numbered notebooks (NN_name.ipynb) to check", file=sys.stderr)
        return 2
    return run_groups(notebook_groups(notebooks, args.workers), pytest_args)


if __name__ == "__main__":
    sys.exit(main())
