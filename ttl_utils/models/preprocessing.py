"""Image preprocessing: the evaluation transform every model declares, and the cues a test takes away.

>>> pre = Preprocessing.for_size(224)
>>> pre.resize, pre.crop
(256, 224)
>>> remove_cue(Image.new("RGB", (32, 32), "red"), "greyscale").getpixel((0, 0))
(76, 76, 76)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps

__all__ = ["CUES", "IMAGENET_MEAN", "IMAGENET_STD", "CuePreprocessing", "Preprocessing", "denormalise", "remove_cue"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalise(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Return a normalised `3 x H x W` image (or a one-image batch) as `H x W x 3` in [0, 1], for plotting."""
    x = x.detach().cpu()
    x = x[0] if x.ndim == 4 else x
    return (x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)).clamp(0, 1).permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the shorter side, centre-crop a square, normalise.

    The TTL paper's protocol is `resize=256, crop=224` with ImageNet statistics. With `flip`, a
    picture's embedding is the mean of its own and its mirror image's (test-time flip averaging,
    done by `evaluate.embeddings.embed`); it enters the settings, so cached embeddings are kept apart.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    flip: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"Need 0 < crop <= resize, got crop={self.crop}, resize={self.resize}.")

    @classmethod
    def for_size(cls, image_size: int, **kwargs) -> Preprocessing:
        """Return the preprocessing for `image_size`-pixel crops, keeping the 256/224 ratio."""
        return cls(resize=round(image_size * 256 / 224), crop=image_size, **kwargs)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return `image` as a normalised `3 x crop x crop` float tensor."""
        return self.normalise(self.pixels(image))

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """Return `image` resized and centre-cropped, as a `3 x crop x crop` uint8 tensor (a quarter of the
        floats' bytes: what data-loading workers hand over; `normalise` finishes it, batched)."""
        image = TF.center_crop(TF.resize(image, self.resize, antialias=True), self.crop)
        return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return uint8 `pixels` (`3 x H x W`, or a batch) as normalised floats, as `TF.to_tensor` and
        `TF.normalize` compute them."""
        x = pixels.contiguous().to(torch.float32).div(255)
        shape = (3, 1, 1) if x.ndim == 3 else (1, 3, 1, 1)
        return x.sub_(torch.tensor(self.mean).view(shape)).div_(torch.tensor(self.std).view(shape))

    def batch(self, image: Image.Image) -> torch.Tensor:
        """Return `image` as a one-image batch, `1 x 3 x crop x crop`."""
        return self(image)[None]

    def to_dict(self) -> dict:
        """Return the settings as plain types (lists, ints), fit for a checkpoint or JSON (`flip` only when
        set, so the settings, and the cache keys made from them, read as before without it)."""
        settings = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        if not self.flip:
            settings.pop("flip")
        return settings

    @classmethod
    def from_dict(cls, settings: dict) -> Preprocessing:
        """Return the preprocessing that `to_dict` described."""
        return cls(resize=int(settings["resize"]), crop=int(settings["crop"]),
                   mean=tuple(settings["mean"]), std=tuple(settings["std"]), flip=bool(settings.get("flip", False)))


CUES = {
    "original": "the images as they are",
    "greyscale": "colour removed",
    "blurred": "fine detail removed (Gaussian blur, radius 1/25 of the shorter side)",
    "edges": "only outlines kept (edge map of the greyscale image)",
}


def remove_cue(image: Image.Image, cue: str) -> Image.Image:
    """Return `image` (RGB) with `cue` taken away: one of `CUES`."""
    if cue == "original":
        return image
    if cue == "greyscale":
        return image.convert("L").convert("RGB")
    if cue == "blurred":
        return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(image.size) / 25)))
    if cue == "edges":
        grey = image.convert("L").filter(ImageFilter.GaussianBlur(radius=1))
        return ImageOps.invert(ImageOps.autocontrast(grey.filter(ImageFilter.FIND_EDGES))).convert("RGB")
    raise ValueError(f"Unknown cue {cue!r}: choose among {', '.join(CUES)}.")


@dataclass(frozen=True)
class CuePreprocessing(Preprocessing):
    """The model's preprocessing, after taking `cue` away from the image."""

    cue: str = "original"

    def pixels(self, image: Image.Image) -> torch.Tensor:
        return super().pixels(remove_cue(image.convert("RGB"), self.cue))
