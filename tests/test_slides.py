"""The talk (`make slides`): built from results.json and the figures alone, every finding as recorded."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ttl_utils.config import Figures  # noqa: E402
from ttl_utils.data.demo import make_demo_pairs  # noqa: E402
from ttl_utils.present.findings import RESULTS_FILE, read_results, record  # noqa: E402
from ttl_utils.present.pictures import pair_grid  # noqa: E402
from ttl_utils.present.plots import save_fig, set_theme  # noqa: E402
from ttl_utils.present.slides import MIN_POINTS, PAGE_SIZE, SlidesError, build_slides, main  # noqa: E402

STEPS = {"01": "01_pairs", "02": "02_rank_histograms", "03": "03_cues", "04": "04_cross_correlation",
         "05": "05_test_cmc", "06": "06_rank_histogram", "07": "07_lookalikes"}


@pytest.fixture
def demo_results(tmp_path):
    """A figures folder as the smoke notebooks leave it: a figure and a finding a step, stamped."""
    figures = Figures(tmp_path / "figures-smoke", "demo data, 200 pairs · smoke profile")
    set_theme()
    pairs = make_demo_pairs(4, 16)
    for step, figure in STEPS.items():
        fig = pair_grid(pairs, n=4, cols=2, title=f"step {step}")
        save_fig(fig, figure, figures)
        plt.close(fig)
        record(figures, step, f"Step {step}", f"The finding of step {step}, long enough to need two lines on a slide: R@1 "
               f"0.{step}0 [0.100, 0.300] among 200 test candidates, against 0.175 [0.125, 0.230] zero-shot.", figure=figure,
               value=float(step))
    record(figures, "conclusion", "Conclusion", "Both starts find the partner first equally often.",
           figure="06_rank_histogram")
    return figures.folder


@pytest.mark.slow
def test_record_keeps_one_finding_a_step_with_its_data_and_numbers(demo_results):
    results = json.loads((demo_results / RESULTS_FILE).read_text())
    assert results["data"] == "demo data, 200 pairs · smoke profile"
    assert list(results["steps"]) == [*STEPS, "conclusion"]
    assert results["steps"]["02"] == {"title": "Step 02", "finding": "The finding of step 02, long enough to need two lines "
                                      "on a slide: R@1 0.020 [0.100, 0.300] among 200 test candidates, against 0.175 "
                                      "[0.125, 0.230] zero-shot.",
                                      "figure": "02_rank_histograms", "numbers": {"value": 2.0}}
    record(Figures(demo_results), "02", "Step 02", "Rerun: another finding.", figure="02_rank_histograms")
    assert read_results(demo_results)["steps"]["02"]["finding"] == "Rerun: another finding."  # replaced, not appended
    assert len(read_results(demo_results)["steps"]) == 8


@pytest.mark.slow
def test_slides_have_a_title_page_a_page_a_step_and_the_conclusion_with_the_recorded_findings(demo_results):
    pages = build_slides(demo_results, png=demo_results / "pages")
    results = read_results(demo_results)
    from PIL import Image

    rendered = sorted((demo_results / "pages").glob("slide-*.png"))
    assert [p.name for p in rendered][:2] == ["slide-01.png", "slide-02.png"] and len(rendered) == 9
    assert Image.open(rendered[3]).size == (1333, 750)  # 16:9 at 100 dpi
    assert len(pages) == 1 + 7 + 1
    assert pages[0]["finding"] is None and any("demo data, 200 pairs · smoke profile" in t for t in pages[0]["texts"])
    for page, step in zip(pages[1:], [*STEPS, "conclusion"]):
        assert page["finding"] == results["steps"][step]["finding"]
        drawn = " ".join(page["texts"]).replace("\n", " ")
        assert results["steps"][step]["finding"] in drawn  # the sentence on the page is the recorded one
    assert min(page["smallest_points"] for page in pages) >= MIN_POINTS
    assert all(page["inside"] for page in pages)  # no text runs off the page
    pdf = (demo_results / "slides.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 9
    assert PAGE_SIZE[0] / PAGE_SIZE[1] == pytest.approx(16 / 9, abs=1e-3)


@pytest.mark.slow
def test_slides_refuse_a_folder_without_findings_or_with_a_missing_figure(tmp_path, demo_results, capsys):
    with pytest.raises(SlidesError, match="No findings in .*results.json: run the notebooks first"):
        build_slides(tmp_path / "empty")
    (demo_results / "05_test_cmc.png").unlink()
    assert main(["--figures", str(demo_results)]) == 2
    assert capsys.readouterr().err.strip().endswith("05_test_cmc.png is missing: rerun the notebook that saves it "
                                                    "(make figures).")
    (demo_results / RESULTS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="results.json is not valid JSON"):
        build_slides(demo_results)


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
