"""A light repository: what every clone pays for stays small, and regenerating adds only what changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE_LIMIT = 1_536 * 1024  # bytes: no committed figure over 1.5 MB
NOTEBOOK_LIMIT = 2 * 2**20  # bytes: pictures in notebooks are downscaled to a screen's width


def committed(pattern: str) -> list[Path]:
    """Return the committed files matching `pattern` (every such file of the checkout outside git)."""
    try:
        listed = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
        return [ROOT / name for name in listed.stdout.split()]
    except (OSError, subprocess.CalledProcessError):
        return sorted(ROOT.glob(pattern))


def test_figures_are_pngs_sized_for_their_use():
    files = committed("figures/*")
    if not files:
        pytest.skip("no figures committed")
    too_large = [f"{path.name}: {path.stat().st_size // 1024} KB" for path in files if path.stat().st_size > FIGURE_LIMIT]
    assert too_large == []
    twins = [path.name for path in files if path.suffix == ".pdf" and path.with_suffix(".png") in files]
    assert twins == []  # no PDF twin of a raster picture
    assert {path.suffix for path in files} <= {".png", ".json", ".pdf", ".pptx"}


def test_notebooks_hold_no_full_size_pictures_and_no_run_timestamps():
    notebooks = committed("notebooks/*.ipynb")
    assert notebooks, "the numbered notebooks are committed"
    for path in notebooks:
        assert path.stat().st_size <= NOTEBOOK_LIMIT, f"{path.name}: {path.stat().st_size // 1024} KB"
        cells = json.loads(path.read_text())["cells"]
        assert not any("execution" in cell.get("metadata", {}) for cell in cells), f"{path.name} keeps timestamps"
