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

from .config import Profile, artifacts_dir, project_root
from .pairs import PairSet
from .transforms import denormalise

__all__ = ["set_theme", "save_fig", "pair_grid", "figures_dir", "rank_histogram_plot", "cmc_plot", "history_plot",
           "view_grid", "embedding_map", "rank_change_grid"]

# Fixed metadata: saving the same figure twice gives the same bytes.
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
_PNG_METADATA = {"Software": None}


_figures_folder: Path | None = None  # where `save_fig` writes by default: set by `set_theme`


def set_theme(figures: str | Path | None = None) -> None:
    """Apply the project's presentation theme: readable on a slide, vector-friendly PDFs.

    `figures` becomes the folder `save_fig` writes to (notebooks: `figures_dir(profile)`).
    """
    global _figures_folder
    if figures is not None:
        _figures_folder = Path(figures)
    sns.set_theme(context="talk", style="whitegrid", palette="colorblind", font_scale=0.8)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,   # TrueType, so text in the PDF stays text
        "svg.hashsalt": "ttl",
        "axes.titleweight": "bold",
    })


def figures_dir(profile: Profile) -> Path:
    """Return the folder the figures of a run with `profile` are saved in.

    `$TTL_FIGURES` if set; the `smoke` profile (tests) writes under `artifacts/`, so a test
    run never overwrites the presentation figures; otherwise `<project root>/figures`.
    """
    if folder := os.environ.get("TTL_FIGURES"):
        return Path(folder)
    if profile.name == "smoke":
        return artifacts_dir() / "figures-smoke"
    return project_root() / "figures"


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None) -> list[Path]:
    """Save `fig` as `<folder>/<name>.pdf` and `.png` (200 dpi) and return the two paths.

    The folder defaults to the one `set_theme` was given, else `<project root>/figures`.
    """
    folder = Path(folder) if folder is not None else _figures_folder or project_root() / "figures"
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


def view_grid(rows: dict[str, list]) -> plt.Figure:
    """Return a grid of normalised image tensors, one row a label (e.g. "view 1", "view 2"), same-length rows."""
    labels = list(rows)
    cols = len(rows[labels[0]])
    fig, axes = plt.subplots(len(labels), cols, figsize=(13 / 6 * cols, 2.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        for c, view in enumerate(rows[label]):
            axes[r, c].imshow(denormalise(view))
            axes[r, c].axis("off")
        axes[r, 0].set_title(label, loc="left")
    fig.tight_layout()
    return fig


def embedding_map(left, right, ax: plt.Axes, title: str) -> plt.Axes:
    """Plot pairs in the plane of the embeddings' first two principal components: left images as
    dots, right images as crosses, a grey line between partners."""
    import torch

    both = torch.cat([left, right])
    centred = both - both.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()
    left_xy, right_xy = xy[:len(left)], xy[len(left):]
    for (x0, y0), (x1, y1) in zip(left_xy, right_xy):
        ax.plot([x0, x1], [y0, y1], color="grey", linewidth=0.8, alpha=0.6)
    ax.scatter(*left_xy.T, marker="o", s=25, label="left")
    ax.scatter(*right_xy.T, marker="x", s=25, label="right")
    ax.set(title=title, xticks=[], yticks=[])
    return ax


def rank_change_grid(pairs: PairSet, before: np.ndarray, after: np.ndarray, n: int = 4) -> plt.Figure:
    """Return two rows of pairs: the `n` whose partner moved up the most from `before` to `after` ranks
    ("fixed") and the `n` that moved down the most ("broken"), each titled with its two ranks."""
    change = np.asarray(before) - np.asarray(after)  # positive: the partner moved up
    order = np.argsort(-change, kind="stable")
    shown = {"fixed": order[:n], "broken": order[::-1][:n]}
    fig, axes = plt.subplots(2, 2 * n, figsize=(4 * n, 4.8))
    for row, (label, indices) in enumerate(shown.items()):
        for col, i in enumerate(indices):
            for side, image in enumerate((pairs.left_image(i), pairs.right_image(i))):
                ax = axes[row, 2 * col + side]
                ax.imshow(image)
                ax.axis("off")
            axes[row, 2 * col].set_title(f"{label}: {before[i]} -> {after[i]}", loc="left", fontsize=10)
    fig.tight_layout()
    return fig
