"""Deterministic train / val / test splits, saved so that every notebook and command agrees.

A split is saved as JSON under `data/splits/`, named by the dataset's fingerprint and the
split's settings. Asking again for the same split loads the file; a file that belongs
to another dataset (other names or sizes of images) is refused.

>>> from ttl_utils.data.demo import make_demo_pairs
>>> split = split_pairs(make_demo_pairs(50, 32), val=0.2, test=0.2, save=False)
>>> {name: len(part) for name, part in split.items()}
{'train': 30, 'val': 10, 'test': 10}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import data_dir
from ..errors import DatasetError
from ..storage import save_json
from .pairs import PairSet

__all__ = ["SPLIT_NAMES", "folds", "split_pairs", "split_path", "load_split", "split_of", "split_table"]

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def split_path(pairs: PairSet, val: float, test: float, seed: int, save_dir: str | Path | None = None) -> Path:
    """Return where the split of `pairs` with these settings is saved."""
    folder = Path(save_dir) if save_dir is not None else data_dir() / "splits"
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in pairs.name)
    return folder / f"{name}-{pairs.fingerprint}-val{val:g}-test{test:g}-seed{seed}.json"


def _assign(pairs: PairSet, val: float, test: float, seed: int) -> dict[str, list[str]]:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val and test are fractions with val + test < 1, got val={val}, test={test}.")
    n = len(pairs)
    n_val, n_test = round(val * n), round(test * n)
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} pairs leave no training pairs with val={val}, test={test}.")
    order = np.random.default_rng(seed).permutation(n)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    # each split lists its ids in the dataset's own order, so subsets read naturally
    return {name: [pairs.ids[i] for i in sorted(parts[name])] for name in SPLIT_NAMES}


def load_split(path: str | Path, pairs: PairSet) -> dict[str, PairSet]:
    """Return the split saved at `path` applied to `pairs`; raise `DatasetError` if it is another dataset's."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
        fingerprint, ids = saved["fingerprint"], saved["ids"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"The split file {path} cannot be read ({err}); delete it to make a new split.") from err
    if fingerprint != pairs.fingerprint:
        raise DatasetError(
            f"The split file {path} was made for dataset {saved.get('dataset')!r} with fingerprint "
            f"{fingerprint}, but {pairs.name!r} has fingerprint {pairs.fingerprint} (its images' names or "
            "sizes differ). Use the dataset the split was made for, or delete the file to split anew."
        )
    listed = [pair_id for name in SPLIT_NAMES for pair_id in ids.get(name, [])]
    if sorted(listed) != sorted(pairs.ids):
        raise DatasetError(f"The split file {path} does not list every pair of {pairs.name} exactly once; delete it.")
    return {name: pairs.subset(pairs.index_of(ids[name]), name=f"{pairs.name}/{name}") for name in SPLIT_NAMES}


_ANNOUNCED: set[Path] = set()  # the saved splits this process has said it uses


def split_pairs(pairs: PairSet, val: float = 0.1, test: float = 0.2, seed: int = 0,
                save: bool = True, save_dir: str | Path | None = None) -> dict[str, PairSet]:
    """Return `{"train", "val", "test"}` subsets of `pairs`, drawn at random with `seed`.

    With `save`, the split is saved under `data/splits/` (or `save_dir`) and loaded from
    there next time, so every notebook and command uses the same split.
    """
    path = split_path(pairs, val, test, seed, save_dir) if save else None
    if path is not None and path.is_file():
        if path not in _ANNOUNCED:  # once a process: a run may read its split several times
            log.info("Using the saved split %s", path)
            _ANNOUNCED.add(path)
        return load_split(path, pairs)
    ids = _assign(pairs, val, test, seed)
    if path is not None:
        save_json({
            "dataset": pairs.name, "fingerprint": pairs.fingerprint, "n_pairs": len(pairs),
            "val": val, "test": test, "seed": seed, "ids": ids,
        }, path)
        log.info("Saved a new split to %s", path)
    return {name: pairs.subset(pairs.index_of(ids[name]), name=f"{pairs.name}/{name}") for name in SPLIT_NAMES}


def split_of(split: dict[str, PairSet]) -> dict[str, str]:
    """Return each pair id's split name, e.g. `{"00001": "train", ...}`."""
    return {pair_id: name for name, part in split.items() for pair_id in part.ids}


def split_table(split: dict[str, PairSet], subsets: dict[str, PairSet]) -> pd.DataFrame:
    """Return how many pairs each split holds: a row a split (train, val, test), a column "all pairs"
    and then one a subset of `subsets` (`{column name: pairs}`), in that order."""
    assignment = pd.Series(split_of(split), name="split")
    columns = {"all pairs": assignment.value_counts()}
    for name, part in subsets.items():
        unknown = sorted(set(part.ids) - set(assignment.index))
        if unknown:
            raise ValueError(f"Subset {name!r} holds {len(unknown)} pairs that are in no split ({unknown[:5]}); "
                             "pass subsets of the pair set that was split.")
        columns[name] = assignment[list(part.ids)].value_counts()
    return pd.DataFrame(columns).reindex(list(SPLIT_NAMES)).fillna(0).astype(int)


def folds(pairs: PairSet, k: int = 5, seed: int = 0) -> list[tuple[PairSet, PairSet]]:
    """Return `k` folds of `pairs` for cross-validation, as `(training, held_out)` pair sets: the pairs are
    shuffled once with `seed` and cut into `k` parts of nearly equal size; each part is held out once.

    >>> from ttl_utils.data.demo import make_demo_pairs
    >>> parts = folds(make_demo_pairs(10, 16), k=3)
    >>> [(len(train), len(held)) for train, held in parts]
    [(6, 4), (7, 3), (7, 3)]
    >>> sorted(i for _, held in parts for i in held.ids) == sorted(make_demo_pairs(10, 16).ids)
    True
    """
    if not 2 <= k <= len(pairs):
        raise ValueError(f"Need 2 <= k <= {len(pairs)} pairs for k-fold cross-validation, got k={k}.")
    order = np.random.default_rng(seed).permutation(len(pairs))
    out = []
    for number, held in enumerate(np.array_split(order, k)):
        kept = np.setdiff1d(order, held)
        out.append((pairs.subset(np.sort(kept), name=f"{pairs.name}-fold{number}-train"),
                    pairs.subset(np.sort(held), name=f"{pairs.name}-fold{number}-held")))
    return out
