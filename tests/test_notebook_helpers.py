"""Helpers notebooks rely on: setup, the result cache, the figure folder, the plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ttl_utils.cache import cache_path, cached  # noqa: E402
from ttl_utils.config import Figures, figures_dir, get_profile  # noqa: E402
from ttl_utils.evaluate.metrics import cmc_curve  # noqa: E402
from ttl_utils.notebook import setup  # noqa: E402
from ttl_utils.present.plots import cmc_plot, history_plot, rank_histogram_plot, save_fig  # noqa: E402


@pytest.mark.slow
def test_setup_prints_profile_and_dataset_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    run = setup()
    out = capsys.readouterr().out
    assert run.profile.name == "smoke" and len(run.pairs) == 200
    assert run.figures.stamp == "demo data, 200 pairs · smoke profile"
    assert "Profile: smoke" in out and "Dataset: demo-64px-seed0 (demo layout, 200 pairs)" in out
    first = torch.rand(1)
    setup()
    assert torch.equal(torch.rand(1), first)


def test_cached_computes_once(isolated_project):
    calls = []

    def compute():
        calls.append(1)
        return {"ranks": torch.arange(3), "history": [{"loss": 0.5}]}

    first = cached("demo", compute, profile="smoke", config={"a": 1})
    second = cached("demo", compute, profile="smoke", config={"a": 1})
    assert len(calls) == 1 and torch.equal(first["ranks"], second["ranks"]) and second["history"] == [{"loss": 0.5}]
    cached("demo", compute, profile="smoke", config={"a": 2})
    assert len(calls) == 2
    assert cache_path("demo", profile="smoke", config={"a": 1}).parent == isolated_project.resolve() / "artifacts" / "demo"


def test_smoke_figures_never_overwrite_the_presentation_figures(monkeypatch, isolated_project, tmp_path):
    assert figures_dir(get_profile("smoke")) == isolated_project.resolve() / "artifacts" / "figures-smoke"
    assert figures_dir(get_profile("cpu")) == isolated_project.resolve() / "figures"
    monkeypatch.setenv("TTL_FIGURES", str(tmp_path / "mine"))
    assert figures_dir(get_profile("smoke")) == tmp_path / "mine"


def test_setup_sends_figures_where_its_profile_says_not_where_the_environment_says(monkeypatch, isolated_project):
    monkeypatch.setenv("TTL_PROFILE", "cpu")  # a papermill run that passes PROFILE="smoke" but leaves the environment
    run = setup("smoke")
    fig = plt.figure()
    path = save_fig(fig, "probe", run.figures)
    plt.close(fig)
    assert path.parent == isolated_project.resolve() / "artifacts" / "figures-smoke"
    assert not (isolated_project / "figures").exists()


def test_plots_draw_one_line_per_model():
    ranks = {"a": np.array([1, 1, 2, 5]), "b": np.array([3, 4, 5, 5])}
    ax = rank_histogram_plot(ranks, n_items=5, bins=5)
    assert len(ax.patches) == 2 and "among 5" in ax.get_xlabel()
    ax = cmc_plot({k: cmc_curve(v, 5) for k, v in ranks.items()})
    assert [line.get_label() for line in ax.lines] == ["a", "b", "chance"]
    fig = history_plot([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}, {"epoch": 2, "train_loss": 0.8, "val_loss": 1.1}],
                       metrics=("loss",))
    assert len(fig.axes[0].lines) == 2
    plt.close("all")


def _tool(name: str = "run_notebooks"):
    """Return the module of `tools/<name>.py` (the tools are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_runs_never_write_over_the_real_outputs(monkeypatch, isolated_project, tmp_path):
    tool = _tool()
    monkeypatch.setenv("TTL_PROFILE", "cpu")
    notebooks, figures, data = tool.output_folders()  # no real pairs here: the demo data
    artifacts = isolated_project.resolve() / "artifacts"
    assert (notebooks, figures, data) == (artifacts / "notebooks-demo-cpu", artifacts / "figures-demo-cpu",
                                          "the demo data")
    assert figures_dir(get_profile("cpu"), demo=True) == artifacts / "figures-demo-cpu"
    monkeypatch.setenv("TTL_DATA", str(tmp_path / "real"))
    notebooks, figures, data = tool.output_folders()
    assert notebooks == tool.NOTEBOOKS and figures == isolated_project.resolve() / "figures"
    assert data == f"real pairs at {tmp_path / 'real'}"
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    assert tool.output_folders()[0] == artifacts / "notebooks-smoke-smoke"


@pytest.mark.slow
def test_every_saved_figure_names_its_data_and_profile(isolated_project):
    run = setup("smoke")
    fig = plt.figure()
    path = save_fig(fig, "probe", run.figures)
    save_fig(fig, "probe-again", run.figures)  # saved twice: stamped once
    stamps = [t.get_text() for t in fig.texts]
    plt.close(fig)
    assert stamps == ["demo data, 200 pairs · smoke profile"]
    assert path.parent == isolated_project.resolve() / "artifacts" / "figures-smoke"


def test_real_ttl_pairs_are_stamped_as_such_and_notebooks_print_no_local_path(official):
    from ttl_utils.data.folders import load_pairs
    from ttl_utils.notebook import figure_stamp

    pairs = load_pairs(official)
    assert figure_stamp(pairs, get_profile("cpu")) == "real TTL pairs (ttl), 6 pairs · cpu profile"
    assert str(official) in pairs.describe() and str(official) not in pairs.describe(where=False)
    assert pairs.describe(where=False) == "ttl (official layout, 6 pairs)"


def test_distance_histograms_show_partners_and_others_with_their_means():
    from ttl_utils.evaluate.ranking import distances_to_partners
    from ttl_utils.present.plots import distance_histograms

    left = torch.eye(4)
    partner, others = distances_to_partners(left, left.clone())
    assert partner.shape == (4,) and others.shape == (12,)
    fig, ax = plt.subplots()
    distance_histograms(partner, others, ax, "probe")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["to its partner (mean 0.00)", "to every other image (mean 1.41)"]
    assert [line.get_xdata()[0] for line in ax.lines] == pytest.approx([0.0, 2 ** 0.5])
    plt.close(fig)


def test_cue_plot_shows_each_cue_and_a_bar_a_subset_with_its_interval():
    import pandas as pd
    from PIL import Image

    from ttl_utils.present.pictures import cue_plot

    rows = [{"subset": s, "cue": c, "pairs": n, "R@1": 0.1, "margin": 0.1, "margin lost": lost, "low": lost - 0.1,
             "high": lost + 0.1}
            for s, n in (("faces", 10), ("generic", 5)) for c, lost in (("original", 0.0), ("greyscale", 0.2), ("edges", 0.6))]
    table = pd.DataFrame(rows).set_index(["subset", "cue"])
    image = Image.new("RGB", (8, 8))
    fig = cue_plot(table, {"original": image, "greyscale": image, "edges": image})
    pictures, bars = fig.axes[:3], fig.axes[3]
    assert [ax.get_title() for ax in pictures] == ["original", "greyscale", "edges"]
    assert [round(p.get_height()) for p in bars.patches] == [20, 60, 20, 60]  # 'original' is not a bar
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["faces (10 pairs)", "generic (5 pairs)"]
    plt.close(fig)


def test_a_grid_title_sits_above_the_panel_titles():
    from ttl_utils.data.demo import make_demo_pairs
    from ttl_utils.present.pictures import pair_grid

    fig = pair_grid(make_demo_pairs(4, 16), n=4, cols=4, title="Pairs")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title_bottom = fig._suptitle.get_window_extent(renderer).y0
    assert all(ax.title.get_window_extent(renderer).y1 <= title_bottom for ax in fig.axes)
    plt.close(fig)


@pytest.mark.slow
def test_every_notebook_code_cell_carries_its_nbval_tag():
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "tag_notebooks.py"
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip() == "0 cell(s) to tag."


def test_the_stamp_sits_under_the_axis_labels(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    fig.subplots_adjust(bottom=0.02)  # the x label hangs below the figure's edge
    ax.set_xlabel("a label that reaches below the figure")
    save_fig(fig, "probe", Figures(tmp_path, stamp="demo data, 4 pairs · smoke profile"))
    renderer = fig.canvas.get_renderer()
    stamp = [t for t in fig.texts if getattr(t, "_ttl_stamp", False)][0]
    assert stamp.get_window_extent(renderer).y1 <= ax.xaxis.label.get_window_extent(renderer).y0
    plt.close(fig)


@pytest.mark.slow
def test_learned_distance_variants_train_each_head_once_and_table_them(isolated_project):
    from ttl_utils.data.demo import make_demo_pairs
    from ttl_utils.pipeline import learned_distance_variants
    from ttl_utils.train.recipes import PairTrainingConfig

    profile, pairs = get_profile("smoke"), make_demo_pairs(60, 32)
    base = PairTrainingConfig.for_profile(profile, epochs=1)
    table, heads = learned_distance_variants(profile, pairs, base, np.ones(12, dtype=int))
    assert list(table.index) == ["cosine (frozen), no training", *heads] and len(heads) == 6
    assert table.loc["cosine (frozen), no training", "test R@1"] == 1.0
    assert np.isnan(table.loc["cosine (frozen), no training", "val R@25"]) and table.loc[list(heads), "val R@25"].notna().all()
    assert len(list((isolated_project / "artifacts" / "pair_classifier").glob("*.pt"))) == 6


def test_executed_notebooks_are_written_light(monkeypatch, isolated_project):
    import base64
    import io

    import nbformat
    from PIL import Image

    tool = _tool()
    wide = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 2000, 3), dtype=np.uint8)).save(wide, "PNG")
    cell = nbformat.v4.new_code_cell("plt.show()", metadata={"execution": {"iopub.execute_input": "2026-12-02T10:00"}})
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(wide.getvalue()).decode()})]
    light = tool.lighten(nbformat.v4.new_notebook(cells=[cell]))
    assert "execution" not in light.cells[0].metadata
    with Image.open(io.BytesIO(base64.b64decode(light.cells[0].outputs[0].data["image/png"]))) as image:
        assert image.width == tool.NOTEBOOK_PICTURE_WIDTH and image.height == 150


def test_nbval_groups_keep_the_notebooks_that_share_trained_runs_in_one_process():
    from pathlib import Path

    tool = _tool("nbval_groups")
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))
    groups = tool.notebook_groups(notebooks)
    assert [[notebook.name[:2] for notebook in group] for group in groups] == [["01", "03"],
                                                                                ["02", "04", "05", "06", "07"]]
    assert tool.notebook_groups(notebooks, workers=1) == [notebooks]
    assert [tool.exit_status(codes) for codes in ([0, 0], [0, 1], [-9, 0], [2, 1])] == [0, 1, 1, 2]  # -9: killed


@pytest.mark.slow
def test_nbval_groups_run_at_once_and_a_failing_notebook_fails_the_run(tmp_path, capsys, monkeypatch):
    import nbformat

    tool = _tool("nbval_groups")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # each group's kernels get one thread whatever was set
    cells = {"01_alone.ipynb": ["import os\nassert os.environ['OMP_NUM_THREADS'] == '1'"],
             "02_trains.ipynb": ["def finetuned():\n    raise RuntimeError('training failed')", "finetuned()"]}
    for name, sources in cells.items():
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), tmp_path / name)
    assert tool.main([str(tmp_path), "--", "-W", "ignore"]) == 1
    out = capsys.readouterr().out
    assert "== notebooks 01: exit 0" in out and "== notebooks 02: exit 1" in out
    assert "\n1 passed in" in out and "\n1 failed, 1 passed in" in out and "training failed" in out
    assert tool.main([str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none'}: no such folder\n"
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty")]) == 2 and "no numbered notebooks" in capsys.readouterr().err
