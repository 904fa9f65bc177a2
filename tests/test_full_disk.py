"""A full disk loses nothing already written: every write names its file and the full disk in one line,
and leaves neither a partial file nor a temporary one; an output flag naming a folder is refused."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from ttl_utils.errors import DiskFullError
from ttl_utils.storage import save_json, save_torch


def _no_temporaries(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp"))


def test_a_full_disk_names_the_file_and_keeps_what_it_held(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    save_json({"kept": True}, path)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError) as caught:
        save_json({"kept": False}, path)
    monkeypatch.undo()
    assert str(caught.value) == (f"{path}: the disk is full (no space left on device); what it held before is kept. "
                                 "Free some space and run again.")
    assert json.loads(path.read_text()) == {"kept": True} and _no_temporaries(tmp_path)


def test_pytorch_s_short_write_on_a_full_disk_is_said_as_a_full_disk(tmp_path, monkeypatch):
    import shutil

    from ttl_utils import storage

    def short(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 1024")

    monkeypatch.setattr(torch, "save", short)
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(DiskFullError, match="ft.pt: the disk is full .*no partial file is left"):
        save_torch({"x": torch.zeros(3)}, tmp_path / "ft.pt")
    assert not (tmp_path / "ft.pt").exists() and _no_temporaries(tmp_path)
    # with room left, the same error is not a full disk: PyTorch's own message stands
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_torch({"x": torch.zeros(3)}, tmp_path / "ft.pt")


def test_finetune_on_a_full_disk_is_one_line_that_says_resume_continues(tmp_path, monkeypatch, capsys):
    from conftest import write_official

    from ttl_utils.cli import main

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    data = write_official(tmp_path / "ttl", n=12, size=48)

    def full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft.pt"), "--epochs", "1",
                 "--workers", "0"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "--resume" in errors[0]
    assert "finetune-inputs" in errors[0]  # the first file it could not write: the trunk's cached outputs
    assert not (tmp_path / "ft.pt").exists() and _no_temporaries(tmp_path)


@pytest.mark.parametrize("command", [
    ["find", "q.jpg", "--gallery", ".", "--figure", "out/"],
    ["find", "q.jpg", "--gallery", ".", "--json", "out/"],
    ["compare", "--model", "efficientnet_lite0", "--figure", "out/"],
    ["finetune", "--data", ".", "--out", "runs/"],
    ["pretrain", "--data", ".", "--out", "runs/"],
])
def test_an_output_flag_naming_a_folder_is_refused(command, capsys):
    from ttl_utils.cli import main

    assert main(command) == 2
    assert "that is a folder; give a file name in it" in capsys.readouterr().err


_ON_A_SMALL_DISK = r'''
import os, subprocess, sys
from pathlib import Path

full, data = Path(os.environ["FULL"]), os.environ["DATA"]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(full)], check=True)
from ttl_utils.cli import main


def step(name):
    print(f"### {name}", flush=True)


def ttl(*args):
    print(f"rc={main(list(args))}", flush=True)


def fill():
    fd = os.open(full / "filler", os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, bytes(2**20))
    except OSError:
        os.close(fd)


def listing():
    print(*sorted(os.listdir(full)), flush=True)


step("json")
(full / "scores.json").write_text('{"kept": true}')
fill()
ttl("evaluate", "--model", "efficientnet_lite0:none", "--data", data, "--split", "all", "--workers", "0",
    "--json", str(full / "scores.json"))
print((full / "scores.json").read_text(), flush=True)
step("figure")
ttl("compare", "--model", "efficientnet_lite0:none", "--data", data, "--split", "all", "--workers", "0",
    "--figure", str(full / "fig"))
listing()
os.remove(full / "filler")
step("first-epoch")
ttl("finetune", "--data", data, "--out", str(full / "ft.pt"), "--epochs", "1", "--workers", "0")
fill()
step("full")
ttl("finetune", "--data", data, "--out", str(full / "ft.pt"), "--epochs", "2", "--workers", "0", "--resume")
listing()
os.remove(full / "filler")
step("freed")
ttl("finetune", "--data", data, "--out", str(full / "ft.pt"), "--epochs", "2", "--workers", "0", "--resume")
'''


def _can_mount_a_tmpfs(folder: Path) -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs '{folder}'"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
def test_on_a_real_full_disk_every_write_says_so_keeps_the_old_file_and_resume_continues(tmp_path):
    """A small tmpfs, mounted in a user namespace of its own, that the test fills: the real ENOSPC,
    and PyTorch's own short write, not an injected error."""
    import os
    import subprocess
    import sys

    from conftest import write_official

    full = tmp_path / "small-disk"
    full.mkdir()
    if not _can_mount_a_tmpfs(full):
        pytest.skip("this machine lets no user namespace mount a tmpfs (unshare -rm); the injected-ENOSPC tests "
                    "above cover the same code")
    data = write_official(tmp_path / "ttl", n=12, size=48)
    env = {**os.environ, "FULL": str(full), "DATA": str(data), "TTL_PROFILE": "smoke", "TQDM_DISABLE": "1"}
    done = subprocess.run(["unshare", "-rm", sys.executable, "-u", "-c", _ON_A_SMALL_DISK], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    steps = dict(part.split("\n", 1) for part in done.stdout.split("### ")[1:])

    def errors(step: str) -> list[str]:
        return [line for line in steps[step].splitlines() if "error:" in line or "Traceback" in line]

    assert errors("json") == [f"error: {full}/scores.json: the disk is full (no space left on device); what it held "
                              "before is kept. Free some space and run again."], steps["json"]
    assert "rc=1" in steps["json"] and steps["json"].rstrip().endswith('{"kept": true}')
    [figure] = errors("figure")
    assert figure.startswith(f"error: {full}/fig_") and "the disk is full" in figure
    assert steps["figure"].split("rc=1", 1)[1].split() == ["filler", "scores.json"]  # no half of the pair, no temporary
    assert "rc=0" in steps["first-epoch"]
    [line] = errors("full")
    assert f"{full}/ft.pt" in line and "the disk is full" in line and "--resume" in line
    assert "rc=1" in steps["full"]
    assert steps["full"].split("rc=1", 1)[1].split() == ["filler", "ft.pt", "ft.pt.state.pt", "scores.json"]
    # the state on disk was still epoch 1's: the run after freeing space trains epoch 2 alone and finishes
    trained = [json.loads(line)["epoch"] for line in steps["freed"].splitlines() if line.startswith('{"epoch"')]
    assert trained == [2] and "rc=0" in steps["freed"] and "Wrote" in steps["freed"], steps["freed"]
