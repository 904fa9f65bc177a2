"""Loading a folder of image pairs (TTL's official layout or a pairs CSV), with validation.

Two layouts are detected automatically:

- official: `left/` and `right/` with matching file names (`left/00018.jpg` pairs with
  `right/00018.jpg`), and an optional `metadata.pkl` whose `no_faces` mask marks the
  pairs without faces;
- pairs-CSV: `left/`, `right/` and `pairs.csv` with columns `left,right` naming files in
  those folders, with or without the extension.

Nothing is dropped silently: every problem found is reported at once in one
`DatasetError` that names the files and what to do.

>>> pairs = load_pairs("data/ttl")            # doctest: +SKIP
>>> pairs.left_image(0).size                   # doctest: +SKIP
(200, 245)
"""

from __future__ import annotations

import csv
import logging
import os
import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..config import Profile, data_dir, env_data, get_profile, max_pixels
from ..digests import content_digest, dataset_fingerprint, file_digests
from ..errors import DatasetError
from ..progress import progress
from ..runtime import decode_workers, io_threads
from .demo import make_demo_pairs
from .inputs import header_pixels, header_problem, link_loops, why_unreadable
from .pairs import IMAGE_EXTENSIONS, PairSet

__all__ = ["chosen_data", "load_pairs", "resolve_pairs", "write_pairs", "SHOW_AT_MOST"]

log = logging.getLogger(__name__)

SHOW_AT_MOST = 20  # offending files named in an error message; the rest are counted


class _Problems:
    """Collects every problem with a dataset, then raises them together."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, list[str]] = {}
        self.advice: dict[str, str] = {}

    def add(self, kind: str, name: str, advice: str) -> None:
        self.files.setdefault(kind, []).append(name)
        self.advice[kind] = advice

    def raise_if_any(self) -> None:
        if not self.files:
            return
        total = sum(len(names) for names in self.files.values())
        lines = [f"The dataset at {self.root} cannot be used: {total} problem(s)."]
        for kind, names in self.files.items():
            shown = ", ".join(names[:SHOW_AT_MOST])
            more = f" and {len(names) - SHOW_AT_MOST} more" if len(names) > SHOW_AT_MOST else ""
            lines.append(f"- {kind} ({len(names)}): {shown}{more}")
            lines.append(f"  What to do: {self.advice[kind]}")
        raise DatasetError("\n".join(lines), problems=dict(self.files))


def _printable(name: str) -> str:
    """Return a file name fit to print: bytes that are not UTF-8 shown as escapes (`caf\\xe9.jpg`)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _outside(path: Path, root: Path) -> bool:
    """Return whether `path` is a link whose target lies outside the dataset folder `root`."""
    return path.is_symlink() and not path.resolve().is_relative_to(root.resolve())


def _list_images(folder: Path, problems: _Problems, strict: bool) -> dict[str, Path]:
    """Return the images of `folder` by file name, and by stem where that is unambiguous.

    Hidden files (`.DS_Store`, `._x.jpg`) are skipped. With `strict`, every other file
    must be a supported image (the official layout pairs every file). A name that is not
    valid UTF-8 and a link to nothing are problems.
    """
    by_name: dict[str, Path] = {}
    stems: Counter[str] = Counter()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            problems.add("file name that is not valid UTF-8", f"{folder.name}/{_printable(entry.name)}",
                         "rename these files (names are saved in splits and results as UTF-8 text).")
            continue
        path = Path(entry.path)
        if link_loops(path):
            problems.add("link loop (a link that leads back to itself)", f"{folder.name}/{entry.name}",
                         "remove these links or point them at the images.")
            continue
        if entry.is_dir():
            log.warning("Ignoring the folder %s: images are expected directly in %s/", entry.path, folder.name)
            continue
        if entry.is_symlink() and not path.exists():
            problems.add("broken link (its target does not exist)", f"{folder.name}/{entry.name}",
                         "remove these links or point them at the images.")
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            if strict:
                problems.add(
                    "not an image file (unsupported extension)", f"{folder.name}/{entry.name}",
                    f"remove these files or convert them to one of {', '.join(sorted(IMAGE_EXTENSIONS))}.",
                )
            continue
        by_name[entry.name] = path
        stems[path.stem] += 1
    for stem, count in stems.items():
        if count > 1:
            twins = sorted(name for name, p in by_name.items() if p.stem == stem)
            problems.add(
                "several files with the same name but different extensions", f"{folder.name}/{' + '.join(twins)}",
                "keep one file per name: the pairing goes by the name without its extension.",
            )
    return by_name


def _drop_outside_links(root: Path, ids: list[str], lefts: list[Path], rights: list[Path], problems: _Problems,
                        strict: bool) -> tuple[list[str], list[Path], list[Path]]:
    """Apply the rule for links out of the dataset folder: a problem for `check` (`strict`), else
    their pairs are left out with one warning."""
    outside = [i for i, (lp, rp) in enumerate(zip(lefts, rights)) if _outside(lp, root) or _outside(rp, root)]
    if not outside:
        return ids, lefts, rights
    names = [str((lefts[i] if _outside(lefts[i], root) else rights[i]).relative_to(root)) for i in outside]
    if strict:
        for name in names:
            problems.add("link to a file outside the dataset folder", name,
                         "copy the files into the folder (a dataset holds its own images), or remove the links.")
        return ids, lefts, rights
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    log.warning("Leaving out %d pair(s) whose image is a link to a file outside %s: %s "
                "(`python -m ttl_utils check` lists them).", len(outside), root, shown)
    keep = sorted(set(range(len(ids))) - set(outside))
    return [ids[i] for i in keep], [lefts[i] for i in keep], [rights[i] for i in keep]


def _by_stem(images: dict[str, Path]) -> dict[str, Path]:
    return {path.stem: path for path in images.values()}


def _check_sizes(paths: list[Path], root: Path, problems: _Problems) -> list[int]:
    sizes = []
    for path in paths:
        size = path.stat().st_size
        sizes.append(size)
        if size == 0:
            problems.add("empty file (0 bytes)", str(path.relative_to(root)),
                         "download these files again (a copy or a download was interrupted).")
    return sizes


def _check_headers(paths: list[Path], root: Path, problems: _Problems) -> None:
    """Read every image's header (cheap: no decoding), so a run fails before minutes of work."""
    todo = [p for p in paths if p.stat().st_size > 0]  # empty files are reported already
    with ThreadPoolExecutor(io_threads()) as pool:
        reasons = list(progress(pool.map(header_problem, todo), total=len(todo), desc="Reading image headers",
                                unit="img", leave=False, disable=len(todo) < 2000))
    for path, reason in zip(todo, reasons):
        if reason:
            problems.add(f"image that cannot be opened: {reason}", str(path.relative_to(root)),
                         "download or export these images again, or remove their pairs.")


def _validate_images(paths: list[Path], root: Path, problems: _Problems) -> None:
    """Decode every image once, in threads (decoding releases the GIL), as many as memory allows."""
    todo = [p for p in paths if p.stat().st_size > 0]  # empty files are reported already
    with ThreadPoolExecutor(io_threads()) as pool:
        largest = max(pool.map(header_pixels, todo), default=0)
    with ThreadPoolExecutor(decode_workers(largest_pixels=min(largest, max_pixels()))) as pool:
        reasons = list(progress(pool.map(why_unreadable, todo), total=len(todo),
                                desc="Checking images", unit="img", leave=False))
    for path, reason in zip(todo, reasons):
        if reason:
            problems.add(f"image that cannot be opened: {reason}", str(path.relative_to(root)),
                         "download or export these images again, or remove their pairs.")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays, and nothing that could run code."""

    allowed = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"), ("builtins", "set"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a metadata file should not hold")
        return super().find_class(module, name)


def _read_no_faces(path: Path, n_pairs: int) -> np.ndarray:
    """Return the `no_faces` mask of the official `metadata.pkl`, checked against the pairs."""
    try:
        with open(path, "rb") as f:
            meta = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as err:  # any unpickling failure means the same thing to the user
        raise DatasetError(
            f"{path} cannot be read: {err}. It should be the official release's metadata.pkl "
            "(a dict with a 'no_faces' mask); remove it to load the pairs without it."
        ) from err
    if not isinstance(meta, dict) or "no_faces" not in meta:
        keys = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
        raise DatasetError(f"{path} has no 'no_faces' entry (found: {keys}); remove it or use the official file.")
    mask = np.asarray(meta["no_faces"]).reshape(-1)
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise DatasetError(f"{path}: 'no_faces' should be a boolean mask, got values like {mask[:5]}.")
    if len(mask) != n_pairs:
        raise DatasetError(
            f"{path}: 'no_faces' has {len(mask)} entries but the folder holds {n_pairs} pairs. The mask "
            "belongs to the full release (6016 pairs); remove metadata.pkl when using a part of it."
        )
    return mask.astype(bool)


def _fingerprint(layout: str, ids: list[str], left: list[Path], right: list[Path],
                 left_digests: list[str], right_digests: list[str]) -> str:
    """Return the dataset's fingerprint: its layout, and each pair's id, names and both images' content."""
    return dataset_fingerprint(layout, [(pair_id, _printable(lp.name), ld, _printable(rp.name), rd)
                                        for pair_id, lp, rp, ld, rd in zip(ids, left, right, left_digests, right_digests)])


def _official_pairs(root: Path, left: dict[str, Path], right: dict[str, Path], problems: _Problems):
    left_stems, right_stems = _by_stem(left), _by_stem(right)
    for stem in sorted(set(left_stems) - set(right_stems)):
        problems.add("left image with no right partner", f"left/{left_stems[stem].name}",
                     "add the missing right images (same name in right/) or remove these left images.")
    for stem in sorted(set(right_stems) - set(left_stems)):
        problems.add("right image with no left partner", f"right/{right_stems[stem].name}",
                     "add the missing left images (same name in left/) or remove these right images.")
    ids = sorted(set(left_stems) & set(right_stems))
    return ids, [left_stems[i] for i in ids], [right_stems[i] for i in ids]


def _resolve_name(name: str, images: dict[str, Path], stems: dict[str, Path]) -> Path | None:
    if name in images:
        return images[name]
    suffix = Path(name).suffix.lower()
    return stems.get(Path(name).stem if suffix in IMAGE_EXTENSIONS else name)


def _csv_rows(csv_path: Path) -> tuple[list[list[str]], int, int]:
    """Return the non-empty rows of `pairs.csv` after its header, and the columns of `left` and `right`;
    raises `DatasetError` for a file that is not UTF-8 CSV with those columns."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raw = csv_path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:  # its offset in the whole file, not in one chunk of it
            line = raw[:err.start].count(b"\n") + 1
            raise DatasetError(f"{csv_path} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}): "
                               "save it as UTF-8 (in a spreadsheet: CSV UTF-8).") from None
        raise
    except csv.Error as err:
        raise DatasetError(f"{csv_path} is not a readable CSV file ({err}).") from err
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DatasetError(f"{csv_path} is empty: it needs a header 'left,right' and one row per pair.")
    header = [cell.strip().lower() for cell in rows[0]]
    if "left" not in header or "right" not in header:
        raise DatasetError(
            f"{csv_path} has the header {rows[0]}, but it needs the columns 'left' and 'right' "
            "(the file names of each pair's two images, with or without extension). "
            "Write 'left,right' as its first line."
        )
    return rows, header.index("left"), header.index("right")


def _csv_pairs(root: Path, left: dict[str, Path], right: dict[str, Path], problems: _Problems):
    rows, li, ri = _csv_rows(root / "pairs.csv")
    left_stems, right_stems = _by_stem(left), _by_stem(right)
    seen_rows: set[tuple[str, str]] = set()
    used_left: Counter[Path] = Counter()
    used_right: Counter[Path] = Counter()
    ids, lefts, rights = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= max(li, ri) or not row[li].strip() or not row[ri].strip():
            problems.add("malformed row in pairs.csv", f"line {line}: {','.join(row)}",
                         "give every row both a left and a right file name.")
            continue
        lname, rname = row[li].strip(), row[ri].strip()
        if (lname, rname) in seen_rows:
            problems.add("duplicate row in pairs.csv", f"line {line}: {lname},{rname}",
                         "remove the repeated rows: each pair must be listed once.")
            continue
        seen_rows.add((lname, rname))
        lpath = _resolve_name(lname, left, left_stems)
        rpath = _resolve_name(rname, right, right_stems)
        if lpath is None:
            problems.add("name in pairs.csv with no file in left/", f"line {line}: {lname}",
                         "add the file to left/ or correct the name in pairs.csv.")
        if rpath is None:
            problems.add("name in pairs.csv with no file in right/", f"line {line}: {rname}",
                         "add the file to right/ or correct the name in pairs.csv.")
        if lpath is None or rpath is None:
            continue
        used_left[lpath] += 1
        used_right[rpath] += 1
        ids.append(lpath.stem)
        lefts.append(lpath)
        rights.append(rpath)
    advice = "use each image in one pair only: retrieval ranks every right image as the match of one left image."
    for path, count in used_left.items():
        if count > 1:
            problems.add("left image used in several rows", f"left/{path.name} ({count} rows)", advice)
    for path, count in used_right.items():
        if count > 1:
            problems.add("right image used in several rows", f"right/{path.name} ({count} rows)", advice)
    unused = (len(left) - len(used_left)) + (len(right) - len(used_right))
    if unused > 0:
        log.warning("%d image(s) in %s are in no row of pairs.csv and are not used.", unused, root)
    return ids, lefts, rights


def _check_folders(root: Path) -> None:
    """Raise `DatasetError` unless `root` is a folder holding `left/` and `right/`."""
    if root.is_file():
        raise DatasetError(f"The dataset folder {root} is a file, not a folder: give the folder that holds left/ and "
                           "right/.")
    if not root.is_dir():
        raise DatasetError(
            f"The dataset folder {root} does not exist. Point TTL_DATA (or --data) at a folder "
            "holding left/ and right/, or run `python -m ttl_utils download`."
        )
    missing = [name for name in ("left", "right") if not (root / name).is_dir()]
    if missing:
        raise DatasetError(
            f"The dataset folder {root} has no {' and no '.join(m + '/' for m in missing)} folder. "
            "A dataset needs left/ and right/ (paired by file name, or by a pairs.csv with columns left,right)."
        )


def load_pairs(root: str | Path, validate: bool | str = False) -> PairSet:
    """Return the pairs in `root` (official layout, or pairs-CSV when `pairs.csv` exists).

    Always checked: the folders, the pairing, the CSV, 0-byte files, names and links. With
    `validate="headers"` every image's header is read too (cheap: the commands that train or
    evaluate do it first); with `validate=True` every image is decoded once, so truncated
    files are found now rather than in the middle of a run (`check`). All problems are raised
    together in one `DatasetError`.

    Links whose target lies outside `root` are a problem with `validate=True`; otherwise
    their pairs are left out with one warning. The fingerprint is computed from the images'
    content (`digests`), remembered while a file's size and time are unchanged.
    """
    root = Path(root).expanduser()
    _check_folders(root)
    layout = "pairs-csv" if (root / "pairs.csv").is_file() else "official"
    problems = _Problems(root)
    strict = layout == "official"
    left = _list_images(root / "left", problems, strict)
    right = _list_images(root / "right", problems, strict)
    if layout == "official":
        ids, lefts, rights = _official_pairs(root, left, right, problems)
    else:
        ids, lefts, rights = _csv_pairs(root, left, right, problems)
    ids, lefts, rights = _drop_outside_links(root, ids, lefts, rights, problems, strict=validate is True)
    _check_sizes(lefts, root, problems)
    _check_sizes(rights, root, problems)
    if validate is True:
        _validate_images(lefts + rights, root, problems)
    elif validate == "headers":
        _check_headers(lefts + rights, root, problems)
    problems.raise_if_any()
    if not ids:
        raise DatasetError(f"The dataset folder {root} holds no image pairs: left/ and right/ are empty.")
    no_faces = None
    if layout == "official" and (root / "metadata.pkl").is_file():
        no_faces = _read_no_faces(root / "metadata.pkl", len(ids))
    digests = file_digests(lefts + rights, desc="Reading images (once: remembered by size and time)")
    left_digests, right_digests = digests[:len(ids)], digests[len(ids):]
    return PairSet(
        name=root.resolve().name,
        layout=layout,
        ids=tuple(ids),
        left=lefts,
        right=rights,
        fingerprint=_fingerprint(layout, ids, lefts, rights, left_digests, right_digests),
        root=root.resolve(),
        no_faces=no_faces,
        digests=tuple(content_digest(a, b) for a, b in zip(left_digests, right_digests)),
    )


def chosen_data(data: str | Path | None = None) -> Path | None:
    """Return the dataset folder a run would use: `data`, else `$TTL_DATA`, else `data/ttl/` when
    downloaded; None means the demo data."""
    chosen = data or env_data()
    if chosen is None and (data_dir() / "ttl" / "left").is_dir():
        chosen = data_dir() / "ttl"
    return Path(chosen) if chosen is not None else None


def resolve_pairs(data: str | Path | None = None, profile: Profile | None = None,
                  validate: bool | str = False) -> PairSet:
    """Return the dataset to use: `data`, else `$TTL_DATA`, else `data/ttl/`, else the demo data.

    Logs one line saying which dataset is used and how many pairs it has.
    """
    profile = profile or get_profile()
    chosen = chosen_data(data)
    if chosen is None:
        pairs = make_demo_pairs(profile.demo_pairs, profile.demo_size, seed=0)
        log.info("Dataset: %s. For the real data run `python -m ttl_utils download` or set TTL_DATA.",
                 pairs.describe())
        return pairs
    pairs = load_pairs(chosen, validate=validate)
    log.info("Dataset: %s", pairs.describe())
    return pairs


def write_pairs(pairs: PairSet, root: str | Path, extension: str = ".png") -> Path:
    """Write `pairs` as an official-layout folder (`left/ID.png`, `right/ID.png`) and return it."""
    root = Path(root)
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i, pair_id in enumerate(progress(pairs.ids, desc="Writing pairs", unit="pair", leave=False)):
        pairs.left_image(i).save(root / "left" / f"{pair_id}{extension}")
        pairs.right_image(i).save(root / "right" / f"{pair_id}{extension}")
    return root
