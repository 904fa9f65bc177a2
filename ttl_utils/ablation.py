"""Comparing fine-tuning recipes without touching the test split.

The saved validation split of a 1000-pair dataset holds 100 pairs, and it also picks the
epoch: gains measured on it are optimistic (about twice the test gain on TTL). For choosing
a recipe, `inner_split` holds out the last `holdout` training pairs instead (or the first,
`first=True`); every variant trains on the rest, picks its epoch on the held-out pairs and
is scored there, in both directions, with the paired bootstrap (over pairs) of its gain
over the zero-shot model, or over another variant (`against`). Given both hold-outs
(`inner_splits(..., both_ways=True)`), each variant trains twice and the ranks of the two
held-out sets are pooled: twice the pairs to compare on, and less hangs on which pairs
happened to be held out.

>>> splits = inner_splits(split["train"], holdout=200, both_ways=True)          # doctest: +SKIP
>>> rows = compare_variants(base, splits, ["infonce-ms", "infonce-ms-grid4"], against="infonce-ms")  # doctest: +SKIP
>>> print(format_rows(rows))                                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from .evaluation import embed_pairs
from .finetune import FinetuneConfig, cached_finetune, zero_shot_reference
from .pairs import PairSet
from .report import format_rows, variant_row
from .retrieval import ranks_both_ways
from .transforms import Preprocessing

__all__ = ["VARIANTS", "compare_variants", "format_rows", "inner_split", "inner_splits", "pair_ranks"]

_L4, _MS = ("layer4",), ("layer3", "layer4")
_SLOW = {"epochs": 8}  # an epoch of these costs 2-4 times more; early stopping ends them within 8 epochs anyway

# Each variant sets the loss, the pooled layers, the grid and the unfrozen stages, and changes the
# command line's other defaults (a linear head, 4 cached views, 224 px, batch 64) where it says so.
# Those it does not name are global pooling (grid 0) with the last stage training (unfreeze 1).
VARIANTS: dict[str, dict] = {name: {"grid": 0, "unfreeze": 1, **settings} for name, settings in {
    # InfoNCE on layer3 + layer4 pooled into 4 x 4 cells, the last stage training: the default recipe
    "infonce-ms-grid4": {"loss": "infonce", "layers": _MS, "grid": 4},
    "infonce-ms-grid4-unfreeze2": {"loss": "infonce", "layers": _MS, "grid": 4, "unfreeze": 2},
    "infonce-ms-grid4-frozen": {"loss": "infonce", "layers": _MS, "grid": 4, "unfreeze": 0},
    "infonce-ms-grid2": {"loss": "infonce", "layers": _MS, "grid": 2},
    "infonce-ms-grid3": {"loss": "infonce", "layers": _MS, "grid": 3},
    "infonce-ms-grid5": {"loss": "infonce", "layers": _MS, "grid": 5},
    "infonce-ms-grid4-t0.1": {"loss": "infonce", "layers": _MS, "grid": 4, "temperature": 0.1},
    "infonce-ms-grid4-288px": {"loss": "infonce", "layers": _MS, "grid": 4, "image_size": 288, **_SLOW},
    # InfoNCE on globally pooled layer3 + layer4: the default before the grid
    "infonce-ms": {"loss": "infonce", "layers": _MS},
    "infonce-ms-frozen": {"loss": "infonce", "layers": _MS, "unfreeze": 0},
    "infonce-ms-unfreeze2": {"loss": "infonce", "layers": _MS, "unfreeze": 2},
    "infonce-ms234-unfreeze2": {"loss": "infonce", "layers": ("layer2", "layer3", "layer4"), "unfreeze": 2},
    "infonce-ms-batch128": {"loss": "infonce", "layers": _MS, "batch_size": 128},
    "infonce-ms-t0.1": {"loss": "infonce", "layers": _MS, "temperature": 0.1},
    # InfoNCE on layer4 alone
    "infonce": {"loss": "infonce", "layers": _L4},
    "infonce-t0.1": {"loss": "infonce", "layers": _L4, "temperature": 0.1},
    "infonce-batch128": {"loss": "infonce", "layers": _L4, "batch_size": 128},
    "infonce-unfreeze2": {"loss": "infonce", "layers": _L4, "unfreeze": 2},
    "infonce-fresh-views": {"loss": "infonce", "layers": _L4, "views": 0, **_SLOW},  # new views every step
    "infonce-288px": {"loss": "infonce", "layers": _L4, "image_size": 288, **_SLOW},
    # the triplet loss (semi-hard mining unless named)
    "triplet": {"loss": "triplet", "layers": _L4},
    "triplet-frozen": {"loss": "triplet", "layers": _L4, "unfreeze": 0},
    "triplet-unfreeze2": {"loss": "triplet", "layers": _L4, "unfreeze": 2},
    "triplet-no-head": {"loss": "triplet", "layers": _L4, "head": "none"},
    "triplet-all": {"loss": "triplet", "layers": _L4, "miner": "all"},
    "triplet-hard": {"loss": "triplet", "layers": _L4, "miner": "hard"},
    "triplet-ms": {"loss": "triplet", "layers": _MS},
    "triplet-all-ms": {"loss": "triplet", "layers": _MS, "miner": "all"},
}.items()}


def inner_split(train: PairSet, holdout: int, first: bool = False) -> tuple[PairSet, PairSet]:
    """Return `(fit, held_out)`: the training pairs without their last `holdout` (or their
    first, with `first`), and those."""
    if not 0 < holdout < len(train) - 1:
        raise ValueError(f"holdout must leave at least 2 of the {len(train)} training pairs to fit on, got {holdout}.")
    held = np.arange(holdout) if first else np.arange(len(train) - holdout, len(train))
    kept = np.setdiff1d(np.arange(len(train)), held)
    tag = "-first" if first else ""
    return (train.subset(kept, name=f"{train.name}-fit{tag}"), train.subset(held, name=f"{train.name}-heldout{tag}"))


def inner_splits(train: PairSet, holdout: int, both_ways: bool = False) -> list[tuple[PairSet, PairSet]]:
    """Return `[inner_split(train, holdout)]`, and with `both_ways` also the split holding out the first pairs."""
    return [inner_split(train, holdout)] + ([inner_split(train, holdout, first=True)] if both_ways else [])


def pair_ranks(embedder, preprocessing: Preprocessing, pairs: PairSet, device: str = "cpu",
               workers: int | None = None) -> np.ndarray:
    """Return an `N x 2` array: the rank of each pair's partner, left -> right and right -> left."""
    return ranks_both_ways(*embed_pairs(embedder, preprocessing, pairs, device=device, num_workers=workers))


def compare_variants(base: FinetuneConfig, splits: Sequence[tuple[PairSet, PairSet]], names: Iterable[str],
                     overrides: dict[str, dict] | None = None, ks: tuple[int, ...] = (1, 10, 20),
                     n_bootstrap: int = 1000, against: str | None = None) -> list[dict]:
    """Train each named variant of `base` on each `(fit, held_out)` of `splits` (cached:
    `finetune.cached_finetune`), select its epoch on `held_out` and score it there, the ranks
    of all held-out sets pooled; the first row is the zero-shot model (`base`'s starting
    backbone, its pooled `layer4` features).

    Rows hold R@k and MRR over both directions, the gain in R@k[0], R@k[-1] and MRR over
    zero-shot, or over the variant `against` (one of `names`), with its 95% paired-bootstrap
    interval (over pairs), the kept epoch (one a split, joined by "/") and the training seconds.
    `overrides` adds or replaces variants (`{name: settings}`).
    """
    variants = {**VARIANTS, **(overrides or {})}
    names = list(names)
    unknown = [name for name in names if name not in variants]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}; choose from {', '.join(variants)}.")
    if against is not None and against not in names:
        raise ValueError(f"against: {against!r} is not among the compared variants {names}.")
    if not splits:
        raise ValueError("compare_variants needs at least one (fit, held_out) split.")
    preprocessing = Preprocessing.for_size(base.image_size)
    start = zero_shot_reference(base)
    zero_shot = np.concatenate([pair_ranks(start, preprocessing, held_out, base.device, base.workers)
                                for _, held_out in splits])
    scored = {}
    for name in names:
        config = replace(base, **variants[name])
        ranks, epochs, seconds = [], [], 0.0
        for fit, held_out in splits:
            result = cached_finetune(config, fit, held_out)
            ranks.append(pair_ranks(result.embedder, Preprocessing.for_size(config.image_size), held_out, base.device,
                                    base.workers))
            epochs.append(result.best_epoch)
            seconds += sum(h["seconds"] for h in result.history)
        scored[name] = (np.concatenate(ranks), "/".join(map(str, epochs)) if len(epochs) > 1 else epochs[0],
                        round(seconds))
    reference = zero_shot if against is None else scored[against][0]
    rows = [variant_row("zero-shot", zero_shot, None, ks, n_bootstrap)]
    for name, (ranks, epoch, seconds) in scored.items():
        row = variant_row(name, ranks, None if name == against else reference, ks, n_bootstrap)
        row["epoch"], row["train s"] = epoch, seconds
        rows.append(row)
    return rows
