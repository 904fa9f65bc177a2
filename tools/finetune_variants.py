"""Compare fine-tuning recipes on held-out training pairs (the test split stays untouched).

    python tools/finetune_variants.py --data ../shared/ttl-dev                  # every variant
    python tools/finetune_variants.py --data DIR triplet infonce-ms --holdout 200  # some of them
    python tools/finetune_variants.py --data DIR --init runs/bt.pt infonce-ms   # from a checkpoint
    python tools/finetune_variants.py --data DIR --init efficientnet_lite2       # another backbone
    python tools/finetune_variants.py --data DIR --both-ways --against infonce-ms-grid4 \
        infonce-ms-grid4 infonce-ms-grid4-unfreeze2                             # one recipe against another

Trains each variant on the saved split's training pairs less the last `--holdout`, picks
its epoch on those held-out pairs and scores it there (both directions; paired-bootstrap
CIs of the gain over zero-shot, or over the variant `--against`). With `--both-ways` each
variant also trains on the pairs less the *first* `--holdout`, and the ranks on both
held-out sets are pooled. Runs are cached under `artifacts/finetune/`, so a second call
prints the table in seconds. Variants: the recipes of `ttl_utils.train.recipes.RECIPES`, by slug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ttl_utils.config import get_profile
from ttl_utils.data.folders import resolve_pairs
from ttl_utils.data.splits import split_pairs
from ttl_utils.evaluate.report import format_rows
from ttl_utils.models.catalog import parse_model
from ttl_utils.train.ablation import compare_variants, inner_splits
from ttl_utils.train.recipes import RECIPES, FinetuneConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", help=f"default: all of {', '.join(RECIPES)}")
    parser.add_argument("--data", default=None, help="dataset folder (default: $TTL_DATA, data/ttl, demo)")
    parser.add_argument("--holdout", type=int, default=200,
                        help="training pairs held out for selection and scoring (default 200)")
    parser.add_argument("--both-ways", action="store_true",
                        help="also hold out the first --holdout pairs (training each variant twice); pool the ranks")
    parser.add_argument("--against", default=None, metavar="VARIANT",
                        help="gains over this variant (one of those compared) instead of over zero-shot")
    parser.add_argument("--epochs", type=int, default=None, help="at most this many (default: the profile's)")
    parser.add_argument("--init", default=None, metavar="SPEC",
                        help="where the variants start: a checkpoint (their names get '@init'; the zero-shot row stays "
                             "the profile's backbone), or a backbone or backbone:weights, of the zero-shot row too "
                             "(default: the profile's backbone, ImageNet weights)")
    parser.add_argument("--backbone", default=None, help=argparse.SUPPRESS)  # the old flag: one line naming --init
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes (default: the profile's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    profile = get_profile()
    try:
        if args.backbone:
            raise ValueError(f"--backbone is now --init BACKBONE (e.g. --init {args.backbone}).")
        names = args.variants or list(RECIPES)
        unknown = [name for name in names if name not in RECIPES]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(RECIPES)}.")
        if args.against and args.against not in names:
            raise ValueError(f"--against {args.against}: not among the compared variants ({', '.join(names)}).")
        spec = parse_model(args.init) if args.init else None
        if spec is not None and spec.checkpoint is None and spec.weights is None:
            raise ValueError(f"--init {spec.text}: fine-tuning starts from pretrained weights; give {spec.backbone} "
                             f"(ImageNet) or {spec.backbone}:WEIGHTS.")
        pairs = resolve_pairs(args.data, profile)
        splits = inner_splits(split_pairs(pairs)["train"], args.holdout, args.both_ways)
        start = {"backbone": spec.backbone, "weights": spec.weights} if spec is not None and spec.backbone else {}
        base = FinetuneConfig.for_profile(profile, epochs=args.epochs, workers=args.workers, **start)
        overrides = {}
        if spec is not None and spec.checkpoint is not None:  # the same variants from a checkpoint
            overrides = {f"{name}@init": {**RECIPES[name].settings, "init": str(spec.checkpoint)} for name in names}
            names = list(overrides)
            args.against = f"{args.against}@init" if args.against else None
        fit, held_out = splits[0]
        ways = " (and again holding out the first ones instead, ranks pooled)" if args.both_ways else ""
        print(f"{pairs.name}: fitting on {len(fit)} training pairs, selecting and scoring on {len(held_out)} held out"
              f"{ways}; {profile.name} profile, {base.backbone}, {base.image_size} px, up to {base.epochs} epochs; "
              f"gains over {args.against or 'zero-shot'}", flush=True)
        rows = compare_variants(base, splits, names, overrides, against=args.against)
    except (ValueError, FileNotFoundError) as err:
        text = str(err)
        print(f"error: {'--init ' + text.removeprefix('MODEL ') if text.startswith('MODEL ') else text}", file=sys.stderr)
        return 2
    print(format_rows(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
