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
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from .config import Profile, artifacts_dir, project_root
from .pairs import PairSet
from .retrieval import cmc_band
from .transforms import denormalise

__all__ = ["set_theme", "save_fig", "pair_grid", "figures_dir", "figure_stamp", "rank_histogram_plot", "cmc_plot", "history_plot",
           "view_grid", "embedding_map", "rank_change_grid", "image_statistics", "near_duplicate_grid",
           "faithfulness_curves", "rank_frequency_plot", "cmc_band_plot",
           "comparison_figures", "disagreement_grid", "lookalike_grid"]

# Fixed metadata: saving the same figure twice gives the same bytes.
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
_PNG_METADATA = {"Software": None}


_figures_folder: Path | None = None  # where `save_fig` writes by default: set by `set_theme`
_stamp: str | None = None  # the data and profile every saved figure names: set by `set_theme`


def set_theme(figures: str | Path | None = None, stamp: str | None = None) -> None:
    """Apply the project's presentation theme: readable on a slide, vector-friendly PDFs.

    `figures` becomes the folder `save_fig` writes to (notebooks: `figures_dir(profile, demo)`);
    `stamp` the small line under every saved figure that says what data and profile it shows
    (`figure_stamp`), so a slide cannot be mistaken.
    """
    global _figures_folder, _stamp
    if figures is not None:
        _figures_folder = Path(figures)
    if stamp is not None:
        _stamp = stamp
    sns.set_theme(context="talk", style="whitegrid", palette="colorblind", font_scale=0.8)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,   # TrueType, so text in the PDF stays text
        "svg.hashsalt": "ttl",
        "axes.titleweight": "bold",
    })


def figures_dir(profile: Profile, demo: bool = False) -> Path:
    """Return the folder the figures of a run with `profile` are saved in (`demo`: on the demo data).

    `$TTL_FIGURES` if set; the `smoke` profile (tests) writes under `artifacts/figures-smoke`
    and a run on the demo data under `artifacts/figures-demo-<profile>`, so neither ever
    overwrites the presentation figures of real pairs; otherwise `<project root>/figures`.
    """
    if folder := os.environ.get("TTL_FIGURES"):
        return Path(folder)
    if profile.name == "smoke":
        return artifacts_dir() / "figures-smoke"
    if demo:
        return artifacts_dir() / f"figures-demo-{profile.name}"
    return project_root() / "figures"


def figure_stamp(pairs: PairSet, profile: Profile) -> str:
    """Return the line that names a figure's data and profile, e.g. "demo data, 200 pairs · smoke"."""
    what = "demo data" if pairs.layout == "demo" else pairs.name.split("/")[0]
    return f"{what}, {len(pairs)} pairs · {profile.name} profile"


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None, stamp: str | None = None) -> list[Path]:
    """Save `fig` as `<folder>/<name>.pdf` and `.png` (200 dpi) and return the two paths.

    The folder defaults to the one `set_theme` was given, else `<project root>/figures`; the
    stamp (what data and profile the figure shows) to the one `set_theme` was given.
    """
    folder = Path(folder) if folder is not None else _figures_folder or project_root() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.pdf", folder / f"{name}.png"]
    stamp = stamp if stamp is not None else _stamp
    if stamp and not any(getattr(t, "_ttl_stamp", False) for t in fig.texts):
        # under the figure, right-aligned: the tight bounding box grows to hold it, nothing is covered
        label = fig.text(0.995, 0.0, stamp, ha="right", va="top", fontsize=8, color="0.45")
        label._ttl_stamp = True
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


def image_statistics(images: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Return three panels comparing the sides of `explore.image_table`'s rows: aspect ratios,
    saturation, and each side's share of greyscale images (a bar in the side's mean colour, from
    `explore.image_summary`)."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for side, part in images.groupby("side"):
        axes[0].hist(part.aspect, bins=30, histtype="step", linewidth=2, label=side)
        axes[1].hist(part.saturation, bins=30, histtype="step", linewidth=2, label=side)
    axes[0].set(xlabel="width / height", ylabel="images", title="Aspect ratio")
    axes[1].set(xlabel="mean saturation", title="Saturation")
    for k, side in enumerate(("left", "right")):
        colour = summary.loc[side, ["mean_r", "mean_g", "mean_b"]].to_numpy() / 255
        axes[2].bar(k, summary.loc[side, "greyscale_share"], color=colour, edgecolor="black")
    axes[2].set(xticks=[0, 1], xticklabels=["left", "right"], ylabel="share of greyscale images",
                title="Greyscale share (bar = mean colour)")
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    return fig


def near_duplicate_grid(pairs: PairSet, duplicates: pd.DataFrame, n: int = 4) -> plt.Figure:
    """Return the first `n` rows of `explore.near_duplicates` as pictures, the two images of a row side
    by side, each titled with its pair id, side and cosine."""
    shown = duplicates.head(n)
    if not len(shown):
        raise ValueError("No near-duplicates to show; lower the threshold of explore.near_duplicates.")
    sides = {"within pair": ("left", "right"), "left-left": ("left", "left"), "right-right": ("right", "right")}
    fig, axes = plt.subplots(len(shown), 2, figsize=(5, 2.6 * len(shown)), squeeze=False)
    for row, dup in zip(axes, shown.itertuples()):
        for ax, pair_id, side in zip(row, (dup.a, dup.b), sides[dup.kind]):
            i = pairs.index_of([pair_id])[0]
            ax.imshow(pairs.left_image(i) if side == "left" else pairs.right_image(i))
            ax.set_title(f"{pair_id} {side} (cos {dup.cosine:.2f})", fontsize=9)
            ax.axis("off")
    return fig


def faithfulness_curves(table: pd.DataFrame) -> plt.Figure:
    """Return the mean deletion and insertion curves of each method of `saliency.faithfulness_table`'s
    rows (as a DataFrame), side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    fractions = np.linspace(0, 1, len(table.deletion.iloc[0]))
    for method, part in table.groupby("method", sort=False):
        axes[0].plot(fractions, np.mean(part.deletion.tolist(), axis=0), label=method.replace("_", " "))
        axes[1].plot(fractions, np.mean(part.insertion.tolist(), axis=0), label=method.replace("_", " "))
    axes[0].set(xlabel="share of A's pixels blackened (most salient first)", ylabel="similarity to B", title="Deletion")
    axes[1].set(xlabel="share of A's pixels revealed (most salient first)", title="Insertion")
    axes[1].legend(fontsize=9)
    fig.tight_layout()
    return fig


def rank_frequency_plot(ranks: dict[str, np.ndarray], top: int = 25, ax: plt.Axes | None = None,
                        title: str | None = None) -> plt.Axes:
    """Plot the study's "frequency vector" for several models side by side: how many queries found
    the partner at rank 1, 2, ..., `top`, then one bar for every rank beyond. Counts, not shares;
    the legend gives each model's count at rank 1. When the last bar dwarfs the others, the axis
    is cut above ranks 1 to `top` and the last bars are written with their counts."""
    ax = ax or plt.subplots(figsize=(12, 4.5))[1]
    names = list(ranks)
    width = 0.8 / len(names)
    positions = np.arange(1, top + 2)
    highest, beyond = 0, []
    for j, name in enumerate(names):
        r = np.asarray(ranks[name])
        counts = np.append(np.bincount(np.minimum(r, top + 1) - 1, minlength=top + 1)[:top], (r > top).sum())
        x = positions - 0.4 + width * (j + 0.5)
        ax.bar(x, counts, width=width, label=f"{name}: {counts[0]} at rank 1")
        highest, beyond = max(highest, int(counts[:top].max(initial=0))), beyond + [(x[-1], int(counts[-1]))]
    cut = 1.3 * max(highest, 1)
    if max(count for _, count in beyond) > 1.5 * cut:  # keep ranks 1..top readable
        ax.set_ylim(0, cut)
        for x, count in beyond:
            ax.text(x, cut * 0.98, str(count), rotation=90, ha="center", va="top", fontsize=8, color="white",
                    fontweight="bold")
    n = len(next(iter(ranks.values())))
    ax.set_xticks(positions, [str(k) if k in (1, 5, 10, 15, 20) else "" for k in positions[:-1]] + [f"{top + 1}+"])
    ax.set(xlabel="rank of the true partner", ylabel="queries",
           title=title or f"Where the true partner lands ({n} queries)", xlim=(0.4, top + 1.6))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=10)
    return ax


def cmc_band_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], ax: plt.Axes | None = None,
                  title: str = "Cumulative match curve") -> plt.Axes:
    """Plot recall@k against k (log axis), one line a model with its bootstrap band
    (`retrieval.cmc_band`'s `(curve, low, high)`), and chance."""
    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    for name, (curve, low, high) in curves.items():
        k = np.arange(1, len(curve) + 1)
        line, = ax.plot(k, curve, linewidth=2, label=name)
        ax.fill_between(k, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    n = len(next(iter(curves.values()))[0])
    k = np.arange(1, n + 1)
    ax.plot(k, k / n, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log")
    ticks = [t for t in (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000) if t <= n]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel=f"k (of {n} candidates)", ylabel="recall@k", title=title, ylim=(0, 1), xlim=(1, n))
    ax.legend(fontsize=9, loc="upper left")
    return ax


def comparison_figures(ranks: dict[str, np.ndarray], n_items: int, about: str = "",
                       n_bootstrap: int = 200) -> tuple[plt.Figure, plt.Figure]:
    """Return the two figures of a comparison (`compare --figure`, notebook 06): the frequency
    vector side by side (ranks 1-25, then 26+) and the CMC curves with 95% bootstrap bands."""
    n = len(next(iter(ranks.values())))
    suffix = f": {about}" if about else ""
    hist = rank_frequency_plot(ranks, title=f"Where the true partner lands, {n} queries among {n_items}{suffix}")
    hist.figure.tight_layout()
    bands = {name: cmc_band(r, n_items, n=n_bootstrap) for name, r in ranks.items()}
    cmc = cmc_band_plot(bands, title="Cumulative match curve" + (f"\n{about}" if about else ""))
    cmc.figure.tight_layout()
    return hist.figure, cmc.figure


def disagreement_grid(pairs: PairSet, rows: dict[str, np.ndarray], ranks: dict[str, np.ndarray],
                      n: int = 4) -> plt.Figure:
    """Return one row of pairs per `rows` entry (a label and query indices, e.g. from
    `compare.disagreements`), at most `n` a row, each titled with every model's rank of the partner."""
    fig, axes = plt.subplots(len(rows), 2 * n, figsize=(3.2 * n, 2.9 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (label, indices) in enumerate(rows.items()):
        axes[row, 0].set_title(label if len(indices) else f"{label} (none on these pairs)", loc="left", fontsize=11,
                               fontweight="bold", pad=22)
        for col, i in enumerate(list(indices)[:n]):
            for side, image in enumerate((pairs.left_image(i), pairs.right_image(i))):
                axes[row, 2 * col + side].imshow(image)
            ranks_text = ", ".join(f"{name} {int(r[i])}" for name, r in ranks.items())
            axes[row, 2 * col].text(0, -0.04, f"{pairs.ids[i]}: {ranks_text}", transform=axes[row, 2 * col].transAxes,
                                    fontsize=8, va="top")
    fig.subplots_adjust(wspace=0.05, hspace=0.45)
    return fig


def lookalike_grid(rows: list[dict], preprocessing, signed: bool = False) -> plt.Figure:
    """Return one row per query: the query, then its matches titled with rank, label and cosine, each
    picture as the model sees it (`preprocessing`'s resize and centre crop).

    Each row is `{"query": image, "title": str, "matches": [(image, caption), ...]}`, and with
    `"maps": [(map_query, map_match), ...]` each match is shown twice, the query and the match,
    with the saliency of their similarity over each (`saliency.overlay`; `signed` for signed maps).
    """
    from .saliency import overlay

    def view(image) -> np.ndarray:
        return denormalise(preprocessing(image.convert("RGB")), preprocessing.mean, preprocessing.std)

    explained = any("maps" in row for row in rows)
    per_match = 2 if explained else 1
    cols = 1 + per_match * max(len(row["matches"]) for row in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.6 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        query = view(row["query"])
        axes[r, 0].imshow(query)
        axes[r, 0].set_title(row["title"], fontsize=9, fontweight="bold")
        for k, (image, caption) in enumerate(row["matches"]):
            col = 1 + per_match * k
            if explained:
                map_query, map_match = row["maps"][k]
                overlay(axes[r, col], query, map_query, signed)
                overlay(axes[r, col + 1], view(image), map_match, signed)
                axes[r, col].set_title("why: in the query", fontsize=8)
            else:
                axes[r, col + per_match - 1].imshow(view(image))
            axes[r, col + per_match - 1].set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig
