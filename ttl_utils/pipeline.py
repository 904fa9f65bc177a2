"""The results that notebooks hand to each other, each found by one name and computed once.

Notebook 06 needs notebook 05's chosen model and notebook 04's Barlow Twins checkpoint;
notebook 07 needs a fine-tuned model too. Each is built here, from the profile's recipe
(`train.recipes`), on the saved split, through the one cache (`cache.cached` for values,
`train.state.cached_training` for training runs). A notebook that runs before the one
that "makes" a result trains it through the same call, so every notebook runs on its own.

>>> model = finetuned(profile, pairs)          # doctest: +SKIP
>>> checkpoint = barlow_twins(profile, pairs)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import cached
from .config import Profile, artifacts_dir
from .data.folders import write_pairs
from .data.pairs import PairSet
from .data.splits import split_pairs
from .evaluate.embeddings import embed_pairs
from .evaluate.metrics import recall_at_k
from .models.backbones import hub_weights_path
from .models.checkpoints import load_checkpoint
from .models.embedder import Embedder, build_embedder
from .models.preprocessing import Preprocessing
from .runtime import choose_device, inference_batch
from .train.finetune import FinetuneResult, cached_finetune, finished_finetune
from .train.pair_classifier import evaluate_pair_classifier
from .train.pretrain import cached_pretrain
from .train.recipes import FinetuneConfig, PairTrainingConfig, PretrainConfig, pair_classifier_variants, study_recipe

__all__ = ["STUDY_WEIGHTS", "ComparisonRows", "barlow_twins", "barlow_twins_finetuned", "chosen_if_trained",
           "comparison_models", "finetuned", "imagenet_embeddings", "learned_distance", "learned_distance_variants",
           "missing_study_weights", "pretraining_images", "study_resnet50"]

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
    the saved split's train pairs with its epoch selected on the val pairs."""
    split = split_pairs(pairs)
    return cached_finetune(config or FinetuneConfig.for_profile(profile), split["train"], split["val"])


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
    return str(folder)


def barlow_twins(profile: Profile, pairs: PairSet, **changes) -> tuple[PretrainConfig, str]:
    """Return `(config, checkpoint)` of the Barlow Twins pretraining of notebook 04: the profile's recipe
    (with `changes`) on the images of the saved split's train pairs."""
    train = split_pairs(pairs)["train"]
    config = PretrainConfig.for_profile(profile, data=pretraining_images(train), **changes)
    return config, str(cached_pretrain(config, train.fingerprint))



def barlow_twins_finetuned(profile: Profile, pairs: PairSet, config: FinetuneConfig | None = None) -> FinetuneResult:
    """Return notebook 04's Barlow Twins checkpoint fine-tuned like notebook 05's chosen model (or by
    `config`): the classifier-pretrained model's recipe with `init` set to the pretrained one."""
    _, checkpoint = barlow_twins(profile, pairs)
    return finetuned(profile, pairs, replace(config or FinetuneConfig.for_profile(profile), init=checkpoint))


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


@dataclass
class ComparisonRows:
    """Notebook 06's models (`{name: (embedder, preprocessing)}`), the head-to-head matches of a
    classifier start against a Barlow Twins start, and a note on rows that could not run."""

    models: dict[str, tuple[Embedder, Preprocessing]]
    matches: list[tuple[str, str]]
    note: str | None


def comparison_models(profile: Profile, pairs: PairSet) -> ComparisonRows:
    """Return notebook 06's rows: the classifier backbone zero-shot; ImageNet and Barlow Twins starts
    fine-tuned by notebook 05's chosen recipe and by the study's (where it differs); and the study's
    ResNet-50 rows when both weight files are in torch.hub's cache (else a note says what to fetch)."""
    chosen, study = FinetuneConfig.for_profile(profile), study_recipe(profile)
    recipes = {"fine-tuned": chosen} | ({"study recipe": study} if study != chosen else {})
    models = {"ImageNet, zero-shot": (build_embedder(profile.backbone), Preprocessing.for_size(profile.image_size))}
    matches = []
    for label, config in recipes.items():
        models[f"ImageNet + {label}"] = load_checkpoint(finetuned(profile, pairs, config).checkpoint)[:2]
        models[f"Barlow Twins + {label}"] = load_checkpoint(barlow_twins_finetuned(profile, pairs, config).checkpoint)[:2]
        matches.append((f"ImageNet + {label}", f"Barlow Twins + {label}"))
    missing = missing_study_weights()
    if missing:
        return ComparisonRows(models, matches, f"ResNet-50 rows skipped: {', '.join(p.name for p in missing)} not in "
                                               f"torch.hub's cache ({missing[0].parent}); fetch them with "
                                               "`python -m ttl_utils download --resnet50-weights`.")
    models |= study_resnet50(profile, pairs)
    matches += [(f"ResNet-50 supervised, {kind}", f"ResNet-50 Barlow Twins, {kind}") for kind in ("zero-shot", "fine-tuned")]
    return ComparisonRows(models, matches, None)
