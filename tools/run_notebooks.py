"""Execute the numbered notebooks in order, in place, and report how long each took.

Used by `make figures`; the profile comes from TTL_PROFILE (default: cpu, or gpu with CUDA).
`python tools/run_notebooks.py 03 05` runs only the notebooks whose names start with those.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def main(selected: list[str]) -> int:
    notebooks = [path for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
                 if not selected or any(path.name.startswith(prefix) for prefix in selected)]
    if not notebooks:
        print(f"No notebooks yet in {NOTEBOOKS}: nothing to run.")
        return 0
    # progress bars would be saved as widget state in the committed outputs
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(f"Profile: {os.environ.get('TTL_PROFILE') or 'default (cpu, or gpu with CUDA)'}; "
          f"data: {os.environ.get('TTL_DATA') or 'data/ttl if present, else the demo data'}")
    total = time.perf_counter()
    for path in notebooks:
        start = time.perf_counter()
        print(f"Running {path.name} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        nbformat.write(notebook, path)
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"All {len(notebooks)} notebooks in {time.perf_counter() - total:.0f} s; figures are in figures/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
