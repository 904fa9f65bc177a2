"""One figure style for the whole project, `save_fig`, and the pictures of pairs.

>>> from ttl_utils.demo import make_demo_pairs
>>> fig = pair_grid(make_demo_pairs(4, 64), n=4)   # doctest: +SKIP
>>> save_fig(fig, "01_pairs")                        # doctest: +SKIP
[PosixPath('.../figures/01_pairs.pdf'), PosixPath('.../figures/01_pairs.png')]
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .config import artifacts_dir, get_profile, project_root
from .pairs import PairSet

__all__ = ["set_theme", "save_fig", "pair_grid", "figures_dir", "rank_histogram_plot", "cmc_plot", "history_plot"]

# Fixed metadata: saving the same figure twice gives the same bytes.
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
_PNG_METADATA = {"Software": None}


def set_theme() -> None:
    """Apply the project's presentation theme: readable on a slide, vector-friendly PDFs."""
    sns.set_theme(context="talk", style="whitegrid", palette="colorblind", font_scale=0.8)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,   # TrueType, so text in the PDF stays text
        "svg.hashsalt": "ttl",
        "axes.titleweight": "bold",
    })


def figures_dir() -> Path:
    """Return the folder figures are saved in.

    `$TTL_FIGURES` if set; the `smoke` profile (tests) writes under `artifacts/`, so a test
    run never overwrites the presentation figures; otherwise `<project root>/figures`.
    """
    if folder := os.environ.get("TTL_FIGURES"):
        return Path(folder)
    if get_profile().name == "smoke":
        return artifacts_dir() / "figures-smoke"
    return project_root() / "figures"


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None) -> list[Path]:
    """Save `fig` as `figures/<name>.pdf` and `.png` (200 dpi) and return the two paths."""
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.pdf", folder / f"{name}.png"]
    fig.savefig(paths[0], metadata=_PDF_METADATA)
    fig.savefig(paths[1], metadata=_PNG_METADATA)
    return paths


def pair_grid(pairs: PairSet, indices: list[int] | np.ndarray | None = None, n: int = 8,
              cols: int = 4, seed: int = 0, title: str | None = None) -> plt.Figure:
    """Return a figure of pairs side by side (left | right), `cols` pairs a row.

    Shows `indices`, else `n` pairs drawn at random with `seed`.
    """
    if indices is None:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(len(pairs), size=min(n, len(pairs)), replace=False))
    indices = list(indices)
    rows = -(-len(indices) // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(1.4 * 2 * cols, 1.65 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.04, "hspace": 0.25})
    for ax in axes.flat:
        ax.axis("off")
    for k, i in enumerate(indices):
        row, col = divmod(k, cols)
        for side, image in enumerate((pairs.left_image(i), pairs.right_image(i))):
            ax = axes[row, 2 * col + side]
            ax.imshow(np.asarray(image))
            ax.set_title(f"{pairs.ids[i]} {'L' if side == 0 else 'R'}", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def rank_histogram_plot(ranks: dict[str, np.ndarray], n_items: int, bins: int = 25, ax: plt.Axes | None = None) -> plt.Axes:
    """Plot where the true match lands, one histogram a model: the "frequency vector" binned.

    A useful model piles its matches at rank 1; chance spreads them evenly (dashed line).
    """
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    edges = np.linspace(1, n_items + 1, bins + 1)
    for name, r in ranks.items():
        ax.hist(r, bins=edges, histtype="step", linewidth=2, label=name)
    ax.axhline(len(next(iter(ranks.values()))) / bins, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel=f"rank of the true match (among {n_items})", ylabel="queries", title="Where the true match lands")
    ax.legend()
    return ax


def cmc_plot(curves: dict[str, np.ndarray], max_rank: int | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Plot cumulative match curves (recall@k against k), one a model, with chance."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for name, curve in curves.items():
        k = np.arange(1, len(curve) + 1)
        ax.plot(k[:max_rank], curve[:max_rank], linewidth=2, label=name)
    n = len(next(iter(curves.values())))
    k = np.arange(1, (max_rank or n) + 1)
    ax.plot(k, k / n, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="k", ylabel="recall@k", title="Cumulative match curve", ylim=(0, 1))
    ax.legend()
    return ax


def history_plot(history: list[dict], metrics: tuple[str, ...] = ("loss", "R@25")) -> plt.Figure:
    """Plot training curves, train against val, one panel a metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes[0], metrics):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key in history[0]:
                ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=split)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.legend()
    fig.tight_layout()
    return fig
