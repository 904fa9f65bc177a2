"""Opening images as RGB, and the PairSet container."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.pairs import PairSet, open_rgb, to_rgb


def test_transparent_pixels_become_white_not_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :] = (255, 0, 0, 255)       # opaque red top half, transparent black bottom half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(open_rgb(tmp_path / "a.png"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[3, 3].tolist() == [255, 255, 255]


def test_palette_with_transparency_and_16_bit_grey(tmp_path):
    p = Image.new("P", (3, 3), 0)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    out = np.asarray(open_rgb(tmp_path / "p.png"))
    assert out[1, 1].tolist() == [10, 200, 30] and out[0, 0].tolist() == [255, 255, 255]

    grey16 = Image.fromarray(np.full((2, 2), 65535, np.uint16))
    assert np.asarray(to_rgb(grey16)).max() == 255 and to_rgb(grey16).mode == "RGB"


def test_cmyk_jpeg_and_exif_rotation(tmp_path):
    image = Image.new("RGB", (6, 2), (0, 0, 255))
    image.convert("CMYK").save(tmp_path / "c.jpg")
    assert open_rgb(tmp_path / "c.jpg").mode == "RGB"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "r.jpg", exif=exif)
    assert open_rgb(tmp_path / "r.jpg").size == (2, 6)


def test_in_memory_arrays_are_checked():
    assert open_rgb(np.zeros((5, 4, 3), np.uint8)).size == (4, 5)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        open_rgb(np.zeros((5, 4), np.float32))


def test_subset_keeps_order_and_gets_its_own_fingerprint():
    pairs = make_demo_pairs(6, 16)
    sub = pairs.subset([4, 1])
    assert sub.ids == ("demo00004", "demo00001")
    assert sub.fingerprint not in (pairs.fingerprint, pairs.subset([1, 4]).fingerprint)
    assert np.array_equal(sub.left[0], pairs.left[4])
    assert pairs.index_of(["demo00005", "demo00000"]).tolist() == [5, 0]
    with pytest.raises(KeyError, match="not in"):
        pairs.index_of(["nope"])


def test_frame_and_consistency_checks():
    pairs = make_demo_pairs(3, 16)
    frame = pairs.to_frame()
    assert list(frame.columns) == ["id", "left", "right"] and len(frame) == 3
    with pytest.raises(ValueError, match="unique"):
        PairSet("x", "demo", ("a", "a"), pairs.left[:2], pairs.right[:2], "f")
    with pytest.raises(ValueError, match="differ in length"):
        PairSet("x", "demo", ("a", "b"), pairs.left[:2], pairs.right[:1], "f")


def test_progress_bars_can_be_turned_off(monkeypatch):
    from ttl_utils.progress import progress

    items = [1, 2, 3]
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress(items) is items
    monkeypatch.delenv("TQDM_DISABLE")
    assert list(progress(items, disable=True)) == items and progress(items) is not items
