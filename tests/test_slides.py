"""The talk (`make slides`): slide-native pages built from results.json, its series and the text-free
pictures alone, every finding as recorded, read back from the PDF and the PowerPoint file."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ttl_utils.config import Figures  # noqa: E402
from ttl_utils.present.findings import RESULTS_FILE, SERIES_FILE, read_results, read_series, record  # noqa: E402
from ttl_utils.present.pictures import photo_row  # noqa: E402
from ttl_utils.present.plots import save_fig, set_theme  # noqa: E402
from ttl_utils.present.slides import MIN_POINTS, PAGE_SIZE, SlidesError, build_slides, main, read_settings  # noqa: E402

STAMP = "demo data, 200 pairs · smoke profile"
N = 40  # test queries in the made-up results


def _ranks(seed: int, n: int = N, top: int = N) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, top + 1, n)


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    """A figures folder as the notebooks leave it: every step's finding, numbers and series, the
    conclusion, and the text-free pictures (made-up values, the real keys)."""
    figures = Figures(tmp_path_factory.mktemp("slides") / "figures-smoke", STAMP)
    unstamped = Figures(figures.folder)
    rng = np.random.default_rng(0)
    photo = rng.random((49, 40, 3))
    for name, count in (("slide_01_example_pair", 2), ("slide_01_face_examples", 6), ("slide_01_generic_examples", 6),
                        ("slide_03_saliency", 2), ("slide_07_lookalike", 4)):
        fig = photo_row([photo] * count, maps=[rng.normal(size=(49, 40))] * count if "saliency" in name else None,
                        framed=[1] if "lookalike" in name else (), gap=[2, 4] if count == 6 else ())
        save_fig(fig, name, unstamped)
        plt.close(fig)
    record(figures, "01", "The data: faces and generic look-alikes", "A face was found on at least one side of 73% of "
           "the 1000 pairs; the other 270 are generic look-alikes.", figure="01_pairs", pairs=1000, generic=270,
           near_duplicates=18)
    record(figures, "02", "A learned distance on frozen features", "A learned distance on frozen features does not "
           "clearly differ from plain cosine at R@25 (+0.025 [-0.040, +0.090]).", candidates=N,
           r25={"learned distance": 0.51, "plain cosine": 0.485}, verdict_r25="does not clearly differ from",
           series={"ranks": {"plain cosine": _ranks(1), "learned distance": _ranks(2)}})
    record(figures, "03", "Saliency: what the similarity needs", "Over 200 test pairs, the partner's margin falls by: "
           "taking away fine detail 63% [45%, 77%]; the network leans most on fine detail and texture.",
           method="integrated gradients", cues=[{"cue": "blur", "lost": 0.63, "low": 0.45, "high": 0.77},
                                                {"cue": "edges", "lost": 0.45, "low": 0.3, "high": 0.59},
                                                {"cue": "greyscale", "lost": 0.06, "low": 0.01, "high": 0.11}])
    record(figures, "04", "Barlow Twins pretraining on TTL's own images", "On 100 validation pairs, continuing with "
           "Barlow Twins lowers R@10: 0.51 -> 0.38 (-0.130 [-0.220, -0.030]).", r10_gain=-0.13, low=-0.22, high=-0.03,
           verdict="lowers", r10_before=0.51, r10_after=0.38, scale="EfficientNet-Lite0, 1 epoch at 96 px on 5,384 "
           "pictures", val_pairs=100, series={"loss": {"step": [0, 1, 2], "loss": [900.0, 700.0, 650.0]},
                                              "ranks": {"ImageNet": _ranks(3), "ImageNet + Barlow Twins": _ranks(4)}})
    record(figures, "05", "Fine-tuning on the pairs", "Fine-tuned on 700 pairs, R@1 among 200 test candidates went from "
           "0.175 to 0.280 (+0.105 [+0.050, +0.160]).", r1_gain=0.105, r1_low=0.05, r1_high=0.16, r1_before=0.175,
           r1_after=0.28, model="EfficientNet-Lite0", train_pairs=700, candidates=N,
           series={"ranks": {"zero-shot": _ranks(5), "fine-tuned": _ranks(6)}})
    tests = [{"test": "left -> right R@1", "role": "primary", "difference": -0.043, "low": -0.082, "high": -0.007},
             {"test": "right -> left R@1", "role": "secondary", "difference": -0.011, "low": -0.063, "high": 0.04}]
    record(figures, "06", "Barlow Twins vs classification pretraining", "On 200 test pairs, Barlow Twins pretraining "
           "lowers the fine-tuned left -> right R@1 (pre-registered primary test: -0.043 [-0.082, -0.007]).",
           difference=-0.043, low=-0.082, high=-0.007, verdict="B", tests=tests,
           run_r1={"ImageNet": [0.28, 0.275, 0.28], "Barlow Twins": [0.21, 0.25, 0.24, 0.24]},
           first_places={"ImageNet + fine-tuned": 56, "Barlow Twins + fine-tuned": 42},
           budget=[{"label": "no pretraining", "seen": 0, "values": [0.28, 0.275]},
                   {"label": "the full recipe", "seen": 5376, "values": [0.21, 0.25]}],
           budget_text="The mean R@1 falls with every step of budget (0.278 -> 0.235).",
           ablation_text="Without blur: no clear difference, -0.011 [-0.041, +0.018].",
           scope_short="EfficientNet-Lite0, 1 epoch at 96 px on 5,384 pictures, 2 pretraining seeds",
           series={"ranks": {"ImageNet, zero-shot": _ranks(7), "ImageNet + fine-tuned": _ranks(8),
                             "Barlow Twins + fine-tuned": _ranks(9)}})
    record(figures, "07", "Beyond the study: find your look-alike", "Searching all 1000 pictures, the true partner "
           "ranked first for 31 of 200 test queries.", first=31, median_rank=46.5, gallery=1000,
           series={"ranks": _ranks(10, top=1000)})
    record(figures, "conclusion", "Conclusion", "Fine-tuning on the pairs (EfficientNet-Lite0, 700 training pairs) "
           "raises R@1 by +0.105 [+0.050, +0.160]; on 200 test pairs, Barlow Twins pretraining lowers the fine-tuned "
           "R@1 (-0.043 [-0.082, -0.007]).")
    return figures.folder


def test_record_keeps_one_finding_a_step_with_its_numbers_and_series_apart(demo_results):
    results = json.loads((demo_results / RESULTS_FILE).read_text())
    assert results["data"] == STAMP
    assert list(results["steps"]) == ["01", "02", "03", "04", "05", "06", "07", "conclusion"]
    assert results["steps"]["02"]["numbers"]["r25"] == {"learned distance": 0.51, "plain cosine": 0.485}
    assert "ranks" not in json.dumps(results["steps"]["02"])  # arrays go beside it, not into results.json
    series = read_series(demo_results)
    assert sorted(series) == ["02", "04", "05", "06", "07"]
    assert series["02"]["ranks"]["plain cosine"] == _ranks(1).tolist()
    (demo_results / SERIES_FILE).write_text("{broken")
    with pytest.raises(ValueError, match="results-series.json is not valid JSON"):
        read_series(demo_results)
    (demo_results / SERIES_FILE).write_text(json.dumps(series))


@pytest.fixture(scope="module")
def built(demo_results):
    settings = demo_results.parent / "talk.ini"
    settings.write_text("[talk]\nauthor = A. Lecturer\ncourse = COMP90086\ndate = 2 December 2026\n")
    with matplotlib.rc_context():
        set_theme()  # as a notebook leaves matplotlib: the pages must not depend on it
        pages = build_slides(demo_results, png=demo_results / "pages", settings=settings)
    return demo_results, pages


@pytest.mark.slow
def test_the_talk_tells_the_whole_story_in_order_with_every_recorded_finding(built):
    folder, pages = built
    steps = read_results(folder)["steps"]
    titles = [page["title"] for page in pages]
    assert titles[0] == "Learning human-like image similarity on Totally-Looks-Like"
    assert "A. Lecturer · COMP90086 · 2 December 2026" in pages[0]["texts"]  # talk.ini's title page
    assert [page["step"] for page in pages] == ["title", "task", "01", "method", "02", "03", "method", "04", "method",
                                                "05", "06", "06", "06", "07", "claims", "limitations", "conclusion"]
    for page in pages:
        drawn = " ".join(page["texts"]).replace("\n", " ")
        if page["step"] in steps and page["step"] not in ("06", "conclusion"):
            assert steps[page["step"]]["finding"] in drawn  # the sentence on the page is the recorded one
        assert f"{pages.index(page) + 1} / {len(pages)}" in page["texts"]  # page numbers
        assert page["texts"].count(STAMP) == 1  # one stamp a page
    conclusion = next(page for page in pages if page["step"] == "conclusion")
    assert " ".join(conclusion["bullets"]).replace(". ", "; ", 1).rstrip(".").lower() == \
        steps["conclusion"]["finding"].rstrip(".").lower()  # every clause, as recorded
    task = pages[1]
    assert f"R@1 {1 / N:.3f}" in task["finding"] and f"R@25 = {25 / N:.3f}" in " ".join(task["texts"])
    claims = next(page for page in pages if page["step"] == "claims")
    assert "270 of 1000 generic (27%)" in " ".join(claims["texts"])
    limitations = next(page for page in pages if page["step"] == "limitations")
    assert any("download --resnet50-weights" in bullet for bullet in limitations["bullets"])
    assert all(page["inside"] for page in pages)  # no text runs off the page
    assert min(page["smallest_points"] for page in pages) >= MIN_POINTS


@pytest.mark.slow
def test_the_pdf_read_back_has_every_page_its_text_and_nothing_under_14_points(built):
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTTextContainer

    folder, pages = built
    read = list(extract_pages(folder / "slides.pdf"))
    assert len(read) == len(pages)
    width, height = read[0].width / 72, read[0].height / 72
    assert (width, height) == pytest.approx(PAGE_SIZE, abs=0.01)
    steps = read_results(folder)["steps"]
    for layout, page in zip(read, pages):
        sizes, text = [], []

        def walk(item, sizes=sizes, text=text):
            if isinstance(item, LTChar) and item.get_text().strip():
                sizes.append(item.size if item.upright else item.width)  # a y label turned 90 degrees: its width
            if isinstance(item, LTTextContainer):
                text.append(item.get_text())
            for child in getattr(item, "_objs", []):
                walk(child, sizes, text)

        walk(layout)
        assert sizes and min(sizes) >= MIN_POINTS - 0.05, (page["title"], min(sizes))
        flat = " ".join(" ".join(text).split())
        if page["step"] in steps and page["step"] not in ("06", "conclusion"):
            assert " ".join(steps[page["step"]]["finding"].split()[:6]) in flat


@pytest.mark.slow
def test_the_pptx_has_the_same_pages_titles_and_real_text(built):
    from pptx import Presentation

    folder, pages = built
    deck = Presentation(str(folder / "slides.pptx"))
    assert len(deck.slides) == len(pages)
    assert deck.slide_width / deck.slide_height == pytest.approx(16 / 9, abs=1e-3)
    for slide, page in zip(deck.slides, pages):
        texts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
        assert page["title"] in texts[0]
        if page["finding"]:
            assert page["finding"] in texts
        sizes = [run.font.size.pt for shape in slide.shapes if shape.has_text_frame
                 for paragraph in shape.text_frame.paragraphs for run in paragraph.runs if run.font.size]
        assert min(sizes) >= MIN_POINTS
    claims = deck.slides[[p["step"] for p in pages].index("claims")]
    table = next(shape.table for shape in claims.shapes if shape.has_table)
    assert table.cell(0, 1).text == "the study" and len(table.rows) >= 6
    pictures = [shape for slide in deck.slides for shape in slide.shapes if shape.shape_type == 13]
    assert len(pictures) == sum(p["step"] not in ("title", "claims", "limitations", "conclusion") for p in pages)
    import io

    import numpy as np
    from PIL import Image

    for picture in pictures:  # nothing drawn reaches a picture's edge: no label is cut off on the PowerPoint page
        grey = np.asarray(Image.open(io.BytesIO(picture.image.blob)).convert("L"))
        edges = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        assert edges.min() >= 250, picture.image.filename
        assert 0 <= picture.left and picture.left + picture.width <= deck.slide_width
    import zipfile

    dates = {entry.date_time for entry in zipfile.ZipFile(folder / "slides.pptx").infolist()}
    assert dates == {(1980, 1, 1, 0, 0, 0)}  # the same pages give the same bytes
    from PIL import Image

    assert Image.open(folder / "pages" / "slide-03.png").size == (1333, 750)  # 16:9 at 100 dpi


def test_settings_fill_the_title_page_and_bad_ones_give_one_line(tmp_path):
    path = tmp_path / "talk.ini"
    path.write_text("[talk]\nauthor = A. Lecturer\ncourse = COMP90086\ndate = 2 December 2026\n")
    settings = read_settings(path)
    assert (settings.author, settings.course, settings.date) == ("A. Lecturer", "COMP90086", "2 December 2026")
    assert settings.title.startswith("Learning human-like")
    path.write_text("[talk]\nspeaker = me\n")
    with pytest.raises(SlidesError, match=r"talk.ini: unknown setting 'speaker' \(known: title, subtitle, author"):
        read_settings(path)
    path.write_text("author = nobody\n")
    with pytest.raises(SlidesError, match="talk.ini is not a settings file"):
        read_settings(path)
    with pytest.raises(SlidesError, match="missing.ini: no such settings file"):
        read_settings(tmp_path / "missing.ini")


@pytest.mark.slow
def test_a_missing_picture_or_findings_stop_with_one_line(tmp_path, demo_results, capsys):
    copy = tmp_path / "figures"
    copy.mkdir()
    for path in demo_results.glob("*.*"):
        (copy / path.name).write_bytes(path.read_bytes())
    with pytest.raises(SlidesError, match="No findings in .*results.json: run the notebooks first"):
        build_slides(tmp_path / "empty")
    (copy / "slide_03_saliency.png").unlink()
    (copy / "slide_01_face_examples.png").unlink()
    assert main(["--figures", str(copy), "--no-pptx"]) == 0  # a missing photo leaves the plot alone
    (copy / RESULTS_FILE).write_text("{not json")
    assert main(["--figures", str(copy)]) == 2
    assert capsys.readouterr().err.strip().endswith("delete it and rerun the notebooks.")


def test_the_conclusion_is_built_from_the_recorded_findings_only():
    from ttl_utils.present.findings import conclusion

    steps = {"02": {"numbers": {"verdict_r25": "does not clearly differ from"}},
             "04": {"numbers": {"verdict": "lowers", "r10_gain": -0.15, "low": -0.24, "high": -0.06}},
             "05": {"numbers": {"r1_gain": 0.105, "r1_low": 0.05, "r1_high": 0.16}}}
    assert conclusion(steps, "A beats B: +0.060 [+0.015, +0.110]") == (
        "Fine-tuning on the pairs raises R@1 by +0.105 [+0.050, +0.160]; a learned distance on frozen features does "
        "not clearly differ from plain cosine at R@25; Barlow Twins pretraining lowers zero-shot validation R@10 "
        "(-0.150 [-0.240, -0.060]); A beats B: +0.060 [+0.015, +0.110].")
    scoped = {"02": {"numbers": {"verdict_r25": "loses to", "candidates": 200}},
              "04": {"numbers": {"verdict": "lowers", "r10_gain": -0.13, "low": -0.22, "high": -0.03,
                                 "scale": "EfficientNet-Lite0, 1 epoch at 96 px on 5,384 pictures", "val_pairs": 100}},
              "05": {"numbers": {"r1_gain": 0.105, "r1_low": 0.05, "r1_high": 0.16, "model": "EfficientNet-Lite0",
                                 "train_pairs": 700, "candidates": 200}}}
    assert conclusion(scoped, "no clear difference") == (
        "Fine-tuning on the pairs (EfficientNet-Lite0, 700 training pairs, 200 test candidates, one run) raises R@1 by "
        "+0.105 [+0.050, +0.160]; a learned distance on frozen features loses to plain cosine at R@25 (among 200 test "
        "candidates, one run); Barlow Twins pretraining (EfficientNet-Lite0, 1 epoch at 96 px on 5,384 pictures, one "
        "pretraining seed, 100 validation pairs) lowers zero-shot validation R@10 (-0.130 [-0.220, -0.030]); no clear "
        "difference.")
    assert conclusion({}, "no clear difference (R@1 +0.000 [-0.1, +0.1])") == "No clear difference (R@1 +0.000 [-0.1, +0.1])."
