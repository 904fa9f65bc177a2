"""The Barlow Twins two-view augmentation (CPU version)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ttl_utils.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ttl_utils.train.augment import TwoViewTransform


def _pixels(view: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return view * std + mean


def test_two_views_differ_and_have_the_asked_size():
    torch.manual_seed(0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8))
    view_1, view_2 = TwoViewTransform(48)(image)
    assert view_1.shape == view_2.shape == (3, 48, 48) and view_1.dtype == torch.float32
    assert not torch.equal(view_1, view_2)


@pytest.mark.slow
def test_greyscale_and_solarisation_rates_follow_the_paper():
    torch.manual_seed(0)
    transform = TwoViewTransform(16)
    red = Image.new("RGB", (16, 16), (200, 40, 40))      # greyscale views have equal channels
    white = Image.new("RGB", (16, 16), (255, 255, 255))  # solarised views turn dark
    grey, dark = [0, 0], [0, 0]
    n = 250
    for _ in range(n):
        for k, view in enumerate(transform(red)):
            x = _pixels(view)
            grey[k] += bool((x[0] - x[1]).abs().max() < 0.02 and (x[1] - x[2]).abs().max() < 0.02)
        for k, view in enumerate(transform(white)):
            dark[k] += bool(_pixels(view).mean() < 0.45)
    assert all(0.12 < g / n < 0.3 for g in grey)      # p = 0.2 on both views
    assert dark[0] == 0 and 0.1 < dark[1] / n < 0.3    # solarised: never in view 1, p = 0.2 in view 2


def test_hsv_round_trip():
    from ttl_utils.train.augment import _hsv_to_rgb, _rgb_to_hsv

    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_hsv_to_rgb(_rgb_to_hsv(x)), x, atol=1e-5)


def test_batch_augment_shapes_errors_and_reproducibility():
    import pytest

    from ttl_utils.train.augment import BatchTwoViewAugment

    augment = BatchTwoViewAugment(24)
    images = torch.randint(0, 256, (6, 3, 40, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    v1, v2 = augment(images, torch.Generator().manual_seed(1))
    assert v1.shape == v2.shape == (6, 3, 24, 24) and torch.isfinite(v1).all()
    again, _ = augment(images, torch.Generator().manual_seed(1))
    assert torch.equal(v1, again) and not torch.equal(v1, v2)
    with pytest.raises(ValueError, match="uint8"):
        augment(images.float())


def test_batch_augment_matches_the_cpu_rates_and_brightness():
    from ttl_utils.train.augment import BatchTwoViewAugment

    torch.manual_seed(0)
    n = 300
    augment = BatchTwoViewAugment(16)
    red = torch.tensor([200, 40, 40], dtype=torch.uint8).view(1, 3, 1, 1).expand(n, 3, 16, 16).contiguous()
    white = torch.full((n, 3, 16, 16), 255, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    for view in augment(red, g):
        x = _pixels_batch(view)
        grey = ((x[:, 0] - x[:, 1]).abs().amax(dim=(1, 2)) < 0.02) & ((x[:, 1] - x[:, 2]).abs().amax(dim=(1, 2)) < 0.02)
        assert 0.12 < grey.float().mean() < 0.3
    dark = [(_pixels_batch(view).mean(dim=(1, 2, 3)) < 0.45).float().mean() for view in augment(white, g)]
    assert dark[0] == 0 and 0.1 < dark[1] < 0.3
    # the mean colour of the views matches the CPU version's
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    cpu = torch.stack([_pixels(TwoViewTransform(16)(image)[0]).mean(dim=(1, 2)) for _ in range(100)]).mean(0)
    batch = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0).expand(100, 3, 32, 32).contiguous()
    gpu = _pixels_batch(augment.view_1(batch, g)).mean(dim=(0, 2, 3))
    assert torch.allclose(cpu, gpu, atol=0.04)


def _pixels_batch(view: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return view * std + mean
