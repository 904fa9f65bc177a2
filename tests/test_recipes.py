"""Profiles own their recipes: one place builds the settings of every trainer for a profile."""

from __future__ import annotations

import dataclasses

import pytest

from ttl_utils.config import PROFILES, get_profile
from ttl_utils.train.recipes import FinetuneConfig, PairTrainingConfig, PretrainConfig, SaliencySettings


def test_finetune_recipe_follows_the_profile_and_caps_the_cpu_batch():
    smoke = FinetuneConfig.for_profile(get_profile("smoke"), device="cpu")
    assert (smoke.views, smoke.select_k, smoke.workers, smoke.image_size, smoke.epochs) == (1, 5, 0, 64, 1)
    gpu_on_cpu = FinetuneConfig.for_profile(get_profile("gpu"), device="cpu")
    assert gpu_on_cpu.batch_size == 64 and gpu_on_cpu.backbone == "resnet50" and gpu_on_cpu.views == 4


def test_overrides_apply_only_when_given():
    profile = get_profile("cpu")
    config = FinetuneConfig.for_profile(profile, device="cpu", epochs=None, views=2, init=None, unfreeze=0)
    assert config.epochs == profile.epochs and config.views == 2 and config.unfreeze == 0 and config.init is None


def test_an_unknown_setting_or_an_unavailable_gpu_is_refused(monkeypatch):
    with pytest.raises(TypeError, match=r"FinetuneConfig has no settings \['epoch'\]"):
        FinetuneConfig.for_profile(get_profile("cpu"), device="cpu", epoch=3)
    monkeypatch.setattr("ttl_utils.runtime.cuda_available", lambda: False)
    with pytest.raises(ValueError, match="--device cuda was asked for, but CUDA is not available"):
        FinetuneConfig.for_profile(get_profile("cpu"), device="cuda")
    assert FinetuneConfig.for_profile(get_profile("cpu")).device == "cpu"


def test_pretrain_recipe_per_profile():
    cpu = PretrainConfig.for_profile(get_profile("cpu"), data="x", device="cpu")
    assert (cpu.epochs, cpu.batch_size, cpu.image_size, cpu.optimizer, cpu.lr) == (1, 32, 96, "adamw", 1e-4)
    assert (cpu.budget, cpu.blur, cpu.data) == (1.0, True, ("x",))
    smoke = PretrainConfig.for_profile(get_profile("smoke"), data="x", device="cpu")
    assert (smoke.max_steps, smoke.projector, smoke.workers) == (3, (128, 128), 0)
    gpu = PretrainConfig.for_profile(get_profile("gpu"), data="x", device="cpu")
    assert (gpu.optimizer, gpu.projector, gpu.batch_size) == ("lars", (8192, 8192, 8192), 256)
    small = PretrainConfig.for_profile(get_profile("gpu"), data="x", device="cpu", backbone="resnet18")
    assert small.projector == (1024, 1024, 1024)  # the projector follows the backbone asked for
    with pytest.raises(ValueError, match="Unknown optimizer 'sgd'"):
        PretrainConfig.for_profile(get_profile("cpu"), data="x", device="cpu", optimizer="sgd")


def test_baseline_and_saliency_settings_per_profile():
    assert PairTrainingConfig.for_profile(get_profile("smoke")).epochs == 3
    assert PairTrainingConfig.for_profile(get_profile("cpu"), negatives=16).negatives == 16
    assert SaliencySettings.for_profile(get_profile("smoke")) == SaliencySettings("blur", 16, 2)
    assert SaliencySettings.for_profile(get_profile("gpu"), ig_steps=None, baseline="grey") == SaliencySettings(
        "grey", 32, 4, "integrated_gradients")  # find --explain: IG where a GPU pays for it, Grad-CAM elsewhere
    assert SaliencySettings.for_profile(get_profile("cpu")).method == "gradcam"


def test_profiles_keep_no_unread_fields():
    assert not hasattr(PROFILES["cpu"], "max_steps")


def test_one_registry_names_every_recipe_and_the_chosen_one_is_the_default():
    from ttl_utils.train.recipes import CHOSEN, NOTEBOOK_05, RECIPES, recipes

    base = FinetuneConfig.for_profile(get_profile("cpu"), device="cpu")
    assert RECIPES[CHOSEN].config(base) == base  # FinetuneConfig's defaults are the chosen recipe
    variants = recipes(NOTEBOOK_05, base)
    assert len(variants) == 4 and next(iter(variants)) == CHOSEN
    assert variants["infonce-ms-grid4-frozen"].unfreeze == 0 and variants["infonce-ms-grid4-frozen"].grid == 4
    assert variants["triplet"].miner == "semihard" and variants["triplet"].grid == 0
    assert recipes(["infonce-ms-grid4-unfreeze2"], base)["infonce-ms-grid4-unfreeze2"].unfreeze == 2  # trimmed, still named
    # each of notebook 05's recipes changes one thing from the chosen one (the triplet rows: the loss and its features)
    changed = {slug: {k for k, v in config.__dict__.items() if v != getattr(base, k)} for slug, config in variants.items()}
    assert changed["infonce-ms"] == {"grid"} and changed["infonce-ms-grid4-frozen"] == {"unfreeze"}
    assert changed[CHOSEN] == set() and len({RECIPES[s].label for s in RECIPES}) == len(RECIPES)
    with pytest.raises(ValueError, match="Unknown recipes \\['nope'\\]"):
        recipes(["nope"], base)


def test_fine_tuning_seeds_can_share_their_cached_views():
    base = FinetuneConfig.for_profile(get_profile("cpu"), device="cpu")
    assert dataclasses.replace(base, view_seed=0) == base and base.views_seed == 0  # the same run: one cache key
    other = dataclasses.replace(base, seed=2, view_seed=0)
    assert other.view_seed == 0 and other.views_seed == 0 and other != dataclasses.replace(base, seed=2)
    assert dataclasses.replace(base, seed=2).views_seed == 2


def test_the_seed_plan_of_each_profile():
    from ttl_utils.train.recipes import SeedPlan

    cpu, smoke = SeedPlan.for_profile(get_profile("cpu")), SeedPlan.for_profile(get_profile("smoke"))
    assert len(cpu.imagenet) >= 3 and sum(len(seeds) for _, seeds in cpu.barlow_twins) >= 3
    assert len(cpu.barlow_twins) >= 2 and cpu.short_budget == pytest.approx(1 / 3)  # two pretraining seeds
    assert len(smoke.imagenet) < len(cpu.imagenet)
    assert SeedPlan.for_profile(get_profile("cpu"), ablation=(5,)).ablation == (5,)
