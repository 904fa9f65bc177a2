"""One picture rule for every command (the same minimum size and message), and link loops listed."""

from __future__ import annotations

import os

import pytest
from conftest import write_official
from PIL import Image

from ttl_utils.cli import main

RULE = "too small (1 x 1 px; at least 32 px a side)"


@pytest.fixture
def tiny_picture(tmp_path):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(data / "left" / "00002.jpg")
    return data


def test_a_1x1_picture_is_refused_by_check_evaluate_and_find_with_the_same_words(tiny_picture, tmp_path, capsys):
    data = tiny_picture
    assert main(["check", "--data", str(data)]) == 1
    assert f"{RULE} (1): left/00002.jpg" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--model", "efficientnet_lite0:none", "--split", "all",
                 "--workers", "0"]) == 1
    assert RULE in capsys.readouterr().err
    assert main(["find", str(data / "left" / "00002.jpg"), "--gallery", str(data), "--model",
                 "efficientnet_lite0:none", "--workers", "0"]) == 1
    assert RULE in capsys.readouterr().err


def test_a_link_loop_is_listed_by_check_with_the_other_problems(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    os.symlink(data / "left" / "loop.jpg", data / "left" / "loop.jpg")
    (data / "right" / "00003.jpg").write_bytes(b"")
    assert main(["check", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert "link loop (a link that leads back to itself) (1): left/loop.jpg" in err
    assert "empty file (0 bytes) (1): right/00003.jpg" in err and "Too many levels" not in err


def test_a_link_loop_in_a_gallery_is_skipped_with_one_warning(tmp_path, caplog):
    import logging

    from ttl_utils.data.inputs import image_files

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (40, 40)).save(folder / "a.jpg")
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        assert image_files([folder]) == [folder / "a.jpg"]
    assert f"Skipped 1 link(s) that lead back to themselves in {folder}: loop.jpg" in caplog.text
