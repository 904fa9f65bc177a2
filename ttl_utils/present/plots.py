"""One figure style for the whole project, `save_fig`, and the charts of ranks, curves and statistics.

Pictures (grids of image pairs, saliency overlays, look-alikes) are drawn by `pictures`.
Nothing here computes a result or imports torch: every function draws numbers it is given.

>>> fig = plt.figure()
>>> save_fig(fig, "01_pairs", Figures(Path("figures"), stamp="demo data, 200 pairs"))   # doctest: +SKIP
PosixPath('figures/01_pairs.png')
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from ..config import Figures
from ..evaluate.metrics import cmc_band
from ..storage import atomic_write

__all__ = ["MAX_PIXELS_WIDE", "budget_curve", "cmc_band_plot", "cmc_plot", "compact_png", "comparison_figures",
           "distance_histograms", "faithfulness_curves", "history_plot", "image_statistics", "pseudo_label_plot",
           "rank_frequency_plot", "rank_histogram_plot", "save_fig", "set_theme", "title_above"]

MAX_PIXELS_WIDE = 1600  # a figure's width on a projector: more would only cost bytes in every clone
MAX_DPI = 200
PALETTE_OVER = 300 * 1024  # a PNG larger than this (a photograph) is stored in 256 dithered colours


def set_theme() -> None:
    """Apply the project's presentation theme: readable on a slide."""
    sns.set_theme(context="talk", style="whitegrid", palette="colorblind", font_scale=0.8)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,   # TrueType, so text in the PDF stays text
        "svg.hashsalt": "ttl",
        "axes.titleweight": "bold",
    })


def compact_png(data: bytes, max_width: int = MAX_PIXELS_WIDE) -> bytes:
    """Return the PNG `data` no wider than `max_width` pixels and, when it is still over
    `PALETTE_OVER` bytes (photographs), in 256 colours chosen for it with Floyd-Steinberg
    dithering: about a third of the bytes, no banding on a face. The same input gives the same bytes."""
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    if out.tell() > PALETTE_OVER:
        palette = picture.quantize(256, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(out, "PNG", optimize=True)
    return out.getvalue()


def save_fig(fig: plt.Figure, name: str, figures: Figures, stamp: bool = True) -> Path:
    """Save `fig` as `<figures.folder>/<name>.png`, at most `MAX_PIXELS_WIDE` pixels wide (200 dpi
    for smaller figures), compacted (`compact_png`) and written atomically; return its path.

    With `figures.stamp` (what data and profile the figure shows), a small line under
    everything drawn says it, so a slide cannot be mistaken; `stamp=False` leaves it off (the
    text-free pictures the slides place on a page that carries its own stamp).
    """
    path = Path(figures.folder) / f"{name}.png"
    stamp = figures.stamp if stamp else None
    if stamp and not any(getattr(t, "_ttl_stamp", False) for t in fig.texts):
        # under everything drawn (axis labels too), right-aligned: the tight bounding box grows to hold it
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width, height = fig.get_size_inches()
        label = fig.text(min(box.x1 / width, 1.0), min(box.y0 / height, 0.0) - 0.01, stamp, ha="right", va="top",
                         fontsize=8, color="0.45")
        label._ttl_stamp = True
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width = box.width + 2 * matplotlib.rcParams["savefig.pad_inches"]
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=min(MAX_DPI, MAX_PIXELS_WIDE / width), metadata={"Software": None})
    data = compact_png(rendered.getvalue())
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def title_above(fig: plt.Figure, title: str, room: float = 0.45) -> None:
    """Put `title` above the panels' own titles: the axes end `room` inches under the figure's top
    and the title sits there (a tight save grows the canvas to hold it), so the two never overlap."""
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - room / height)
    fig.suptitle(title, y=1.0, va="bottom")


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
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
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


def distance_histograms(partner: np.ndarray, others: np.ndarray, ax: plt.Axes, title: str) -> plt.Axes:
    """Plot, on `ax`, the distances of each left embedding to its partner and to every other right
    embedding (`evaluate.ranking.distances_to_partners`; densities, same bins), with each mean as a
    vertical line: how far apart the two piles are is what retrieval depends on."""
    bins = np.linspace(0, max(2.0, float(max(partner.max(), others.max()))), 41)
    for values, label, colour in ((partner, "to its partner", "C0"), (others, "to every other image", "C1")):
        ax.hist(values, bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=colour,
                label=f"{label} (mean {values.mean():.2f})")
        ax.axvline(values.mean(), color=colour, linewidth=2)
    ax.set(xlabel="distance between unit embeddings", ylabel="density", title=title)
    ax.legend(fontsize=9, loc="upper left")
    return ax


def image_statistics(images: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Return three panels comparing the sides of `data.explore.image_table`'s rows: image sizes (bars
    side by side, or one line of text when every image has the same size), saturation (left solid,
    right dashed) and each side's share of greyscale images (a bar in the side's colour, labelled
    with its value, so a share of 0 still reads). `summary` is `data.explore.image_summary`'s table."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    sizes = images.assign(size=images.width.astype(str) + " x " + images.height.astype(str))
    counts = sizes.groupby(["size", "side"]).size().unstack("side", fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index[:8]]
    if len(counts) == 1:  # one size for all: a sentence says more than two equal bars
        axes[0].text(0.5, 0.5, f"all {len(images)} images\n{counts.index[0]} pixels", ha="center", va="center",
                     fontsize=20, transform=axes[0].transAxes)
        axes[0].set(xticks=[], yticks=[], title="Image sizes")
        axes[0].grid(False)
    else:
        x = np.arange(len(counts))
        for k, side in enumerate(("left", "right")):
            values = counts[side] if side in counts else np.zeros(len(counts))
            bars = axes[0].bar(x + (k - 0.5) * 0.4, values, width=0.4, label=side, color=f"C{k}")
            axes[0].bar_label(bars, fontsize=11)
        axes[0].set_xticks(x, counts.index, rotation=0 if len(counts) < 4 else 30)
        axes[0].set_ylim(0, 1.35 * max(counts.to_numpy().max(), 1))  # room for the legend above the bars
        axes[0].set(xlabel="width x height (pixels)", ylabel="images",
                    title="Image sizes" + (" (most common 8)" if len(counts) == 8 else ""))
        axes[0].legend()
    for k, (side, style) in enumerate((("left", "-"), ("right", "--"))):
        part = images[images.side == side]
        axes[1].hist(part.saturation, bins=30, range=(0, 1), histtype="step", linewidth=2, linestyle=style,
                     label=side, color=f"C{k}")
    axes[1].set(xlabel="mean saturation", ylabel="images", title="Saturation")
    axes[1].legend()
    shares = [summary.loc[side, "greyscale_share"] for side in ("left", "right")]
    for k in range(2):
        axes[2].bar(k, shares[k], color=f"C{k}", width=0.6)
        axes[2].text(k, shares[k], f"{shares[k]:.1%}", ha="center", va="bottom", fontsize=13)
    axes[2].set(xticks=[0, 1], xticklabels=["left", "right"], ylabel="share of greyscale images",
                ylim=(0, max(0.05, 1.25 * max(shares))), title="Greyscale share")
    axes[2].yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    fig.tight_layout()
    return fig


def faithfulness_curves(table: pd.DataFrame, min_band: int = 10) -> plt.Figure:
    """Return the mean deletion and insertion curves of each method of `explain.faithfulness.faithfulness_table`'s
    rows (as a DataFrame), side by side, each with a band of +-1.96 standard errors over the pairs when a
    method has `min_band` pairs or more (fewer: the band would claim more than the pairs can say)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    fractions = np.linspace(0, 1, len(table.deletion.iloc[0]))
    n_pairs = 0
    for method, part in table.groupby("method", sort=False):
        n_pairs = max(n_pairs, len(part))
        for ax, column in zip(axes, ("deletion", "insertion")):
            curves = np.asarray(part[column].tolist(), dtype=float)
            mean = curves.mean(axis=0)
            line, = ax.plot(fractions, mean, linewidth=2.5, label=method.replace("_", " "))
            if len(curves) >= max(min_band, 2):
                half = 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))
                ax.fill_between(fractions, mean - half, mean + half, color=line.get_color(), alpha=0.07, linewidth=0)
    band = ", 95% band" if n_pairs >= max(min_band, 2) else ""
    axes[0].set(xlabel="share of A's pixels blackened (most salient first)", ylabel="similarity to B",
                title=f"Deletion (mean of {n_pairs} pairs{band})")
    axes[1].set(xlabel="share of A's pixels revealed (most salient first)", title=f"Insertion (mean{band})")
    axes[1].legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def rank_frequency_plot(ranks: dict[str, np.ndarray], top: int = 25, ax: plt.Axes | None = None,
                        title: str | None = None) -> plt.Axes:
    """Plot the study's "frequency vector" for several models side by side: how many queries found
    the partner at rank 1, 2, ..., `top`, then one bar for every rank beyond. Counts, not shares;
    the legend gives each model's count at rank 1. When the last bar dwarfs the others, the axis
    is cut above ranks 1 to `top` (the last bars run off the top); each cut bar's count is written beside
    it in its colour, and the legend gives them too."""
    ax = ax or plt.subplots(figsize=(12, 4.5))[1]
    names = list(ranks)
    width = 0.8 / len(names)
    positions = np.arange(1, top + 2)
    every = {name: np.asarray(ranks[name]) for name in names}
    highest = max(int(np.bincount(np.minimum(r, top + 1) - 1, minlength=top + 1)[:top].max(initial=0)) for r in every.values())
    cut = 1.3 * max(highest, 1)
    dwarfs = max(int((r > top).sum()) for r in every.values()) > cut
    for j, (name, r) in enumerate(every.items()):
        counts = np.append(np.bincount(np.minimum(r, top + 1) - 1, minlength=top + 1)[:top], (r > top).sum())
        x = positions - 0.4 + width * (j + 0.5)
        label = f"{name}: {counts[0]} at rank 1" + (f", {counts[-1]} beyond {top}" if dwarfs else "")
        bars = ax.bar(x, counts, width=width, label=label)
        if dwarfs and counts[-1] > cut:  # a bar cut by the axis: its height beside it, in its colour
            ax.text(top + 0.5, cut * (0.96 - 0.075 * j), str(counts[-1]), ha="right", va="top", fontsize=11,
                    fontweight="bold", color=bars.patches[-1].get_facecolor())
    if dwarfs:  # keep ranks 1..top readable: the last bars run off the top; their counts are written beside them
        ax.set_ylim(0, cut)
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
    (`evaluate.metrics.cmc_band`'s `(curve, low, high)`), and chance."""
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


def budget_curve(points: dict[str, tuple[float, Sequence[float]]], reference: tuple[str, Sequence[float]] | None = None,
                 ax: plt.Axes | None = None, ylabel: str = "test R@1, left -> right", title: str = "") -> plt.Axes:
    """Plot a metric against a pretraining budget: each `{label: (pictures seen, [one value a run])}` as
    its runs' dots (seeds), their mean joined by a line and their range shaded (the seed band);
    `reference` (a label and its runs' values) as a dashed level with its band."""
    ax = ax or plt.subplots(figsize=(9, 4.8))[1]
    ordered = sorted(points.items(), key=lambda item: item[1][0])
    xs = np.array([x for _, (x, _) in ordered], dtype=float)
    values = [np.asarray(v, dtype=float) for _, (_, v) in ordered]
    means = np.array([v.mean() for v in values])
    line, = ax.plot(xs, means, marker="o", linewidth=2.5, markersize=9, label="mean over runs")
    ax.fill_between(xs, [v.min() for v in values], [v.max() for v in values], color=line.get_color(), alpha=0.2,
                    linewidth=0, label="range over runs")
    for x, v in zip(xs, values):
        ax.scatter(np.full(len(v), x), v, color=line.get_color(), s=28, alpha=0.6, zorder=3)
    if reference is not None:
        name, v = reference[0], np.asarray(reference[1], dtype=float)
        ax.axhline(v.mean(), color="grey", linestyle="--", linewidth=1.5, label=f"{name} (mean)")
        ax.axhspan(v.min(), v.max(), color="grey", alpha=0.12, linewidth=0)
    ax.set_xticks(xs, [f"{label}\n{x:,.0f}" for (label, _), x in zip(ordered, xs)])
    ax.set(xlabel="pictures seen in Barlow Twins pretraining", ylabel=ylabel, title=title or "Budget of pretraining")
    ax.margins(x=0.15, y=0.2)
    ax.legend(fontsize=10, loc="best")
    return ax


def pseudo_label_plot(records: Sequence[dict], chance: float = 0.05) -> plt.Figure:
    """Draw how right the pseudo-labels were at each assignment (`train.candidates.pseudo_label_records`):
    those kept and all assigned, against chance; the title says how many pseudo-pairs were kept."""
    table = pd.DataFrame(list(records))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = table["assigned before epoch"]
    for column, marker in (("accuracy of those kept", "o"), ("accuracy of all assigned", "s")):
        if column in table:
            ax.plot(x, table[column], marker=marker, label=column)
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.2f})")
    counts = table["pseudo-pairs"]
    kept = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    ax.set(xlabel="assigned before epoch", ylabel="share right", ylim=(0, 1.02),
           title=f"Pseudo-labels on validation pairs ({kept} pool pseudo-pairs kept each time)")
    ax.legend(loc="lower right")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
