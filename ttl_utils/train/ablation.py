"""Comparing fine-tuning recipes without touching the test split.

The saved validation split of a 1000-pair dataset holds 100 pairs, and it also picks the
epoch: gains measured on it are optimistic (about twice the test gain on TTL). For choosing
a recipe, `inner_split` holds out the last `holdout` training pairs instead (or the first,
`first=True`); every recipe (`recipes.RECIPES`, by slug) trains on the rest, picks its epoch
on the held-out pairs and is scored there, in both directions, with the paired bootstrap (over pairs) of its gain
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

from ..data.pairs import PairSet
from ..evaluate.embeddings import embed_pairs
from ..evaluate.ranking import rank_pairs
from ..evaluate.report import variant_row
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from .finetune import cached_finetune, zero_shot_reference
from .recipes import RECIPES, FinetuneConfig

__all__ = ["compare_variants", "inner_split", "inner_splits", "pair_ranks"]


def inner_split(train: PairSet, holdout: int, first: bool = False) -> tuple[PairSet, PairSet]:
    """Return `(fit, held_out)`: the training pairs without their last `holdout` (or their
    first, with `first`), and those."""
    if not 0 < holdout < len(train) - 1:
        raise ValueError(f"holdout {holdout}: hold out at least 1 of the {len(train)} training pairs to score on and "
                         "leave at least 2 to fit on.")
    held = np.arange(holdout) if first else np.arange(len(train) - holdout, len(train))
    kept = np.setdiff1d(np.arange(len(train)), held)
    tag = "-first" if first else ""
    return (train.subset(kept, name=f"{train.name}-fit{tag}"), train.subset(held, name=f"{train.name}-heldout{tag}"))


def inner_splits(train: PairSet, holdout: int, both_ways: bool = False) -> list[tuple[PairSet, PairSet]]:
    """Return `[inner_split(train, holdout)]`, and with `both_ways` also the split holding out the first pairs."""
    return [inner_split(train, holdout)] + ([inner_split(train, holdout, first=True)] if both_ways else [])


def pair_ranks(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, device: str = "cpu",
               workers: int | None = None) -> np.ndarray:
    """Return an `N x 2` array: the rank of each pair's partner, left -> right and right -> left."""
    left, right = embed_pairs(embedder, preprocessing, pairs, device=device, num_workers=workers)
    return rank_pairs("", left, right, candidates=False).both_ways()


def compare_variants(base: FinetuneConfig, splits: Sequence[tuple[PairSet, PairSet]], names: Iterable[str],
                     overrides: dict[str, dict] | None = None, ks: tuple[int, ...] = (1, 10, 20),
                     n_bootstrap: int = 1000, against: str | None = None) -> list[dict]:
    """Train each recipe named (a slug of `recipes.RECIPES`) on `base` on each `(fit, held_out)` of `splits` (cached:
    `finetune.cached_finetune`), select its epoch on `held_out` and score it there, the ranks
    of all held-out sets pooled; the first row is the zero-shot model (`base`'s starting
    backbone, its pooled `layer4` features).

    Rows hold R@k and MRR over both directions, the gain in R@k[0], R@k[-1] and MRR over
    zero-shot, or over the variant `against` (one of `names`), with its 95% paired-bootstrap
    interval (over pairs), the kept epoch (one a split, joined by "/") and the training seconds.
    `overrides` adds or replaces variants (`{name: settings}`).
    """
    variants = {**{slug: recipe.settings for slug, recipe in RECIPES.items()}, **(overrides or {})}
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
