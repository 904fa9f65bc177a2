"""Pictures for a slide: pairs side by side, augmented views, near-duplicates, fixed and broken pairs,
saliency overlays, look-alikes, and what a cue's removal costs.

Every function draws what it is given: pair sets (anything with `ids`, `left_image`,
`right_image`, `index_of`), pictures as `H x W x 3` arrays in [0, 1] or uint8 (or PIL images),
and maps as arrays; nothing here imports torch.

>>> from ttl_utils.data.demo import make_demo_pairs
>>> pair_grid(make_demo_pairs(4, 64), n=4).axes[0].get_title()     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from .plots import title_above

if TYPE_CHECKING:
    from ..data.pairs import PairSet

__all__ = ["SIGNED_METHODS", "cue_plot", "disagreement_grid", "lookalike_grid", "near_duplicate_grid", "overlay",
           "pair_grid", "photo_row", "plot_pair_maps", "rank_change_grid", "smooth_map", "view_grid"]

SIGNED_METHODS = ("integrated_gradients", "gradient_shap", "occlusion", "decomposition")


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
        title_above(fig, title)
    return fig


def view_grid(rows: dict[str, list]) -> plt.Figure:
    """Return a grid of pictures (`H x W x 3`, e.g. `models.preprocessing.denormalise` of a model's
    input), one row a label (e.g. "view 1", "view 2"), same-length rows."""
    labels = list(rows)
    cols = len(rows[labels[0]])
    fig, axes = plt.subplots(len(labels), cols, figsize=(13 / 6 * cols, 2.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        for c, view in enumerate(rows[label]):
            axes[r, c].imshow(view)
            axes[r, c].axis("off")
        axes[r, 0].set_title(label, loc="left")
    fig.tight_layout()
    return fig


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


def near_duplicate_grid(pairs: PairSet, duplicates: pd.DataFrame, n: int = 4, per_row: int = 2) -> plt.Figure:
    """Return the first `n` rows of `data.explore.near_duplicates` as pictures, `per_row` duplicates a
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


def disagreement_grid(pairs: PairSet, rows: dict[str, np.ndarray], ranks: dict[str, np.ndarray],
                      n: int = 4) -> plt.Figure:
    """Return one row of pairs per `rows` entry (a label and query indices, e.g. from
    `evaluate.metrics.disagreements`), at most `n` a row, each titled with every model's rank of the partner."""
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


def overlay(ax, image: np.ndarray, saliency_map: np.ndarray | None, signed: bool) -> None:
    """Draw `image` on `ax` with `saliency_map` over it: red/blue for a signed map, a heat scale otherwise.

    Each map is scaled to its own 99th percentile of |value| (so colours compare within a panel,
    not across). A magnitude map with nothing above zero (Grad-CAM keeps only the evidence that
    raises the similarity) is drawn as the bare image with a note, not as a dark veil.
    `saliency_map=None` draws the image alone.
    """
    ax.imshow(image)
    ax.axis("off")
    if saliency_map is None:
        return
    values = np.asarray(saliency_map)
    limit = np.percentile(np.abs(values), 99) or float(np.abs(values).max()) or 0.0
    extent = (0, image.shape[1], image.shape[0], 0)
    if signed:
        ax.imshow(values, cmap="bwr", vmin=-(limit or 1.0), vmax=limit or 1.0, alpha=0.55, extent=extent,
                  interpolation="bilinear")
    elif limit <= 0 or values.max() <= 0:
        ax.text(0.5, 0.5, "nothing here\nraises the similarity", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="white", bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})
    else:
        ax.imshow(np.clip(values / limit, 0, 1), cmap="inferno", alpha=0.6, extent=extent, interpolation="bilinear")


def smooth_map(saliency_map: np.ndarray, sigma: float) -> np.ndarray:
    """Return `saliency_map` blurred by a Gaussian of `sigma` pixels (its sum and signs kept on the whole):
    a pixel-level attribution such as integrated gradients is speckle at a projector's size, and its
    regions read only once neighbouring pixels are pooled. `sigma` 0 returns the map unchanged.

    >>> impulse = np.zeros((9, 9)); impulse[4, 4] = 1.0
    >>> spread = smooth_map(impulse, 1.0)
    >>> round(float(spread.sum()), 6), bool(spread[4, 4] < 1.0), bool(spread[4, 5] > 0.0)
    (1.0, True, True)
    """
    if sigma < 0:
        raise ValueError(f"sigma must be 0 or more, got {sigma}")
    values = np.asarray(saliency_map, dtype=float)
    if sigma == 0:
        return values
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(values, sigma, mode="reflect")


def photo_row(pictures: Sequence[np.ndarray], maps: Sequence[np.ndarray | None] | None = None,
              framed: Sequence[int] = (), signed: bool = True, gap: Sequence[int] = (),
              smooth: float = 0.0) -> plt.Figure:
    """Return `pictures` side by side with no text at all (the page they go on says what they are): each
    with its saliency map from `maps` over it (`overlay`; None: the bare picture), the ones at `framed`
    in a green frame (a true partner), and a wider space before each index in `gap` (between pairs).
    `smooth`: each map blurred by a Gaussian of that many pixels first (`smooth_map`), for a projector.

    >>> photo_row([np.zeros((8, 6, 3)), np.ones((8, 6, 3))], framed=[1]).axes[1].patches[0].get_edgecolor()[:3]
    (0.0, 0.6, 0.0)
    """
    maps = list(maps) if maps is not None else [None] * len(pictures)
    widths = []
    for k in range(len(pictures)):
        if k in gap:
            widths.append(0.25)
        widths.append(1.0)
    fig = plt.figure(figsize=(2.2 * sum(widths), 2.2 * 1.225))
    grid = fig.add_gridspec(1, len(widths), width_ratios=widths, wspace=0.04, left=0.0, right=1.0, bottom=0.0, top=1.0)
    column = 0
    for k, (picture, saliency_map) in enumerate(zip(pictures, maps)):
        if k in gap:
            fig.add_subplot(grid[0, column]).axis("off")
            column += 1
        ax = fig.add_subplot(grid[0, column])
        column += 1
        overlay(ax, np.asarray(picture), None if saliency_map is None else smooth_map(saliency_map, smooth), signed)
        for note in list(ax.texts):  # no text at all: a page shows the picture smaller than its notes can be read
            note.remove()
        if k in framed:
            height, width = np.asarray(picture).shape[:2]
            ax.add_patch(plt.Rectangle((1.5, 1.5), width - 4, height - 4, fill=False, edgecolor=(0.0, 0.6, 0.0),
                                       linewidth=6))
    return fig


def plot_pair_maps(image_a: np.ndarray, image_b: np.ndarray, maps: dict[str, tuple[np.ndarray | None, np.ndarray]],
                   title: str | None = None, signed: Sequence[str] = SIGNED_METHODS):
    """Return a figure: a row for A and a row for B, the image first, then one column a method,
    and under the panels a key for each kind of map shown.

    Signed maps (red raises the similarity, blue lowers it) for the methods in `signed`;
    magnitude maps (how much a pixel matters, either way) for the others. A map given as None
    shows the image alone.
    """
    cols = len(maps) + 1
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 6.2), squeeze=False,
                             gridspec_kw={"hspace": 0.08, "wspace": 0.05, "bottom": 0.2})
    for row, image, name in zip(axes, (image_a, image_b), ("A", "B")):
        row[0].imshow(image)
        row[0].axis("off")
        row[0].text(-0.06, 0.5, name, transform=row[0].transAxes, rotation=90, ha="right", va="center",
                    fontsize=14, fontweight="bold")
    axes[0, 0].set_title("image", fontsize=10)
    for col, (method, (map_a, map_b)) in enumerate(maps.items(), start=1):
        for row, image, saliency_map in zip(axes, (image_a, image_b), (map_a, map_b)):
            overlay(row[col], image, saliency_map, method in signed)
        kind = "signed" if method in signed else "magnitude"
        axes[0, col].set_title(f"{method.replace('_', ' ')}\n({kind})", fontsize=10)
    kinds = [kind for kind, present in (("signed", any(m in signed for m in maps)),
                                        ("magnitude", any(m not in signed for m in maps))) if present]
    for k, kind in enumerate(kinds):
        width = 0.8 / len(kinds) - 0.04
        cax = fig.add_axes((0.1 + k * (width + 0.08), 0.1, width, 0.025))
        if kind == "signed":
            bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), "bwr"), cax=cax, orientation="horizontal")
            bar.set_ticks([-1, 0, 1], labels=["lowers", "0", "raises"])
            bar.set_label("signed maps: effect on the similarity", fontsize=9)
        else:
            bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "inferno"), cax=cax, orientation="horizontal")
            bar.set_ticks([0, 1], labels=["0", "most"])
            bar.set_label("magnitude maps: how much it matters", fontsize=9)
        bar.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=12, y=0.97)
    return fig


def lookalike_grid(rows: list[dict], signed: bool = False) -> plt.Figure:
    """Return the look-alikes of each query: the query, then its matches titled with rank, label and
    cosine, each picture as the model sees it (`find.lookalike_rows` makes the rows).

    Each row is `{"query": picture, "title": str, "matches": [(picture, caption), ...]}`, pictures
    as `H x W x 3` arrays. With `"maps": [(map_query, map_match), ...]` the matches carry the
    saliency of their similarity (`overlay`; `signed` for signed maps) and a second line under them shows the query
    with the saliency of each match's similarity, so the figure stays 1 + matches wide; a colour
    key sits under it. With `"labels"` (each match's gallery label) and `"partner"` (the true
    partner's label), the partner's picture is framed in green and its caption says so.
    """
    explained = any("maps" in row for row in rows)
    lines = 2 if explained else 1
    cols = 1 + max(len(row["matches"]) for row in rows)
    fig, axes = plt.subplots(lines * len(rows), cols, figsize=(2.5 * cols, 2.75 * lines * len(rows) + (0.6 if explained else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        _matches_line(axes[lines * r], row, signed if explained else None)
        if explained:
            below = axes[lines * r + 1]
            below[0].text(0.5, 0.5, "why: the query,\nas it matches\neach picture above", ha="center", va="center",
                          fontsize=10, transform=below[0].transAxes)
            for k in range(len(row["matches"])):
                overlay(below[1 + k], row["query"], row["maps"][k][0], signed)
    fig.tight_layout()
    if explained:
        _saliency_key(fig, signed)
    return fig


def _matches_line(axes, row: dict, signed: bool | None) -> None:
    """Draw a query and its matches on one line of `axes`, with the saliency of each match's similarity
    unless `signed` is None, and the true partner framed in green."""
    axes[0].imshow(row["query"])
    axes[0].set_title(row["title"], fontsize=10, fontweight="bold")
    labels = row.get("labels", [None] * len(row["matches"]))
    for k, ((image, caption), label) in enumerate(zip(row["matches"], labels)):
        ax = axes[1 + k]
        if signed is not None:
            overlay(ax, image, row["maps"][k][1], signed)
        else:
            ax.imshow(image)
        partner = label is not None and label == row.get("partner")
        ax.set_title(caption + ("\n(the true partner)" if partner else ""), fontsize=9,
                     color="green" if partner else "black", fontweight="bold" if partner else "normal")
        if partner:
            ax.axis("on")
            ax.set(xticks=[], yticks=[])
            for spine in ax.spines.values():
                spine.set(color="green", linewidth=4)


def _saliency_key(fig: plt.Figure, signed: bool) -> None:
    """Add the colour key of the saliency overlays under the figure."""
    fig.subplots_adjust(bottom=0.6 / fig.get_figheight() + 0.02)
    cax = fig.add_axes((0.3, 0.2 / fig.get_figheight(), 0.4, 0.15 / fig.get_figheight()))
    key = fig.colorbar(ScalarMappable(Normalize(-1 if signed else 0, 1), "bwr" if signed else "inferno"), cax=cax,
                       orientation="horizontal")
    key.set_ticks([-1, 0, 1] if signed else [0, 1], labels=["lowers", "0", "raises"] if signed else ["0", "most"])
    key.set_label("saliency of the similarity: " + ("effect on it" if signed else "how much each region matters"),
                  fontsize=9)


def cue_plot(table: pd.DataFrame, examples: dict) -> plt.Figure:
    """Return the figure of `explain.cues.cue_table`: on top, one picture with each cue taken away
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
