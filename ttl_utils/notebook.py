"""The first lines of every notebook: settings, seeds, theme, and which data is used.

>>> profile, pairs = setup()            # doctest: +SKIP
Profile: cpu (224 px images, backbone efficientnet_lite0)
Dataset: demo-128px-seed0 (demo layout, 1000 pairs)
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from .config import Profile, get_profile
from .data import resolve_pairs
from .evaluation import embed_pairs
from .models import build_embedder
from .pairs import PairSet
from .plots import set_theme
from .transforms import Preprocessing

__all__ = ["setup", "device", "frozen_embeddings"]


def setup(profile: str | None = None, data: str | None = None, seed: int = 0) -> tuple[Profile, PairSet]:
    """Return the profile and the dataset, after seeding every generator and setting the figure theme.

    Prints one line for each, so a notebook's output says what it ran on.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_theme()
    chosen = get_profile(profile)
    pairs = resolve_pairs(data, chosen)
    print(f"Profile: {chosen.name} ({chosen.image_size} px images, backbone {chosen.backbone})")
    print(f"Dataset: {pairs.describe()}")
    return chosen, pairs


def device() -> str:
    """Return "cuda" when a GPU is available, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def frozen_embeddings(profile: Profile, pairs: PairSet, layers: tuple[str, ...] = ("layer4",)):
    """Return `(left, right)` embeddings of `pairs` by the profile's ImageNet backbone (cached)."""
    embedder = build_embedder(profile.backbone, "imagenet", layers)
    preprocessing = Preprocessing.for_size(profile.image_size)
    batch_size = profile.batch_size if device() == "cuda" else 32
    return embed_pairs(embedder, preprocessing, pairs, batch_size=batch_size, device=device())
