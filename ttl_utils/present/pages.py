"""The talk's pages, in the study's order, each drawn from what the notebooks recorded.

`story(folder)` reads `results.json` (each step's title, finding and numbers), `results-series.json`
(the ranks and curves behind the plots) and the text-free pictures the notebooks saved
(`slide_*.png`: example pairs, a saliency overlay, a look-alike), and returns the pages. A page
has a title, one finding sentence (the notebook's own where it recorded one), and what to show:
a plot drawn at the page's size (`draw`), a table, or bullets. `slides` writes them as PDF and
PowerPoint. A step that was not recorded is left out; a page whose numbers came from an older
notebook shows its finding without the plot.

Nothing here trains or embeds: the plots draw recorded ranks, and intervals over them come from
`evaluate.metrics`, as the notebooks' own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from PIL import Image

from ..evaluate.metrics import cmc_band, metric_intervals
from ..evaluate.report import interval
from . import diagrams
from .findings import RESULTS_FILE, read_results, read_series

__all__ = ["STUDY_R25", "Page", "SlidesError", "inside", "picture", "story"]

STUDY_R25 = 0.01  # the student study's top-25 accuracy of its learned distance
TTL_PAPER = "the TTL paper's best ImageNet features: R@1 5.8% among 1828 candidates"
Rect = tuple[float, float, float, float]  # left, bottom, width, height as fractions of the page
COLOURS = {"chance": "0.6", "study": "#b2182b", "zero-shot": "C7", "ImageNet": "C0", "Barlow Twins": "C1",
           "fine-tuned": "C0", "learned": "C3", "cosine": "C7", "no blur": "C2", "third": "C4"}


class SlidesError(RuntimeError):
    """The figures folder lacks what the slides are built from; the message says what to run."""


@dataclass
class Page:
    """One slide: `title`, one `finding` sentence (None: none), and what to show: `draw(fig, rect)` draws
    into `rect` of the page, `table` (rows of cells, the first the header) or `bullets`."""

    title: str
    finding: str | None = None
    draw: Callable[[plt.Figure, Rect], None] | None = None
    table: list[list[str]] | None = None
    bullets: list[str] = field(default_factory=list)
    step: str | None = None


def inside(rect: Rect, left: float, bottom: float, width: float, height: float) -> Rect:
    """Return the part of `rect` at (`left`, `bottom`), `width` x `height`, each a fraction of `rect`."""
    x, y, w, h = rect
    return x + left * w, y + bottom * h, width * w, height * h


def picture(folder: Path, name: str) -> np.ndarray:
    """Return the picture `<folder>/<name>.png` as an array; a `SlidesError` naming it when it is missing."""
    path = Path(folder) / f"{name}.png"
    if not path.is_file():
        raise SlidesError(f"{path} is missing: rerun the notebook that saves it (make figures).")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _show(fig: plt.Figure, rect: Rect, image: np.ndarray, anchor: str = "C") -> plt.Axes:
    ax = fig.add_axes(rect)
    ax.imshow(image, interpolation="lanczos")
    ax.set_anchor(anchor)
    ax.axis("off")
    return ax


def _note(fig: plt.Figure, rect: Rect, x: float, y: float, text: str, size: float = 18, **style) -> None:
    """Write `text` at (`x`, `y`), fractions of `rect`."""
    left, bottom, width, height = rect
    fig.text(left + x * width, bottom + y * height, text, fontsize=size, **style)


def _error_bars(ax: plt.Axes, positions: Sequence[float], values: Sequence[tuple[float, float, float]],
                colour: str) -> None:
    values = np.asarray(values, dtype=float)
    ax.errorbar(positions, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]], fmt="none",
                ecolor=colour, elinewidth=2, capsize=6)


def _ranks(series: dict, step: str, key: str) -> dict[str, np.ndarray] | None:
    found = series.get(step, {}).get(key)
    return {name: np.asarray(r, dtype=int) for name, r in found.items()} if found else None


# ---------------------------------------------------------------------------------------------- the pages

def _task(folder: Path, steps: dict) -> Page | None:
    n = steps.get("02", {}).get("numbers", {}).get("candidates")
    if n is None or not (Path(folder) / "slide_01_example_pair.png").is_file():
        return None
    pair = picture(folder, "slide_01_example_pair")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        _show(fig, inside(rect, 0.0, 0.02, 0.42, 0.96), pair)
        lines = [("Given the left picture,", {}), (f"rank all {n} right pictures:", {}),
                 ("its partner should come first.", {"fontweight": "bold"}),
                 (f"By chance: first 1 time in {n} (R@1 {1 / n:.3f}),", {}),
                 (f"in the top 25 with R@25 = {min(25, n) / n:.3f}.", {}),
                 ("R@k: the share of queries whose", {"color": "0.35"}),
                 ("partner is among the first k.", {"color": "0.35"})]
        for row, (text, style) in enumerate(lines):
            _note(fig, rect, 0.47, 0.88 - row * 0.12, text, 22, va="top", **style)

    return Page("The task: which picture looks like this one?",
                f"A real pair from the test split; among {n} candidates, chance puts the partner first with R@1 "
                f"{1 / n:.3f} ({TTL_PAPER}).", draw, step="task")


def _data(folder: Path, steps: dict) -> Page | None:
    entry = steps.get("01")
    if entry is None:
        return None
    n = entry["numbers"]
    pictures = {kind: picture(folder, f"slide_01_{kind}") for kind in ("face_examples", "generic_examples")
                if (Path(folder) / f"slide_01_{kind}.png").is_file()}

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.08, 0.2, 0.22, 0.68))
        counts = [n["pairs"] - n["generic"], n["generic"]]
        bars = ax.bar([0, 1], counts, color=["C0", "C1"], width=0.6)
        ax.bar_label(bars, [f"{c}\n{c / n['pairs']:.0%}" if c else "" for c in counts], fontsize=18, label_type="center",
                     color="white", fontweight="bold")
        ax.set_xticks([0, 1], ["a face", "generic"])
        ax.set(ylabel="pairs", ylim=(0, 1.05 * max(counts)), title=f"{n['pairs']} pairs")
        _note(fig, rect, 0.0, 0.02, "generic: no frontal face found\nby the detector on either side", 16, color="0.3")
        for y, kind, label in ((0.52, "face_examples", "with a face"),
                               (0.02, "generic_examples", "generic: no frontal face found")):
            if kind in pictures:
                _show(fig, inside(rect, 0.38, y, 0.62, 0.4), pictures[kind], anchor="W")
                _note(fig, rect, 0.38, y + 0.41, label, 18, fontweight="bold")

    return Page(entry["title"], entry["finding"], draw, step="01")


def _siamese(steps: dict) -> Page | None:
    if "02" not in steps:
        return None
    return Page("The study's model: a Siamese network with a learned distance",
                "Both pictures go through one frozen ImageNet backbone; a small network trained on the pairs turns "
                "the two embeddings into a match score.", lambda fig, rect: diagrams.siamese_diagram(fig.add_axes(rect)),
                step="method")


def _baseline(steps: dict, series: dict) -> Page | None:
    entry = steps.get("02")
    if entry is None:
        return None
    ranks = _ranks(series, "02", "ranks")
    n = entry["numbers"].get("candidates")
    if ranks is None or n is None:
        return Page(entry["title"], entry["finding"], step="02")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        for column, k in enumerate((25, 1)):
            ax = fig.add_axes(inside(rect, 0.08 + column * 0.5, 0.14, 0.4, 0.76))
            names = [("chance", min(k, n) / n, None, COLOURS["chance"])]
            if k == 25:
                names.append(("the study\n(quoted)", STUDY_R25, None, COLOURS["study"]))
            for name, r in ranks.items():
                value = metric_intervals(r, [f"R@{k}"])[f"R@{k}"]
                names.append((name, value[0], value, COLOURS["learned" if "learned" in name else "cosine"]))
            x = np.arange(len(names))
            ax.bar(x, [v for _, v, _, _ in names], color=[c for *_, c in names], width=0.6)
            top = max(max(ci[2] if ci is not None else v for _, v, ci, _ in names), 0.05)
            for position, (_, value, ci, _) in zip(x, names):
                if ci is not None:
                    _error_bars(ax, [position], [ci], "black")
                ax.text(position, (ci[2] if ci is not None else value) + 0.03 * top,
                        f"{value:.3f}", ha="center", va="bottom", fontsize=16)
            ax.set_xticks(x, [name.replace("learned distance", "learned\ndistance").replace("plain cosine", "plain\ncosine")
                              for name, *_ in names], fontsize=16)
            ax.set(ylabel=f"R@{k} (95% interval)", title=f"R@{k} among {n} test candidates",
                   ylim=(0, 1.2 * top))
            ax.grid(axis="x", visible=False)

    return Page(entry["title"], entry["finding"], draw, step="02")


def _saliency(folder: Path, steps: dict) -> Page | None:
    entry = steps.get("03")
    if entry is None:
        return None
    cues = entry["numbers"].get("cues")
    shown = picture(folder, "slide_03_saliency") if (Path(folder) / "slide_03_saliency.png").is_file() else None
    method = entry["numbers"].get("method", "integrated gradients")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        if shown is not None:
            _show(fig, inside(rect, 0.0, 0.16, 0.5, 0.78), shown, anchor="W")
            _note(fig, rect, 0.0, 0.02, f"red: raises the similarity; blue: lowers it\n({method})", 16, color="0.3")
        if cues:
            ax = fig.add_axes(inside(rect, 0.7, 0.32, 0.29, 0.58))
            _note(fig, rect, 0.55, 0.02, "margin: the partner's similarity minus\nthe other candidates' mean", 16,
                  color="0.3")
            labels = [row["cue"] for row in cues][::-1]
            values = np.array([[row["lost"], row["low"], row["high"]] for row in cues][::-1])
            y = np.arange(len(labels))
            ax.barh(y, values[:, 0], color="C3", height=0.6)
            ax.errorbar(values[:, 0], y, xerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]], fmt="none",
                        ecolor="black", elinewidth=2, capsize=6)
            ax.set_yticks(y, labels, fontsize=16)
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
            ax.set(xlabel="share of the partner's margin lost", title="Take a cue away (95%)",
                   xlim=(min(0.0, float(values[:, 1].min()) - 0.05), max(1.0, float(values[:, 2].max()) + 0.05)))
            ax.axvline(0, color="0.3", linewidth=1)
            ax.grid(axis="y", visible=False)

    return Page(entry["title"], entry["finding"], draw if (cues or shown is not None) else None, step="03")


def _barlow_method(steps: dict) -> Page | None:
    if "04" not in steps:
        return None
    return Page("Barlow Twins: learning from pictures without labels",
                "Two random views of the same picture should give the same embedding, and its dimensions should not "
                "repeat each other: no pair labels are needed.",
                lambda fig, rect: diagrams.barlow_twins_diagram(fig.add_axes(rect)), step="method")


def _barlow(steps: dict, series: dict) -> Page | None:
    entry = steps.get("04")
    if entry is None:
        return None
    ranks, loss = _ranks(series, "04", "ranks"), series.get("04", {}).get("loss")
    scale = entry["numbers"].get("scale")
    if ranks is None or loss is None:
        return Page(entry["title"], entry["finding"], step="04")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.08, 0.26, 0.4, 0.64))
        ax.plot(loss["step"], loss["loss"], linewidth=2.5, color=COLOURS["Barlow Twins"])
        ax.set(xlabel="step", ylabel="Barlow Twins loss", title="Pretraining loss")
        if scale:
            _note(fig, rect, 0.0, 0.02, f"{scale}, one pretraining seed", 16, color="0.3")
        ax = fig.add_axes(inside(rect, 0.62, 0.26, 0.36, 0.64))
        names = list(ranks)
        values = [metric_intervals(ranks[name], ["R@10"])["R@10"] for name in names]
        x = np.arange(len(names))
        bars = ax.bar(x, [v[0] for v in values], color=[COLOURS["zero-shot"], COLOURS["Barlow Twins"]], width=0.6)
        _error_bars(ax, x, values, "black")
        ax.bar_label(bars, [f"{v[0]:.2f}" for v in values], fontsize=16, padding=3, label_type="center", color="white")
        ax.set_xticks(x, [name.replace(" + ", "\n+ ") for name in names], fontsize=16)
        ax.set(ylabel="R@10, zero-shot", ylim=(0, 1), title=f"{len(ranks[names[0]])} validation pairs")
        ax.grid(axis="x", visible=False)

    return Page(entry["title"], entry["finding"], draw, step="04")


def _losses(steps: dict) -> Page | None:
    if "05" not in steps:
        return None
    return Page("Fine-tuning: the triplet and InfoNCE losses",
                "Small projection layers on the backbone learn from the labelled pairs: a picture's partner must come "
                "closer than the other pictures.", lambda fig, rect: diagrams.contrastive_diagram(fig.add_axes(rect)),
                step="method")


def _finetune(steps: dict, series: dict) -> Page | None:
    entry = steps.get("05")
    if entry is None:
        return None
    ranks = _ranks(series, "05", "ranks")
    if ranks is None:
        return Page(entry["title"], entry["finding"], step="05")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.08, 0.16, 0.6, 0.76))
        n = len(next(iter(ranks.values())))
        for name, r in ranks.items():
            curve, low, high = cmc_band(r, n)
            k = np.arange(1, n + 1)
            colour = COLOURS["zero-shot" if "zero" in name else "fine-tuned"]
            ax.plot(k, curve, linewidth=3, color=colour, label=name)
            ax.fill_between(k, low, high, color=colour, alpha=0.2, linewidth=0)
        ax.plot(np.arange(1, n + 1), np.arange(1, n + 1) / n, color="grey", linestyle="--", linewidth=1.5, label="chance")
        ax.set_xscale("log")
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= n]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel=f"k (of {n} test candidates)", ylabel="R@k", ylim=(0, 1), xlim=(1, n))
        ax.legend(loc="upper left", fontsize=16)
        for row, (name, r) in enumerate(ranks.items()):
            values = metric_intervals(r, ["R@1", "R@20"])
            _note(fig, rect, 0.73, 0.82 - 0.3 * row, name, 20, fontweight="bold", va="top")
            _note(fig, rect, 0.73, 0.72 - 0.3 * row, f"R@1   {interval(*values['R@1'])}\n"
                  f"R@20 {interval(*values['R@20'])}", 17, va="top", linespacing=1.4)
        _note(fig, rect, 0.73, 0.05, "bands and [ ]: 95% bootstrap\nintervals over the test pairs", 16, color="0.3")

    return Page(entry["title"], entry["finding"], draw, step="05")


def _comparison(steps: dict) -> Page | None:
    entry = steps.get("06")
    if entry is None:
        return None
    tests, runs = entry["numbers"].get("tests"), entry["numbers"].get("run_r1")
    seeds = entry["numbers"].get("pretraining_seeds")
    if not tests or not runs:
        return Page(entry["title"], entry["finding"], step="06")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.27, 0.16, 0.33, 0.76))
        y = np.arange(len(tests))[::-1]
        for row, position in zip(tests, y):
            primary = row["role"] == "primary"
            colour = "black" if primary else "0.45"
            ax.errorbar(row["difference"], position, xerr=[[row["difference"] - row["low"]], [row["high"] - row["difference"]]],
                        fmt="o", color=colour, markersize=12 if primary else 9, elinewidth=3 if primary else 2, capsize=6)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1.5)
        ax.set_yticks(y, [f"{row['test']}{' (primary)' if row['role'] == 'primary' else ''}" for row in tests], fontsize=16)
        ax.set(xlabel="Barlow Twins minus ImageNet", title="Pre-registered tests (Holm)")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        ax.grid(axis="y", visible=False)
        ax = fig.add_axes(inside(rect, 0.72, 0.16, 0.27, 0.76))
        starts = list(runs)
        for x, start in enumerate(starts):
            values = np.asarray(runs[start], dtype=float)
            colour = COLOURS["ImageNet"] if start == "ImageNet" else COLOURS["Barlow Twins"]
            ax.scatter(np.full(len(values), x) + np.linspace(-0.08, 0.08, len(values)), values, s=110, color=colour,
                       zorder=3)
            ax.hlines(values.mean(), x - 0.25, x + 0.25, color=colour, linewidth=3)
        ax.set_xticks(range(len(starts)), [s.replace(" ", "\n", 1) for s in starts], fontsize=16)
        ax.set(ylabel="test R@1, left -> right", title="Every fine-tuned run", xlim=(-0.6, len(starts) - 0.4))
        if seeds:
            ax.set_xlabel(f"Barlow Twins: {seeds} pretraining seeds", fontsize=16)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
        ax.grid(axis="x", visible=False)

    return Page(entry["title"], entry["finding"], draw, step="06")


def _frequency(steps: dict, series: dict) -> Page | None:
    entry = steps.get("06")
    ranks = _ranks(series, "06", "ranks")
    if entry is None or ranks is None:
        return None
    n = len(next(iter(ranks.values())))
    counts = {name: int((r == 1).sum()) for name, r in ranks.items()}
    top = 10

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.07, 0.16, 0.62, 0.76))
        width = 0.8 / len(ranks)
        for j, (name, r) in enumerate(ranks.items()):
            heights = np.bincount(np.minimum(r, top + 1) - 1, minlength=top + 1)[:top]
            colour = COLOURS["zero-shot"] if "zero" in name else COLOURS["Barlow Twins" if "Barlow" in name else "ImageNet"]
            ax.bar(np.arange(1, top + 1) - 0.4 + width * (j + 0.5), heights, width=width, color=colour, label=name)
        ax.set_xticks(range(1, top + 1))
        ax.set(xlabel="rank of the true partner", ylabel="queries", title=f"Ranks 1 to {top}, {n} test queries")
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(axis="x", visible=False)
        for row, (name, r) in enumerate(ranks.items()):
            colour = COLOURS["zero-shot"] if "zero" in name else COLOURS["Barlow Twins" if "Barlow" in name else "ImageNet"]
            _note(fig, rect, 0.73, 0.95 - 0.31 * row, name.replace(" + ", "\n+ "), 19, fontweight="bold", va="top",
                  color=colour)
            _note(fig, rect, 0.73, 0.78 - 0.31 * row, f"first: {int((r == 1).sum())};  beyond {top}: {int((r > top).sum())}",
                  18, va="top")

    first = ", ".join(f"{name} {count}" for name, count in counts.items())
    return Page("The study's figure: where the partner lands",
                f"Partner first, of {n} test queries (each start's first fine-tuning run): {first}.", draw, step="06")


def _budget(steps: dict) -> Page | None:
    entry = steps.get("06")
    points = entry["numbers"].get("budget") if entry else None
    if not points:
        return None
    ablation = entry["numbers"].get("ablation_text")

    def draw(fig: plt.Figure, rect: Rect) -> None:
        ax = fig.add_axes(inside(rect, 0.08, 0.2, 0.6, 0.72))
        xs = np.array([p["seen"] for p in points], dtype=float)
        values = [np.asarray(p["values"], dtype=float) for p in points]
        means = np.array([v.mean() for v in values])
        ax.plot(xs, means, marker="o", markersize=12, linewidth=3, color=COLOURS["Barlow Twins"], label="mean over runs")
        ax.fill_between(xs, [v.min() for v in values], [v.max() for v in values], color=COLOURS["Barlow Twins"],
                        alpha=0.2, linewidth=0, label="range over runs")
        for x, v in zip(xs, values):
            ax.scatter(np.full(len(v), x), v, s=50, color=COLOURS["Barlow Twins"], alpha=0.6, zorder=3)
        ax.set_xticks(xs, [f"{p['label']}\n{p['seen']:,.0f}" for p in points], fontsize=16)
        ax.set(xlabel="pictures drawn in pretraining (steps x batch)", ylabel="test R@1, left -> right",
               title="More pretraining, fine-tuned the same way")
        ax.margins(x=0.12, y=0.25)
        ax.legend(fontsize=16, loc="upper right")
        if ablation:
            _note(fig, rect, 0.73, 0.9, "Without blur", 20, fontweight="bold", va="top")
            _note(fig, rect, 0.73, 0.8, _wrap(ablation, 26), 18, va="top", linespacing=1.3)

    return Page("Does more pretraining help? Is blur the cause?", entry["numbers"].get("budget_text"), draw, step="06")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _finder(folder: Path, steps: dict, series: dict) -> Page | None:
    entry = steps.get("07")
    if entry is None:
        return None
    ranks = series.get("07", {}).get("ranks")
    shown = picture(folder, "slide_07_lookalike") if (Path(folder) / "slide_07_lookalike.png").is_file() else None

    def draw(fig: plt.Figure, rect: Rect) -> None:
        if shown is not None:
            _show(fig, inside(rect, 0.0, 0.3, 0.6, 0.66), shown, anchor="W")
            _note(fig, rect, 0.0, 0.16, "a test query, then the fine-tuned model's three best matches\nwith their "
                  "saliency (the true partner, if among them, in green)", 16, color="0.3", va="top")
        if ranks is not None:
            r = np.asarray(ranks, dtype=int)
            ax = fig.add_axes(inside(rect, 0.73, 0.18, 0.23, 0.72))
            edges = [(1, 1, "1"), (2, 5, "2-5"), (6, 20, "6-20"), (21, 100, "21-100"), (101, 10**9, "over 100")]
            heights = [int(((r >= lo) & (r <= hi)).sum()) for lo, hi, _ in edges]
            bars = ax.barh(np.arange(len(edges))[::-1], heights, color="C0", height=0.6)
            ax.bar_label(bars, fontsize=16, padding=4)
            ax.set_yticks(np.arange(len(edges))[::-1], [label for *_, label in edges], fontsize=16)
            ax.set(xlabel="test queries", title="Rank of the partner", xlim=(0, 1.3 * max(heights)))
            ax.grid(axis="y", visible=False)

    return Page(entry["title"], entry["finding"], draw if (ranks is not None or shown is not None) else None, step="07")


def _claims(steps: dict) -> Page | None:
    """The study's claims against what this project measured, one row a step that was recorded."""
    rows = [["step", "the study", "this project"]]
    n = {step: steps.get(step, {}).get("numbers", {}) for step in ("01", "02", "04", "05", "06", "07")}
    if {"pairs", "generic"} <= n["01"].keys():
        rows.append(["the data", "about 1300 of 6016 pairs generic",
                     f"{n['01']['generic']} of {n['01']['pairs']} generic ({n['01']['generic'] / n['01']['pairs']:.0%})"])
    if {"r25", "candidates"} <= n["02"].keys():
        r25 = n["02"]["r25"]
        rows.append(["learned distance", "1% top-25", f"R@25 {r25['learned distance']:.3f} (cosine {r25['plain cosine']:.3f}, "
                     f"chance {min(25, n['02']['candidates']) / n['02']['candidates']:.3f})"])
    if {"r10_before", "r10_after"} <= n["04"].keys():
        rows.append(["Barlow Twins", "a promising pretraining", f"zero-shot R@10 {n['04']['r10_before']:.2f} -> "
                     f"{n['04']['r10_after']:.2f} ({n['04']['verdict']})"])
    if {"r1_before", "r1_after"} <= n["05"].keys():
        rows.append(["fine-tuning", "projection layers help", f"R@1 {n['05']['r1_before']:.3f} -> {n['05']['r1_after']:.3f}"])
    if {"first_places", "difference"} <= n["06"].keys():
        first = n["06"]["first_places"]
        imagenet = next((v for k, v in first.items() if k.startswith("ImageNet +")), None)
        barlow = next((v for k, v in first.items() if k.startswith("Barlow Twins +")), None)
        rows.append(["Barlow Twins vs classifier", "BT first 'in over 50 cases', more than the classifier",
                     f"first: {barlow} (BT) vs {imagenet}; R@1 "
                     f"{interval(n['06']['difference'], n['06']['low'], n['06']['high'], signed=True)}"])
    if {"first"} <= n["07"].keys():
        rows.append(["find a look-alike", "(beyond the study)", f"partner first for {n['07']['first']} test queries"])
    if len(rows) < 3:
        return None
    scale = n["04"].get("scale")
    return Page("The study's claims and this project", "The study's column is quoted; every cell on the right was "
                "measured by the notebooks" + (f" (Barlow Twins: {scale})." if scale else "."), table=rows,
                step="claims")


def _limitations(steps: dict) -> Page | None:
    numbers = steps.get("06", {}).get("numbers", {})
    bullets = []
    if "scope_short" in numbers:
        bullets.append(f"Barlow Twins was run small: {numbers['scope_short']}. Settle it: the gpu profile "
                       "(ResNet-50, 224 px, longer) on a GPU.")
    bullets.append("The study's own ResNet-50 question (official Barlow Twins weights against the supervised ones) "
                   "was not run offline. Settle it: python -m ttl_utils download --resnet50-weights, then notebook 06.")
    pairs = steps.get("01", {}).get("numbers", {}).get("pairs")
    candidates = steps.get("02", {}).get("numbers", {}).get("candidates")
    if pairs and candidates:
        bullets.append(f"{pairs} of TTL's 6016 pairs, {candidates} test pairs: intervals are wide. Settle it: "
                       "make data, then make figures on the full TTL.")
    bullets.append("One train / validation / test split; fine-tuning seeds share their cached views. Settle it: "
                   "cross-validation folds over the pairs.")
    bullets.append("The 4000 unlabelled pictures' candidate lists are not used for fine-tuning yet. Settle it: "
                   "learning from them, measured on held-out pairs.")
    return Page("Limitations and open questions", None, bullets=bullets, step="limitations")


def _conclusion(steps: dict) -> Page | None:
    entry = steps.get("conclusion")
    if entry is None:
        return None
    clauses = [part.strip() for part in entry["finding"].rstrip(".").split("; ")]
    clauses = [clause[0].upper() + clause[1:] + "." for clause in clauses]
    return Page(entry["title"], None, bullets=clauses, step="conclusion")


def story(folder: str | Path) -> tuple[dict, list[Page]]:
    """Return the recorded results of `folder` and the talk's pages in order (title page excluded)."""
    folder = Path(folder)
    results = read_results(folder)
    steps = results.get("steps", {})
    if not steps:
        raise SlidesError(f"No findings in {folder / RESULTS_FILE}: run the notebooks first (make figures), "
                          f"or pass --figures with a folder they wrote.")
    series = read_series(folder)
    pages = [_task(folder, steps), _data(folder, steps), _siamese(steps), _baseline(steps, series),
             _saliency(folder, steps), _barlow_method(steps), _barlow(steps, series), _losses(steps),
             _finetune(steps, series), _comparison(steps), _frequency(steps, series), _budget(steps),
             _finder(folder, steps, series), _claims(steps), _limitations(steps), _conclusion(steps)]
    return results, [page for page in pages if page is not None]

