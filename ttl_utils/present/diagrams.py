"""The talk's method pictures, drawn with matplotlib: the Siamese network with a learned distance,
Barlow Twins, and the triplet and InfoNCE losses.

Each function draws into one axes whose data coordinates run from 0 to 1 both ways (it turns the
axes' frame off) and writes nothing smaller than `size` points, so a page can place it anywhere.

>>> import matplotlib.pyplot as plt
>>> ax = plt.figure(figsize=(8, 4)).add_subplot()
>>> siamese_diagram(ax)
>>> min(t.get_fontsize() for t in ax.texts) >= 14
True
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["barlow_twins_diagram", "contrastive_diagram", "siamese_diagram"]

FROZEN, TRAINED, DATA = "#d9e6f2", "#fde3c8", "#e8e8e8"  # box colours: frozen parts, trained parts, inputs and outputs


def _canvas(ax: plt.Axes) -> None:
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, colour: str, size: float) -> tuple:
    """Draw a rounded box centred on (x, y), `w` x `h`, with `text`; return its centre and half sizes."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01,rounding_size=0.02",
                                facecolor=colour, edgecolor="0.3", linewidth=1.5))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.15)
    return x, y, w / 2, h / 2


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], text: str = "", size: float = 14,
           rad: float = 0.0) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=18, linewidth=1.8, color="0.25",
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.04, text, ha="center", va="bottom", fontsize=size,
                color="0.25")


def _key(ax: plt.Axes, size: float, y: float = 0.02) -> None:
    """The colour key: frozen (blue) and trained (orange) parts."""
    for x, colour, label in ((0.02, FROZEN, "frozen"), (0.2, TRAINED, "trained")):
        ax.add_patch(FancyBboxPatch((x, y), 0.035, 0.05, boxstyle="round,pad=0.005", facecolor=colour, edgecolor="0.3"))
        ax.text(x + 0.05, y + 0.025, label, va="center", fontsize=size)


def siamese_diagram(ax: plt.Axes, size: float = 16) -> None:
    """The study's Siamese network (notebook 02): both pictures through one frozen backbone, then a small
    trained network scores the pair from the two embeddings."""
    _canvas(ax)
    for y, name in ((0.75, "left picture"), (0.3, "right picture")):
        _box(ax, 0.1, y, 0.16, 0.16, name, DATA, size)
        _box(ax, 0.38, y, 0.22, 0.18, "backbone\n(ImageNet, frozen)", FROZEN, size)
        _arrow(ax, (0.18, y), (0.27, y))
        _arrow(ax, (0.49, y), (0.58, 0.56 if y > 0.5 else 0.49), "a" if y > 0.5 else "b", size)
    ax.text(0.38, 0.525, "the same weights", ha="center", va="center", fontsize=size - 2, style="italic", color="0.3")
    _box(ax, 0.7, 0.525, 0.22, 0.3, "|a - b|,  a * b\n->  two layers\n(trained)", TRAINED, size)
    _box(ax, 0.92, 0.525, 0.13, 0.16, "match\nscore", DATA, size)
    _arrow(ax, (0.81, 0.525), (0.855, 0.525))
    ax.text(0.5, 0.94, "trained to tell the true pair from other pairs (binary cross-entropy)", ha="center",
            fontsize=size)
    _key(ax, size - 2)


def barlow_twins_diagram(ax: plt.Axes, size: float = 16) -> None:
    """Barlow Twins (notebook 04): two augmented views of one picture through one network; the
    cross-correlation of their projections, over a batch, is pushed towards the identity."""
    _canvas(ax)
    _box(ax, 0.08, 0.5, 0.13, 0.2, "a picture\n(no label)", DATA, size)
    for y, name in ((0.78, "view A"), (0.22, "view B")):
        _box(ax, 0.26, y, 0.13, 0.15, name, DATA, size)
        _arrow(ax, (0.145, 0.5), (0.195, y), "", size)
        _box(ax, 0.47, y, 0.2, 0.17, "backbone +\nprojector", TRAINED, size)
        _arrow(ax, (0.325, y), (0.37, y))
        _arrow(ax, (0.57, y), (0.66, 0.58 if y > 0.5 else 0.42), "$z_A$" if y > 0.5 else "$z_B$", size + 4)
    ax.text(0.47, 0.5, "the same weights", ha="center", va="center", fontsize=size - 2, style="italic", color="0.3")
    ax.text(0.08, 0.35, "random crop,\nflip, colour,\nblur", ha="center", va="top", fontsize=size - 2, color="0.3")
    _box(ax, 0.8, 0.55, 0.25, 0.3, "cross-correlation C\nof the two sides'\nembeddings,\nover the batch", DATA, size)
    ax.text(0.8, 0.22, r"loss $= \sum_i (1 - C_{ii})^2 + \lambda \sum_{i \neq j} C_{ij}^2$", ha="center",
            fontsize=size + 4)
    ax.text(0.8, 0.09, "views agree; dimensions differ", ha="center", fontsize=size - 2, color="0.3")
    _key(ax, size - 2)


def contrastive_diagram(ax: plt.Axes, size: float = 16) -> None:
    """The fine-tuning losses (notebook 05): a triplet pulls a picture's partner closer than any other
    by a margin; InfoNCE makes the partner win a softmax over the batch."""
    _canvas(ax)
    anchor, partner = (0.16, 0.55), (0.34, 0.7)
    others = ((0.36, 0.32), (0.1, 0.22), (0.28, 0.12))
    ax.scatter(*anchor, s=420, color="C0", zorder=3)
    ax.scatter(*partner, s=420, color="C2", zorder=3)
    for point in others:
        ax.scatter(*point, s=420, color="C3", zorder=3)
    ax.text(anchor[0] - 0.03, anchor[1], "left picture", ha="right", va="center", fontsize=size)
    ax.text(partner[0] + 0.03, partner[1], "its partner", ha="left", va="center", fontsize=size)
    ax.text(0.16, 0.06, "other right pictures", ha="left", va="center", fontsize=size)
    _arrow(ax, partner, (anchor[0] + 0.03, anchor[1] + 0.02), "pull", size)
    _arrow(ax, (others[0][0] + 0.02, others[0][1] - 0.02), (0.46, 0.26), "", size)
    ax.text(0.42, 0.33, "push", fontsize=size, color="0.25")
    ax.text(0.58, 0.8, "triplet:", fontsize=size, fontweight="bold")
    ax.text(0.58, 0.68, r"$\max(0,\ d(a, p) - d(a, n) + m)$", fontsize=size + 4)
    ax.text(0.58, 0.5, "InfoNCE:", fontsize=size, fontweight="bold")
    ax.text(0.58, 0.36, r"$-\log\ e^{s(a, p)/\tau}\ /\ \sum_x e^{s(a, x)/\tau}$", fontsize=size + 4)
    ax.text(0.58, 0.16, "the partner must beat every\nother picture of the batch", fontsize=size - 2, color="0.3")
    ax.text(0.02, 0.93, "a, p, n: embeddings; d: distance; s: cosine; m: margin; $\\tau$: temperature", fontsize=size - 2,
            color="0.3")
