"""The inference engine: ONNX Runtime computes what torch computes, exported once per weights."""

from __future__ import annotations

import logging

import pytest
import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.models import engine as ENGINE
from ttl_utils.models.backbones import build_backbone
from ttl_utils.models.catalog import BACKBONES, LAYERS
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.engine import engine_name, frozen_maps, onnx_path
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.train.recipes import FinetuneConfig
from ttl_utils.train.trunk import trunk_runner


def _torch_maps(backbone, layers, x, start="layer1"):
    with torch.no_grad():
        return backbone(x, layers, start)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_s_maps_match_torch(name):
    torch.manual_seed(0)
    backbone = build_backbone(name, None)  # random weights: the graph is what is checked
    demo = make_demo_pairs(3, 64, seed=1)
    x = torch.stack([Preprocessing.for_size(64)(demo.left_image(i)) for i in range(3)])  # demo pictures
    maps = frozen_maps(backbone, LAYERS)(x)
    expected = _torch_maps(backbone, LAYERS, x)
    for layer in LAYERS:
        assert maps[layer].shape == expected[layer].shape
        scale = expected[layer].abs().max().item() + 1e-6
        assert (maps[layer] - expected[layer]).abs().max().item() <= 1e-4 * max(1.0, scale), layer
    assert onnx_path(backbone, LAYERS, "layer1", (3, 64, 64)).is_file()


@pytest.mark.slow
def test_embeddings_of_real_pictures_match_the_torch_path_within_1e4(monkeypatch):
    pairs = make_demo_pairs(12, 64, seed=2)
    embedder = build_embedder("efficientnet_lite0", "imagenet", ("layer3", "layer4"), grid=2)
    prep = Preprocessing.for_size(64)
    assert engine_name() == "onnxruntime"
    fast = embed(embedder, pairs.left, prep, batch_size=5, num_workers=0)
    monkeypatch.setenv("TTL_ENGINE", "torch")
    assert engine_name() == "torch"
    slow = embed(embedder, pairs.left, prep, batch_size=5, num_workers=0)
    assert fast.shape == slow.shape == (12, 4 * (112 + 1280))
    assert (fast - slow).abs().max().item() < 1e-4



@pytest.fixture(autouse=True)
def _own_exports(own_engine):
    """These tests count, compare and damage exports: each gets its own engine folder."""
    return own_engine

def test_an_export_is_made_once_per_weights_and_stages(monkeypatch):
    calls = []
    real = ENGINE._export
    monkeypatch.setattr(ENGINE, "_export", lambda *a: calls.append(a[1]) or real(*a))
    backbone = build_backbone("resnet18", None)
    x = torch.randn(2, 3, 32, 32)
    frozen_maps(backbone, ("layer2",))(x)
    frozen_maps(backbone, ("layer2",))(torch.randn(5, 3, 32, 32))  # another batch size: the same export
    assert len(calls) == 1
    with torch.no_grad():
        backbone.net.layer4[0].conv1.weight.add_(1.0)  # a stage the export does not hold: still the same
    frozen_maps(backbone, ("layer2",))(x)
    assert len(calls) == 1
    with torch.no_grad():
        backbone.net.layer1[0].conv1.weight.add_(1.0)  # a fine-tuned stage it holds: its own export
    out = frozen_maps(backbone, ("layer2",))(x)["layer2"]
    assert len(calls) == 2 and calls[0] != calls[1]
    assert torch.allclose(out, _torch_maps(backbone, ("layer2",), x)["layer2"], rtol=1e-4, atol=1e-3)


def test_a_failed_export_falls_back_to_torch_with_one_warning(monkeypatch, caplog):
    tries = []

    def broken(*args, **kwargs):
        tries.append(1)
        raise RuntimeError("unsupported operator\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    backbone = build_backbone("resnet18", None)
    x = torch.randn(2, 3, 32, 32)
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        first = frozen_maps(backbone, ("layer3",))(x)["layer3"]
        frozen_maps(backbone, ("layer3",))(x)
    warnings = [r.message for r in caplog.records if "ONNX export" in r.message]
    assert len(warnings) == 1 and "failed (unsupported operator): running it in torch, channels-last" in warnings[0]
    assert len(tries) == 1  # a failed export is not traced again in this process
    assert torch.allclose(first, _torch_maps(backbone, ("layer3",), x)["layer3"], atol=1e-5)
    assert not list(onnx_path(backbone, ("layer3",), "layer1", (3, 32, 32)).parent.glob("*.onnx"))


@pytest.mark.slow
def test_the_trunk_through_the_engine_matches_torch_and_leaves_training_modes_alone():
    embedder = build_embedder("efficientnet_lite0", "imagenet", ("layer3", "layer4"))
    config = FinetuneConfig(out="", backbone="efficientnet_lite0", unfreeze=1, image_size=32)
    embedder.backbone.train()  # as during fine-tuning with fresh views every step
    x = torch.randn(4, 3, 32, 32)
    out = trunk_runner(embedder, config)(x)
    assert all(m.training for m in embedder.backbone.modules())
    embedder.eval()
    with torch.no_grad():
        expected = embedder.backbone(x, ("layer3",))["layer3"]  # unfreeze 1: layer4 trains
    assert torch.allclose(out, expected, atol=1e-4)
    pooled = trunk_runner(embedder, FinetuneConfig(out="", backbone="efficientnet_lite0", unfreeze=0, image_size=32))(x)
    with torch.no_grad():
        assert torch.allclose(pooled, embedder.pooled_features(x), atol=1e-5)
