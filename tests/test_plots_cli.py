"""Figures (saved as PDF and PNG with stable bytes) and the command line."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import io  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from ttl_utils.cli import main  # noqa: E402
from ttl_utils.config import Figures  # noqa: E402
from ttl_utils.data.demo import make_demo_pairs  # noqa: E402
from ttl_utils.present.pictures import pair_grid  # noqa: E402
from ttl_utils.present.plots import MAX_PIXELS_WIDE, compact_png, save_fig, set_theme  # noqa: E402


@pytest.mark.slow
def test_save_fig_writes_one_png_sized_for_a_slide_with_the_same_bytes_each_time(isolated_project):
    set_theme()
    fig = pair_grid(make_demo_pairs(6, 32), n=6, cols=3)
    figures = Figures(isolated_project / "figures")
    path = save_fig(fig, "01_pairs", figures)
    assert path == isolated_project / "figures" / "01_pairs.png" and [p.name for p in path.parent.iterdir()] == [path.name]
    first = path.read_bytes()
    save_fig(fig, "01_pairs", figures)
    assert path.read_bytes() == first
    wide, ax = plt.subplots(figsize=(30, 3))
    ax.plot([0, 1], [0, 1])  # a plot wider than any slide
    with Image.open(save_fig(wide, "wide", figures)) as image:
        assert image.width == MAX_PIXELS_WIDE
    plt.close("all")


def test_compact_png_keeps_plots_lossless_and_stores_photographs_in_256_colours():
    def png(array: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(array).save(out, "PNG")
        return out.getvalue()

    plot = np.full((300, 400, 3), 255, np.uint8)
    plot[100:110, :, :] = (31, 119, 180)
    with Image.open(io.BytesIO(compact_png(png(plot)))) as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), plot)
    photo = np.random.default_rng(0).integers(0, 256, (700, 2400, 3), dtype=np.uint8)
    compacted = compact_png(png(photo))
    with Image.open(io.BytesIO(compacted)) as image:
        assert image.mode == "P" and image.size == (MAX_PIXELS_WIDE, round(700 * MAX_PIXELS_WIDE / 2400))
    assert compacted == compact_png(png(photo)) and len(compacted) < len(png(photo)) / 2


def test_pair_grid_shows_left_and_right_of_each_pair():
    fig = pair_grid(make_demo_pairs(5, 16), indices=[0, 3, 4], cols=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 2 * 2 * 2 and len(shown) == 6
    assert [ax.get_title() for ax in shown[:2]] == ["demo00000 L", "demo00000 R"]
    plt.close(fig)


def test_demo_folder_then_check(tmp_path, capsys):
    assert main(["-q", "demo", "--n-pairs", "4", "--size", "32", "--out", str(tmp_path / "demo")]) == 0
    assert main(["-q", "check", "--data", str(tmp_path / "demo")]) == 0
    assert "OK: demo (official layout, 4 pairs)" in capsys.readouterr().out
    (tmp_path / "demo" / "right" / "demo00002.png").unlink()
    assert main(["-q", "check", "--data", str(tmp_path / "demo")]) == 1
    assert "left/demo00002.png" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_figure(tmp_path, capsys):
    assert main(["-q", "demo", "--n-pairs", "4", "--size", "32", "--cols", "2", "--rows", "2",
                 "--figure", str(tmp_path / "figs" / "demo_pairs")]) == 0
    assert (tmp_path / "figs" / "demo_pairs.png").stat().st_size > 1000
