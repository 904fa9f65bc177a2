"""Atomic writes: the whole file or the old one, with the mode a new file would get."""

from __future__ import annotations

import os
import stat

import pytest

from ttl_utils.storage import atomic_write, load_torch, save_json, save_torch


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_usual_mode_not_mkstemp_s_private_one(tmp_path, umask_022):
    path = save_json({"a": 1}, tmp_path / "sub" / "x.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == '{\n "a": 1\n}\n'
    os.umask(0o077)
    assert stat.S_IMODE(save_torch({"w": 2}, tmp_path / "y.pt").stat().st_mode) == 0o600
    assert load_torch(tmp_path / "y.pt") == {"w": 2}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = save_json([1, 2], tmp_path / "out" / "x.json")

    def half_then_fail(tmp):
        tmp.write_text("[1, ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "[\n 1,\n 2\n]\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]
