"""The talk, rebuilt from what the notebooks measured: `make slides` writes `figures/slides.pdf`.

Every page is read from the figures folder alone: `results.json` (the findings the notebooks
recorded with `findings.record`) and the PNGs the notebooks saved. A title page names the data
and profile, then one page a step (its key figure and its one-sentence finding, as measured),
then the conclusion beside the rank-histogram comparison. Pages are 16:9 and no text is
smaller than 14 pt, for a projector. Nothing here computes a number: the sentences are the
notebooks' own.

    python -m ttl_utils.present.slides                       # figures/results.json -> figures/slides.pdf
    python -m ttl_utils.present.slides --figures artifacts/figures-demo-cpu
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from PIL import Image

from ..storage import atomic_write
from .findings import RESULTS_FILE, read_results

__all__ = ["PAGE_SIZE", "MIN_POINTS", "SlidesError", "build_slides", "main"]

PAGE_SIZE = (13.333, 7.5)  # inches: 16:9
MIN_POINTS = 14  # the smallest text on any page
TITLE = "Learning human-like image similarity on Totally-Looks-Like"
STEP_ORDER = ("01", "02", "03", "04", "05", "06", "07")
_MAX_PIXELS_WIDE = 1600  # pictures wider than this (none that save_fig writes) are shrunk first
PDF_DPI = 80


class SlidesError(RuntimeError):
    """The figures folder lacks what the slides are built from; the message says what to run."""


def _picture(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{name}.png"
    if not path.is_file():
        raise SlidesError(f"{path} is missing: rerun the notebook that saves it (make figures).")
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > _MAX_PIXELS_WIDE:
            image = image.resize((_MAX_PIXELS_WIDE, round(image.height * _MAX_PIXELS_WIDE / image.width)),
                                 Image.Resampling.LANCZOS)
        return np.asarray(image)


def _wrapped(fig: plt.Figure, text: str, fontsize: float, right: float = 0.96, left: float = 0.04) -> list[str]:
    """Return `text` broken into the longest lines that still end before `right` (a fraction of the
    page's width) at `fontsize`, measured with the figure's renderer."""
    renderer = fig.canvas.get_renderer()
    limit = (right - left) * fig.bbox.width
    for width in range(120, 20, -3):
        lines = textwrap.wrap(text, width)
        probe = fig.text(left, 0.5, "\n".join(lines), fontsize=fontsize)
        fits = probe.get_window_extent(renderer).width <= limit
        probe.remove()
        if fits:
            return lines
    return textwrap.wrap(text, 20)


def _page(title: str, finding: str | None, picture: np.ndarray | None, footer: str | None) -> plt.Figure:
    """Return one 16:9 page: a title, the picture as large as fits, the finding under it."""
    fig = plt.figure(figsize=PAGE_SIZE)
    fig.text(0.04, 0.93, title, fontsize=28, fontweight="bold", va="top")
    lines = _wrapped(fig, finding, 18) if finding else []
    text_height = 0.055 * len(lines)
    if picture is not None:
        ax = fig.add_axes((0.04, 0.08 + text_height + 0.02, 0.92, 0.8 - text_height - 0.04))
        ax.imshow(picture, interpolation="lanczos")
        ax.axis("off")
    if lines:
        fig.text(0.04, 0.07 + text_height, "\n".join(lines), fontsize=18, va="top", linespacing=1.3)
    if footer:
        fig.text(0.96, 0.02, footer, fontsize=MIN_POINTS, color="0.4", ha="right", va="bottom")
    return fig


def _title_page(data: str | None) -> plt.Figure:
    fig = plt.figure(figsize=PAGE_SIZE)
    fig.text(0.5, 0.62, TITLE, fontsize=32, fontweight="bold", ha="center", va="center", wrap=True)
    fig.text(0.5, 0.47, "Retracing a student study on the Totally-Looks-Like pairs (Rosenfeld et al. 2018)",
             fontsize=20, ha="center", va="center")
    fig.text(0.5, 0.33, f"Data: {data or 'not recorded'}", fontsize=20, ha="center", va="center")
    fig.text(0.5, 0.2, "Every number on these pages was measured by the notebooks (figures/results.json)",
             fontsize=16, color="0.35", ha="center", va="center")
    return fig


def _texts(fig: plt.Figure) -> list[str]:
    return [t.get_text() for t in fig.texts]


def build_slides(folder: str | Path, out: str | Path | None = None, png: str | Path | None = None) -> list[dict]:
    """Write the slides of the findings in `folder` to `out` (default `<folder>/slides.pdf`), atomically,
    and with `png` each page also as `<png>/slide-NN.png` (to look at, or for another deck).

    Returns one dict a page: its title, the finding drawn on it (None for the title page) and
    the texts drawn, so a test can check them against `results.json`. Steps without a
    recorded finding are left out; a finding whose figure is missing stops with a
    `SlidesError` naming the file.
    """
    folder = Path(folder)
    results = read_results(folder)
    steps = results.get("steps", {})
    if not steps:
        raise SlidesError(f"No findings in {folder / RESULTS_FILE}: run the notebooks first (make figures), "
                          f"or pass --figures with a folder they wrote.")
    out = Path(out) if out is not None else folder / "slides.pdf"
    data = results.get("data")
    figures = [(_title_page(data), {"title": TITLE, "finding": None})]
    for step in [s for s in STEP_ORDER if s in steps]:
        entry = steps[step]
        picture = _picture(folder, entry["figure"]) if entry.get("figure") else None
        figures.append((_page(f"{step} · {entry['title']}", entry["finding"], picture, data),
                        {"title": entry["title"], "finding": entry["finding"]}))
    if "conclusion" in steps:
        entry = steps["conclusion"]
        picture = _picture(folder, entry["figure"]) if entry.get("figure") else None
        figures.append((_page(entry["title"], entry["finding"], picture, data),
                        {"title": entry["title"], "finding": entry["finding"]}))
    pages = []

    def write(tmp: Path) -> None:
        metadata = {"Title": TITLE, "Creator": None, "Producer": None, "CreationDate": None}
        # pictures are drawn into the PDF at PDF_DPI, about 1070 px across a page: a PDF of about 1.2 MB
        with plt.rc_context({"savefig.bbox": "standard", "pdf.compression": 9}), PdfPages(tmp, metadata=metadata) as pdf:
            for number, (fig, page) in enumerate(figures, start=1):
                pdf.savefig(fig, dpi=PDF_DPI)
                if png is not None:
                    Path(png).mkdir(parents=True, exist_ok=True)
                    fig.savefig(Path(png) / f"slide-{number:02d}.png", dpi=100, metadata={"Software": None})
                renderer = fig.canvas.get_renderer()
                inside = all(fig.bbox.x0 <= t.get_window_extent(renderer).x0 and
                             t.get_window_extent(renderer).x1 <= fig.bbox.x1 for t in fig.texts)
                pages.append(page | {"texts": _texts(fig), "inside": inside,
                                     "smallest_points": min(t.get_fontsize() for t in fig.texts)})
                plt.close(fig)

    atomic_write(out, write)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttl_utils.present.slides", description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default=None,
                        help="the folder with results.json and the figures (default: figures/ of the project)")
    parser.add_argument("--out", default=None, help="the PDF to write (default: slides.pdf in that folder)")
    parser.add_argument("--png", default=None, help="also write each page as DIR/slide-NN.png")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # pages are written, never shown
    from ..config import project_root

    folder = Path(args.figures) if args.figures else project_root() / "figures"
    try:
        pages = build_slides(folder, args.out, args.png)
    except (SlidesError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(pages)} pages written to {Path(args.out) if args.out else folder / 'slides.pdf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
