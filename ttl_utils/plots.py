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

__all__ = ["set_theme", "current_figures_folder", "current_stamp",
           "save_fig", "pair_grid", "figures_dir", "figure_stamp", "rank_histogram_plot", "cmc_plot", "history_plot",
           "view_grid", "distance_histograms", "rank_change_grid", "image_statistics", "near_duplicate_grid",
           "faithfulness_curves", "rank_frequency_plot", "cmc_band_plot",
           "comparison_figures", "disagreement_grid", "lookalike_grid", "cue_plot"]

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


def current_figures_folder() -> Path:
    """Return the folder `save_fig` writes to now: the one `set_theme` was given, else `<project root>/figures`."""
    return _figures_folder or project_root() / "figures"


def current_stamp() -> str | None:
    """Return the stamp `set_theme` was given (what data and profile the figures show), if any."""
    return _stamp


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
    """Return the line that names a figure's data and profile, e.g. "demo data, 200 pairs · smoke profile"
    or "real TTL pairs (ttl-dev), 1000 pairs · cpu profile"."""
    name = pairs.name.split("/")[0]
    what = {"demo": "demo data", "official": f"real TTL pairs ({name})"}.get(pairs.layout, name)
    return f"{what}, {len(pairs)} pairs · {profile.name} profile"


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None, stamp: str | None = None) -> list[Path]:
    """Save `fig` as `<folder>/<name>.pdf` and `.png` (200 dpi) and return the two paths.

    The folder defaults to the one `set_theme` was given, else `<project root>/figures`; the
    stamp (what data and profile the figure shows) to the one `set_theme` was given.
    """
    folder = Path(folder) if folder is not None else current_figures_folder()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.pdf", folder / f"{name}.png"]
    stamp = stamp if stamp is not None else _stamp
    if stamp and not any(getattr(t, "_ttl_stamp", False) for t in fig.texts):
        # under everything drawn (axis labels too), right-aligned: the tight bounding box grows to hold it
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width, height = fig.get_size_inches()
        label = fig.text(min(box.x1 / width, 1.0), min(box.y0 / height, 0.0) - 0.01, stamp, ha="right", va="top",
                         fontsize=8, color="0.45")
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
        _title_above(fig, title)
    return fig


def _title_above(fig: plt.Figure, title: str, room: float = 0.45) -> None:
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


def distance_histograms(left, right, ax: plt.Axes, title: str) -> plt.Axes:
    """Plot, on `ax`, the Euclidean distances of each left embedding to its partner and to every other
    right embedding (densities, same bins), with each mean as a vertical line: how far apart
    the two piles are is what retrieval depends on."""
    import torch

    distances = torch.cdist(left, right).numpy()
    partner = np.diagonal(distances)
    others = distances[~np.eye(len(distances), dtype=bool)]
    bins = np.linspace(0, max(2.0, float(distances.max())), 41)
    for values, label, colour in ((partner, "to its partner", "C0"), (others, "to every other image", "C1")):
        ax.hist(values, bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=colour,
                label=f"{label} (mean {values.mean():.2f})")
        ax.axvline(values.mean(), color=colour, linewidth=2)
    ax.set(xlabel="distance between unit embeddings", ylabel="density", title=title)
    ax.legend(fontsize=9, loc="upper left")
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
    """Return three panels comparing the sides of `explore.image_table`'s rows: image sizes (bars
    side by side, so equal counts stay visible), saturation (left solid, right dashed) and each
    side's share of greyscale images (a bar in the side's mean colour, from `explore.image_summary`,
    labelled with its value, so a share of 0 still reads)."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    sizes = images.assign(size=images.width.astype(str) + " x " + images.height.astype(str))
    counts = sizes.groupby(["size", "side"]).size().unstack("side", fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index[:8]]
    x = np.arange(len(counts))
    for k, side in enumerate(("left", "right")):
        values = counts[side] if side in counts else np.zeros(len(counts))
        bars = axes[0].bar(x + (k - 0.5) * 0.4, values, width=0.4, label=side)
        axes[0].bar_label(bars, fontsize=11)
    axes[0].set_xticks(x, counts.index, rotation=0 if len(counts) < 4 else 30)
    axes[0].set_ylim(0, 1.35 * max(counts.to_numpy().max(), 1))  # room for the legend above the bars
    axes[0].set(xlabel="width x height (pixels)", ylabel="images",
                title="Image sizes" + (" (most common 8)" if len(counts) == 8 else ""))
    for side, style in (("left", "-"), ("right", "--")):
        part = images[images.side == side]
        axes[1].hist(part.saturation, bins=30, range=(0, 1), histtype="step", linewidth=2, linestyle=style,
                     label=side)
    axes[1].set(xlabel="mean saturation", ylabel="images", title="Saturation")
    shares = [summary.loc[side, "greyscale_share"] for side in ("left", "right")]
    for k, side in enumerate(("left", "right")):
        colour = summary.loc[side, ["mean_r", "mean_g", "mean_b"]].to_numpy() / 255
        axes[2].bar(k, shares[k], color=colour, edgecolor="black", width=0.6)
        axes[2].text(k, shares[k], f"{shares[k]:.1%}", ha="center", va="bottom", fontsize=11)
    axes[2].set(xticks=[0, 1], xticklabels=["left", "right"], ylabel="share of greyscale images",
                ylim=(0, max(0.05, 1.25 * max(shares))), title="Greyscale share (bar in the side's mean colour)")
    axes[2].yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    return fig


def near_duplicate_grid(pairs: PairSet, duplicates: pd.DataFrame, n: int = 4, per_row: int = 2) -> plt.Figure:
    """Return the first `n` rows of `explore.near_duplicates` as pictures, `per_row` duplicates a
    row, the two images of each side by side, titled with pair id, side and cosine."""
    shown = duplicates.head(n)
    if not len(shown):
        raise ValueError("No near-duplicates to show; lower the threshold of explore.near_duplicates.")
    sides = {"within pair": ("left", "right"), "left-right": ("left", "right"), "left-left": ("left", "left"),
             "right-right": ("right", "right")}
    per_row = min(per_row, len(shown))
    rows = -(-len(shown) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.6 * 2 * per_row, 3.0 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.08})
    for ax in axes.flat:
        ax.axis("off")
    for k, dup in enumerate(shown.itertuples()):
        row, col = divmod(k, per_row)
        for j, (pair_id, side) in enumerate(zip((dup.a, dup.b), sides[dup.kind])):
            ax = axes[row, 2 * col + j]
            i = pairs.index_of([pair_id])[0]
            ax.imshow(pairs.left_image(i) if side == "left" else pairs.right_image(i))
            ax.set_title(f"{pair_id} {side}", fontsize=10)
        axes[row, 2 * col].text(1.04, -0.03, f"{dup.kind}, cosine {dup.cosine:.3f}", transform=axes[row, 2 * col].transAxes,
                                ha="center", va="top", fontsize=10)
    return fig


def faithfulness_curves(table: pd.DataFrame) -> plt.Figure:
    """Return the mean deletion and insertion curves of each method of `saliency.faithfulness_table`'s
    rows (as a DataFrame), side by side, each with a band of +-1.96 standard errors over the pairs."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    fractions = np.linspace(0, 1, len(table.deletion.iloc[0]))
    n_pairs = 0
    for method, part in table.groupby("method", sort=False):
        n_pairs = max(n_pairs, len(part))
        for ax, column in zip(axes, ("deletion", "insertion")):
            curves = np.asarray(part[column].tolist(), dtype=float)
            mean = curves.mean(axis=0)
            line, = ax.plot(fractions, mean, linewidth=2.5, label=method.replace("_", " "))
            if len(curves) > 1:
                half = 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))
                ax.fill_between(fractions, mean - half, mean + half, color=line.get_color(), alpha=0.07, linewidth=0)
    axes[0].set(xlabel="share of A's pixels blackened (most salient first)", ylabel="similarity to B",
                title=f"Deletion (mean of {n_pairs} pairs, 95% band)")
    axes[1].set(xlabel="share of A's pixels revealed (most salient first)", title="Insertion (mean, 95% band)")
    axes[1].legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
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
    """Return the look-alikes of each query: the query, then its matches titled with rank, label and
    cosine, each picture as the model sees it (`preprocessing`'s resize and centre crop).

    Each row is `{"query": image, "title": str, "matches": [(image, caption), ...]}`. With
    `"maps": [(map_query, map_match), ...]` the matches carry the saliency of their similarity
    (`saliency.overlay`; `signed` for signed maps) and a second line under them shows the query
    with the saliency of each match's similarity, so the figure stays 1 + matches wide; a colour
    key sits under it. With `"labels"` (each match's gallery label) and `"partner"` (the true
    partner's label), the partner's picture is framed in green and its caption says so.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from .saliency import overlay

    def view(image) -> np.ndarray:
        return denormalise(preprocessing(image.convert("RGB")), preprocessing.mean, preprocessing.std)

    explained = any("maps" in row for row in rows)
    lines = 2 if explained else 1
    cols = 1 + max(len(row["matches"]) for row in rows)
    fig, axes = plt.subplots(lines * len(rows), cols, figsize=(2.5 * cols, 2.75 * lines * len(rows) + (0.6 if explained else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        top = axes[lines * r]
        query = view(row["query"])
        top[0].imshow(query)
        top[0].set_title(row["title"], fontsize=10, fontweight="bold")
        labels = row.get("labels", [None] * len(row["matches"]))
        for k, ((image, caption), label) in enumerate(zip(row["matches"], labels)):
            ax = top[1 + k]
            if explained:
                overlay(ax, view(image), row["maps"][k][1], signed)
            else:
                ax.imshow(view(image))
            partner = label is not None and label == row.get("partner")
            ax.set_title(caption + ("\n(the true partner)" if partner else ""), fontsize=9,
                         color="green" if partner else "black", fontweight="bold" if partner else "normal")
            if partner:
                ax.axis("on")
                ax.set(xticks=[], yticks=[])
                for spine in ax.spines.values():
                    spine.set(color="green", linewidth=4)
        if explained:
            below = axes[lines * r + 1]
            below[0].text(0.5, 0.5, "why: the query,\nas it matches\neach picture above", ha="center", va="center",
                          fontsize=10, transform=below[0].transAxes)
            for k in range(len(row["matches"])):
                overlay(below[1 + k], query, row["maps"][k][0], signed)
    fig.tight_layout()
    if explained:
        fig.subplots_adjust(bottom=0.6 / fig.get_figheight() + 0.02)
        cax = fig.add_axes((0.3, 0.2 / fig.get_figheight(), 0.4, 0.15 / fig.get_figheight()))
        key = fig.colorbar(ScalarMappable(Normalize(-1 if signed else 0, 1), "bwr" if signed else "inferno"), cax=cax,
                           orientation="horizontal")
        key.set_ticks([-1, 0, 1] if signed else [0, 1], labels=["lowers", "0", "raises"] if signed else ["0", "most"])
        key.set_label("saliency of the similarity: " + ("effect on it" if signed else "how much each region matters"),
                      fontsize=9)
    return fig


def cue_plot(table: pd.DataFrame, examples: dict) -> plt.Figure:
    """Return the figure of `cues.cue_table`: on top, one picture with each cue taken away
    (`examples`: cue -> PIL image); below, the share of the partner's margin each removal costs,
    one bar a subset, with its 95% bootstrap interval (0: the cue does not matter; 100%: the
    partner no longer stands out)."""
    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(2, len(examples), height_ratios=(1, 1.5), hspace=0.35)
    for k, (cue, image) in enumerate(examples.items()):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(image)
        ax.set_title(cue, fontsize=11)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    shown = table.drop(index="original", level="cue", errors="ignore")
    cues = list(dict.fromkeys(shown.index.get_level_values("cue")))
    subsets = list(dict.fromkeys(shown.index.get_level_values("subset")))
    width = 0.8 / len(subsets)
    for j, subset in enumerate(subsets):
        part = shown.loc[subset].reindex(cues)
        x = np.arange(len(cues)) - 0.4 + width * (j + 0.5)
        values = 100 * part["margin lost"].to_numpy()
        errors = 100 * np.abs(np.vstack([part["margin lost"] - part.low, part.high - part["margin lost"]]))
        ax.bar(x, values, width=width, yerr=errors, capsize=4, label=f"{subset} ({int(part.pairs.iloc[0])} pairs)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(cues)), [f"{cue}" for cue in cues])
    ax.set(ylabel="partner's margin lost (%)", title="What the similarity needs: the margin lost when a cue is taken away")
    ax.legend(fontsize=10)
    return fig
