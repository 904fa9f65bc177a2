"""The settings of every trainer and of the saliency study, what each profile makes of them, and
the one registry of fine-tuning recipes.

One place builds a recipe for a profile: `FinetuneConfig.for_profile(profile, ...)`,
`PretrainConfig.for_profile(profile, data=..., ...)`, `PairTrainingConfig.for_profile(...)`
and `SaliencySettings.for_profile(...)`. The command line, the tools and the notebooks call
them and pass only what a user asked for; an override of `None` means "not asked".

Every fine-tuning recipe tried has one entry in `RECIPES`: a slug (what tools, docs and tests
name it by), a label (what notebook 05's tables call it) and its settings. `CHOSEN` is the
default, whose settings are `FinetuneConfig`'s own defaults.

>>> from ttl_utils.config import get_profile
>>> FinetuneConfig.for_profile(get_profile("smoke"), device="cpu").views
1
>>> PretrainConfig.for_profile(get_profile("cpu"), data="images", device="cpu").image_size
96
>>> RECIPES[CHOSEN].label
'InfoNCE, layer3 + layer4, 4 x 4 cells (chosen)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from ..config import Profile
from ..models.catalog import BACKBONES, LAYERS
from ..runtime import choose_device, training_batch

__all__ = ["ASSIGNMENTS", "CHOSEN", "LOSSES", "MINERS", "NOTEBOOK_05", "RECIPES", "UNLABELLED_LOSSES", "FinetuneConfig",
           "PairTrainingConfig",
           "PretrainConfig", "Recipe", "SaliencySettings", "SeedPlan", "default_projector", "pair_classifier_variants", "recipes",
           "study_recipe"]

LOSSES = ("triplet", "infonce")
MINERS = ("all", "semihard", "hard")  # in-batch triplet mining (`losses.mine_triplets`)
ASSIGNMENTS = ("greedy", "optimal")  # pseudo-pairs from candidate lists (`candidates.assign_one_to_one`)
UNLABELLED_LOSSES = ("pseudo", "mil")  # how candidate lists teach: pseudo-pairs, or MIL-NCE over the whole list

# What each profile changes beyond its sizes (`config.PROFILES`): small and fast for smoke runs,
# the paper's optimiser for the gpu profile, and the laptop scale of Barlow Twins for cpu.
_FINETUNE = {"smoke": {"views": 1, "select_k": 5, "workers": 0}, "cpu": {}, "gpu": {}}
_PRETRAIN = {
    "smoke": {"epochs": 1, "max_steps": 3, "batch_size": 16, "image_size": 64, "projector": (128, 128),
              "log_every": 1},
    "cpu": {"epochs": 1, "warmup_epochs": 0.1, "batch_size": 32, "image_size": 96},
    "gpu": {"optimizer": "lars", "augment": "gpu"},
}
# The study's own fine-tuning: a projection (linear head) on the pooled last stage, triplet loss.
# ResNet-50 on a CPU trains the head alone on two cached views (its trunk's maps would not fit).
_STUDY = {"loss": "triplet", "layers": ("layer4",), "grid": 0, "head": "linear"}
_STUDY_RESNET50 = {"smoke": {"unfreeze": 0}, "cpu": {"unfreeze": 0, "views": 2}, "gpu": {}}
_PAIR_TRAINING = {"smoke": {"epochs": 3}, "cpu": {}, "gpu": {}}
_SEEDS = {"smoke": {"imagenet": (0, 1), "barlow_twins": ((0, (0, 1)), (1, (0,))), "ablation": (0,), "short": (0,)},
          "cpu": {}, "gpu": {}}
_SALIENCY = {"smoke": {"n_faithfulness": 2, "ig_steps": 16}, "cpu": {}, "gpu": {"method": "integrated_gradients"}}


def _merge(cls, base: dict, by_profile: dict, profile: Profile, overrides: dict):
    """Return `cls(**settings)`: the dataclass defaults < `base` < the profile's entry < the overrides given."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no settings {unknown}.")
    settings = {**base, **by_profile.get(profile.name, {}),
                **{k: v for k, v in overrides.items() if v is not None}}
    return cls(**settings)


def default_projector(backbone: str) -> tuple[int, ...]:
    """Return the projector sizes: the paper's 8192-8192-8192 for ResNet-50, 1024-1024-1024 for smaller backbones."""
    return (8192, 8192, 8192) if backbone == "resnet50" else (1024, 1024, 1024)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of `finetune.finetune`; the command line's flags have the same names."""

    out: str
    backbone: str = "efficientnet_lite0"
    init: str | None = None                # a checkpoint of this project (Barlow Twins, ...) instead of ImageNet
    weights: str = "imagenet"              # the backbone's pretrained weights without init: imagenet | barlowtwins
    unfreeze: int = 1                      # how many of the last backbone stages train (0-4)
    layers: tuple[str, ...] = ("layer3", "layer4")  # stages pooled (each L2-normalised, concatenated) under the head
    grid: int = 4                          # pool into grid x grid cells, the head on each (0: global pooling)
    head: str = "linear"                   # none | linear | mlp
    identity_init: bool = True             # start a linear head as the identity (the zero-shot model)
    out_dim: int | None = None             # head output size (default: the feature size)
    loss: str = "infonce"                  # infonce | triplet (held-out pairs favour InfoNCE: see ablation.py)
    miner: str = "semihard"                # all | semihard | hard (batch-hard), for the triplet loss
    margin: float = 0.2
    temperature: float = 0.05
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                       # the head's
    backbone_lr: float = 1e-4              # the unfrozen stages'
    weight_decay: float = 1e-4
    image_size: int = 224
    views: int = 4                         # cached augmented views per training image; 0: augment every step
    min_scale: float = 0.5                 # smallest crop, as a fraction of the image
    select_k: int = 20                     # early stopping watches validation R@select_k
    patience: int = 3
    seed: int = 0                          # the batches' order, the views each step draws, a random head's start
    view_seed: int | None = None           # the cached augmented views' (None: `seed`); seeds sharing it share the trunk
    device: str = "cpu"
    workers: int | None = None
    cache: bool = True                     # keep the trunk's outputs under artifacts/finetune-inputs/
    unlabelled_keep: float = 0.25          # with an unlabelled pool: the share of pseudo-pairs kept (by margin)
    unlabelled_refresh: int = 2            # ... re-assigned by the current model every this many epochs
    unlabelled_assign: str = "greedy"      # ... one to one, greedily or optimally (`candidates.ASSIGNMENTS`)
    unlabelled_loss: str = "pseudo"        # pseudo-pairs, or "mil": MIL-NCE of each left picture over its candidates

    def __post_init__(self) -> None:
        if not 0 <= self.unfreeze <= len(LAYERS):
            raise ValueError(f"unfreeze must be between 0 and {len(LAYERS)} stages, got {self.unfreeze}.")
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}.")
        if self.miner not in MINERS:
            raise ValueError(f"Unknown miner {self.miner!r}; choose one of: {', '.join(MINERS)}.")
        object.__setattr__(self, "layers", tuple(self.layers))  # a list from JSON or a saved state reads the same
        if self.view_seed == self.seed:  # the same run as without it: one cache key
            object.__setattr__(self, "view_seed", None)
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ValueError(f"layers must name stages among {', '.join(LAYERS)}; got {list(self.layers)}.")
        if 0 < self.unfreeze < len(LAYERS):
            cut = LAYERS[len(LAYERS) - 1 - self.unfreeze]  # the frozen trunk's last stage: its map is cached
            early = [layer for layer in self.layers if LAYERS.index(layer) < LAYERS.index(cut)]
            if early:
                raise ValueError(f"With unfreeze {self.unfreeze} the cached trunk ends at {cut}: layers {early} come "
                                 f"before it; unfreeze more stages or drop them.")
        if self.backbone not in BACKBONES:
            raise ValueError(f"Unknown backbone {self.backbone!r}; choose one of: {', '.join(BACKBONES)}.")
        if self.weights not in BACKBONES[self.backbone].weights:
            raise ValueError(f"{self.backbone} has no {self.weights!r} weights; choose one of: "
                             f"{', '.join(BACKBONES[self.backbone].weights)}.")
        if not 0 <= self.grid <= 7:
            raise ValueError(f"grid must be between 0 (global pooling) and 7 cells a side, got {self.grid}.")
        if self.unfreeze == 0 and self.head == "none":
            raise ValueError("With a frozen backbone (unfreeze 0) there is nothing to train: choose head linear or mlp.")
        if not 0 < self.unlabelled_keep <= 1 or self.unlabelled_refresh < 1:
            raise ValueError(f"Need 0 < unlabelled_keep <= 1 and unlabelled_refresh >= 1; got {self.unlabelled_keep} "
                             f"and {self.unlabelled_refresh}.")
        if self.unlabelled_assign not in ASSIGNMENTS:
            raise ValueError(f"Unknown unlabelled_assign {self.unlabelled_assign!r}; choose one of: {', '.join(ASSIGNMENTS)}.")
        if self.unlabelled_loss not in UNLABELLED_LOSSES:
            raise ValueError(f"Unknown unlabelled_loss {self.unlabelled_loss!r}; choose one of: "
                             f"{', '.join(UNLABELLED_LOSSES)}.")
        if self.epochs < 1 or self.batch_size < 2 or self.views < 0:
            raise ValueError(f"Need epochs >= 1, batch_size >= 2 and views >= 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.views}.")

    @classmethod
    def for_profile(cls, profile: Profile, **overrides) -> FinetuneConfig:
        """Return the profile's fine-tuning recipe with `overrides` (those not None) applied.

        The profile gives the backbone, image size and epochs; the batch is the profile's on
        a GPU and at most 64 pairs on a CPU.
        """
        device = choose_device(overrides.pop("device", None))
        base = {"out": "", "backbone": profile.backbone, "image_size": profile.image_size, "epochs": profile.epochs,
                "batch_size": training_batch(profile, device), "device": device}
        return _merge(cls, base, _FINETUNE, profile, overrides)

    @property
    def start(self) -> str | None:
        """The first trainable stage (None when only the head trains)."""
        return LAYERS[len(LAYERS) - self.unfreeze] if self.unfreeze else None

    @property
    def views_seed(self) -> int:
        """The seed the cached augmented views are drawn with: `view_seed`, else `seed`."""
        return self.seed if self.view_seed is None else self.view_seed

    @property
    def cached(self) -> bool:
        """Whether the trunk's outputs are computed once (else every step, on fresh views)."""
        return self.views > 0 and self.unfreeze < len(LAYERS)


def study_recipe(profile: Profile, backbone: str | None = None, weights: str | None = None,
                 **overrides) -> FinetuneConfig:
    """Return the study's fine-tuning recipe (projection layer on the pooled last stage, triplet loss)
    for `backbone` with `weights` (default: the profile's, ImageNet); ResNet-50 gets the profile's
    smaller version of it (`_STUDY_RESNET50`: on a CPU only the head trains, on two views)."""
    backbone = backbone or profile.backbone
    sized = _STUDY_RESNET50.get(profile.name, {}) if backbone == "resnet50" else {}
    return FinetuneConfig.for_profile(profile, backbone=backbone, weights=weights,
                                      **{**_STUDY, **sized, **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of `pretrain.pretrain`; the command line's flags have the same names."""

    data: tuple[str, ...]                  # picture folders (one, or several: pairs' pictures and a pool beside them)
    out: str
    backbone: str = "resnet18"
    init: str = "imagenet"                 # the backbone's weights (imagenet, barlowtwins, none) or a checkpoint
    epochs: int = 10
    budget: float = 1.0                    # the share of epochs x steps an epoch to train (the schedule fits it)
    blur: bool = True                      # blur the views as the paper does (False: the ablation of notebook 06)
    batch_size: int = 64
    image_size: int = 128
    projector: tuple[int, ...] = (1024, 1024, 1024)
    lambd: float = 0.0051
    optimizer: str = "adamw"               # adamw (small runs) | lars (the paper's)
    lr: float = 1e-3                       # AdamW's; LARS uses the paper's rates scaled by batch / 256
    weight_decay: float = 1e-6
    warmup_epochs: float = 1               # the learning rate's linear warm-up (a share of an epoch allowed)
    augment: str = "cpu"                   # cpu: in data-loader workers | gpu: batched on the device
    workers: int = 2
    device: str = "cpu"
    compile: bool = False
    sync_batchnorm: bool = False
    max_steps: int | None = None           # stop early (smoke runs)
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "projector", tuple(self.projector))  # a list from a saved state reads the same
        object.__setattr__(self, "data", (self.data,) if isinstance(self.data, str) else tuple(self.data))
        if not 0 < self.budget <= 1:
            raise ValueError(f"budget is a share of the recipe's steps, in (0, 1]; got {self.budget}.")
        if self.optimizer not in ("adamw", "lars"):
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; choose adamw or lars.")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"Need epochs >= 1 and batch_size >= 2; got {self.epochs} and {self.batch_size}.")

    @property
    def views(self):
        """The two views' augmentations: the paper's, or without blur (`blur=False`)."""
        from .augment import BARLOW_TWINS_VIEWS, NO_BLUR_VIEWS

        return BARLOW_TWINS_VIEWS if self.blur else NO_BLUR_VIEWS

    @classmethod
    def for_profile(cls, profile: Profile, **overrides) -> PretrainConfig:
        """Return the profile's Barlow Twins recipe with `overrides` (those not None) applied.

        cpu: continue from ImageNet for 1 epoch at 96 px with AdamW, warmed up over its first tenth
        (a laptop's scale: about 170 steps of 32 over the training pairs' pictures and an
        unlabelled pool beside them);
        gpu: the profile's epochs, batch and size with LARS, the views augmented in batches on the device
        (`augment="gpu"`; bfloat16 autocast there); smoke: three steps.
        """
        backbone = overrides.get("backbone") or profile.backbone
        base = {"data": (), "out": "", "backbone": backbone, "epochs": profile.epochs, "batch_size": profile.batch_size,
                "image_size": profile.image_size, "projector": default_projector(backbone), "lr": 1e-4,
                "workers": profile.num_workers, "log_every": 5, "device": choose_device(overrides.pop("device", None))}
        return _merge(cls, base, _PRETRAIN, profile, overrides)


@dataclass(frozen=True)
class PairTrainingConfig:
    """Settings of `pair_classifier.fit_pair_classifier` (the learned-distance baseline)."""

    features: str = "absdiff_prod"
    hidden: int = 256
    dropout: float = 0.1
    negatives: int = 4
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    eval_ks: tuple[int, ...] = field(default=(1, 10, 25))
    probe_size: int = 200  # pairs ranked among themselves each epoch to track recall

    @classmethod
    def for_profile(cls, profile: Profile, **overrides) -> PairTrainingConfig:
        """Return the profile's baseline recipe (3 epochs in smoke runs, 30 otherwise) with `overrides`."""
        return _merge(cls, {}, _PAIR_TRAINING, profile, overrides)


@dataclass(frozen=True)
class SeedPlan:
    """Which runs notebook 06's pre-registered comparison trains: fine-tuning seeds of the ImageNet start,
    `(pretraining seed, fine-tuning seeds)` of the Barlow Twins start, the seeds of its ablation (no blur)
    and of its shorter budget (`short_budget` of the pretraining steps)."""

    imagenet: tuple[int, ...] = (0, 1, 2)
    barlow_twins: tuple[tuple[int, tuple[int, ...]], ...] = ((0, (0, 1, 2)), (1, (0,)))
    ablation: tuple[int, ...] = (0, 1)
    short: tuple[int, ...] = (0, 1)
    short_budget: float = 1 / 3

    @classmethod
    def for_profile(cls, profile: Profile, **overrides) -> SeedPlan:
        """Return the profile's plan (fewer runs in smoke runs) with `overrides` applied."""
        return _merge(cls, {}, _SEEDS, profile, overrides)


@dataclass(frozen=True)
class SaliencySettings:
    """How notebook 03 explains a similarity: the reference image, IG's steps, pairs in the faithfulness table."""

    baseline: str = "blur"                 # reference image of IG, GradientSHAP and Occlusion: blur | grey | black
    ig_steps: int = 32                     # integration steps of IG (more: smaller delta, slower)
    n_faithfulness: int = 4                # test pairs in the faithfulness table
    method: str = "gradcam"                # what `find --explain` and notebook 07 overlay (gpu: integrated_gradients)

    @classmethod
    def for_profile(cls, profile: Profile, **overrides) -> SaliencySettings:
        """Return the profile's saliency settings with `overrides` (those not None) applied."""
        return _merge(cls, {}, _SALIENCY, profile, overrides)


@dataclass(frozen=True)
class Recipe:
    """A fine-tuning recipe: its `slug` (how tools and docs name it), its `label` (how notebook 05's
    tables name it) and its `settings`, which replace those of a base `FinetuneConfig`."""

    slug: str
    label: str
    settings: dict

    def config(self, base: FinetuneConfig) -> FinetuneConfig:
        """Return `base` with this recipe's settings (the rest, e.g. the backbone or epochs, kept)."""
        return replace(base, **self.settings)


_L4, _MS = ("layer4",), ("layer3", "layer4")
_SLOW = {"epochs": 8}  # an epoch of these costs 2-4 times more; early stopping ends them within 8 epochs anyway


def _recipe(slug: str, label: str, **settings) -> Recipe:
    """Each recipe sets the loss, the pooled layers, the grid and the unfrozen stages; the others
    (a linear head, 4 cached views, 224 px, batch 64) are the base's unless it names them."""
    return Recipe(slug, label, {"grid": 0, "unfreeze": 1, **settings})


RECIPES: dict[str, Recipe] = {r.slug: r for r in (
    # InfoNCE on layer3 + layer4 pooled into 4 x 4 cells, the last stage training: the default recipe
    _recipe("infonce-ms-grid4", "InfoNCE, layer3 + layer4, 4 x 4 cells (chosen)", loss="infonce", layers=_MS, grid=4),
    _recipe("infonce-ms-grid4-unfreeze2", "two stages training (layer3, layer4)", loss="infonce", layers=_MS, grid=4,
            unfreeze=2),
    _recipe("infonce-ms-grid4-frozen", "frozen backbone, linear head", loss="infonce", layers=_MS, grid=4, unfreeze=0),
    _recipe("infonce-grid4", "layer4 features only", loss="infonce", layers=_L4, grid=4),
    _recipe("infonce-ms-grid4-no-head", "last stage, no head", loss="infonce", layers=_MS, grid=4, head="none"),
    _recipe("infonce-ms-grid2", "2 x 2 cells", loss="infonce", layers=_MS, grid=2),
    _recipe("infonce-ms-grid3", "3 x 3 cells", loss="infonce", layers=_MS, grid=3),
    _recipe("infonce-ms-grid5", "5 x 5 cells", loss="infonce", layers=_MS, grid=5),
    _recipe("infonce-ms-grid4-t0.1", "temperature 0.1", loss="infonce", layers=_MS, grid=4, temperature=0.1),
    _recipe("infonce-ms-grid4-288px", "288 px", loss="infonce", layers=_MS, grid=4, image_size=288, **_SLOW),
    # InfoNCE on globally pooled layer3 + layer4: the default before the grid
    _recipe("infonce-ms", "global pooling (no grid)", loss="infonce", layers=_MS),
    _recipe("infonce-ms-frozen", "global pooling, frozen backbone", loss="infonce", layers=_MS, unfreeze=0),
    _recipe("infonce-ms-unfreeze2", "global pooling, two stages training", loss="infonce", layers=_MS, unfreeze=2),
    _recipe("infonce-ms234-unfreeze2", "layer2 + layer3 + layer4, two stages training", loss="infonce",
            layers=("layer2", "layer3", "layer4"), unfreeze=2),
    _recipe("infonce-ms-batch128", "global pooling, batch 128", loss="infonce", layers=_MS, batch_size=128),
    _recipe("infonce-ms-t0.1", "global pooling, temperature 0.1", loss="infonce", layers=_MS, temperature=0.1),
    # InfoNCE on layer4 alone
    _recipe("infonce", "InfoNCE, layer4", loss="infonce", layers=_L4),
    _recipe("infonce-t0.1", "InfoNCE, layer4, temperature 0.1", loss="infonce", layers=_L4, temperature=0.1),
    _recipe("infonce-batch128", "InfoNCE, layer4, batch 128", loss="infonce", layers=_L4, batch_size=128),
    _recipe("infonce-unfreeze2", "InfoNCE, layer4, two stages training", loss="infonce", layers=_L4, unfreeze=2),
    _recipe("infonce-fresh-views", "InfoNCE, layer4, new views every step", loss="infonce", layers=_L4, views=0,
            **_SLOW),
    _recipe("infonce-288px", "InfoNCE, layer4, 288 px", loss="infonce", layers=_L4, image_size=288, **_SLOW),
    # the triplet loss (semi-hard mining unless named)
    _recipe("triplet", "triplet, semi-hard (layer4)", loss="triplet", layers=_L4),
    _recipe("triplet-frozen", "triplet, frozen backbone (layer4)", loss="triplet", layers=_L4, unfreeze=0),
    _recipe("triplet-unfreeze2", "triplet, two stages training (layer4)", loss="triplet", layers=_L4, unfreeze=2),
    _recipe("triplet-no-head", "triplet, no head (layer4)", loss="triplet", layers=_L4, head="none"),
    _recipe("triplet-all", "triplet, all violating (layer4)", loss="triplet", layers=_L4, miner="all"),
    _recipe("triplet-hard", "triplet, batch-hard (layer4)", loss="triplet", layers=_L4, miner="hard"),
    _recipe("triplet-ms", "triplet, layer3 + layer4", loss="triplet", layers=_MS),
    _recipe("triplet-all-ms", "triplet, all violating, layer3 + layer4", loss="triplet", layers=_MS, miner="all"),
)}

CHOSEN = "infonce-ms-grid4"
# what notebook 05 trains: the chosen recipe and three neighbours, each changing one thing (the pooling,
# the trained stages, the loss). Five more (two stages training, layer4 alone, no head, the triplet
# loss's other two miners) were trimmed from it to make room for notebook 06's seeds: they cost 15 of
# `make figures`' minutes; docs/finetuning_recipes.md logs them, and `finetune` trains any of them.
NOTEBOOK_05 = ("infonce-ms-grid4", "infonce-ms", "infonce-ms-grid4-frozen", "triplet")


def recipes(slugs: Sequence[str], base: FinetuneConfig) -> dict[str, FinetuneConfig]:
    """Return `{slug: config}`: each recipe of `slugs` applied to `base`; unknown slugs raise `ValueError`."""
    unknown = [slug for slug in slugs if slug not in RECIPES]
    if unknown:
        raise ValueError(f"Unknown recipes {unknown}; choose from {', '.join(RECIPES)}.")
    return {slug: RECIPES[slug].config(base) for slug in slugs}


def pair_classifier_variants(base: PairTrainingConfig) -> dict[str, PairTrainingConfig]:
    """Return notebook 02's learned-distance heads by label: `base` (an MLP on [|a-b|, a*b] with its
    negatives) and five changes of it (fewer or more negatives, other pair features, no hidden layer)."""
    return {
        f"MLP on [|a-b|, a*b], {base.negatives} negatives": base,
        "... 1 negative": replace(base, negatives=1),
        "... 16 negatives": replace(base, negatives=16),
        "MLP on |a-b|": replace(base, features="absdiff"),
        "MLP on [a, b, |a-b|, a*b]": replace(base, features="concat"),
        "linear on [|a-b|, a*b]": replace(base, hidden=0),
    }
