"""Execute the numbered notebooks in order and report how long each took.

Used by `make figures`; the profile comes from TTL_PROFILE (default: cpu, or gpu with CUDA).
`python tools/run_notebooks.py 03 05` runs only the notebooks whose names start with those.

With real pairs (`TTL_DATA`, or `data/ttl` after `make data`) the notebooks are executed in
place and their figures go to `figures/`: those are the committed outputs. On the demo data
(no real pairs here) they still run end to end, but the executed notebooks are written under
`artifacts/notebooks-demo-<profile>/` and the figures under `artifacts/figures-demo-<profile>/`,
so a demo run never overwrites the results of real pairs; the last line says where.

Each executed notebook is written light: the pictures in its outputs at most
`NOTEBOOK_PICTURE_WIDTH` pixels wide (what a screen shows; `compact_png`), and nothing that
changes on every run (no execution timestamps), so a regeneration adds to the repository
only what changed.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ttl_utils.config import artifacts_dir, figures_dir, get_profile
from ttl_utils.data.folders import chosen_data
from ttl_utils.present.plots import compact_png

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_PICTURE_WIDTH = 1000  # pixels: a notebook column on a laptop screen


def lighten(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return `notebook` with every picture in its outputs compacted to a screen's width and no
    execution timestamps in its cells' metadata."""
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                png = compact_png(base64.b64decode(data["image/png"]), NOTEBOOK_PICTURE_WIDTH)
                data["image/png"] = base64.b64encode(png).decode("ascii")
                output.get("metadata", {}).pop("image/png", None)  # its old width and height
    return notebook


def output_folders() -> tuple[Path, Path, str]:
    """Return where the executed notebooks and the figures go, and what data they run on: in place
    and `figures/` with real pairs, under `artifacts/` with the demo data (or the smoke profile)."""
    data, profile = chosen_data(), get_profile()
    figures = figures_dir(profile, demo=data is None)
    if data is not None and profile.name != "smoke":
        return NOTEBOOKS, figures, f"real pairs at {data}"
    what = "the demo data" if data is None else f"{data} in the smoke profile"
    return artifacts_dir() / f"notebooks-{'demo' if data is None else 'smoke'}-{profile.name}", figures, what


def main(selected: list[str]) -> int:
    notebooks = [path for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
                 if not selected or any(path.name.startswith(prefix) for prefix in selected)]
    if not notebooks:
        print(f"No notebooks yet in {NOTEBOOKS}: nothing to run.")
        return 0
    # progress bars would be saved as widget state in the committed outputs
    os.environ.setdefault("TQDM_DISABLE", "1")
    out, figures, data = output_folders()
    out.mkdir(parents=True, exist_ok=True)
    print(f"Profile: {get_profile().name}; data: {data}")
    total = time.perf_counter()
    for path in notebooks:
        start = time.perf_counter()
        print(f"Running {path.name} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=None, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        nbformat.write(lighten(notebook), out / path.name)
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    if not selected:  # every notebook ran: the talk is rebuilt from their findings (make slides)
        from ttl_utils.present.slides import build_slides, default_settings

        pages = build_slides(figures, settings=default_settings())
        print(f"Slides: {len(pages)} pages in {figures / 'slides.pdf'} and {figures / 'slides.pptx'}")
    if out == NOTEBOOKS:
        print(f"All {len(notebooks)} notebooks in {time.perf_counter() - total:.0f} s, executed in place; "
              f"figures are in {figures}")
    else:
        print(f"All {len(notebooks)} notebooks in {time.perf_counter() - total:.0f} s on {data}: notebooks/ and "
              f"figures/ are untouched; the executed notebooks are in {out}, the figures in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
