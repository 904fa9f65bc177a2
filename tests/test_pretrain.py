"""Barlow Twins pretraining: a short run, exact resume, the NaN guard, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ttl_utils.cli import main
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import write_pairs
from ttl_utils.models.checkpoints import load_checkpoint
from ttl_utils.train.pretrain import BarlowTwins, ImageFolderImages, build_projector, pretrain
from ttl_utils.train.recipes import PretrainConfig


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_pairs(make_demo_pairs(8, 40, seed=5), tmp_path_factory.mktemp("bt") / "demo")


def config(images, out, **kwargs):
    settings = dict(data=str(images), out=str(out), backbone="resnet18", init="none", epochs=2, batch_size=8,
                    image_size=32, projector=(64, 64), workers=0, log_every=1, lr=1e-3)
    return PretrainConfig(**{**settings, **kwargs})


def test_projector_and_model():
    projector = build_projector(16, (32, 8))
    assert [type(m).__name__ for m in projector] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert projector[-1].bias is None
    from ttl_utils.models.embedder import build_embedder
    model = BarlowTwins(build_embedder("resnet18", None), (32, 16))
    loss = model(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))
    assert loss.ndim == 0 and loss.item() > 0


def test_image_folder_finds_every_image_recursively(images):
    data = ImageFolderImages(images, 24)
    assert len(data) == 16  # left/ and right/, pairing ignored
    view_1, view_2 = data[0]
    assert view_1.shape == (3, 24, 24)
    raw = ImageFolderImages(images, 24, two_views=False)[0]
    assert raw.dtype == torch.uint8 and raw.shape == (3, 27, 27)


@pytest.mark.slow
def test_a_short_run_writes_a_checkpoint_evaluate_can_read_and_a_log(images, tmp_path):
    out = pretrain(config(images, tmp_path / "bt.pt"))
    embedder, pre, extra = load_checkpoint(out)
    assert embedder.backbone.name == "resnet18" and pre.crop == 32
    assert extra["pretrain"]["epoch"] == 2 and extra["pretrain"]["step"] == 4
    lines = [json.loads(line) for line in (tmp_path / "bt.pt.log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert all(set(line) == {"step", "epoch", "loss", "lr", "images_per_s"} for line in lines)


@pytest.mark.slow
def test_resume_continues_exactly(images, tmp_path):
    straight = pretrain(config(images, tmp_path / "straight.pt", epochs=2))
    pretrain(config(images, tmp_path / "resumed.pt", epochs=1))
    resumed = pretrain(config(images, tmp_path / "resumed.pt", epochs=2), resume=True)
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["extra"]["pretrain"]["step"] == b["extra"]["pretrain"]["step"] == 4


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(images, tmp_path, monkeypatch):
    out = tmp_path / "bt.pt"
    pretrain(config(images, out, epochs=1))
    before = out.read_bytes()
    monkeypatch.setattr(BarlowTwins, "forward", lambda self, a, b: self.features(a).sum() * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan at step 2"):
        pretrain(config(images, out, epochs=2), resume=True)
    assert out.read_bytes() == before


@pytest.mark.slow
def test_cli_pretrain_and_resume_errors(images, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    assert main(["-q", "pretrain", "--data", str(images), "--out", str(out), "--init", "resnet18:none",
                 "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--projector", "32-32", "--workers", "0",
                 "--max-steps", "1", "--device", "cpu"]) == 0
    assert out.is_file()
    assert main(["-q", "pretrain", "--data", str(images), "--out", str(tmp_path / "none.pt"), "--resume",
                 "--device", "cpu"]) == 1
    assert "no training state at" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(images), "--out", str(out), "--init", "none"]) == 2
    assert "--init none is now --init BACKBONE:none" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(images), "--out", str(out), "--backbone", "resnet18"]) == 2
    assert "--backbone is now --init BACKBONE" in capsys.readouterr().err


@pytest.mark.slow
def test_batched_augmentation_path_runs(images, tmp_path):
    out = pretrain(config(images, tmp_path / "gpu-aug.pt", epochs=1, augment="gpu", max_steps=1))
    assert load_checkpoint(out)[2]["pretrain"]["step"] == 1


def test_projector_defaults_follow_the_backbone():
    from ttl_utils.cli import build_parser
    from ttl_utils.train.recipes import default_projector

    assert default_projector("resnet50") == (8192, 8192, 8192)
    assert default_projector("efficientnet_lite0") == (1024, 1024, 1024)
    args = build_parser().parse_args(["pretrain", "--data", "d", "--out", "o", "--projector", "64-32"])
    assert args.projector == (64, 32)


def test_decode_batch_matches_the_cpu_loader(tmp_path):
    """The bytes path (`--augment gpu` on a GPU: nvJPEG there, the same code on CPU tensors here)
    gives the images the CPU loader gives: JPEG colour and greyscale, PNG, and a CMYK JPEG."""
    from PIL import Image

    from ttl_utils.train.pretrain import decode_batch

    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).resize((120, 80))
    folder = tmp_path / "mixed"
    folder.mkdir()
    base.save(folder / "a.jpg", quality=95)
    base.convert("L").save(folder / "b.jpg", quality=95)
    base.save(folder / "c.png")
    base.convert("CMYK").save(folder / "d.jpg", quality=95)
    raw = ImageFolderImages(folder, 32, raw_bytes=True)
    plain = ImageFolderImages(folder, 32, two_views=False)
    assert [p.name for p in raw.paths] == ["a.jpg", "b.jpg", "c.png", "d.jpg"]
    assert raw[0].dtype == torch.uint8 and raw[0].ndim == 1  # the file's bytes
    decoded = decode_batch([raw[i] for i in range(4)], raw.size, "cpu")
    expected = torch.stack([plain[i] for i in range(4)])
    assert decoded.shape == expected.shape == (4, 3, 36, 36) and decoded.dtype == torch.uint8
    difference = (decoded.float() - expected.float()).abs().mean(dim=(1, 2, 3))
    assert difference.max() < 6, difference  # decoders and resamplers differ by a few grey levels
    # the channels of the greyscale JPEG are equal: it was expanded to RGB
    assert torch.equal(decoded[1, 0], decoded[1, 2])


@pytest.mark.slow
def test_pretraining_writes_the_shared_training_state_and_a_cached_run_is_found(images, isolated_project, monkeypatch):
    import ttl_utils.train.pretrain as module
    from ttl_utils.storage import load_torch
    from ttl_utils.train.state import STATE_FORMAT, state_path

    cfg = config(images, "", epochs=1)
    first = module.cached_pretrain(cfg, "demo-images")
    state = load_torch(state_path(first))
    assert state["format"] == STATE_FORMAT and state["finished"] and state["step"] == 2
    assert "optimizer" not in state and "projector" in load_checkpoint(first)[2]["pretrain"]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cached run must not train again")

    monkeypatch.setattr(module, "pretrain", no_training)
    assert module.cached_pretrain(cfg, "demo-images") == first


def test_correlation_stats_of_the_identity_and_a_full_matrix():
    from ttl_utils.train.pretrain import correlation_stats

    assert correlation_stats(torch.eye(3)) == {"diagonal": 1.0, "off_diagonal": 0.0}
    stats = correlation_stats(torch.full((2, 2), 0.5))
    assert stats["diagonal"] == 0.5 and stats["off_diagonal"] == pytest.approx(0.25)  # the mean over every entry


def test_budget_and_blur_are_settings_of_the_recipe(images):
    from ttl_utils.train.augment import BARLOW_TWINS_VIEWS, NO_BLUR_VIEWS

    assert config(images, "x").views == BARLOW_TWINS_VIEWS and config(images, "x", blur=False).views == NO_BLUR_VIEWS
    assert [view.blur_p for view in NO_BLUR_VIEWS] == [0, 0] and BARLOW_TWINS_VIEWS[0].blur_p == 1.0
    assert [view.solarize_p for view in NO_BLUR_VIEWS] == [view.solarize_p for view in BARLOW_TWINS_VIEWS]
    assert config(images, "x").data == (str(images),)  # one folder or several: always a tuple
    for budget in (0, 1.5):
        with pytest.raises(ValueError, match=f"budget is a share of the recipe's steps, in \\(0, 1\\]; got {budget}"):
            config(images, "x", budget=budget)


@pytest.mark.slow
def test_a_shorter_budget_fits_the_schedule_to_fewer_steps(images, tmp_path):
    out = pretrain(config(images, tmp_path / "bt.pt", epochs=2, budget=0.5))  # 16 images of 8: 4 steps, half of them
    extra = load_checkpoint(out)[2]["pretrain"]
    assert extra["step"] == 2 and [line["step"] for line in extra["history"]] == [1, 2]
    assert extra["history"][-1]["lr"] < extra["history"][0]["lr"] or len(extra["history"]) == 2
