"""The results that notebooks hand to each other, each found by one name and computed once.

Notebook 06 needs notebook 05's chosen model and notebook 04's Barlow Twins checkpoint, and
trains more seeds of both (`seed_runs`); notebook 07 needs a fine-tuned model too. Each is built here, from the profile's recipe
(`train.recipes`), on the saved split, through the one cache (`cache.cached` for values,
`train.state.cached_training` for training runs). A notebook that runs before the one
that "makes" a result trains it through the same call, so every notebook runs on its own.

>>> model = finetuned(profile, pairs)          # doctest: +SKIP
>>> checkpoint = barlow_twins(profile, pairs)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .cache import cached
from .config import Profile, artifacts_dir
from .data.demo import write_demo_pool
from .data.explore import duplicate_threshold
from .data.folders import write_pairs
from .data.pairs import PairSet
from .data.pool import UnlabelledPool, chosen_pool, load_pool
from .data.splits import split_pairs
from .digests import content_digest, model_fingerprint
from .evaluate.compare import rank_on_subsets
from .evaluate.embeddings import embed, embed_pairs
from .evaluate.metrics import DIRECTIONS, recall_at_k
from .evaluate.report import counted
from .models.backbones import hub_weights_path
from .models.catalog import backbone_label
from .models.checkpoints import checkpoint_extra, load_checkpoint
from .models.embedder import Embedder, build_embedder
from .models.preprocessing import Preprocessing
from .runtime import choose_device, inference_batch
from .train.finetune import FinetuneResult, cached_finetune, finished_finetune, keep_hub_bank
from .train.pair_classifier import evaluate_pair_classifier
from .train.pretrain import cached_pretrain
from .train.recipes import (
    FinetuneConfig,
    PairTrainingConfig,
    PretrainConfig,
    SeedPlan,
    pair_classifier_variants,
    study_recipe,
)

__all__ = ["BARLOW_TWINS", "IMAGENET", "NO_BLUR", "SHORT", "STUDY_WEIGHTS", "SeedRun", "VIEWS", "barlow_twins",
           "barlow_twins_scale", "budget_points", "chosen_if_trained", "finetuned", "finetuning_pool",
           "finetuning_pool_for",           "imagenet_embeddings", "learned_distance", "learned_distance_variants",
           "missing_study_weights", "pool_near_copies", "pretraining_description", "pretraining_images",
           "pretraining_pool", "pseudo_labelled", "rank_seed_runs", "runs_of", "seed_runs", "study_note",
           "study_resnet50", "study_scope", "unlabelled_pool"]

# The study's exact setting: ResNet-50, supervised ImageNet weights vs the official Barlow Twins ones.
STUDY_WEIGHTS = {"supervised": "imagenet", "Barlow Twins": "barlowtwins"}


def imagenet_embeddings(profile: Profile, pairs: PairSet, layers: tuple[str, ...] = ("layer4",)):
    """Return `(left, right)` embeddings of `pairs` by the profile's ImageNet backbone (cached)."""
    embedder = build_embedder(profile.backbone, "imagenet", layers)
    preprocessing = Preprocessing.for_size(profile.image_size)
    device = choose_device()
    return embed_pairs(embedder, preprocessing, pairs, batch_size=inference_batch(profile, device), device=device)


def learned_distance(profile: Profile, pairs: PairSet, config: PairTrainingConfig | None = None) -> dict:
    """Return the learned-distance baseline of notebook 02 (`train.pair_classifier.evaluate_pair_classifier`):
    trained on the frozen embeddings of the saved split's train pairs, ranked on its test pairs."""
    config = config or PairTrainingConfig.for_profile(profile)
    left, right = imagenet_embeddings(profile, pairs)
    parts = {name: pairs.index_of(part.ids) for name, part in split_pairs(pairs).items()}
    embeddings = {name: (left[idx], right[idx]) for name, idx in parts.items()}
    return cached("pair_classifier",
                  lambda: evaluate_pair_classifier(embeddings["train"], embeddings["val"], embeddings["test"], config),
                  profile=profile.name, data=pairs.fingerprint, config=asdict(config))


def learned_distance_variants(profile: Profile, pairs: PairSet, base: PairTrainingConfig,
                              cosine_ranks: np.ndarray) -> tuple[pd.DataFrame, dict[str, PairTrainingConfig]]:
    """Return notebook 02's table of learned-distance heads (`recipes.pair_classifier_variants(base)`,
    each trained once through `learned_distance`) and those heads by label. One row a head, after a
    first row for plain cosine (`cosine_ranks`): test R@1 and R@25, and the last epoch's train and
    val R@25 and losses."""
    variants = pair_classifier_variants(base)
    table = {"cosine (frozen), no training": {"test R@1": recall_at_k(cosine_ranks, 1),
                                              "test R@25": recall_at_k(cosine_ranks, 25)}}
    for name, config in variants.items():
        out = learned_distance(profile, pairs, config)
        ranks, last = out["ranks"].numpy(), out["history"][-1]
        table[name] = {"test R@1": recall_at_k(ranks, 1), "test R@25": recall_at_k(ranks, 25),
                       "train R@25": last["train_R@25"], "val R@25": last["val_R@25"],
                       "train loss": last["train_loss"], "val loss": last["val_loss"]}
    return pd.DataFrame(table).T, variants


def finetuned(profile: Profile, pairs: PairSet, config: FinetuneConfig | None = None) -> FinetuneResult:
    """Return the chosen fine-tuned model (notebook 05's): the profile's recipe, or `config`, trained on
    the saved split's train pairs with its epoch selected on the val pairs. Its checkpoint keeps its
    training pictures' embeddings (`train.finetune.keep_hub_bank`)."""
    split = split_pairs(pairs)
    config = config or FinetuneConfig.for_profile(profile)
    result = cached_finetune(config, split["train"], split["val"])
    keep_hub_bank(result.checkpoint, config, split["train"])  # what find and evaluate correct hubs with
    return result


def chosen_if_trained(profile: Profile, pairs: PairSet) -> Path | None:
    """Return the checkpoint of `finetuned(profile, pairs)` if it was trained already, else None
    (nothing is trained: for commands that would rather fall back than train)."""
    split = split_pairs(pairs)
    return finished_finetune(FinetuneConfig.for_profile(profile), split["train"], split["val"])


def pretraining_images(pairs: PairSet) -> str:
    """Return the folder that holds the images of `pairs` for pretraining (written once, keyed by content)."""
    folder = artifacts_dir() / "pretrain-images" / pairs.fingerprint
    if not (folder / "right").is_dir():
        write_pairs(pairs, folder)
    os.utime(folder)  # used now: `cache --prune` goes by a picture folder's last use
    return str(folder)


def unlabelled_pool(pool: str | Path | None = None) -> UnlabelledPool | None:
    """Return the pool of unlabelled pictures pretraining adds (`data.pool.chosen_pool`: `pool`, else
    `$TTL_UNLABELLED`, else `data/unlabelled`), or None when there is none."""
    folder = chosen_pool(pool)
    return load_pool(folder) if folder is not None else None


def pool_near_copies(profile: Profile, pairs: PairSet, pool: UnlabelledPool, held_ids) -> tuple[np.ndarray, float]:
    """Return `(near, threshold)`: for each of `pool.pictures()`, whether it nearly copies a picture of
    the pairs `held_ids` of `pairs` (a cosine of the profile's ImageNet embeddings at or above notebook
    01's near-duplicate threshold, measured on `pairs`). The pool's embeddings are cached."""
    left, right = imagenet_embeddings(profile, pairs)
    threshold, _ = duplicate_threshold(left, right)
    held = pairs.index_of(list(held_ids))
    if len(held) == 0:
        return np.zeros(len(pool.pictures()), dtype=bool), threshold
    judged = F.normalize(torch.cat([left[held], right[held]]), dim=1)
    embedder, preprocessing = build_embedder(profile.backbone), Preprocessing.for_size(profile.image_size)
    device = choose_device()
    vectors = cached("pool-embeddings", lambda: embed(embedder, pool.pictures(), preprocessing,
                                                      inference_batch(profile, device), device,
                                                      desc="Embedding the unlabelled pool"),
                     pool=pool.fingerprint, model=model_fingerprint(embedder), size=profile.image_size)
    return ((F.normalize(vectors, dim=1) @ judged.T).max(dim=1).values >= threshold).numpy(), threshold


def finetuning_pool(profile: Profile, pairs: PairSet, pool: UnlabelledPool, held_ids) -> tuple[UnlabelledPool, int]:
    """Return `pool` without the pictures that nearly copy a picture of the pairs `held_ids` (those a
    model is chosen or judged on: `pool_near_copies`), and how many were left out."""
    near, _ = pool_near_copies(profile, pairs, pool, held_ids)
    return pool.without([path for path, out in zip(pool.pictures(), near.tolist()) if out]), int(near.sum())


def finetuning_pool_for(profile: Profile, pairs: PairSet, pool: str | Path | None = None
                        ) -> tuple[UnlabelledPool | None, str]:
    """Return the unlabelled pool whose pseudo-pairs notebook 05 fine-tunes with, and a line saying what it is.

    The pool is `data.pool.chosen_pool(pool)` (`pool`, `$TTL_UNLABELLED`, `data/unlabelled`); on the demo
    data without one, a demo pool of other demo pairs with candidate lists (written once under
    `artifacts/demo-pool/`). Its pictures that nearly copy a validation or test picture are left
    out (`finetuning_pool`). None when real pairs have no pool beside them."""
    folder = chosen_pool(pool)
    if folder is None and pairs.layout == "demo":
        n = max(20, profile.demo_pairs // 2)
        folder = write_demo_pool(artifacts_dir() / "demo-pool" / f"{n}-{profile.demo_size}px", n, profile.demo_size)
        os.utime(folder)
    if folder is None:
        return None, "No unlabelled pool (give TTL_UNLABELLED or data/unlabelled/): the pseudo-pair model is not trained."
    whole = load_pool(folder)
    split = split_pairs(pairs)
    chosen, left_out = finetuning_pool(profile, pairs, whole, [*split["val"].ids, *split["test"].ids])
    return chosen, (f"Unlabelled pool {whole.name}: {len(chosen.left)} left and {len(chosen.right)} right pictures, "
                    f"{len(chosen.candidates)} candidate lists; {left_out} pictures left out as near-copies of a "
                    "validation or test picture.")


def pseudo_labelled(profile: Profile, pairs: PairSet, pool: UnlabelledPool,
                    config: FinetuneConfig | None = None) -> FinetuneResult:
    """Return the chosen recipe (or `config`) fine-tuned like `finetuned`, with `pool`'s pseudo-pairs added
    (`finetune(..., pool=)`, cached)."""
    split = split_pairs(pairs)
    return cached_finetune(config or FinetuneConfig.for_profile(profile), split["train"], split["val"], pool=pool)


def pretraining_pool(profile: Profile, pairs: PairSet, pool: UnlabelledPool) -> tuple[str, int]:
    """Return the folder of `pool`'s pictures that pretraining may use, and how many were left out: those
    that nearly copy a validation or test picture of `pairs` (`pool_near_copies`), so that pretraining
    never sees the pictures the models are chosen and judged on. Written once under `artifacts/pretrain-pool/`."""
    split = split_pairs(pairs)
    near, threshold = pool_near_copies(profile, pairs, pool, [*split["val"].ids, *split["test"].ids])
    near = torch.from_numpy(near)
    folder = artifacts_dir() / "pretrain-pool" / content_digest(pool.fingerprint, pairs.fingerprint, threshold)
    if not folder.is_dir():
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for path, left_out in zip(pool.pictures(), near.tolist()):
            if not left_out:
                (staging / path.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, staging / path.parent.name / path.name)
        os.replace(staging, folder)
    os.utime(folder)
    return str(folder), int(near.sum())


def pretraining_description(profile: Profile, pairs: PairSet, pool: UnlabelledPool | None = None) -> str:
    """Return which pictures Barlow Twins pretraining sees, in words: those of the saved split's training
    pairs and, given a `pool`, its pictures but the near-copies of validation or test ones (how many)."""
    where = f"the {2 * len(split_pairs(pairs)['train'])} pictures of the training pairs"
    if pool is None:
        return where
    _, left_out = pretraining_pool(profile, pairs, pool)
    return (f"{where} and {len(pool.pictures()) - left_out} of the unlabelled pool ({left_out} left out as near-copies "
            "of validation or test pictures)")


def barlow_twins(profile: Profile, pairs: PairSet, pool: UnlabelledPool | None = None, seed: int = 0,
                 blur: bool = True, budget: float = 1.0, **changes) -> tuple[PretrainConfig, str]:
    """Return `(config, checkpoint)` of a Barlow Twins pretraining (notebook 04's with the defaults): the
    profile's recipe (with `changes`) on the pictures of the saved split's train pairs and, given a
    `pool`, its pictures but those that copy a validation or test picture (`pretraining_pool`); with
    `seed`, `blur` (False: never blurred views) and `budget` (a share of the recipe's steps)."""
    train = split_pairs(pairs)["train"]
    folders, images = [pretraining_images(train)], train.fingerprint
    if pool is not None:
        folder, _ = pretraining_pool(profile, pairs, pool)
        folders.append(folder)
        images = content_digest(images, Path(folder).name)
    config = PretrainConfig.for_profile(profile, data=tuple(folders), seed=seed, blur=blur, budget=budget, **changes)
    return config, str(cached_pretrain(config, images))


@dataclass(frozen=True)
class SeedRun:
    """One fine-tuned model of notebook 06's comparison: where it `start`ed (`ImageNet`, `Barlow Twins`,
    ...), its pretraining and fine-tuning seeds, how many pictures its pretraining saw (0: none), and
    its checkpoint."""

    start: str
    pretrain_seed: int | None
    seed: int
    pictures_seen: int
    checkpoint: Path


IMAGENET, BARLOW_TWINS = "ImageNet", "Barlow Twins"
NO_BLUR, SHORT = "Barlow Twins, no blur", "Barlow Twins, a third of the steps"


def seed_runs(profile: Profile, pairs: PairSet, pool: UnlabelledPool | None = None, plan: SeedPlan | None = None,
              **pretraining) -> list[SeedRun]:
    """Return notebook 06's fine-tuned models, each trained once (cached): notebook 05's chosen recipe from
    ImageNet and from Barlow Twins (`barlow_twins` on `pool`, with `pretraining` changes), with the
    seeds of `plan` (default: the profile's `SeedPlan`), and from Barlow Twins without blur and with a
    shorter pretraining budget. Every fine-tuning seed of a start shares its cached augmented views."""
    plan = plan or SeedPlan.for_profile(profile)
    base = FinetuneConfig.for_profile(profile)
    starts: list[tuple[str, int | None, tuple[int, ...], dict]] = [(IMAGENET, None, plan.imagenet, {})]
    starts += [(BARLOW_TWINS, p, seeds, {}) for p, seeds in plan.barlow_twins]
    starts += [(NO_BLUR, 0, plan.ablation, {"blur": False}), (SHORT, 0, plan.short, {"budget": plan.short_budget})]
    runs = []
    for start, pretrain_seed, seeds, settings in starts:
        init, seen = None, 0
        if pretrain_seed is not None:
            config, init = barlow_twins(profile, pairs, pool, seed=pretrain_seed, **settings, **pretraining)
            seen = checkpoint_extra(init)["pretrain"]["step"] * config.batch_size
        for seed in seeds:
            result = finetuned(profile, pairs, replace(base, init=init, seed=seed, view_seed=0))
            runs.append(SeedRun(start, pretrain_seed, seed, seen, result.checkpoint))
    return runs


VIEWS = ("left -> right", "right -> left", "generic, left -> right")


def rank_seed_runs(runs: list[SeedRun], test: PairSet, generic: np.ndarray, device: str = "cpu") -> list[dict]:
    """Return one dict a run of `seed_runs`: its name, start, seeds and pictures seen, and its ranks on each of
    `VIEWS` of the `test` pairs (both directions; left -> right among the `generic` pairs' indices
    alone). Each model embeds the test pairs once (cached)."""
    loaded = {_run_name(run): load_checkpoint(run.checkpoint)[:2] for run in runs}
    ranked = rank_on_subsets(loaded, test, {"all": np.arange(len(test)), "generic": np.asarray(generic)}, device=device)
    return [{"name": _run_name(run), "start": run.start, "pretraining seed": run.pretrain_seed, "seed": run.seed,
             "pictures seen": run.pictures_seen, VIEWS[0]: every.ranks[DIRECTIONS[0]],
             VIEWS[1]: every.ranks[DIRECTIONS[1]], VIEWS[2]: among_generic.ranks[DIRECTIONS[0]]}
            for run, every, among_generic in zip(runs, ranked["all"], ranked["generic"])]


def _run_name(run: SeedRun) -> str:
    pretraining = "" if run.pretrain_seed is None else f", pretraining seed {run.pretrain_seed}"
    return f"{run.start}{pretraining}, seed {run.seed}"


def runs_of(rows: list[dict], start: str, pretraining_seed: int | None = None) -> dict[str, list[np.ndarray]]:
    """Return `{view: [ranks, one array a run]}` of the runs of `rank_seed_runs` from `start` (with
    `pretraining_seed`, only those pretrained with it)."""
    chosen = [row for row in rows if row["start"] == start
              and (pretraining_seed is None or row["pretraining seed"] == pretraining_seed)]
    if not chosen:
        raise ValueError(f"No run starts from {start!r} (pretraining seed {pretraining_seed}); "
                         f"starts: {sorted({row['start'] for row in rows})}.")
    return {view: [row[view] for row in chosen] for view in VIEWS}


def budget_points(rows: list[dict], starts: dict[str, str], view: str = VIEWS[0], k: int = 1) -> dict:
    """Return the budget curve's points, `{label: (pictures seen, [R@k of each run])}`, for each
    `{label: start}` of `rank_seed_runs`' rows (the pictures seen are the runs' mean)."""
    points = {}
    for label, start in starts.items():
        chosen = [row for row in rows if row["start"] == start]
        points[label] = (float(np.mean([row["pictures seen"] for row in chosen])),
                         [recall_at_k(row[view], k) for row in chosen])
    return points


def missing_study_weights() -> list[Path]:
    """Return the ResNet-50 weight files of the study's setting that torch.hub's cache lacks."""
    return [path for path in (hub_weights_path("resnet50", w) for w in STUDY_WEIGHTS.values()) if not path.is_file()]


def study_resnet50(profile: Profile, pairs: PairSet) -> dict[str, tuple[Embedder, Preprocessing]]:
    """Return the study's exact rows: ResNet-50 with supervised and with Barlow Twins ImageNet weights,
    each zero-shot and fine-tuned by `recipes.study_recipe`. Needs both files in torch.hub's cache
    (`missing_study_weights`); never downloads them."""
    missing = missing_study_weights()
    if missing:
        raise FileNotFoundError(f"ResNet-50 weights not in torch.hub's cache: {', '.join(map(str, missing))}.")
    models = {}
    for label, weights in STUDY_WEIGHTS.items():
        config = study_recipe(profile, "resnet50", weights)
        models[f"ResNet-50 {label}, zero-shot"] = (build_embedder("resnet50", weights),
                                                   Preprocessing.for_size(config.image_size))
        models[f"ResNet-50 {label}, fine-tuned"] = (finetuned(profile, pairs, config).embedder,
                                                    Preprocessing.for_size(config.image_size))
    return models


def barlow_twins_scale(profile: Profile, pairs: PairSet, pool: UnlabelledPool | None = None) -> str:
    """Return the scale of notebook 04's pretraining in a few words (backbone, epochs, size, how many
    pictures), for sentences that must carry their scope."""
    config, _ = barlow_twins(profile, pairs, pool)
    pictures = 2 * len(split_pairs(pairs)["train"])
    if pool is not None:
        pictures += len(pool.pictures()) - pretraining_pool(profile, pairs, pool)[1]
    return (f"{backbone_label(config.backbone)} continued from ImageNet for {counted(config.epochs, 'epoch')} at "
            f"{config.image_size} px on {pictures:,} pictures")


def study_scope(profile: Profile, pairs: PairSet, pool: UnlabelledPool | None = None,
                plan: SeedPlan | None = None) -> str:
    """Return what notebook 06's comparison tested (backbone, pretraining pictures, epochs, seeds) and what
    it did not (the study's ResNet-50 with the official weights, and how to run it), in one sentence.
    Reads notebook 04's pretraining from the cache (trains it if missing)."""
    plan = plan or SeedPlan.for_profile(profile)
    config, _ = barlow_twins(profile, pairs, pool)
    where = pretraining_description(profile, pairs, pool)
    tested = (f"Tested here: {backbone_label(config.backbone)} from ImageNet weights, continued with Barlow Twins for "
              f"{counted(config.epochs, 'epoch')} at {config.image_size} px on {where}, with "
              f"{counted(len(plan.barlow_twins), 'pretraining seed')}, then "
              f"fine-tuned by notebook 05's chosen recipe ({len(plan.imagenet)} seeds from ImageNet, "
              f"{sum(len(seeds) for _, seeds in plan.barlow_twins)} from Barlow Twins)")
    if missing_study_weights():
        return (f"{tested}; not tested: the study's ResNet-50 with the official Barlow Twins weights against the "
                "supervised ones (their files are not here; online, `python -m ttl_utils download --resnet50-weights` "
                "fetches them and this notebook then adds their rows).")
    return f"{tested}; the study's ResNet-50 rows (official Barlow Twins weights against supervised) are in the table."


def study_note() -> str | None:
    """Return why the study's ResNet-50 rows cannot run here (their weight files are not in torch.hub's
    cache, and what to run to fetch them), or None when they can."""
    missing = missing_study_weights()
    if not missing:
        return None
    return (f"ResNet-50 rows skipped: {', '.join(p.name for p in missing)} not in torch.hub's cache "
            f"({missing[0].parent}); fetch them with `python -m ttl_utils download --resnet50-weights`.")
