"""Image preprocessing: the evaluation transform every backbone declares.

>>> pre = Preprocessing.for_size(224)
>>> pre.resize, pre.crop
(256, 224)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the shorter side, centre-crop a square, normalise.

    The TTL paper's protocol is `resize=256, crop=224` with ImageNet statistics.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"Need 0 < crop <= resize, got crop={self.crop}, resize={self.resize}.")

    @classmethod
    def for_size(cls, image_size: int, **kwargs) -> Preprocessing:
        """Return the preprocessing for `image_size`-pixel crops, keeping the 256/224 ratio."""
        return cls(resize=round(image_size * 256 / 224), crop=image_size, **kwargs)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return `image` as a normalised `3 x crop x crop` float tensor."""
        image = TF.center_crop(TF.resize(image, self.resize, antialias=True), self.crop)
        return TF.normalize(TF.to_tensor(image), self.mean, self.std)

    def to_dict(self) -> dict:
        """Return the settings as plain types (lists, ints), fit for a checkpoint or JSON."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, settings: dict) -> Preprocessing:
        """Return the preprocessing that `to_dict` described."""
        return cls(resize=int(settings["resize"]), crop=int(settings["crop"]),
                   mean=tuple(settings["mean"]), std=tuple(settings["std"]))
