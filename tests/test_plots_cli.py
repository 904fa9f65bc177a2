"""Figures (saved as PDF and PNG with stable bytes) and the command line."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ttl_utils.cli import main  # noqa: E402
from ttl_utils.config import Figures  # noqa: E402
from ttl_utils.data.demo import make_demo_pairs  # noqa: E402
from ttl_utils.present.pictures import pair_grid  # noqa: E402
from ttl_utils.present.plots import save_fig, set_theme  # noqa: E402


@pytest.mark.slow
def test_save_fig_writes_pdf_and_png_with_the_same_bytes_each_time(isolated_project):
    set_theme()
    fig = pair_grid(make_demo_pairs(6, 32), n=6, cols=3)
    figures = Figures(isolated_project / "figures")
    paths = save_fig(fig, "01_pairs", figures)
    assert [p.name for p in paths] == ["01_pairs.pdf", "01_pairs.png"]
    assert all(p.parent == isolated_project / "figures" for p in paths)
    first = [p.read_bytes() for p in paths]
    save_fig(fig, "01_pairs", figures)
    assert [p.read_bytes() for p in paths] == first
    plt.close(fig)


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
    assert main(["-q", "check", "--data", str(tmp_path / "demo")]) == 2
    assert "left/demo00002.png" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_figure(tmp_path, capsys):
    assert main(["-q", "demo", "--n-pairs", "4", "--size", "32", "--cols", "2", "--rows", "2",
                 "--figure", str(tmp_path / "figs" / "demo_pairs")]) == 0
    assert (tmp_path / "figs" / "demo_pairs.png").stat().st_size > 1000
