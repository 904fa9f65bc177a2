"""The embedder: pooled stage features of a backbone, a projection head, L2-normalised.

An embedding is the global-average-pooled feature map of the backbone's last stage,
L2-normalised. `layers=("layer2", "layer4")` pools several stages instead (colour and
texture live in the early ones), each L2-normalised, then concatenated; `grid` pools each
into cells that keep the layout.

>>> embedder = build_embedder("efficientnet_lite0")          # offline ImageNet weights
>>> embedder(torch.zeros(2, 3, 224, 224)).shape
torch.Size([2, 1280])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone, build_backbone
from .catalog import OFFLINE_BACKBONE

__all__ = ["Embedder", "build_embedder", "build_head"]


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
