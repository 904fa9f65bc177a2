"""Triplet fine-tuning: settings, the cached trunk, a short run that learns, resume, the command line."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import write_csv_layout, write_official

from ttl_utils.cli import main
from ttl_utils.config import get_profile
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.splits import split_pairs
from ttl_utils.evaluate.embeddings import embed_pairs
from ttl_utils.models.checkpoints import load_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.storage import load_torch
from ttl_utils.train.finetune import build_model, cached_finetune, finetune
from ttl_utils.train.recipes import FinetuneConfig
from ttl_utils.train.state import state_path
from ttl_utils.train.trunk import top_forward, trunk_inputs


@pytest.fixture(scope="module")
def demo():
    return split_pairs(make_demo_pairs(100, 48, seed=11), val=0.3, test=0.1, save=False)  # 60 / 30 / 10


def config(out, **kwargs):
    settings = dict(out=str(out), image_size=48, batch_size=16, epochs=2, views=2, workers=0, patience=5)
    return FinetuneConfig(**{**settings, **kwargs})


@pytest.mark.parametrize("settings, message", [
    ({"unfreeze": 5}, "unfreeze must be between 0 and 4"),
    ({"miner": "random"}, "Unknown miner"),
    ({"loss": "arcface"}, "Unknown loss"),
    ({"unfreeze": 0, "head": "none"}, "nothing to train"),
    ({"epochs": 0}, "Need epochs >= 1"),
    ({"layers": ("layer9",)}, "layers must name stages among layer1"),
    ({"layers": ()}, "layers must name stages"),
    ({"unfreeze": 1, "layers": ("layer2", "layer4")}, r"cached trunk ends at layer3: layers \['layer2'\] come before"),
])
def test_bad_settings_are_refused(settings, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        config(tmp_path / "ft.pt", **settings)


@pytest.mark.slow
def test_the_model_starts_as_the_zero_shot_embedder():
    x = torch.randn(2, 3, 64, 64)
    for layers, grid in ((("layer4",), 0), (("layer3", "layer4"), 0), (("layer3", "layer4"), 4)):
        model = build_model(FinetuneConfig(out="x.pt", unfreeze=1, head="linear", layers=layers, grid=grid))
        zero_shot = build_embedder("efficientnet_lite0", layers=layers, grid=grid)
        assert torch.allclose(model(x), zero_shot(x), atol=1e-5)
    default = FinetuneConfig(out="x.pt")
    assert (default.layers, default.grid, default.loss) == (("layer3", "layer4"), 4, "infonce")
    assert build_model(FinetuneConfig(out="x.pt", head="mlp", out_dim=32)).dim == 16 * 32


@pytest.mark.parametrize("unfreeze, layers, grid", [(0, ("layer4",), 0), (1, ("layer4",), 0), (2, ("layer4",), 0),
                                                   (1, ("layer3", "layer4"), 0), (0, ("layer2", "layer4"), 0),
                                                   (1, ("layer3", "layer4"), 2), (0, ("layer3", "layer4"), 2)])
@pytest.mark.slow
def test_cached_trunk_outputs_give_the_full_model_embeddings(unfreeze, layers, grid, demo):
    # the (0, layer2 + layer4) case comes after the layer3 and layer2 maps are cached: the pooled layer2
    # features cannot be derived from the layer3 maps, so the layer2 maps (or the images) are used
    cfg = config("x.pt", unfreeze=unfreeze, layers=layers, grid=grid)
    model = build_model(cfg)
    inputs = trunk_inputs(model, demo["val"], cfg, augmented=True)
    n_val = len(demo["val"])
    first = inputs["left"].shape
    assert first[:2] == (n_val, 3)  # clean view and 2 augmented views
    assert (len(first) == 3 + bool(grid)) == (unfreeze == 0)  # vectors for a frozen backbone, maps otherwise
    assert model.feature_dim == sum(model.backbone.info.stage_dims[layer] for layer in layers)
    if unfreeze == 0:  # the pooled features (of each cell)
        assert first[2:] == ((grid ** 2, model.feature_dim) if grid else (model.feature_dim,))
    with torch.no_grad():
        from_cache = top_forward(model, inputs["left"][:, 0].float(), cfg)
    direct, _ = embed_pairs(model, model_preprocessing(cfg), demo["val"], num_workers=0, cache=False)
    assert torch.allclose(from_cache, direct, atol=2e-2)  # the cache is float16
    # augmented views differ from the clean one and from each other
    assert not torch.allclose(inputs["left"][:, 1], inputs["left"][:, 0])
    assert not torch.allclose(inputs["left"][:, 1], inputs["left"][:, 2])
    # computed once: the second call reads the cache
    again = trunk_inputs(model, demo["val"], cfg, augmented=True)
    assert torch.equal(again["right"], inputs["right"])


def model_preprocessing(cfg):
    from ttl_utils.models.preprocessing import Preprocessing
    return Preprocessing.for_size(cfg.image_size)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["triplet", "infonce"])
def test_a_short_run_raises_validation_recall_and_keeps_frozen_stages(loss, demo, tmp_path):
    cfg = config(tmp_path / "ft.pt", unfreeze=1, epochs=4, loss=loss, miner="semihard", lr=3e-3, backbone_lr=1e-3,
                 select_k=5)
    result = finetune(cfg, demo["train"], demo["val"])
    first, best = result.history[0], result.best
    assert first["epoch"] == 0 and first["train_loss"] is None
    assert best["val_r5"] > first["val_r5"] and best["val_mrr"] > first["val_mrr"]
    # the best epoch by R@5, ties broken by MRR, the earliest of equals
    h = result.history
    assert result.best_epoch == max(range(1, 5), key=lambda e: (h[e]["val_r5"], h[e]["val_mrr"], -e))
    embedder, pre, extra = load_checkpoint(result.checkpoint)
    assert pre.crop == 48 and extra["finetune"]["epoch"] == result.best_epoch
    start = build_embedder("efficientnet_lite0")
    trained, original = embedder.state_dict(), start.state_dict()
    assert torch.equal(trained["backbone.net._conv_stem.weight"], original["backbone.net._conv_stem.weight"])
    assert torch.equal(trained["backbone.net._blocks.10._project_conv.weight"],
                       original["backbone.net._blocks.10._project_conv.weight"])
    assert not torch.equal(trained["backbone.net._conv_head.weight"], original["backbone.net._conv_head.weight"])
    assert trained["head.weight"].shape == (112 + 1280, 112 + 1280)  # the default layers: layer3 and layer4
    assert not torch.equal(trained["head.weight"], torch.eye(112 + 1280))


@pytest.mark.parametrize("settings", [{"unfreeze": 0, "loss": "infonce"},
                                      {"unfreeze": 1, "loss": "triplet", "miner": "hard"}])
@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(settings, demo, tmp_path):
    small = {"image_size": 32, **settings}
    straight = finetune(config(tmp_path / "a.pt", epochs=2, **small), demo["train"], demo["val"])
    finetune(config(tmp_path / "b.pt", epochs=1, **small), demo["train"], demo["val"])
    resumed = finetune(config(tmp_path / "b.pt", epochs=2, **small), demo["train"], demo["val"], resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    a = torch.load(state_path(tmp_path / "a.pt"), weights_only=True)["state_dict"]
    b = torch.load(state_path(tmp_path / "b.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_without_a_state_or_with_other_settings_says_so(demo, tmp_path):
    with pytest.raises(FileNotFoundError, match="no training state"):
        finetune(config(tmp_path / "none.pt"), demo["train"], demo["val"], resume=True)
    finetune(config(tmp_path / "a.pt", image_size=32, unfreeze=0, epochs=1), demo["train"], None)
    with pytest.raises(ValueError, match="trained with other settings miner='semihard' \\(now 'hard'\\)"):
        finetune(config(tmp_path / "a.pt", image_size=32, unfreeze=0, epochs=2, miner="hard"), demo["train"], None,
                 resume=True)


@pytest.mark.slow
def test_multi_stage_features_train_and_load_back(demo, tmp_path):
    cfg = config(tmp_path / "ms.pt", unfreeze=1, layers=("layer3", "layer4"), grid=0, epochs=1)
    model = build_model(cfg)
    x = torch.randn(2, 3, 48, 48)
    assert torch.allclose(model(x), build_embedder("efficientnet_lite0", layers=("layer3", "layer4"))(x), atol=1e-5)
    result = finetune(cfg, demo["train"], None)
    embedder, _, extra = load_checkpoint(result.checkpoint)
    assert embedder.layers == ("layer3", "layer4") and embedder.dim == 112 + 1280
    assert extra["finetune"]["config"]["layers"] == ("layer3", "layer4")
    with torch.no_grad():
        assert torch.allclose(embedder(x), result.embedder(x), atol=1e-6)


@pytest.mark.slow
def test_a_grid_model_starts_as_the_zero_shot_grid_trains_and_loads_back(demo, tmp_path):
    cfg = config(tmp_path / "grid.pt", unfreeze=1, grid=2, epochs=1, lr=3e-3, backbone_lr=1e-3)
    model = build_model(cfg)
    x = torch.randn(2, 3, 48, 48)
    zero_shot = build_embedder("efficientnet_lite0", layers=("layer3", "layer4"), grid=2)
    assert torch.allclose(model(x), zero_shot(x), atol=1e-5)
    result = finetune(cfg, demo["train"], None)
    embedder, _, extra = load_checkpoint(result.checkpoint)
    assert embedder.grid == 2 and embedder.dim == 4 * (112 + 1280) and extra["finetune"]["config"]["grid"] == 2
    with torch.no_grad():
        assert torch.allclose(embedder(x), result.embedder(x), atol=1e-6)
        assert not torch.allclose(embedder(x), zero_shot(x), atol=1e-4)


@pytest.mark.slow
def test_training_on_fresh_views_without_a_cache(demo, tmp_path):
    cfg = config(tmp_path / "online.pt", unfreeze=1, views=0, epochs=1)
    result = finetune(cfg, demo["train"], None)
    assert result.best_epoch == 1 and len(result.history) == 2 and result.history[1]["train_loss"] > 0
    assert load_checkpoint(result.checkpoint)[2]["finetune"]["config"]["views"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("train_layout, eval_layout", [("official", "csv"), ("csv", "official")])
def test_train_on_one_dataset_and_evaluate_on_another(train_layout, eval_layout, tmp_path, capsys):
    writers = {"official": write_official, "csv": write_csv_layout}
    a = writers[train_layout](tmp_path / "a", n=8)
    b = writers[eval_layout](tmp_path / "b", n=6)
    ckpt = tmp_path / "ft.pt"
    assert main(["-q", "finetune", "--data", str(a), "--split", "all", "--out", str(ckpt), "--epochs", "1",
                 "--image-size", "32", "--batch-size", "4", "--views", "1", "--workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Best epoch 1" in out and f"Wrote {ckpt}" in out
    assert main(["-q", "evaluate", "--data", str(b), "--split", "all", "--model", str(ckpt),
                 "--workers", "0", "--device", "cpu"]) == 0
    report = capsys.readouterr().out
    assert "R@1" in report and "6 queries among 6 candidates" in report and "(imagenet+finetune)" in report


@pytest.mark.slow
def test_finetune_command_passes_layers_and_explains_bad_ones(tmp_path, capsys):
    a = write_official(tmp_path / "a", n=8)
    code = main(["finetune", "--data", str(a), "--split", "all", "--out", str(tmp_path / "ft.pt"),
                 "--layers", "layer1,layer4", "--unfreeze", "2"])
    assert code == 2 and "cached trunk ends at layer2: layers ['layer1'] come before it" in capsys.readouterr().err
    ckpt = tmp_path / "ms.pt"
    assert main(["-q", "finetune", "--data", str(a), "--split", "all", "--out", str(ckpt), "--epochs", "1",
                 "--layers", "layer2,layer4", "--unfreeze", "0", "--image-size", "32", "--batch-size", "4",
                 "--views", "1", "--workers", "0", "--device", "cpu"]) == 0
    assert load_checkpoint(ckpt)[0].layers == ("layer2", "layer4")


def test_finetune_command_rejects_a_missing_init_and_the_old_flags(tmp_path, capsys):
    code = main(["finetune", "--data", str(write_official(tmp_path / "a")), "--init", str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "ft.pt")])
    assert code == 2 and f"--init {tmp_path / 'missing.pt'}: no such checkpoint file" in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path / "ft.pt"), "--backbone", "resnet18"]) == 2
    assert "error: --backbone is now --init BACKBONE" in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path / "ft.pt"), "--init", "resnet18:none"]) == 2
    assert "fine-tuning starts from pretrained weights" in capsys.readouterr().err


def test_the_command_s_defaults_are_the_recipe_s():
    from ttl_utils.cli import build_parser

    args = build_parser().parse_args(["finetune", "--out", "x.pt"])
    flags = ("unfreeze", "grid", "layers", "loss", "head", "temperature")
    assert all(getattr(args, flag) is None for flag in flags)  # not asked: the profile's recipe decides
    recipe = FinetuneConfig.for_profile(get_profile("cpu"), out="x.pt", device="cpu")
    chosen = (1, 4, ("layer3", "layer4"), "infonce", "linear", 0.05)  # the held-out choice (README, ablation)
    assert (recipe.unfreeze, recipe.grid, recipe.layers, recipe.loss, recipe.head, recipe.temperature) == chosen


@pytest.mark.slow
def test_a_finished_cached_run_keeps_its_history_not_its_optimiser(demo, monkeypatch):
    import ttl_utils.train.finetune as module

    cfg = config("", image_size=32, unfreeze=1, epochs=2, grid=0, layers=("layer4",))
    first = cached_finetune(cfg, demo["train"], demo["val"])
    state = load_torch(state_path(first.checkpoint))
    assert state["finished"] and "optimizer" not in state and "state_dict" not in state
    assert [h["epoch"] for h in state["history"]] == [0, 1, 2] and state["best_epoch"] == first.best_epoch

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cached run must not train again")

    monkeypatch.setattr(module, "finetune", no_training)
    again = cached_finetune(cfg, demo["train"], demo["val"])
    assert again.checkpoint == first.checkpoint and again.history == first.history
    monkeypatch.undo()
    with pytest.raises(ValueError, match="keeps only the summary of a finished cached run"):
        finetune(replace(cfg, out=str(first.checkpoint), epochs=3), demo["train"], demo["val"], resume=True)


@pytest.mark.slow
def test_a_trunk_cache_too_large_for_the_machine_is_refused_with_advice(demo, monkeypatch, caplog):
    import ttl_utils.train.trunk as module

    cfg = config("x.pt", image_size=32, unfreeze=1, views=2, cache=False)
    embedder = build_model(cfg)
    monkeypatch.setattr(module, "physical_memory", lambda: 10**4)  # 10 kB of memory
    with pytest.raises(ValueError, match=r"Frozen trunk, left images would take .* GB, more than 60% of .*--views"):
        trunk_inputs(embedder, demo["train"], cfg, augmented=True)
    monkeypatch.setattr(module, "physical_memory", lambda: None)  # unknown: no check
    with caplog.at_level("INFO", logger="ttl_utils.train.trunk"):
        inputs = trunk_inputs(embedder, demo["train"], cfg, augmented=True)
    assert inputs["left"].shape[:2] == (60, 3) and inputs["left"].dtype == torch.float16
    assert "Frozen trunk, left images: 180 x 112 x 2 x 2 float16 values" in caplog.text
    monkeypatch.undo()
    assert module.physical_memory() is None or module.physical_memory() > 2**28


@pytest.mark.parametrize("n_labelled, n_pseudo, batch_size", [(10, 0, 4), (3, 0, 4), (8, 5, 4), (64, 0, 64)])
def test_the_epoch_bar_s_total_is_the_number_of_batches_an_epoch_yields(n_labelled, n_pseudo, batch_size):
    from ttl_utils.train.finetune import _cached_batches, batches_per_epoch

    config = replace(FinetuneConfig.for_profile(get_profile("smoke")), batch_size=batch_size)
    inputs = {side: torch.zeros(n_labelled, 2, 3) for side in ("left", "right")}  # pairs x views x features
    pool = {side: torch.zeros(6, 2, 3) for side in ("left", "right")}
    pseudo = (pool, torch.arange(n_pseudo) % 6, torch.arange(n_pseudo) % 6) if n_pseudo else None
    yielded = sum(1 for _ in _cached_batches(inputs, config, epoch=0, pseudo=pseudo))
    assert batches_per_epoch(n_labelled + n_pseudo, batch_size) == yielded == max(1, (n_labelled + n_pseudo) // batch_size)


def test_finetune_says_when_it_keeps_the_untrained_starting_point():
    from ttl_utils.commands import best_epoch_report

    kept = best_epoch_report(0, {"epoch": 0, "val_r5": 0.25, "val_mrr": 0.1}, 3)
    assert kept.splitlines()[0] == "Best epoch 0: val_r5 0.250, val_mrr 0.100"
    assert "none of the 3 training epochs beat the starting point" in kept.splitlines()[1]
    assert "--split all trains on every pair and keeps the last epoch (then evaluate it on another dataset)" in kept
    assert "\n" not in best_epoch_report(0, {"epoch": 0}, 0)  # nothing trained yet: nothing to explain
    assert "\n" not in best_epoch_report(1, {"val_r5": 0.3}, 3)
