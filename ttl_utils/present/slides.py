"""The talk, rebuilt from what the notebooks measured: `make slides` writes `figures/slides.pdf` and
`figures/slides.pptx`.

The pages (`pages.story`) follow the study's order: the task, the data, the learned distance,
saliency, Barlow Twins, fine-tuning, the comparison, the finder, the study's claims against this
project, the limitations and the conclusion. Each plot is drawn at the page's own size from the
numbers the notebooks recorded (`results.json` and `results-series.json`), never pasted in
shrunk; only photographs (example pairs, a saliency overlay, a look-alike) are pictures. Pages
are 16:9, no text is smaller than 14 pt, and each carries one small stamp (the data and profile)
and its number. The title page's author, course and date come from a small settings file
(`talk.ini` at the project's root; `--settings` for another).

The PowerPoint file has the same pages with real text boxes (title, finding, bullets, a real
table) and each plot as a picture, for lecturers who edit.

    python -m ttl_utils.present.slides                       # figures/ -> figures/slides.pdf and slides.pptx
    python -m ttl_utils.present.slides --figures artifacts/figures-demo-cpu --png pages/
"""

from __future__ import annotations

import argparse
import configparser
import io
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from ..storage import atomic_write
from .pages import Page, Rect, SlidesError, story
from .plots import compact_png

__all__ = ["MIN_POINTS", "PAGE_SIZE", "SETTINGS_FILE", "SlidesError", "TalkSettings", "build_slides", "default_settings",
           "main", "read_settings"]

PAGE_SIZE = (13.333, 7.5)  # inches: 16:9
MIN_POINTS = 14  # the smallest text on any page
TITLE_POINTS, FINDING_POINTS, BULLET_POINTS = 30, 20, 21
SETTINGS_FILE = "talk.ini"
PDF_DPI = 100
VISUAL = (0.04, 0.1, 0.92, 0.74)  # where a page's plot goes when the finding takes no room (left, bottom, width, height)
STYLE = {  # every piece of text in a plot at 14 pt or more
    "font.size": 16, "axes.titlesize": 20, "axes.labelsize": 18, "xtick.labelsize": 16, "ytick.labelsize": 16,
    "legend.fontsize": 16, "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "0.88", "pdf.fonttype": 42, "savefig.bbox": "standard",
}


@dataclass(frozen=True)
class TalkSettings:
    """What the title page says besides the results: the talk's `title` and `subtitle`, the `author`,
    the `course` and the `date` (empty: left out)."""

    title: str = "Learning human-like image similarity on Totally-Looks-Like"
    subtitle: str = "Retracing a student study on the Totally-Looks-Like pairs (Rosenfeld et al. 2018)"
    author: str = ""
    course: str = ""
    date: str = ""


def read_settings(path: str | Path | None) -> TalkSettings:
    """Return the settings in the `[talk]` section of the INI file `path` (missing keys keep their
    defaults; a missing default file gives the defaults). A file that cannot be read, or a key the
    talk does not know, raises a `SlidesError` naming the file."""
    if path is None:
        return TalkSettings()
    path = Path(path)
    if not path.is_file():
        raise SlidesError(f"{path}: no such settings file (copy talk.ini from the project's root).")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        raise SlidesError(f"{path} is not a settings file ({str(error).splitlines()[0]}).") from None
    if not parser.has_section("talk"):
        raise SlidesError(f"{path} has no [talk] section.")
    known = TalkSettings.__dataclass_fields__
    unknown = [key for key in parser["talk"] if key not in known]
    if unknown:
        raise SlidesError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(known)}).")
    return TalkSettings(**{key: value.strip() for key, value in parser["talk"].items()})


def default_settings() -> Path | None:
    """Return the project's `talk.ini` when there is one (None: the defaults)."""
    from ..config import project_root

    path = project_root() / SETTINGS_FILE
    return path if path.is_file() else None


def _wrapped(fig: plt.Figure, text: str, fontsize: float, width: float) -> list[str]:
    """Return `text` broken into the longest lines that fit in `width` (a fraction of the page) at
    `fontsize`, measured with the figure's renderer."""
    renderer = fig.canvas.get_renderer()
    limit = width * fig.bbox.width
    for chars in range(140, 20, -3):
        lines = textwrap.wrap(text, chars, break_on_hyphens=False)
        probe = fig.text(0, 0.5, "\n".join(lines), fontsize=fontsize)
        fits = probe.get_window_extent(renderer).width <= limit
        probe.remove()
        if fits:
            return lines
    return textwrap.wrap(text, 20)


def _layout(fig: plt.Figure, page: Page) -> tuple[list[str], Rect]:
    """Return the finding's lines and the rectangle left for the plot."""
    lines = _wrapped(fig, page.finding, FINDING_POINTS, 0.92) if page.finding else []
    finding_height = 0.052 * len(lines) + (0.02 if lines else 0)
    bottom = 0.075 + finding_height
    return lines, (VISUAL[0], bottom, VISUAL[2], 0.845 - bottom)


def _title_points(fig: plt.Figure, title: str) -> float:
    """Return the largest size, from `TITLE_POINTS` down to 22, at which `title` fits on one line."""
    renderer = fig.canvas.get_renderer()
    for points in range(TITLE_POINTS, 21, -1):
        probe = fig.text(0.04, 0.94, title, fontsize=points, fontweight="bold")
        fits = probe.get_window_extent(renderer).x1 <= 0.97 * fig.bbox.width
        probe.remove()
        if fits:
            return points
    return 22


def _frame(fig: plt.Figure, title: str, number: int, total: int, stamp: str | None) -> None:
    """The parts every page has: its title, its number and the one stamp."""
    fig.text(0.04, 0.94, title, fontsize=_title_points(fig, title), fontweight="bold", va="top")
    fig.text(0.96, 0.025, f"{number} / {total}", fontsize=MIN_POINTS, color="0.4", ha="right", va="bottom")
    if stamp:
        fig.text(0.04, 0.025, stamp, fontsize=MIN_POINTS, color="0.55", va="bottom")


def _bullets(fig: plt.Figure, bullets: list[str], top: float = 0.82, bottom: float = 0.08) -> None:
    """Write `bullets` from `top` down, at the largest size from `BULLET_POINTS` down to 16 at which they
    end above `bottom`."""
    for points in range(BULLET_POINTS, 15, -1):
        wrapped = [_wrapped(fig, bullet, points, 0.86) for bullet in bullets]
        line = points * 1.25 / 72 / PAGE_SIZE[1]  # one line's height, a fraction of the page
        if top - sum(line * len(lines) + 0.03 for lines in wrapped) >= bottom:
            break
    y = top
    for lines in wrapped:
        fig.text(0.05, y, "\u2022", fontsize=points, va="top")
        fig.text(0.08, y, "\n".join(lines), fontsize=points, va="top", linespacing=1.25)
        y -= line * len(lines) + 0.03


def _table(fig: plt.Figure, rows: list[list[str]], rect: Rect) -> None:
    """Draw `rows` (the first the header) as text in columns, wrapped to fit, rules between rows."""
    left, bottom, width, height = rect
    shares = (0.2, 0.33, 0.47)
    xs = [left + width * sum(shares[:k]) for k in range(len(shares))]
    y = bottom + height
    for number, row in enumerate(rows):
        cells = [_wrapped(fig, cell, 17, width * share - 0.015) for cell, share in zip(row, shares)]
        tall = max(len(cell) for cell in cells)
        for x, cell in zip(xs, cells):
            fig.text(x, y - 0.01, "\n".join(cell), fontsize=17, va="top", linespacing=1.2,
                     fontweight="bold" if number == 0 else "normal")
        y -= 0.042 * tall + 0.03
        fig.add_artist(plt.Line2D([left, left + width], [y + 0.012, y + 0.012], color="0.75", linewidth=1))


def _title_page(settings: TalkSettings, data: str | None, number: int, total: int) -> plt.Figure:
    fig = plt.figure(figsize=PAGE_SIZE)
    fig.text(0.5, 0.66, "\n".join(_wrapped(fig, settings.title, 34, 0.9)), fontsize=34, fontweight="bold",
             ha="center", va="center")
    fig.text(0.5, 0.5, settings.subtitle, fontsize=21, ha="center", va="center")
    who = " \u00b7 ".join(part for part in (settings.author, settings.course, settings.date) if part)
    if who:
        fig.text(0.5, 0.38, who, fontsize=21, ha="center", va="center")
    fig.text(0.5, 0.24, "Every number was measured by this project's notebooks, except the study's and the TTL paper's,\n"
             "which are quoted as published", fontsize=18, color="0.35", ha="center", va="center")
    fig.text(0.96, 0.025, f"{number} / {total}", fontsize=MIN_POINTS, color="0.4", ha="right", va="bottom")
    if data:
        fig.text(0.04, 0.025, data, fontsize=MIN_POINTS, color="0.55", va="bottom")
    return fig


def _draw_page(page: Page, number: int, total: int, stamp: str | None) -> plt.Figure:
    fig = plt.figure(figsize=PAGE_SIZE)
    _frame(fig, page.title, number, total, stamp)
    lines, rect = _layout(fig, page)
    if page.draw is not None:
        page.draw(fig, rect)
    elif page.table is not None:
        _table(fig, page.table, rect)
    elif page.bullets:
        _bullets(fig, page.bullets)
    if lines:
        fig.text(0.04, 0.075 + 0.052 * len(lines) + 0.005, "\n".join(lines), fontsize=FINDING_POINTS, va="top",
                 linespacing=1.3)
    return fig


def _all_texts(fig: plt.Figure) -> list[plt.Text]:
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]


def _page_record(fig: plt.Figure, page: Page | None, settings_title: str) -> dict:
    renderer = fig.canvas.get_renderer()
    texts = _all_texts(fig)
    inside = all(fig.bbox.x0 - 1 <= t.get_window_extent(renderer).x0 and
                 t.get_window_extent(renderer).x1 <= fig.bbox.x1 + 1 for t in texts)
    return {"title": page.title if page else settings_title, "finding": page.finding if page else None,
            "step": page.step if page else "title", "bullets": list(page.bullets) if page else [],
            "texts": [t.get_text() for t in fig.texts], "inside": inside,
            "smallest_points": min(t.get_fontsize() for t in texts)}


VISUAL_MARGIN = (0.03, 0.0)  # of the page's width and height: room beside a PowerPoint plot for labels that overhang


def padded(rect: Rect, margin: tuple[float, float] = VISUAL_MARGIN) -> tuple[Rect, Rect]:
    """Return `rect` grown by `margin` on each side (kept on the page), and `rect` within it as fractions
    of the grown one: a plot drawn there keeps a label that overhangs `rect` by up to the margin.

    >>> grown, inner = padded((0.0, 0.5, 0.5, 0.25), (0.1, 0.1))  # at the page's left edge: no room to grow there
    >>> grown, tuple(round(v, 3) for v in inner)
    ((0.0, 0.4, 0.6, 0.45), (0.0, 0.222, 0.833, 0.556))
    """
    x0, y0 = max(0.0, rect[0] - margin[0]), max(0.0, rect[1] - margin[1])
    x1, y1 = min(1.0, rect[0] + rect[2] + margin[0]), min(1.0, rect[1] + rect[3] + margin[1])
    grown = (x0, y0, round(x1 - x0, 12), round(y1 - y0, 12))
    return grown, ((rect[0] - x0) / grown[2], (rect[1] - y0) / grown[3], rect[2] / grown[2], rect[3] / grown[3])


def _visual_png(page: Page, rect: Rect) -> bytes:
    """Return the page's plot alone as a PNG the size of `padded(rect)`, for the PowerPoint page."""
    grown, inner = padded(rect)
    fig = plt.figure(figsize=(PAGE_SIZE[0] * grown[2], PAGE_SIZE[1] * grown[3]))
    page.draw(fig, inner)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return compact_png(out.getvalue())  # a photograph in 256 colours: the file stays light


def _pptx_box(slide, rect: Rect, text: str | list[str], points: float, bold: bool = False, colour: str | None = None,
              align=None):
    """Add a text box at `rect` (fractions of the page, from its bottom left) holding `text` (one paragraph
    a line) at `points`."""
    from pptx.dml.color import RGBColor
    from pptx.util import Inches, Pt

    left, bottom, width, height = rect
    shape = slide.shapes.add_textbox(Inches(PAGE_SIZE[0] * left), Inches(PAGE_SIZE[1] * (1 - bottom - height)),
                                     Inches(PAGE_SIZE[0] * width), Inches(PAGE_SIZE[1] * height))
    frame = shape.text_frame
    frame.word_wrap = True
    for k, line in enumerate([text] if isinstance(text, str) else text):
        paragraph = frame.paragraphs[0] if k == 0 else frame.add_paragraph()
        paragraph.text = line
        if align is not None:
            paragraph.alignment = align
        for run in paragraph.runs:
            run.font.size, run.font.bold = Pt(points), bold
            if colour is not None:
                run.font.color.rgb = RGBColor.from_string(colour)
    return shape


def _pptx_footer(slide, number: int, total: int, data: str | None) -> None:
    from pptx.enum.text import PP_ALIGN

    _pptx_box(slide, (0.7, 0.01, 0.27, 0.05), f"{number} / {total}", MIN_POINTS, colour="666666", align=PP_ALIGN.RIGHT)
    if data:
        _pptx_box(slide, (0.03, 0.01, 0.66, 0.05), data, MIN_POINTS, colour="666666")


def _pptx_table(slide, rows: list[list[str]], rect: Rect) -> None:
    from pptx.util import Inches, Pt

    shape = slide.shapes.add_table(len(rows), len(rows[0]), Inches(PAGE_SIZE[0] * rect[0]),
                                   Inches(PAGE_SIZE[1] * (1 - rect[1] - rect[3])), Inches(PAGE_SIZE[0] * rect[2]),
                                   Inches(0.5 * len(rows)))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            cell = shape.table.cell(r, c)
            cell.text = text
            for paragraph in cell.text_frame.paragraphs:
                for run in paragraph.runs:
                    run.font.size = Pt(16)


def _write_pptx(path: Path, settings: TalkSettings, data: str | None, pages: list[Page], rects: list[Rect]) -> None:
    """Write the same pages as a PowerPoint file: real text boxes and tables, each plot a picture."""
    from pptx import Presentation
    from pptx.enum.text import PP_ALIGN
    from pptx.util import Inches

    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(PAGE_SIZE[0]), Inches(PAGE_SIZE[1])
    blank = deck.slide_layouts[6]
    total = len(pages) + 1
    slide = deck.slides.add_slide(blank)
    _pptx_box(slide, (0.05, 0.56, 0.9, 0.2), settings.title, 34, bold=True, align=PP_ALIGN.CENTER)
    _pptx_box(slide, (0.05, 0.44, 0.9, 0.1), settings.subtitle, 21, align=PP_ALIGN.CENTER)
    who = " \u00b7 ".join(part for part in (settings.author, settings.course, settings.date) if part)
    if who:
        _pptx_box(slide, (0.05, 0.33, 0.9, 0.1), who, 21, align=PP_ALIGN.CENTER)
    _pptx_footer(slide, 1, total, data)
    for number, (page, rect) in enumerate(zip(pages, rects), start=2):
        slide = deck.slides.add_slide(blank)
        _pptx_box(slide, (0.03, 0.84, 0.94, 0.13), page.title, TITLE_POINTS, bold=True)
        if page.finding:
            _pptx_box(slide, (0.03, 0.07, 0.94, rect[1] - 0.07), page.finding, FINDING_POINTS)
        if page.draw is not None:
            grown = padded(rect)[0]
            slide.shapes.add_picture(io.BytesIO(_visual_png(page, rect)), Inches(PAGE_SIZE[0] * grown[0]),
                                     Inches(PAGE_SIZE[1] * (1 - grown[1] - grown[3])), Inches(PAGE_SIZE[0] * grown[2]),
                                     Inches(PAGE_SIZE[1] * grown[3]))
        elif page.table is not None:
            _pptx_table(slide, page.table, rect)
        elif page.bullets:
            _pptx_box(slide, (0.04, 0.1, 0.92, 0.72), [f"\u2022 {bullet}" for bullet in page.bullets], BULLET_POINTS)
        _pptx_footer(slide, number, total, data)
    atomic_write(path, lambda tmp: tmp.write_bytes(steady_zip(_saved(deck))))


def _saved(deck) -> bytes:
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def steady_zip(data: bytes) -> bytes:
    """Return the zip archive `data` (a .pptx) with every entry dated 1980-01-01: the same pages give the
    same bytes, so rebuilding the talk changes the committed file only when a page changed.

    >>> import zipfile
    >>> raw = io.BytesIO()
    >>> with zipfile.ZipFile(raw, "w") as archive:
    ...     archive.writestr("a.xml", "<a/>")
    >>> zipfile.ZipFile(io.BytesIO(steady_zip(raw.getvalue()))).infolist()[0].date_time
    (1980, 1, 1, 0, 0, 0)
    """
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            steady = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
            steady.compress_type, steady.external_attr = zipfile.ZIP_DEFLATED, entry.external_attr
            target.writestr(steady, source.read(entry.filename))
    return out.getvalue()


def build_slides(folder: str | Path, out: str | Path | None = None, png: str | Path | None = None,
                 settings: str | Path | None = None, pptx: bool = True) -> list[dict]:
    """Write the talk of the findings in `folder` to `out` (default `<folder>/slides.pdf`) and, with
    `pptx`, the same pages to the `.pptx` beside it, each atomically; with `png`, each page also as
    `<png>/slide-NN.png` (to look at). `settings`: the INI file of the title page (None: defaults).

    Returns one dict a page: its title, finding, step, bullets, the texts drawn on the page, whether
    every text stays on the page, and its smallest font size, for tests to check.
    A missing picture or findings file stops with a `SlidesError` naming it.
    """
    folder = Path(folder)
    talk = read_settings(settings)
    results, pages = story(folder)
    out = Path(out) if out is not None else folder / "slides.pdf"
    data = results.get("data")
    total = len(pages) + 1
    records: list[dict] = []
    rects: list[Rect] = []

    # matplotlib's defaults under STYLE, whatever theme the caller set (a notebook's set_theme would change the pages)
    with plt.style.context("default"), plt.rc_context(STYLE):
        figures = [(_title_page(talk, data, 1, total), None)]
        for number, page in enumerate(pages, start=2):
            fig = _draw_page(page, number, total, data)
            rects.append(_layout(fig, page)[1])
            figures.append((fig, page))

        def write(tmp: Path) -> None:
            metadata = {"Title": talk.title, "Author": talk.author or None, "Creator": None, "Producer": None,
                        "CreationDate": None}
            with PdfPages(tmp, metadata=metadata) as pdf:
                for number, (fig, page) in enumerate(figures, start=1):
                    pdf.savefig(fig, dpi=PDF_DPI)
                    if png is not None:
                        Path(png).mkdir(parents=True, exist_ok=True)
                        fig.savefig(Path(png) / f"slide-{number:02d}.png", dpi=100, metadata={"Software": None})
                    records.append(_page_record(fig, page, talk.title))
                    plt.close(fig)

        atomic_write(out, write)
        if pptx:
            _write_pptx(out.with_suffix(".pptx"), talk, data, pages, rects)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttl_utils.present.slides", description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default=None,
                        help="the folder with results.json and the figures (default: figures/ of the project)")
    parser.add_argument("--out", default=None, help="the PDF to write (default: slides.pdf in that folder; the "
                                                    ".pptx goes beside it)")
    parser.add_argument("--png", default=None, help="also write each page as DIR/slide-NN.png")
    parser.add_argument("--settings", default=None,
                        help=f"the title page's settings (author, course, date; default: {SETTINGS_FILE} at the "
                             "project's root when there is one)")
    parser.add_argument("--no-pptx", action="store_true", help="write the PDF only")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # pages are written, never shown
    from ..config import project_root

    folder = Path(args.figures) if args.figures else project_root() / "figures"
    settings = args.settings if args.settings is not None else default_settings()
    try:
        pages = build_slides(folder, args.out, args.png, settings=settings, pptx=not args.no_pptx)
    except (SlidesError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pdf = Path(args.out) if args.out else folder / "slides.pdf"
    print(f"{len(pages)} pages written to {pdf}" + ("" if args.no_pptx else f" and {pdf.with_suffix('.pptx')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
