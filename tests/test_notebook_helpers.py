"""Helpers notebooks rely on: setup, the result cache, the figure folder, the plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ttl_utils.config import get_profile  # noqa: E402
from ttl_utils.notebook import setup  # noqa: E402
from ttl_utils.plots import cmc_plot, figures_dir, history_plot, rank_histogram_plot  # noqa: E402
from ttl_utils.retrieval import cmc_curve  # noqa: E402
from ttl_utils.storage import cache_path, cached  # noqa: E402


def test_setup_prints_profile_and_dataset_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    profile, pairs = setup()
    out = capsys.readouterr().out
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
    import ttl_utils.plots as plots

    monkeypatch.setattr(plots, "_figures_folder", None)
    monkeypatch.setenv("TTL_PROFILE", "cpu")  # a papermill run that passes PROFILE="smoke" but leaves the environment
    setup("smoke")
    fig = plt.figure()
    paths = plots.save_fig(fig, "probe")
    plt.close(fig)
    assert paths[0].parent == isolated_project.resolve() / "artifacts" / "figures-smoke"
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


def _run_notebooks_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_runs_never_write_over_the_real_outputs(monkeypatch, isolated_project, tmp_path):
    tool = _run_notebooks_tool()
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


def test_every_saved_figure_names_its_data_and_profile(isolated_project):
    import ttl_utils.plots as plots

    setup("smoke")
    fig = plt.figure()
    paths = plots.save_fig(fig, "probe")
    plots.save_fig(fig, "probe-again")  # saved twice: stamped once
    stamps = [t.get_text() for t in fig.texts]
    plt.close(fig)
    assert stamps == ["demo data, 200 pairs · smoke profile"]
    assert paths[0].parent == isolated_project.resolve() / "artifacts" / "figures-smoke"
