"""Fetching and installing the official TTL release (`left.zip`, `right.zip`).

`download_ttl()` fetches both archives from Google Drive with gdown (which resumes a
partial download), checks that each is a readable zip holding the expected number of
images, records its SHA-256 beside the data, and extracts it safely: an archive with an
absolute path, a `..` component or a link in it is refused whole. Running it again
when the data is installed does nothing. `install_archives()` installs archives that
were fetched by hand (`python -m ttl_utils download --from-zip LEFT.zip RIGHT.zip`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..config import data_dir
from ..digests import sha256_file
from ..errors import DownloadError
from ..progress import progress
from ..storage import atomic_write
from .folders import load_pairs
from .pairs import IMAGE_EXTENSIONS

__all__ = ["DRIVE_IDS", "EXPECTED_IMAGES", "download_ttl", "install_archives"]

log = logging.getLogger(__name__)

DRIVE_IDS = {"left": "1jvkbTr_giSP3Ru8OwGNCg6B4PvVbcO34", "right": "1EzBZUb_mh_Dp_FKD0P4XiYYSd0QBH5zW"}
EXPECTED_IMAGES = 6016
CHECKSUM_FILE = "SHA256SUMS"
MAX_UNPACKED_BYTES = 4 * 2**30  # the release unpacks to a few hundred MB; more means a zip bomb


def drive_url(file_id: str) -> str:
    """Return the download URL of a Google Drive file."""
    return f"https://drive.google.com/uc?id={file_id}"


def manual_steps(dest: Path) -> str:
    """Return the instructions for installing the release by hand."""
    return (
        "To install it by hand: on a machine with internet access, download\n"
        f"  left.zip  from {drive_url(DRIVE_IDS['left'])}\n"
        f"  right.zip from {drive_url(DRIVE_IDS['right'])}\n"
        "copy them here, then run\n"
        f"  python -m ttl_utils download --dest {dest} --from-zip left.zip right.zip"
    )


def _check_online(dest: Path, host: str = "drive.google.com", timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds, with the manual steps, when Google Drive cannot be reached."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:
        raise DownloadError(f"Cannot reach {host} ({err}).\n{manual_steps(dest)}") from err


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path that leaves the folder (..)"
    return None


def _images_in(archive: Path, expected: int) -> list[tuple[zipfile.ZipInfo, str]]:
    """Return the archive's image entries and their file names, after every safety check."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive} is not a readable zip archive ({err}). Delete it and download it again.") from err
    with zf:
        infos = zf.infolist()
        unsafe = [(i.filename, why) for i in infos if (why := _unsafe_reason(i))]
        if unsafe:
            listed = "; ".join(f"{name!r} is {why}" for name, why in unsafe[:20])
            raise DownloadError(f"{archive} was not extracted: it is unsafe ({listed}). Get it from the official source.")
        if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
            raise DownloadError(f"{archive} would unpack to over {MAX_UNPACKED_BYTES >> 30} GiB; it is not the TTL release.")
        bad = zf.testzip()
        if bad is not None:
            raise DownloadError(f"{archive} is damaged (entry {bad!r} fails its CRC check). Delete it and download it again.")
    images: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            log.warning("Skipping %s in %s: not an image", info.filename, archive.name)
            continue
        if path.name in images:
            raise DownloadError(f"{archive} holds two images named {path.name}; it is not the TTL release.")
        images[path.name] = info
    if len(images) != expected:
        raise DownloadError(
            f"{archive} holds {len(images)} images, but the release has {expected} per side. "
            "The download may be incomplete: delete the archive and run the command again."
        )
    return [(info, name) for name, info in sorted(images.items())]


def _extract(archive: Path, side_dir: Path, expected: int) -> None:
    """Extract the archive's images flat into `side_dir`, atomically (all or nothing)."""
    members = _images_in(archive, expected)
    side_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=side_dir.parent, prefix=f".{side_dir.name}.partial-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info, name in progress(members, desc=f"Extracting {archive.name}", unit="img", leave=False):
                with zf.open(info) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        os.replace(staging, side_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read_checksums(dest: Path) -> dict[str, str]:
    path = dest / CHECKSUM_FILE
    if not path.is_file():
        return {}
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DownloadError(f"{path} cannot be read ({err}); delete it to download and check the archives again.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DownloadError(f"{path}, line {number}: expected '<64 hex digits>  <file name>', got {line[:80]!r}; "
                                "delete the file to download and check the archives again.")
        sums[parts[1].strip().lstrip("*")] = digest
    return sums


def _is_installed(dest: Path, expected: int) -> bool:
    sums = _read_checksums(dest)
    for side in ("left", "right"):
        folder = dest / side
        if f"{side}.zip" not in sums or not folder.is_dir():
            return False
        if sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) != expected:
            return False
    return True


def install_archives(left_zip: str | Path, right_zip: str | Path, dest: str | Path | None = None,
                     expected_images: int = EXPECTED_IMAGES) -> Path:
    """Install `left.zip` and `right.zip` into `dest` (default `data/ttl`) and return `dest`.

    Each archive is verified before anything is extracted; its SHA-256 is logged and
    written to `dest/SHA256SUMS`. The result is checked with `load_pairs`.
    """
    dest = Path(dest) if dest is not None else data_dir() / "ttl"
    archives = {"left": Path(left_zip), "right": Path(right_zip)}
    for side, archive in archives.items():
        if not archive.is_file():
            raise DownloadError(f"The {side} archive {archive} does not exist.")
    if _is_installed(dest, expected_images):
        log.info("TTL is already installed in %s; nothing to do.", dest)
        return dest
    for side in archives:
        if (dest / side).exists():
            raise DownloadError(f"{dest / side} exists but is not a complete install. Remove it, then run again.")
    digests = {}
    for side, archive in archives.items():
        _images_in(archive, expected_images)  # verify both before extracting either
        digests[side] = sha256_file(archive)
        log.info("%s.zip SHA-256 %s", side, digests[side])
    for side, archive in archives.items():
        _extract(archive, dest / side, expected_images)
    sums = "".join(f"{digests[side]}  {side}.zip\n" for side in archives)
    atomic_write(dest / CHECKSUM_FILE, lambda tmp: tmp.write_text(sums))
    pairs = load_pairs(dest)
    log.info("Installed %s", pairs.describe())
    return dest


def download_ttl(dest: str | Path | None = None, expected_images: int = EXPECTED_IMAGES) -> Path:
    """Download the official TTL release into `dest` (default `data/ttl`) and return `dest`.

    Archives go to `dest/archives/`; an interrupted download resumes where it stopped.
    Offline, this fails within seconds with the steps to install the release by hand.
    """
    dest = Path(dest) if dest is not None else data_dir() / "ttl"
    if _is_installed(dest, expected_images):
        log.info("TTL is already installed in %s; nothing to do.", dest)
        return dest
    _check_online(dest)
    import gdown

    archive_dir = dest / "archives"
    archive_dir.mkdir(parents=True, exist_ok=True)
    for side, file_id in DRIVE_IDS.items():
        target = archive_dir / f"{side}.zip"
        try:
            gdown.download(id=file_id, output=str(target), resume=True, quiet=False, timeout=60, retries=3)
        except Exception as err:  # gdown raises many kinds; each means the same to the user
            raise DownloadError(f"Downloading {side}.zip from {drive_url(file_id)} failed: {err}\n{manual_steps(dest)}") from err
    return install_archives(archive_dir / "left.zip", archive_dir / "right.zip", dest, expected_images)
