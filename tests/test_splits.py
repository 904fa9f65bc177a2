"""Deterministic, saved splits."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import write_official

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import load_pairs
from ttl_utils.data.splits import load_split, split_of, split_pairs, split_path, split_table
from ttl_utils.errors import DatasetError


def test_split_sizes_cover_every_pair_once():
    pairs = make_demo_pairs(40, 16)
    split = split_pairs(pairs, val=0.1, test=0.25, seed=0, save=False)
    assert {k: len(v) for k, v in split.items()} == {"train": 26, "val": 4, "test": 10}
    assert sorted(split_of(split)) == sorted(pairs.ids)


def test_same_seed_same_split_other_seed_other_split():
    pairs = make_demo_pairs(40, 16)
    a = split_pairs(pairs, seed=0, save=False)
    assert split_of(a) == split_of(split_pairs(pairs, seed=0, save=False))
    assert split_of(a) != split_of(split_pairs(pairs, seed=1, save=False))


def test_split_is_saved_under_data_splits_and_reused(isolated_project, tmp_path):
    pairs = load_pairs(write_official(tmp_path / "d", n=20))
    first = split_pairs(pairs, val=0.2, test=0.2, seed=5)
    path = split_path(pairs, 0.2, 0.2, 5)
    assert path.parent == isolated_project.resolve() / "data" / "splits"
    saved = json.loads(path.read_text())
    assert saved["fingerprint"] == pairs.fingerprint
    assert saved["ids"]["test"] == list(first["test"].ids)
    # edit the file: the saved assignment wins over recomputing
    train, test = saved["ids"]["train"], saved["ids"]["test"]
    saved["ids"]["train"], saved["ids"]["test"] = test + train[4:], train[:4]
    path.write_text(json.dumps(saved))
    assert split_pairs(pairs, val=0.2, test=0.2, seed=5)["test"].ids == tuple(saved["ids"]["test"])


def test_a_split_of_another_dataset_is_refused(tmp_path):
    pairs = load_pairs(write_official(tmp_path / "d", n=20))
    split_pairs(pairs, seed=0)
    path = split_path(pairs, 0.1, 0.2, 0)
    changed = tmp_path / "d2"
    shutil.copytree(tmp_path / "d", changed)
    (changed / "left" / "00007.jpg").write_bytes((changed / "left" / "00001.jpg").read_bytes())
    with pytest.raises(DatasetError, match="was made for dataset 'd' with fingerprint"):
        load_split(path, load_pairs(changed))


def test_bad_fractions_are_refused():
    pairs = make_demo_pairs(5, 16)
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        split_pairs(pairs, val=0.5, test=0.5, save=False)
    with pytest.raises(ValueError, match="no training pairs"):
        split_pairs(make_demo_pairs(2, 16), val=0.4, test=0.4, save=False)


def test_split_table_counts_the_pairs_of_each_subset_in_each_split():
    pairs = make_demo_pairs(20, 16)
    split = split_pairs(pairs, val=0.1, test=0.2, seed=0, save=False)
    chosen = [pairs.ids.index(pair_id) for pair_id in split["test"].ids[:3] + split["val"].ids[:1]]
    table = split_table(split, {"some": pairs.subset(chosen), "none": pairs.subset([])})
    assert list(table.columns) == ["all pairs", "some", "none"] and list(table.index) == ["train", "val", "test"]
    assert table.to_dict("list") == {"all pairs": [14, 2, 4], "some": [0, 1, 3], "none": [0, 0, 0]}
    assert table.dtypes.tolist() == [int, int, int]
    with pytest.raises(ValueError, match="Subset 'other' holds 2 pairs that are in no split"):
        split_table(split, {"other": make_demo_pairs(22, 16).subset([19, 20, 21])})


def test_a_saved_split_is_announced_once_a_process_however_often_it_is_read(tmp_path, caplog):
    import logging

    pairs = make_demo_pairs(20, 16, seed=1)
    first = split_pairs(pairs, save_dir=tmp_path)  # drawn and saved: nothing to announce
    with caplog.at_level(logging.INFO, logger="ttl_utils"):
        again = [split_pairs(pairs, save_dir=tmp_path) for _ in range(3)]
    assert caplog.text.count("Using the saved split") == 1
    assert all(split["test"].ids == first["test"].ids for split in again)
