"""Measure the finder's test-time options on held-out folds: flip averaging and hub correction (CSLS).

    python tools/lookalike_options.py --data ../shared/ttl-dev                     # zero-shot, 5 folds
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned         # + the chosen recipe, trained a fold
    python tools/lookalike_options.py --data DIR --json out/options.json

The pairs are cut into `--folds` parts (`data.splits.folds`); each part is held out once: its left
pictures are the queries, its right pictures the candidates (as the test split is ranked). The
bank CSLS scales by is the left pictures of the other parts (training pictures only, so one query
in `find` could use it). With `--finetuned` the profile's chosen recipe is trained on the other
parts (its epoch picked on their last `--holdout` pairs; cached under `artifacts/finetune/`).

For each model and setting it prints R@1 and R@20 over every held-out query, the paired gain over
the plain setting with a 95% bootstrap interval over the queries, the gain in each fold, and how
many first places the top 1% of hubs take. Nothing here looks at one split's test part alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ttl_utils.config import get_profile
from ttl_utils.data.folders import resolve_pairs
from ttl_utils.data.splits import folds
from ttl_utils.evaluate.embeddings import embed_pairs
from ttl_utils.evaluate.hubs import csls_ranks, hub_first_places, hubness
from ttl_utils.evaluate.metrics import paired_gain, recall_at_k
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.evaluate.report import gain_text
from ttl_utils.models.checkpoints import load_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.train.ablation import inner_split
from ttl_utils.train.finetune import cached_finetune
from ttl_utils.train.recipes import FinetuneConfig

SETTINGS = ("plain", "flip", "CSLS", "flip + CSLS")


def fold_ranks(embedder, preprocessing: Preprocessing, train, held, k: int) -> dict[str, dict]:
    """Return, for each setting, the held-out queries' partner ranks and the hubs' first places."""
    out = {}
    for flip in (False, True):
        chosen = replace(preprocessing, flip=flip)
        bank, _ = embed_pairs(embedder, chosen, train)
        left, right = embed_pairs(embedder, chosen, held)
        partners = np.arange(len(held))
        name = "flip" if flip else "plain"
        out[name] = {"ranks": rank_of_match(left, right), "hubs": hub_first_places(left, right)}
        penalty = hubness(right, bank, k)
        out[f"{name} + CSLS" if flip else "CSLS"] = {"ranks": csls_ranks(left, right, partners, bank, k),
                                                     "hubs": hub_first_places(left, right, penalty=penalty)}
    return out


def measure(models: dict, parts: list, k: int) -> dict[str, dict]:
    """Return `{model: {setting: {"ranks": pooled ranks, "folds": [ranks a fold], "hubs": (taken, hubs)}}}`."""
    results = {}
    for model_name, make in models.items():
        per_fold = []
        for number, (train, held) in enumerate(parts):
            embedder, preprocessing = make(number, train)
            per_fold.append(fold_ranks(embedder, preprocessing, train, held, k))
            print(f"{model_name}: fold {number + 1} of {len(parts)} done", file=sys.stderr, flush=True)
        results[model_name] = {setting: {"folds": [fold[setting]["ranks"] for fold in per_fold],
                                         "ranks": np.concatenate([fold[setting]["ranks"] for fold in per_fold]),
                                         "hubs": tuple(np.sum([fold[setting]["hubs"] for fold in per_fold], axis=0))}
                               for setting in SETTINGS}
    return results


def table(results: dict) -> list[dict]:
    rows = []
    for model_name, settings in results.items():
        plain = settings["plain"]
        for setting, found in settings.items():
            row = {"model": model_name, "setting": setting, "queries": len(found["ranks"]),
                   "R@1": recall_at_k(found["ranks"], 1), "R@20": recall_at_k(found["ranks"], 20),
                   "hubs' first places": f"{found['hubs'][0]} (top {found['hubs'][1]} hubs)"}
            if setting != "plain":
                for k in (1, 20):
                    gain = paired_gain(found["ranks"], plain["ranks"], k=k)
                    row[f"R@{k} gain"] = gain_text(gain)
                    row[f"R@{k} gain a fold"] = [round(recall_at_k(a, k) - recall_at_k(b, k), 3)
                                                 for a, b in zip(found["folds"], plain["folds"])]
            rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder of pairs (official or pairs-CSV layout)")
    parser.add_argument("--folds", type=int, default=5, help="parts to hold out in turn (default 5)")
    parser.add_argument("--k", type=int, default=10, help="neighbours in the bank CSLS scales by (default 10)")
    parser.add_argument("--finetuned", action="store_true", help="also the profile's chosen recipe, trained a fold")
    parser.add_argument("--holdout", type=int, default=100, help="training pairs that pick the fine-tuned epoch")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    profile = get_profile()
    pairs = resolve_pairs(args.data, profile)
    parts = folds(pairs, args.folds)
    torch.manual_seed(0)
    zero_shot = build_embedder(profile.backbone)
    models = {"zero-shot": lambda number, train: (zero_shot, Preprocessing.for_size(profile.image_size))}
    if args.finetuned:
        config = FinetuneConfig.for_profile(profile)

        def fine_tuned(number, train):
            fit, val = inner_split(train, args.holdout)
            embedder, preprocessing, _ = load_checkpoint(cached_finetune(config, fit, val).checkpoint)
            return embedder, preprocessing

        models["fine-tuned (chosen recipe)"] = fine_tuned
    rows = table(measure(models, parts, args.k))
    for row in rows:
        print(" | ".join(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}"
                         for key, value in row.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
