"""The unlabelled pool: its pictures, its candidate lists (each problem one line), and the folders
Barlow Twins pretraining reads beside the pairs' pictures."""

from __future__ import annotations

import pytest
from conftest import write_pool

from ttl_utils.cli import main
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.pool import chosen_pool, load_pool
from ttl_utils.errors import DatasetError
from ttl_utils.train.pretrain import ImageFolderImages


def test_a_pool_loads_its_two_folders_and_its_candidate_lists(tmp_path):
    pool = load_pool(write_pool(tmp_path / "pool"), n_candidates=3)
    assert [p.name for p in pool.left] == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    assert len(pool.pictures()) == 8 and pool.pictures()[4].parent.name == "right"
    assert pool.candidates["00001"] == ["00001", "00002", "00003"]  # names with or without extension
    assert pool.describe() == "pool (4 left and 4 right pictures without pair labels, 4 candidate lists)"
    assert load_pool(write_pool(tmp_path / "bare", rows=False)).candidates is None
    # the fingerprint follows the content
    again = load_pool(tmp_path / "pool", n_candidates=3)
    assert again.fingerprint == pool.fingerprint
    make_demo_pairs(1, 32, seed=1).left_image(0).save(tmp_path / "pool" / "left" / "00000.jpg")
    assert load_pool(tmp_path / "pool", n_candidates=3).fingerprint != pool.fingerprint


@pytest.mark.parametrize("rows, expected", [
    ([["00000", "00000", "00001"]], "candidates.csv, line 2: 2 candidates for 00000, expected 3."),
    ([["00000", "00000", "00001", "00009"]], "candidates.csv, line 2: right/00009 is not a picture of the pool's right/"),
    ([["00007", "00000", "00001", "00002"]], "candidates.csv, line 2: left/00007 is not a picture of the pool's left/"),
    ([["00000", "00000", "00000", "00002"]], "candidates.csv, line 2: 00000 lists a candidate twice or has two lines."),
    ([["00000", "00000", "00001", "00002"]], "candidates.csv: 3 left picture(s) have no line, e.g. 00001"),
])
def test_a_bad_candidate_list_is_one_line_naming_the_file_and_line(tmp_path, rows, expected):
    root = write_pool(tmp_path / "pool", rows=rows)
    with pytest.raises(DatasetError) as caught:
        load_pool(root, n_candidates=3)
    message = str(caught.value)
    assert expected in message and str(root / "candidates.csv") in message and "\n" not in message


def test_a_pool_without_its_folders_says_what_it_needs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist: give a folder holding left/ and right/"):
        load_pool(tmp_path / "nowhere")
    (tmp_path / "half" / "left").mkdir(parents=True)
    with pytest.raises(DatasetError, match="half/left: no pictures"):
        load_pool(tmp_path / "half")
    make_demo_pairs(1, 32).left_image(0).save(tmp_path / "half" / "left" / "00000.png")
    with pytest.raises(DatasetError, match="has no right/ folder: it needs left/ and right/"):
        load_pool(tmp_path / "half")


def test_the_pool_is_the_argument_else_the_environment_else_data_unlabelled(tmp_path, isolated_project, monkeypatch):
    monkeypatch.delenv("TTL_UNLABELLED", raising=False)
    assert chosen_pool() is None
    write_pool(isolated_project / "data" / "unlabelled", rows=False)
    assert chosen_pool() == isolated_project / "data" / "unlabelled"
    monkeypatch.setenv("TTL_UNLABELLED", str(tmp_path / "elsewhere"))
    assert chosen_pool() == tmp_path / "elsewhere"
    assert chosen_pool(tmp_path / "given") == tmp_path / "given"


def test_pretraining_reads_several_folders_and_names_each_picture_by_its_folder(tmp_path):
    pairs, pool = write_pool(tmp_path / "pairs", rows=False), write_pool(tmp_path / "pool", n=3, rows=False)
    data = ImageFolderImages([pairs, pool], 24)
    assert len(data) == 8 + 6 and data.roots == [pairs, pool]
    assert data._name(data.paths[0]) == "0/left/00000.jpg" and data._name(data.paths[-1]) == "1/right/00002.jpg"
    assert data.listing() != ImageFolderImages([pairs], 24).listing()
    view_1, view_2 = data[len(data) - 1]
    assert view_1.shape == view_2.shape == (3, 24, 24)
    with pytest.raises(DatasetError, match="does not exist"):
        ImageFolderImages([pairs, tmp_path / "missing"], 24)


def test_the_pretrain_command_takes_data_twice(tmp_path, capsys):
    from ttl_utils.cli import build_parser

    args = build_parser().parse_args(["pretrain", "--data", "a", "--data", "b", "--out", "bt.pt", "--no-blur"])
    assert [str(folder) for folder in args.data] == ["a", "b"] and args.no_blur
    assert main(["pretrain", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "bt.pt"), "--device", "cpu"]) == 1
    assert "The image folder" in capsys.readouterr().err
