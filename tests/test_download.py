"""Installing the official release from archives: verification, safe extraction, offline."""

from __future__ import annotations

import socket
import stat
import sys
import time
import types
import zipfile
from pathlib import Path

import pytest

from ttl_utils.cli import main
from ttl_utils.data import download as dl
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.download import download_ttl, install_archives
from ttl_utils.digests import sha256_file
from ttl_utils.errors import DownloadError

N = 5


def make_archive(path: Path, side: str, n: int = N, extra: list[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> Path:
    """Write a zip like the release's: `side/00000.jpg` ... plus any `extra` entries."""
    pairs = make_demo_pairs(n, 24, seed=2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__MACOSX/._junk", b"mac resource fork")
        for i in range(n):
            image = pairs.left_image(i) if side == "left" else pairs.right_image(i)
            tmp = path.parent / f"_tmp_{side}_{i}.jpg"
            image.save(tmp)
            zf.write(tmp, f"{side}/{i:05d}.jpg")
            tmp.unlink()
        for info, data in extra:
            zf.writestr(info, data)
    return path


@pytest.fixture
def archives(tmp_path):
    return make_archive(tmp_path / "left.zip", "left"), make_archive(tmp_path / "right.zip", "right")


def test_install_extracts_flat_records_checksums_and_loads(archives, tmp_path):
    dest = install_archives(*archives, dest=tmp_path / "ttl", expected_images=N)
    assert sorted(p.name for p in (dest / "left").iterdir()) == [f"{i:05d}.jpg" for i in range(N)]
    sums = (dest / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{sha256_file(archives[0])}  left.zip", f"{sha256_file(archives[1])}  right.zip"]
    assert not list(dest.glob(".*partial*"))


def test_install_is_idempotent(archives, tmp_path, caplog):
    dest = install_archives(*archives, dest=tmp_path / "ttl", expected_images=N)
    stamp = (dest / "left" / "00000.jpg").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        install_archives(*archives, dest=dest, expected_images=N)
    assert "already installed" in caplog.text
    assert (dest / "left" / "00000.jpg").stat().st_mtime_ns == stamp


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("entry, why", [
    ("../../evil.jpg", "leaves the folder"),
    ("/etc/evil.jpg", "an absolute path"),
    ("C:/evil.jpg", "an absolute path"),
    (_symlink_entry("left/link.jpg"), "a symbolic link"),
])
def test_a_malicious_archive_is_refused_whole(tmp_path, entry, why):
    left = make_archive(tmp_path / "left.zip", "left", extra=[(entry, b"/etc/passwd")])
    right = make_archive(tmp_path / "right.zip", "right")
    dest = tmp_path / "data" / "ttl"
    with pytest.raises(DownloadError, match=why):
        install_archives(left, right, dest=dest, expected_images=N)
    assert not (dest / "left").exists() and not (dest / "right").exists()
    assert not (tmp_path / "evil.jpg").exists()


def test_wrong_image_count_and_damaged_archives(tmp_path):
    left = make_archive(tmp_path / "left.zip", "left", n=N - 1)
    right = make_archive(tmp_path / "right.zip", "right")
    with pytest.raises(DownloadError, match=f"holds {N - 1} images, but the release has {N}"):
        install_archives(left, right, dest=tmp_path / "ttl", expected_images=N)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(right.read_bytes()[:-200])
    with pytest.raises(DownloadError, match="not a readable zip"):
        install_archives(broken, right, dest=tmp_path / "ttl", expected_images=N)
    assert not (tmp_path / "ttl").exists()


def test_offline_fails_fast_with_the_manual_steps(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        download_ttl(dest=tmp_path / "ttl")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "--from-zip left.zip right.zip" in message
    assert dl.DRIVE_IDS["left"] in message and dl.DRIVE_IDS["right"] in message


def test_download_resumes_through_gdown_then_installs(tmp_path, monkeypatch, archives):
    calls = []

    def fake_download(id, output, resume, **kwargs):
        calls.append((id, Path(output).name, resume))
        Path(output).write_bytes(archives[0 if "left" in output else 1].read_bytes())
        return output

    monkeypatch.setattr(dl, "_check_online", lambda dest: None)
    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=fake_download))
    dest = download_ttl(dest=tmp_path / "ttl", expected_images=N)
    assert calls == [(dl.DRIVE_IDS["left"], "left.zip", True), (dl.DRIVE_IDS["right"], "right.zip", True)]
    assert len(list((dest / "right").iterdir())) == N
    calls.clear()
    download_ttl(dest=dest, expected_images=N)  # installed: nothing is fetched again
    assert calls == []


def test_cli_download_from_zip_reports_errors_with_exit_status_1(tmp_path, capsys, archives):
    missing = str(tmp_path / "nope.zip")
    assert main(["download", "--dest", str(tmp_path / "ttl"), "--from-zip", missing, str(archives[1])]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["download", "--weights"]) == 2
    assert "error: --weights is now --resnet50-weights" in capsys.readouterr().err
