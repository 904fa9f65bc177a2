"""An unlabelled pool: pictures of the same kind as the pairs, without pair labels, for self-supervision.

The layout is a dataset folder's (`left/`, `right/`) without the pairing: `left/00001.jpg` is
not the partner of `right/00001.jpg`. An optional `candidates.csv` lists, for each left
picture, the right pictures among which its unknown partner is (`left,c0,...,c19`, names
with or without extension). Everything is checked when the pool is loaded; a problem is said
in one line naming the file, the line and what to do.

>>> pool = load_pool("data/unlabelled")                  # doctest: +SKIP
>>> len(pool.pictures()), len(pool.candidates["00001"])  # doctest: +SKIP
(4000, 20)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..config import data_dir, env_unlabelled
from ..digests import content_digest, file_digests
from ..errors import DatasetError
from .pairs import IMAGE_EXTENSIONS

__all__ = ["CANDIDATES_FILE", "UnlabelledPool", "chosen_pool", "load_pool"]

CANDIDATES_FILE = "candidates.csv"


@dataclass(frozen=True, eq=False)
class UnlabelledPool:
    """Return-value type of `load_pool`: left and right pictures with no pairing, and where known each
    left picture's candidate right pictures (`candidates[left stem] = [right stems]`)."""

    name: str
    root: Path
    left: tuple[Path, ...]
    right: tuple[Path, ...]
    fingerprint: str
    candidates: dict[str, list[str]] | None = field(default=None, repr=False)
    base: UnlabelledPool | None = field(default=None, repr=False)  # the whole pool this one was cut from (`without`)

    def pictures(self) -> list[Path]:
        """Return every picture of the pool, left ones first."""
        return [*self.left, *self.right]

    def without(self, pictures: set[Path] | list[Path]) -> UnlabelledPool:
        """Return the pool without `pictures` (some of its paths): their candidate lists dropped (a left
        picture's) or shortened (a right picture's), the fingerprint changed accordingly."""
        gone = set(pictures)
        if not gone:
            return self
        left = tuple(p for p in self.left if p not in gone)
        right = tuple(p for p in self.right if p not in gone)
        kept = {p.stem for p in right}
        candidates = None if self.candidates is None else {
            p.stem: [c for c in self.candidates[p.stem] if c in kept] for p in left}
        removed = sorted(f"{p.parent.name}/{p.name}" for p in gone)
        return UnlabelledPool(self.name, self.root, left, right, content_digest(self.fingerprint, "without", removed),
                              candidates, self.base or self)

    def describe(self) -> str:
        """Return a one-line description: name, how many pictures, whether candidate lists come with it."""
        lists = f", {len(self.candidates)} candidate lists" if self.candidates is not None else ""
        return f"{self.name} ({len(self.left)} left and {len(self.right)} right pictures without pair labels{lists})"


def _pictures(folder: Path) -> tuple[Path, ...]:
    if not folder.is_dir():
        raise DatasetError(f"The unlabelled pool {folder.parent} has no {folder.name}/ folder: it needs left/ and right/.")
    found = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")))
    if not found:
        raise DatasetError(f"{folder}: no pictures ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
    return found


def _read_candidates(path: Path, left: tuple[Path, ...], right: tuple[Path, ...], n_candidates: int) -> dict[str, list[str]]:
    """Return each left picture's candidates from `candidates.csv`, or raise `DatasetError` in one line."""
    left_stems, right_stems = {p.stem for p in left}, {p.stem for p in right}

    def stem(name: str) -> str:
        name = name.strip()
        return Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path} is not a readable UTF-8 CSV file ({err}).") from None
    if not rows or rows[0][0].strip().lower() != "left":
        raise DatasetError(f"{path}: the first line should be the header left,c0,...,c{n_candidates - 1}.")
    found: dict[str, list[str]] = {}
    problems = []  # every wrong line is named at once, not one per run
    for line, row in enumerate(rows[1:], start=2):
        query, picks = stem(row[0]), [stem(cell) for cell in row[1:] if cell.strip()]
        missing = [pick for pick in picks if pick not in right_stems]
        if len(picks) != n_candidates:
            problems.append(f"line {line}: {len(picks)} candidates for {query}, expected {n_candidates}")
        elif query not in left_stems:
            problems.append(f"line {line}: left/{query} is not a picture of the pool's left/ folder")
        elif missing:
            problems.append(f"line {line}: right/{missing[0]} is not a picture of the pool's right/ folder"
                            + (f" (nor {len(missing) - 1} more of this line)" if len(missing) > 1 else ""))
        elif len(set(picks)) != len(picks) or query in found:
            problems.append(f"line {line}: {query} lists a candidate twice or has two lines")
        else:
            found[query] = picks
    if len(problems) == 1:
        raise DatasetError(f"{path}, {problems[0]}.")
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DatasetError(f"{path}: {len(problems)} wrong lines: {'; '.join(problems[:3])}{more}.")
    if len(found) != len(left_stems):
        absent = sorted(left_stems - set(found))
        raise DatasetError(f"{path}: {len(absent)} left picture(s) have no line, e.g. {absent[0]}; give every left "
                           "picture its candidates.")
    return found


def load_pool(root: str | Path, n_candidates: int = 20) -> UnlabelledPool:
    """Return the unlabelled pool at `root`: its pictures, and its candidate lists when `candidates.csv`
    is there (each left picture's `n_candidates` right pictures). Raises `DatasetError` (one line naming
    the file) for a pool that cannot be used."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"The unlabelled pool {root} does not exist: give a folder holding left/ and right/.")
    left, right = _pictures(root / "left"), _pictures(root / "right")
    candidates = (_read_candidates(root / CANDIDATES_FILE, left, right, n_candidates)
                  if (root / CANDIDATES_FILE).is_file() else None)
    digests = file_digests([*left, *right], desc="Reading the pool's pictures (once)")
    fingerprint = content_digest("pool", [p.parent.name + "/" + p.name for p in (*left, *right)], digests,
                                 sorted(candidates.items()) if candidates else None)
    return UnlabelledPool(root.resolve().name, root.resolve(), left, right, fingerprint, candidates)


def chosen_pool(pool: str | Path | None = None) -> Path | None:
    """Return the unlabelled pool a run would use: `pool`, else `$TTL_UNLABELLED`, else `data/unlabelled/`
    when there; None means none (pretraining then uses the training pairs' pictures alone)."""
    chosen = pool or env_unlabelled()
    if chosen is None and (data_dir() / "unlabelled" / "left").is_dir():
        chosen = data_dir() / "unlabelled"
    return Path(chosen) if chosen is not None else None
