"""The figures of notebooks 01 and 03: image statistics, near-duplicates, faithfulness curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ttl_utils.data.demo import make_demo_pairs  # noqa: E402
from ttl_utils.data.explore import image_summary, image_table  # noqa: E402
from ttl_utils.present.pictures import near_duplicate_grid  # noqa: E402
from ttl_utils.present.plots import faithfulness_curves, image_statistics  # noqa: E402


def test_image_statistics_draws_sizes_side_by_side_saturation_and_labelled_greyscale_bars():
    images = image_table(make_demo_pairs(4, 16))
    summary = image_summary(images)
    fig = image_statistics(images, summary)
    assert [ax.get_title() for ax in fig.axes] == ["Image sizes", "Saturation", "Greyscale share"]
    # one size for every image: a sentence, not two equal bars
    assert not fig.axes[0].patches and fig.axes[0].texts[0].get_text() == "all 8 images\n16 x 16 pixels"
    mixed = images.copy()
    mixed.loc[mixed.index[0], "width"] = 20
    sizes = image_statistics(mixed, summary).axes[0]
    assert [t.get_text() for t in sizes.get_legend().get_texts()] == ["left", "right"]
    assert sorted(bar.get_height() for bar in sizes.patches) == [0, 1, 3, 4]  # two sizes, both sides, side by side
    left_style, right_style = (patch.get_linestyle() for patch in fig.axes[1].patches)
    assert left_style == (0, None) and left_style != right_style  # overlapping steps stay apart: right is dashed
    bars = fig.axes[2].patches
    assert [bar.get_height() for bar in bars] == summary.greyscale_share.tolist()
    assert bars[0].get_facecolor() != bars[1].get_facecolor()  # each side its own colour, as in the other panels
    # a share of 0 still reads: every bar is labelled with its value, and the axis is never empty
    assert [t.get_text() for t in fig.axes[2].texts] == [f"{v:.1%}" for v in summary.greyscale_share]
    assert fig.axes[2].get_ylim()[1] >= 0.05
    plt.close(fig)


def test_near_duplicate_grid_shows_both_images_of_the_first_rows_two_a_row():
    pairs = make_demo_pairs(5, 16)
    duplicates = pd.DataFrame([("within pair", "demo00003", "demo00003", 0.991), ("left-left", "demo00001", "demo00004", 0.95),
                               ("right-right", "demo00000", "demo00002", 0.93)], columns=["kind", "a", "b", "cosine"])
    fig = near_duplicate_grid(pairs, duplicates, n=3)
    assert len(fig.axes) == 8  # two rows of two duplicates, four pictures a row
    assert [ax.get_title() for ax in fig.axes[:6]] == ["demo00003 left", "demo00003 right", "demo00001 left",
                                                       "demo00004 left", "demo00000 right", "demo00002 right"]
    assert fig.axes[0].texts[0].get_text() == "within pair, cosine 0.991"
    assert np.array_equal(fig.axes[1].images[0].get_array(), np.asarray(pairs.right_image(3)))
    assert not fig.axes[6].images  # the last slot stays empty
    plt.close(fig)
    with pytest.raises(ValueError, match="No near-duplicates to show"):
        near_duplicate_grid(pairs, duplicates.head(0))


def test_faithfulness_curves_average_each_method_s_curves():
    table = pd.DataFrame([
        {"method": "integrated_gradients", "deletion": [1.0, 0.5, 0.0], "insertion": [0.0, 0.5, 1.0]},
        {"method": "integrated_gradients", "deletion": [1.0, 0.1, 0.0], "insertion": [0.0, 0.1, 1.0]},
        {"method": "saliency", "deletion": [1.0, 1.0, 1.0], "insertion": [0.0, 0.0, 0.0]},
    ])
    assert faithfulness_curves(table).axes[0].get_title() == "Deletion (mean of 2 pairs)"  # too few pairs for a band
    assert not faithfulness_curves(table).axes[0].collections
    fig = faithfulness_curves(table, min_band=2)
    deletion, insertion = fig.axes
    assert [line.get_label() for line in deletion.lines] == ["integrated gradients", "saliency"]
    assert deletion.lines[0].get_xdata().tolist() == [0.0, 0.5, 1.0]
    assert deletion.lines[0].get_ydata().tolist() == pytest.approx([1.0, 0.3, 0.0])
    assert insertion.lines[1].get_ydata().tolist() == [0.0, 0.0, 0.0]
    assert (deletion.get_title(), insertion.get_title()) == ("Deletion (mean of 2 pairs, 95% band)",
                                                             "Insertion (mean, 95% band)")
    # a band for the method with two pairs (1.96 standard errors), none for the one with a single pair
    assert len(deletion.collections) == 1
    band = deletion.collections[0].get_paths()[0].vertices
    half = 1.96 * np.std([0.5, 0.1], ddof=1) / np.sqrt(2)
    assert band[:, 1].max() == pytest.approx(1.0) and band[:, 1].min() == pytest.approx(0.3 - half)
    assert np.any(np.isclose(band[:, 1], 0.3 + half)) and np.any(np.isclose(band[:, 1], 0.3 - half))
    plt.close(fig)
