"""Shared fixtures: an isolated project root, and dataset folders built in the test."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker a core: one PyTorch thread each (and in the processes a
    # test starts), or two workers on 2 cores would each start two threads and slow both. Set before
    # PyTorch is first imported; a value the user set is kept.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from ttl_utils.data.demo import make_demo_pairs

TTL_DEV = Path(__file__).resolve().parents[2] / "shared" / "ttl-dev"
PICTURES = Path(__file__).resolve().parent / "data"


def sample_picture(name: str):
    """Return one of the committed test photographs (`astronaut`, `chelsea`) as an RGB PIL image."""
    from PIL import Image

    with Image.open(PICTURES / f"{name}.jpg") as image:
        return image.convert("RGB")


@pytest.fixture(scope="session")
def shared_engine(tmp_path_factory):
    """One `artifacts/engine/` for the whole session: an ONNX export is keyed by the weights and the
    input size, so tests share them as runs on one machine do (each test's export took 0.5-2 s)."""
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(autouse=True)
def isolated_project(tmp_path, monkeypatch, shared_engine):
    """Each test gets its own project root (data/, artifacts/, figures/) and no TTL_* settings; the
    ONNX exports are shared (`own_engine` gives a test its own)."""
    home = tmp_path / "project"
    (home / "artifacts").mkdir(parents=True)
    (home / "artifacts" / "engine").symlink_to(shared_engine, target_is_directory=True)
    monkeypatch.setenv("TTL_HOME", str(home))
    monkeypatch.delenv("TTL_DATA", raising=False)
    monkeypatch.delenv("TTL_PROFILE", raising=False)
    monkeypatch.delenv("TTL_UNLABELLED", raising=False)
    return home


@pytest.fixture
def own_engine(isolated_project):
    """A test that damages, counts or prunes ONNX exports gets an `artifacts/engine/` of its own."""
    from ttl_utils.models import engine

    link = isolated_project / "artifacts" / "engine"
    link.unlink()
    link.mkdir()
    engine._sessions.clear()
    yield link
    engine._sessions.clear()


def write_official(root: Path, n: int = 6, size: int = 32, ext: str = ".jpg") -> Path:
    """Write `n` demo pairs as an official-layout folder of JPEGs (or PNGs) and return it."""
    pairs = make_demo_pairs(n, size, seed=3)
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pairs.left_image(i).save(root / "left" / f"{i:05d}{ext}")
        pairs.right_image(i).save(root / "right" / f"{i:05d}{ext}")
    return root


def write_csv_layout(root: Path, n: int = 6, with_extension: bool = True) -> Path:
    """Write `n` pairs whose left and right names differ, paired by `pairs.csv`."""
    pairs = make_demo_pairs(n, 32, seed=4)
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        left, right = f"l{i:03d}.png", f"r{(7 * i) % 1000:03d}.png"
        pairs.left_image(i).save(root / "left" / left)
        pairs.right_image(i).save(root / "right" / right)
        rows.append((left, right) if with_extension else (Path(left).stem, Path(right).stem))
    with open(root / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["left", "right"])
        writer.writerows(rows)
    return root


@pytest.fixture
def official(tmp_path) -> Path:
    return write_official(tmp_path / "ttl")


@pytest.fixture
def csv_layout(tmp_path) -> Path:
    return write_csv_layout(tmp_path / "csvset")


def write_pool(root, n=4, n_candidates=3, rows=None, size=32):
    """Write `n` left and `n` right pictures and, unless `rows` is False, a candidates.csv (each left
    picture's `n_candidates` right ones, its own number first, or the `rows` given)."""
    pairs = make_demo_pairs(n, size, seed=9)
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pairs.left_image(i).save(root / "left" / f"{i:05d}.jpg")
        pairs.right_image(i).save(root / "right" / f"{i:05d}.jpg")
    if rows is False:
        return root
    if rows is None:
        rows = [[f"{i:05d}"] + [f"{(i + j) % n:05d}.jpg" for j in range(n_candidates)] for i in range(n)]
    with open(root / "candidates.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["left"] + [f"c{j}" for j in range(n_candidates)])
        writer.writerows(rows)
    return root
