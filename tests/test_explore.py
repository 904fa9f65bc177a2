"""Dataset exploration: image statistics, near-duplicates, faces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import sample_picture
from PIL import Image

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.explore import image_findings, image_summary, image_table, near_duplicates
from ttl_utils.data.faces import agreement_table, count_faces, face_counts, face_table, split_by_faces
from ttl_utils.data.pairs import PairSet


def _pairs_of(left: list[np.ndarray], right: list[np.ndarray]) -> PairSet:
    ids = tuple(f"p{i}" for i in range(len(left)))
    return PairSet("hand-made", "demo", ids, left, right, fingerprint="x")


def test_image_table_measures_size_colour_and_greyscale():
    red = np.zeros((20, 10, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((20, 10, 3), 128, np.uint8)
    table = image_table(_pairs_of([red], [grey]))
    left, right = table.iloc[0], table.iloc[1]
    assert (left.side, left.width, left.height, left.aspect) == ("left", 10, 20, 0.5)
    assert (left.mean_r, left.mean_g, left.saturation, left.greyscale) == (255, 0, 1.0, False)
    assert (right.saturation, right.greyscale) == (0.0, True)


def test_near_duplicates_finds_each_kind_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(6, 32, generator=g), torch.randn(6, 32, generator=g)
    right[2] = left[2] * 3              # a pair whose two images are the same picture
    left[4] = left[1] + 1e-3            # two pairs sharing a left image
    right[5] = right[0]                 # two pairs sharing a right image
    right[3] = left[0] * 2              # one pair's left image is another pair's right image
    table = near_duplicates(left, right, ["a", "b", "c", "d", "e", "f"], threshold=0.95)
    found = {(row.kind, row.a, row.b) for row in table.itertuples()}
    assert found == {("within pair", "c", "c"), ("left-left", "b", "e"), ("right-right", "a", "f"),
                     ("left-right", "a", "d")}
    assert table.cosine.is_monotonic_decreasing


def test_face_detector_finds_the_astronaut_and_not_a_flat_image():
    assert count_faces(sample_picture("astronaut")) == 1
    assert count_faces(Image.new("RGB", (200, 245), (120, 90, 60))) == 0


def test_face_table_and_agreement_with_the_official_mask():
    face = np.asarray(sample_picture("astronaut").resize((200, 200)))
    plain = np.full((200, 200, 3), 200, np.uint8)
    pairs = _pairs_of([face, plain, plain], [plain, plain, face])
    table = face_table(pairs)
    assert table.left_faces.tolist() == [1, 0, 0] and table.right_faces.tolist() == [0, 0, 1]
    assert table.face_pair.tolist() == [True, False, True]
    agreement = agreement_table(table.face_pair.to_numpy(), np.array([False, True, True]))
    assert agreement.loc["face (official)", "face found"] == 1
    assert agreement.loc["no face (official)", "face found"] == 1
    assert agreement.loc["no face (official)", "no face found"] == 1


def test_demo_pairs_are_mostly_face_free():
    table = face_table(make_demo_pairs(20, 64))
    assert table.face_pair.mean() <= 0.2


def test_image_summary_has_a_row_a_side_and_findings_read_it():
    red = np.zeros((20, 10, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((20, 10, 3), 93, np.uint8)
    images = image_table(_pairs_of([red, grey], [grey, grey]))
    summary = image_summary(images)
    assert list(summary.columns) == ["images", "width", "height", "aspect", "mean_r", "mean_g", "mean_b",
                                     "saturation", "greyscale_share"]
    assert list(summary.index) == ["left", "right"]
    assert summary.loc["left", "images"] == 2 and summary.loc["left", "mean_r"] == pytest.approx(174)
    assert summary.loc["left", "greyscale_share"] == 0.5 and summary.loc["right", "greyscale_share"] == 1.0
    assert image_findings(images) == [
        "Image sizes (width x height): 10x20: 4",
        "Mean brightness left 89, right 93 (of 255); saturation left 0.50, right 0.00; greyscale left 50.0%, right 100.0%",
    ]


def test_face_counts_and_the_split_into_generic_and_face_pairs():
    faces = pd.DataFrame({"left_faces": [1, 0, 2, 0], "right_faces": [0, 0, 1, 3]})
    faces["face_pair"] = (faces.left_faces > 0) | (faces.right_faces > 0)
    counts = face_counts(faces)
    assert counts.name == "count"
    assert counts.to_dict() == {"pairs": 4, "face on the left": 2, "face on the right": 2, "face on both sides": 1,
                                "face on either side": 3, "no face (generic subset)": 1}
    plain = np.zeros((8, 8, 3), np.uint8)
    pairs = _pairs_of([plain] * 4, [plain] * 4)
    generic, with_faces = split_by_faces(pairs, faces.face_pair.to_numpy())
    assert generic.ids == ("p1",) and with_faces.ids == ("p0", "p2", "p3")
    assert (generic.name, with_faces.name) == ("hand-made without faces", "hand-made with faces")
    with pytest.raises(ValueError, match="face_pair has 3 flags but hand-made has 4 pairs"):
        split_by_faces(pairs, np.array([True, False, True]))


def test_face_table_is_counted_once_per_data_set_and_gives_the_generic_subset(monkeypatch):
    from ttl_utils.data import faces as F

    plain = np.zeros((8, 8, 3), np.uint8)
    marked = np.full((8, 8, 3), 255, np.uint8)  # the stand-in detector "finds a face" in a white image
    pairs = _pairs_of([plain, marked, plain], [plain, plain, marked])
    calls = []

    def fake_count(image, min_size=24):
        calls.append(1)
        return int(np.asarray(image).mean() > 128)

    monkeypatch.setattr(F, "count_faces", fake_count)
    first = F.cached_face_table(pairs)
    assert first.face_pair.tolist() == [False, True, True] and len(calls) == 6
    again = F.cached_face_table(pairs)
    assert len(calls) == 6 and again.equals(first)  # read back from artifacts/faces/, not counted again
    generic = F.generic_subset(pairs)
    assert generic.ids == ("p0",) and len(calls) == 6


def test_duplicate_threshold_comes_from_non_partner_images_and_never_falls_below_the_floor():
    from ttl_utils.data.explore import duplicate_threshold

    g = torch.Generator().manual_seed(0)
    left = torch.randn(30, 8, generator=g)
    right = left + 0.1 * torch.randn(30, 8, generator=g)
    threshold, typical = duplicate_threshold(left, right, quantile=0.5, floor=-1.0)
    sims = torch.nn.functional.normalize(left, dim=1) @ torch.nn.functional.normalize(right, dim=1).T
    others = sims[~torch.eye(30, dtype=torch.bool)]
    assert typical == pytest.approx(float(others.quantile(0.5)), abs=1e-6) and threshold == typical
    assert duplicate_threshold(left, right, quantile=0.5, floor=0.9) == (0.9, typical)
    # where every image looks alike, the threshold rises above the fixed 0.9
    alike = torch.ones(30, 8) + 0.01 * torch.randn(30, 8, generator=g)
    assert duplicate_threshold(alike, alike.flip(0))[0] > 0.99
    with pytest.raises(ValueError, match="at least 2 pairs"):
        duplicate_threshold(left[:1], right[:1])
