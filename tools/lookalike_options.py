"""Measure the finder's test-time options on held-out folds: flip averaging and hub correction (CSLS).

    python tools/lookalike_options.py --data ../shared/ttl-dev                     # zero-shot, 5 folds
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned         # + the chosen recipe, trained a fold
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned --unlabelled ../shared/ttl-unlabelled
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned --unlabelled DIR --unlabelled-loss mil
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned --distractors ../shared/ttl-unlabelled
    python tools/lookalike_options.py --data ../shared/ttl-dev --finetuned --seeds 3 --distractors ../shared/ttl-unlabelled
    python tools/lookalike_options.py --data DIR --json out/options.json

The pairs are cut into `--folds` parts (`data.splits.folds`); each part is held out once: its left
pictures are the queries, its right pictures the candidates (as the test split is ranked). The
bank CSLS scales by is the left pictures of the other parts (training pictures only, so one query
in `find` could use it). With `--finetuned` the profile's chosen recipe is trained on the other
parts (its epoch picked on their last `--holdout` pairs; cached under `artifacts/finetune/`). With
`--unlabelled DIR` the same recipe is also trained with the pool's pseudo-pairs (`finetune --unlabelled`;
`--unlabelled-loss mil`: with MIL-NCE over each pool left picture's candidates instead), the pool
without near-copies of the fold's held-out and validation pictures. With `--seeds N` the recipe is also
trained with seeds 0 to N-1 a fold (seed 0 is the default's run; all share its cached views) and ranked
as an ensemble: each picture's N embeddings joined (`evaluate.ensemble.join_embeddings`), so two
pictures' similarity is the mean of the N models' cosines.

For each model and setting it prints R@1 and R@20 over every held-out query, among its fold's right
pictures and among every right picture (the other folds' too: as many candidates as pairs, those
the fine-tuned models trained on among them), the paired gain over
the same model's plain setting and over the default (the fine-tuned recipe, plain) with a 95%
bootstrap interval over the queries (for the other fine-tuned models also over the default in the same
setting), the gain in each fold, and how many first places the top 1%
of hubs take; with `--unlabelled`, how accurate the pseudo-labels were on the validation pairs,
each partner hidden among 19 foils. Nothing here looks at one split's test part alone.

Among every right picture, the other folds' right pictures are training pictures whose partners
sit in CSLS's bank, so hub correction pushes them down: that column flatters CSLS. `--distractors DIR`
adds a fairer one ("unseen candidates"): each fold's right pictures plus as many right pictures of
DIR (never trained on; those nearly copying a picture of `--data` left out) as make `len(pairs)`
candidates, as on pairs the project has never seen. Use it with models that never saw DIR.
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
from ttl_utils.data.gallery import Gallery
from ttl_utils.data.pool import load_pool
from ttl_utils.data.splits import folds
from ttl_utils.evaluate.embeddings import embed_pairs, gallery_embeddings
from ttl_utils.evaluate.ensemble import join_embeddings
from ttl_utils.evaluate.hubs import csls_ranks, hub_first_places, hubness
from ttl_utils.evaluate.metrics import paired_gain, recall_at_k
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.evaluate.report import gain_text
from ttl_utils.models.checkpoints import load_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.pipeline import finetuning_pool, pool_near_copies
from ttl_utils.train.ablation import inner_split
from ttl_utils.train.finetune import cached_finetune
from ttl_utils.train.recipes import ASSIGNMENTS, UNLABELLED_LOSSES, FinetuneConfig

SETTINGS = ("plain", "flip", "CSLS", "flip + CSLS")
DEFAULT = "fine-tuned (chosen recipe)"
POOLED = "fine-tuned + pseudo-pairs"
MIL = "fine-tuned + MIL-NCE"
ENSEMBLE = "fine-tuned, {n} seeds joined"


def _embeddings(members: list, flip: bool, train, held, distractors: list[Path] | None) -> tuple:
    """Return the bank (the training left pictures), the training right pictures, the held-out left and
    right pictures and the distractors (or None), each the members' embeddings joined (`join_embeddings`)."""
    found = []
    for embedder, preprocessing in members:
        chosen = replace(preprocessing, flip=flip)
        found.append((*embed_pairs(embedder, chosen, train), *embed_pairs(embedder, chosen, held),
                      gallery_embeddings(embedder, chosen, Gallery("distractors", [p.name for p in distractors],
                                                                   list(distractors)))[1] if distractors else None))
    if len(found) == 1:
        return found[0]
    return tuple(None if parts[0] is None else join_embeddings(parts) for parts in zip(*found))


def fold_ranks(members: list, train, held, k: int, distractors: list[Path] | None = None) -> dict[str, dict]:
    """Return, for each setting, the held-out queries' partner ranks among the fold's right pictures
    (`ranks`), among every right picture (`ranks_all`: the other folds' too, as many candidates as
    pairs), with `distractors` among the fold's right pictures and those (`ranks_unseen`), and the
    hubs' first places. `members` is a list of `(embedder, preprocessing)`: several are an ensemble."""
    out = {}
    for flip in (False, True):
        bank, bank_right, left, right, far = _embeddings(members, flip, train, held, distractors)
        everyone = torch.cat([right, bank_right])  # the partner of held-out query i is still row i
        unseen = torch.cat([right, far]) if distractors else None
        partners = np.arange(len(held))
        name = "flip" if flip else "plain"
        out[name] = {"ranks": rank_of_match(left, right), "ranks_all": rank_of_match(left, everyone),
                     "hubs": hub_first_places(left, right)}
        penalty = hubness(right, bank, k)
        out[f"{name} + CSLS" if flip else "CSLS"] = {
            "ranks": csls_ranks(left, right, partners, bank, k), "ranks_all": csls_ranks(left, everyone, partners, bank, k),
            "hubs": hub_first_places(left, right, penalty=penalty)}
        if unseen is not None:
            out[name]["ranks_unseen"] = rank_of_match(left, unseen)
            out[f"{name} + CSLS" if flip else "CSLS"]["ranks_unseen"] = csls_ranks(left, unseen, partners, bank, k)
    return out


def pick_distractors(profile, pairs, folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Return `n` right pictures of the pool at `folder` drawn at random (`seed`), none nearly copying a
    picture of `pairs` (`pipeline.pool_near_copies`)."""
    pool = load_pool(folder)
    near, _ = pool_near_copies(profile, pairs, pool, pairs.ids)
    right = set(pool.right)
    far = [path for path, out in zip(pool.pictures(), near.tolist()) if not out and path in right]
    if len(far) < n:
        raise SystemExit(f"--distractors {folder}: {len(far)} right pictures that copy none of --data, {n} needed.")
    chosen = np.random.default_rng(seed).choice(len(far), size=n, replace=False)
    return [far[i] for i in sorted(chosen)]


def measure(models: dict, parts: list, k: int, distractors: list[Path] | None = None) -> dict[str, dict]:
    """Return `{model: {setting: {"ranks": pooled ranks, "folds": [ranks a fold], "hubs": (taken, hubs)}}}`."""
    results = {}
    for model_name, make in models.items():
        per_fold = []
        for number, (train, held) in enumerate(parts):
            per_fold.append(fold_ranks(make(number, train), train, held, k, distractors))
            print(f"{model_name}: fold {number + 1} of {len(parts)} done", file=sys.stderr, flush=True)
        results[model_name] = {setting: {"folds": [fold[setting]["ranks"] for fold in per_fold],
                                         "ranks": np.concatenate([fold[setting]["ranks"] for fold in per_fold]),
                                         "ranks_all": np.concatenate([fold[setting]["ranks_all"] for fold in per_fold]),
                                         **({"ranks_unseen": np.concatenate([fold[setting]["ranks_unseen"]
                                                                             for fold in per_fold])}
                                            if distractors else {}),
                                         "hubs": tuple(np.sum([fold[setting]["hubs"] for fold in per_fold], axis=0))}
                               for setting in SETTINGS}
    return results


def _gains(found: dict, reference: dict, name: str) -> dict:
    """Return the paired gains of R@1 and R@20 over `reference`, pooled (with an interval) and a fold,
    and the pooled gains among every right picture."""
    row = {}
    for k in (1, 20):
        row[f"R@{k} {name}"] = gain_text(paired_gain(found["ranks"], reference["ranks"], k=k))
        row[f"R@{k} {name}, all candidates"] = gain_text(paired_gain(found["ranks_all"], reference["ranks_all"], k=k))
        if "ranks_unseen" in found:
            row[f"R@{k} {name}, unseen candidates"] = gain_text(paired_gain(found["ranks_unseen"],
                                                                            reference["ranks_unseen"], k=k))
        row[f"R@{k} {name} a fold"] = [round(recall_at_k(a, k) - recall_at_k(b, k), 3)
                                       for a, b in zip(found["folds"], reference["folds"])]
    return row


def table(results: dict) -> list[dict]:
    rows = []
    default = results.get(DEFAULT, {}).get("plain")
    same = results.get(DEFAULT, {})
    for model_name, settings in results.items():
        plain = settings["plain"]
        for setting, found in settings.items():
            row = {"model": model_name, "setting": setting, "queries": len(found["ranks"]),
                   "R@1": recall_at_k(found["ranks"], 1), "R@20": recall_at_k(found["ranks"], 20),
                   "R@1, all candidates": recall_at_k(found["ranks_all"], 1),
                   "R@20, all candidates": recall_at_k(found["ranks_all"], 20),
                   **({"R@1, unseen candidates": recall_at_k(found["ranks_unseen"], 1),
                       "R@20, unseen candidates": recall_at_k(found["ranks_unseen"], 20)} if "ranks_unseen" in found else {}),
                   "hubs' first places": f"{found['hubs'][0]} (top {found['hubs'][1]} hubs)"}
            if setting != "plain":
                row.update(_gains(found, plain, "gain"))
            if default is not None and found is not default and model_name != "zero-shot":
                row.update(_gains(found, default, "vs default"))
            if model_name not in (DEFAULT, "zero-shot") and setting != "plain" and setting in same:
                row.update(_gains(found, same[setting], "vs default, same setting"))
            rows.append(row)
    return rows


def pseudo_label_summary(histories: list[list[dict]]) -> dict:
    """Return how accurate the pseudo-labels were on the folds' validation pairs (each partner hidden
    among 19 foils), at the first assignment and the last, and how many pseudo-pairs there were."""
    first = [next(h for h in history if "pseudo_pairs" in h) for history in histories]
    last = [[h for h in history if "pseudo_pairs" in h][-1] for history in histories]
    mean = lambda records, key: round(float(np.mean([r[key] for r in records])), 3)  # noqa: E731
    return {"pseudo-pairs (first, last)": (mean(first, "pseudo_pairs"), mean(last, "pseudo_pairs")),
            "accuracy of those kept (first, last)": (mean(first, "pseudo_val_accuracy"), mean(last, "pseudo_val_accuracy")),
            "accuracy of all assigned (first, last)": (mean(first, "pseudo_val_accuracy_all"),
                                                       mean(last, "pseudo_val_accuracy_all")),
            "chance": 0.05, "seconds a run": round(float(np.mean([sum(h.get("seconds") or 0 for h in history)
                                                                  for history in histories])), 1)}


def mil_summary(histories: list[list[dict]]) -> dict:
    """Return the MIL-NCE runs' mean loss at their first epoch and their last, their epochs and their seconds."""
    trained = [[h for h in history if "mil_loss" in h] for history in histories]
    mean = lambda values: round(float(np.mean(values)), 3)  # noqa: E731
    return {"loss": "mil", "MIL-NCE loss (first epoch, last)": (mean([t[0]["mil_loss"] for t in trained]),
                                                               mean([t[-1]["mil_loss"] for t in trained])),
            "epochs a run": mean([len(t) for t in trained]),
            "seconds a run": mean([sum(h.get("seconds") or 0 for h in history) for history in histories])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder of pairs (official or pairs-CSV layout)")
    parser.add_argument("--folds", type=int, default=5, help="parts to hold out in turn (default 5)")
    parser.add_argument("--k", type=int, default=10, help="neighbours in the bank CSLS scales by (default 10)")
    parser.add_argument("--finetuned", action="store_true", help="also the profile's chosen recipe, trained a fold")
    parser.add_argument("--holdout", type=int, default=100, help="training pairs that pick the fine-tuned epoch")
    parser.add_argument("--unlabelled", type=Path, help="also the recipe learning from this pool's candidate lists "
                        "(candidates.csv): pseudo-pairs, or MIL-NCE with --unlabelled-loss mil")
    parser.add_argument("--unlabelled-keep", type=float, default=None, help="the share of pseudo-pairs kept")
    parser.add_argument("--unlabelled-assign", choices=ASSIGNMENTS, default=None,
                        help="how the pool's left pictures are paired with their candidates (finetune's default: greedy)")
    parser.add_argument("--unlabelled-loss", choices=UNLABELLED_LOSSES, default=None,
                        help="pseudo-pairs, or MIL-NCE over each left picture's candidates (finetune's default: pseudo)")
    parser.add_argument("--distractors", type=Path, help="a pool folder (right/) whose right pictures join each fold's "
                        "candidates, as many as make len(pairs): never trained on (see above)")
    parser.add_argument("--seeds", type=int, default=1, help="with --finetuned, also an ensemble: the recipe trained "
                        "with this many seeds a fold (0, 1, ...; one set of cached views), their embeddings joined")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or (args.seeds > 1 and not args.finetuned):
        parser.error("--seeds: a number of fine-tuning seeds from 1 up, with --finetuned")
    os.environ.setdefault("TQDM_DISABLE", "1")
    profile = get_profile()
    pairs = resolve_pairs(args.data, profile)
    parts = folds(pairs, args.folds)
    torch.manual_seed(0)
    zero_shot = build_embedder(profile.backbone)
    models = {"zero-shot": lambda number, train: [(zero_shot, Preprocessing.for_size(profile.image_size))]}
    histories = {}
    if args.finetuned or args.unlabelled:
        config = FinetuneConfig.for_profile(profile, unlabelled_keep=args.unlabelled_keep,
                                            unlabelled_assign=args.unlabelled_assign, unlabelled_loss=args.unlabelled_loss)
        pool = load_pool(args.unlabelled) if args.unlabelled else None

        def fine_tuned(pooled: bool, seeds: int = 1):
            def make(number, train):
                fit, val = inner_split(train, args.holdout)
                if seeds > 1:  # seed 0 is the default's run; the others share its cached views (view_seed 0)
                    runs = [cached_finetune(replace(config, seed=seed, view_seed=0), fit, val) for seed in range(seeds)]
                    return [load_checkpoint(run.checkpoint)[:2] for run in runs]
                chosen = None
                if pooled:
                    held = [pair for pair in pairs.ids if pair not in set(fit.ids)]  # held out and validation
                    chosen, left_out = finetuning_pool(profile, pairs, pool, held)
                    print(f"fold {number + 1}: {left_out} pool pictures left out as near-copies", file=sys.stderr)
                result = cached_finetune(config, fit, val, pool=chosen)
                if pooled:
                    histories[number] = result.history
                return [load_checkpoint(result.checkpoint)[:2]]
            return make

        models[DEFAULT] = fine_tuned(False)
        if args.seeds > 1:
            models[ENSEMBLE.format(n=args.seeds)] = fine_tuned(False, args.seeds)
        if pool is not None:
            models[MIL if config.unlabelled_loss == "mil" else POOLED] = fine_tuned(True)
    distractors = pick_distractors(profile, pairs, args.distractors, len(pairs) - len(parts[0][1])) \
        if args.distractors else None
    if distractors and args.unlabelled and args.unlabelled.resolve() == args.distractors.resolve():
        print("note: the model with the pool trained on --distractors' pictures; its unseen column is not unseen",
              file=sys.stderr)
    rows = table(measure(models, parts, args.k, distractors))
    if histories and config.unlabelled_loss == "mil":
        rows.append({"model": MIL, "unlabelled": mil_summary([histories[n] for n in sorted(histories)])})
    elif histories:
        summary = {"model": POOLED, "pseudo-labels": {"assignment": config.unlabelled_assign, "keep": config.unlabelled_keep,
                                                      **pseudo_label_summary([histories[n] for n in sorted(histories)])}}
        rows.append(summary)
    for row in rows:
        print(" | ".join(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}"
                         for key, value in row.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
