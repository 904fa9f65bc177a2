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


def _record_steps(folder: str, first: int, count: int, start) -> None:
    from ttl_utils.config import Figures
    from ttl_utils.present.findings import record

    start.wait(60)  # both processes, imports done, record at the same time
    for step in range(first, first + count):
        record(Figures(folder), f"{step:03d}", "a title", f"finding {step}", series={"ranks": [step]})


@pytest.mark.slow
def test_two_processes_recording_findings_at_once_keep_every_entry(tmp_path):
    import multiprocessing

    from ttl_utils.present.findings import read_results, read_series
    from ttl_utils.storage import folder_lock

    context = multiprocessing.get_context("spawn")
    folder, start = tmp_path / "figures", context.Barrier(2)
    workers = [context.Process(target=_record_steps, args=(str(folder), first, 60, start)) for first in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    expected = [f"{step:03d}" for step in [*range(60), *range(100, 160)]]
    assert list(read_results(folder)["steps"]) == expected  # without the lock, one process's entries go missing
    assert list(read_series(folder)) == expected
    assert sorted(path.name for path in folder.iterdir()) == ["results-series.json", "results.json"]  # no lock file
    with folder_lock(tmp_path / "new") as held:  # the folder is made if missing
        assert held.is_dir()
