"""Judging models on a pair set: one model's full report (`evaluate`), or several ranked on the same
pairs (`compare`), their embeddings cached.

Each model ranks every right image for each left image (and back) on the same pairs; the
tables, paired gains and verdicts are made by `report`. A MODEL is a checkpoint this project
writes or a backbone name with optional weights (`models.checkpoints.load_model`).

>>> ranked = compare_models({"A": (embedder_a, pre_a), "B": (embedder_b, pre_b)}, pairs)   # doctest: +SKIP
>>> print(format_comparison(comparison_table(ranked), verdicts(ranked)))                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..config import Profile
from ..data.gallery import Gallery
from ..data.inputs import image_files
from ..data.pairs import PairSet
from ..digests import model_fingerprint
from ..errors import UsageError
from ..models.checkpoints import load_model
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from .embeddings import embed_pairs, embedding_files, gallery_embeddings
from .hubs import hub_penalties
from .metrics import DIRECTIONS, Ranked
from .ranking import rank_pairs
from .report import direction_report

__all__ = ["HubBank", "compare_models", "evaluate_model", "load_models", "rank_model", "rank_on_subsets",
           "training_overlap"]

log = logging.getLogger(__name__)


class HubBank:
    """A bank of pictures for hub correction (CSLS) in `evaluate` and `compare`: a folder with `left/` and
    `right/` (the unlabelled pool, or pairs never evaluated), `k` nearest bank pictures each.

    It may hold none of the evaluated pictures (`check`): a query's ranking would then look at
    the other test pictures."""

    def __init__(self, folder: str | Path, k: int = 10):
        self.folder, self.k = Path(folder), k
        missing = [side for side in ("left", "right") if not (self.folder / side).is_dir()]
        if missing:
            raise UsageError(f"--hub-bank {self.folder}: no {missing[0]}/ folder (give a folder with left/ and right/, "
                             "e.g. the unlabelled pool, never the evaluated pairs).")
        self.sides = {side: image_files([self.folder / side], "hub bank picture") for side in ("left", "right")}

    def check(self, pairs: PairSet) -> None:
        """Raise `UsageError` when the bank holds a picture of `pairs` (same file)."""
        evaluated = {Path(p).resolve() for p in (*pairs.left, *pairs.right) if isinstance(p, (str, Path))}
        shared = [p for side in self.sides.values() for p in side if p.resolve() in evaluated]
        if shared:
            raise UsageError(f"--hub-bank {self.folder} holds {len(shared)} of the evaluated pictures (e.g. {shared[0]}): "
                             "give pictures the evaluated pairs do not include, e.g. the unlabelled pool.")

    def penalties(self, embedder: Embedder, preprocessing: Preprocessing, left: torch.Tensor, right: torch.Tensor,
                  device: str = "cpu", batch_size: int = 32, num_workers: int | None = None,
                  cache: bool = True) -> dict[str, torch.Tensor]:
        """Return each direction's CSLS penalty for these pairs' embeddings (`hubs.hub_penalties`)."""
        bank = {side: gallery_embeddings(embedder, preprocessing, Gallery(f"{self.folder.name}/{side}",
                                                                          [p.name for p in files], list(files)),
                                         device, batch_size, num_workers, cache)[1]
                for side, files in self.sides.items()}
        return hub_penalties(left, right, bank["left"], bank["right"], self.k)

    def to_dict(self) -> dict:
        return {"bank": str(self.folder), "pictures": [len(self.sides["left"]), len(self.sides["right"])], "k": self.k}

    def describe(self) -> str:
        return (f"hub correction (CSLS): {self.k} nearest of {len(self.sides['left'])} left and "
                f"{len(self.sides['right'])} right pictures of {self.folder}")


def rank_model(name: str, embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, device: str = "cpu",
               batch_size: int = 32, num_workers: int | None = None, cache: bool = True, seed: int = 0,
               bank: HubBank | None = None) -> Ranked:
    """Return the ranks of `embedder` on `pairs` (both directions, and among 20 candidates; by CSLS
    against `bank` when given), its embeddings read from (or written to) the cache."""
    before = embedding_files(embedder, preprocessing, pairs)
    left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device, num_workers, cache)
    if cache and None not in before and embedding_files(embedder, preprocessing, pairs) == before and name:
        log.info("%s: embeddings from the cache (no forward pass)", name)
    penalties = bank.penalties(embedder, preprocessing, left, right, device, batch_size, num_workers, cache) \
        if bank is not None else None
    return rank_pairs(name, left, right, seed, penalties=penalties)


def evaluate_model(embedder: Embedder, preprocessing: Preprocessing, pairs: PairSet, batch_size: int = 32,
                   device: str = "cpu", num_workers: int | None = None, cache: bool = True,
                   n_bootstrap: int = 1000, seed: int = 0, bank: HubBank | None = None) -> dict:
    """Return the retrieval report of `embedder` on `pairs`: left->right at the top level,
    right->left under `"right_to_left"`, plus what was evaluated (what `evaluate --json` writes);
    with `bank`, ranked by CSLS against it."""
    ranked = rank_model("", embedder, preprocessing, pairs, device, batch_size, num_workers, cache, seed, bank)
    forth, back = (direction_report(ranked.ranks[d], ranked.candidates[d], len(pairs), n_bootstrap, seed)
                   for d in DIRECTIONS)
    return {
        "dataset": pairs.name,
        "fingerprint": pairs.fingerprint,
        "model": {**embedder.describe(), "fingerprint": model_fingerprint(embedder)},
        "preprocessing": preprocessing.to_dict(),
        **({"hub_correction": bank.to_dict()} if bank is not None else {}),
        **forth,
        "right_to_left": back,
    }


def training_overlap(extra: dict, pairs: PairSet) -> int:
    """Return how many of `pairs` a checkpoint was fine-tuned on (its `extra`, as `load_checkpoint`
    returns it, records the digests of its training pairs); 0 when it records none."""
    trained_on = (extra.get("finetune") or {}).get("trained_on") if isinstance(extra, dict) else None
    if not trained_on:
        return 0
    return len(set(pairs.pair_digests()) & set(trained_on))


def load_models(models: dict[str, str], profile: Profile) -> dict[str, tuple[Embedder, Preprocessing]]:
    """Return `{name: (embedder, preprocessing)}` for `{name: MODEL}`: all loaded before any runs, so a
    wrong MODEL stops the comparison at once."""
    return {name: load_model(spec, profile) for name, spec in models.items()}


def compare_models(loaded: dict[str, tuple[Embedder, Preprocessing]], pairs: PairSet, device: str = "cpu",
                   batch_size: int = 32, num_workers: int | None = None, cache: bool = True,
                   bank: HubBank | dict | None = None) -> list[Ranked]:
    """Return the ranks of each `{name: (embedder, preprocessing)}` on `pairs`, in order; embeddings
    come from the cache when there (and it says when no forward pass was needed). `bank` is one
    bank for every model, or `{name: bank or None}`."""
    ranked, cached_already = [], 0
    for name, (embedder, preprocessing) in loaded.items():
        before = embedding_files(embedder, preprocessing, pairs)
        ranked.append(rank_model(name, embedder, preprocessing, pairs, device, batch_size, num_workers, cache,
                                 bank=bank.get(name) if isinstance(bank, dict) else bank))
        cached_already += cache and None not in before and embedding_files(embedder, preprocessing, pairs) == before
    if cached_already == len(loaded):
        log.info("All %d models' embeddings came from the cache (artifacts/embeddings/): no forward pass.", len(loaded))
    else:
        log.info("Embedded %d of %d models, %d from the cache.", len(loaded) - cached_already, len(loaded),
                 cached_already)
    return ranked


def rank_on_subsets(loaded: dict[str, tuple[Embedder, Preprocessing]], pairs: PairSet,
                    subsets: dict[str, np.ndarray], device: str = "cpu", batch_size: int = 32,
                    seed: int = 0) -> dict[str, list[Ranked]]:
    """Return `{subset: [Ranked, ...]}`: each model embeds `pairs` once (cached) and is ranked within
    each subset of indices (its candidates are that subset's right images only)."""
    out: dict[str, list[Ranked]] = {name: [] for name in subsets}
    for model, (embedder, preprocessing) in loaded.items():
        left, right = embed_pairs(embedder, preprocessing, pairs, batch_size, device)
        for name, indices in subsets.items():
            idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
            out[name].append(rank_pairs(model, left[idx], right[idx], seed))
    return out
