"""Augmentations for training: the Barlow Twins views (on the CPU, or batched on a GPU) and
fine-tuning's gentle views of a TTL picture.

>>> view_1, view_2 = TwoViewTransform(64)(Image.new("RGB", (80, 80)))
>>> view_1.shape
torch.Size([3, 64, 64])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["BARLOW_TWINS_VIEWS", "BatchTwoViewAugment", "BatchViewAugment", "NO_BLUR_VIEWS",
           "PairAugmentation", "TwoViewTransform", "ViewAugmentation"]


@dataclass(frozen=True)
class ViewAugmentation:
    """One view's augmentation settings in Barlow Twins: the two views differ only in blur and solarisation."""

    blur_p: float
    solarize_p: float


# Zbontar et al. 2021, as in the official code: view 1 always blurred, view 2 sometimes solarised
BARLOW_TWINS_VIEWS = (ViewAugmentation(blur_p=1.0, solarize_p=0.0), ViewAugmentation(blur_p=0.1, solarize_p=0.2))
# the ablation of notebook 06: the same views, never blurred (does learning to ignore blur cost the fine detail?)
NO_BLUR_VIEWS = (ViewAugmentation(blur_p=0.0, solarize_p=0.0), ViewAugmentation(blur_p=0.0, solarize_p=0.2))


class TwoViewTransform:
    """Return two differently augmented views of a PIL image, as normalised tensors (CPU version).

    Per view: random resized crop (scale 0.08-1, bicubic), horizontal flip (p 0.5), colour
    jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with p 0.8, greyscale
    with p 0.2, Gaussian blur (sigma 0.1-2) and solarisation with each view's probability.

    >>> view_1, view_2 = TwoViewTransform(64)(Image.new("RGB", (80, 80)))
    >>> view_1.shape
    torch.Size([3, 64, 64])
    """

    def __init__(self, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 views: tuple[ViewAugmentation, ViewAugmentation] = BARLOW_TWINS_VIEWS):
        from torchvision.transforms import v2

        kernel = 2 * round(0.1 * size / 2) + 1  # about 10% of the image, odd, as in SimCLR and Barlow Twins
        self.views = [
            v2.Compose([
                v2.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                v2.RandomHorizontalFlip(p=0.5),
                v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=view.blur_p),
                v2.RandomSolarize(threshold=128, p=view.solarize_p),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(mean), list(std)),
            ])
            for view in views
        ]

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(view_1, view_2)` of `image`."""
        return self.views[0](image), self.views[1](image)


class PairAugmentation:
    """The fine-tuning augmentation for TTL images (CPU, PIL in, normalised tensor out).

    TTL matches are about shape, colour and texture, so the views stay close to the image:
    a random resized crop keeping at least `min_scale` of it, a horizontal flip, and a mild
    colour jitter (brightness and contrast 0.2, saturation 0.1, hue 0.02) half of the time;
    no greyscale, blur or solarisation, which would erase what the pair shares.

    >>> PairAugmentation(64)(Image.new("RGB", (80, 100))).shape
    torch.Size([3, 64, 64])
    """

    def __init__(self, size: int = 224, min_scale: float = 0.5, jitter_p: float = 0.5,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        from torchvision.transforms import v2

        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}.")
        self.size, self.min_scale, self.jitter_p = size, min_scale, jitter_p
        self.transform = v2.Compose([
            v2.RandomResizedCrop(size, scale=(min_scale, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1, hue=0.02)], p=jitter_p),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return one augmented view of `image`."""
        return self.transform(image)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    high, _ = x.max(dim=1)
    low, _ = x.min(dim=1)
    spread = high - low
    safe = torch.where(spread > 0, spread, torch.ones_like(spread))
    hue = torch.where(high == r, (g - b) / safe % 6, torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(spread > 0, hue, torch.zeros_like(hue))
    saturation = torch.where(high > 0, spread / torch.where(high > 0, high, torch.ones_like(high)), torch.zeros_like(high))
    return torch.stack([hue % 1.0, saturation, high], dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


class BatchViewAugment(nn.Module):
    """One Barlow Twins view for a whole batch on its device (GPU version of `TwoViewTransform`).

    Takes decoded `uint8` images `N x 3 x H x W` (on the GPU: `torchvision.io.decode_jpeg(...,
    device="cuda")`) and draws every random parameter per sample, with the CPU version's
    distributions: crop scale and ratio, flip, the four jitter factors, greyscale, blur sigma,
    solarisation. Two differences: crops are resampled bilinearly (`roi_align`) rather than
    bicubically, and the jitter operations run in one random order per batch rather than per image.
    """

    def __init__(self, size: int, view: ViewAugmentation, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.size, self.view = size, view
        self.kernel = 2 * round(0.1 * size / 2) + 1
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _crop_boxes(self, n: int, height: int, width: int, g: torch.Generator | None, device) -> torch.Tensor:
        tries = 10
        area = height * width * torch.empty(n, tries, device=device).uniform_(0.08, 1.0, generator=g)
        log_ratio = torch.empty(n, tries, device=device).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g)
        ratio = torch.exp(log_ratio)
        w, h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
        ok = (w <= width) & (h <= height) & (w > 0) & (h > 0)
        first = torch.where(ok.any(dim=1), ok.float().argmax(dim=1), torch.full((n,), -1, device=device))
        rows = torch.arange(n, device=device)
        w = torch.where(first >= 0, w[rows, first.clamp(min=0)], torch.full((n,), float(min(width, height)), device=device))
        h = torch.where(first >= 0, h[rows, first.clamp(min=0)], torch.full((n,), float(min(width, height)), device=device))
        x0 = torch.floor(torch.rand(n, device=device, generator=g) * (width - w + 1))
        y0 = torch.floor(torch.rand(n, device=device, generator=g) * (height - h + 1))
        return torch.stack([rows.float(), x0, y0, x0 + w, y0 + h], dim=1)

    def _jitter(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n, device = len(x), x.device

        def factor(low: float, high: float) -> torch.Tensor:
            return torch.empty(n, 1, 1, 1, device=device).uniform_(low, high, generator=g)

        brightness, contrast, saturation = factor(0.6, 1.4), factor(0.6, 1.4), factor(0.8, 1.2)
        hue = factor(-0.1, 0.1)
        for op in torch.randperm(4, generator=g).tolist():
            if op == 0:
                x = (x * brightness).clamp(0, 1)
            elif op == 1:
                x = (contrast * x + (1 - contrast) * _grey(x).mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
            elif op == 2:
                x = (saturation * x + (1 - saturation) * _grey(x)).clamp(0, 1)
            else:
                hsv = _rgb_to_hsv(x)
                hsv = torch.cat([(hsv[:, :1] + hue) % 1.0, hsv[:, 1:]], dim=1)
                x = _hsv_to_rgb(hsv).clamp(0, 1)
        return x

    def _blur(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n, c, height, width = x.shape
        sigma = torch.empty(n, 1, device=x.device).uniform_(0.1, 2.0, generator=g)
        offsets = torch.arange(self.kernel, device=x.device, dtype=x.dtype) - self.kernel // 2
        weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
        weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c) x k
        pad = self.kernel // 2
        flat = x.reshape(1, n * c, height, width)
        flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), weights.view(n * c, 1, 1, -1), groups=n * c)
        flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), weights.view(n * c, 1, -1, 1), groups=n * c)
        return flat.view(n, c, height, width)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return the augmented, normalised `N x 3 x size x size` float views of a `uint8` batch."""
        from torchvision.ops import roi_align

        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"Expected a uint8 batch N x 3 x H x W, got {images.dtype} {tuple(images.shape)}.")
        g, device = generator, images.device
        n = len(images)
        x = images.float() / 255
        boxes = self._crop_boxes(n, x.shape[2], x.shape[3], g, device)
        x = roi_align(x, boxes, output_size=self.size, spatial_scale=1.0, sampling_ratio=2, aligned=True)

        def chosen(p: float) -> torch.Tensor:
            return (torch.rand(n, 1, 1, 1, device=device, generator=g) < p)

        x = torch.where(chosen(0.5), x.flip(-1), x)
        x = torch.where(chosen(0.8), self._jitter(x, g), x)
        x = torch.where(chosen(0.2), _grey(x).expand_as(x), x)
        if self.view.blur_p > 0:
            x = torch.where(chosen(self.view.blur_p), self._blur(x, g), x)
        if self.view.solarize_p > 0:
            x = torch.where(chosen(self.view.solarize_p) & (x >= 128 / 255), 1 - x, x)
        return (x - self.mean) / self.std


class BatchTwoViewAugment(nn.Module):
    """Both Barlow Twins views of a `uint8` batch, on its device: `(view_1, view_2)`."""

    def __init__(self, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 views: tuple[ViewAugmentation, ViewAugmentation] = BARLOW_TWINS_VIEWS):
        super().__init__()
        self.view_1 = BatchViewAugment(size, views[0], mean, std)
        self.view_2 = BatchViewAugment(size, views[1], mean, std)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        return self.view_1(images, generator), self.view_2(images, generator)
