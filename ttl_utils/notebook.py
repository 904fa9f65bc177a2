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
from .pairs import PairSet
from .plots import figure_stamp, figures_dir, set_theme

__all__ = ["setup"]


def setup(profile: str | None = None, data: str | None = None, seed: int = 0) -> tuple[Profile, PairSet]:
    """Return the profile and the dataset, after seeding every generator and setting the figure theme.

    Prints one line for each, so a notebook's output says what it ran on.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    chosen = get_profile(profile)
    pairs = resolve_pairs(data, chosen)
    set_theme(figures=figures_dir(chosen, demo=pairs.layout == "demo"), stamp=figure_stamp(pairs, chosen))
    print(f"Profile: {chosen.name} ({chosen.image_size} px images, backbone {chosen.backbone})")
    print(f"Dataset: {pairs.describe(where=False)}")  # a notebook's outputs travel: no local path in them
    return chosen, pairs

