"""The first lines of every notebook: settings, seeds, theme, which data is used, and where figures go.

>>> run = setup()                                  # doctest: +SKIP
Profile: cpu (224 px images, backbone efficientnet_lite0)
Dataset: demo-128px-seed0 (demo layout, 400 pairs)
>>> save_fig(fig, "01_pairs", run.figures)         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import numpy as np
import torch

from .config import Figures, Profile, figures_dir, get_profile
from .data.folders import resolve_pairs
from .data.pairs import PairSet
from .present.plots import set_theme

__all__ = ["Context", "figure_stamp", "setup"]


@dataclass(frozen=True)
class Context:
    """What a notebook runs with: the `profile`, the `pairs`, and `figures` (where its figures and
    findings are saved, with the stamp that names the data and profile): `save_fig(fig, name,
    run.figures)`, `record(run.figures, step, ...)`."""

    profile: Profile
    pairs: PairSet
    figures: Figures


def figure_stamp(pairs: PairSet, profile: Profile) -> str:
    """Return the line that names a figure's data and profile, e.g. "demo data, 200 pairs · smoke profile"
    or "real TTL pairs (ttl-dev), 1000 pairs · cpu profile"."""
    name = pairs.name.split("/")[0]
    what = {"demo": "demo data", "official": f"real TTL pairs ({name})"}.get(pairs.layout, name)
    return f"{what}, {len(pairs)} pairs · {profile.name} profile"


def setup(profile: str | None = None, data: str | None = None, seed: int = 0) -> Context:
    """Return the notebook's context (profile, pairs, figures), after seeding every generator and
    setting the figure theme.

    Prints one line for the profile and one for the data, so a notebook's output says what it ran on.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    chosen = get_profile(profile)
    pairs = resolve_pairs(data, chosen)
    set_theme()
    figures = Figures(figures_dir(chosen, demo=pairs.layout == "demo"), figure_stamp(pairs, chosen))
    print(f"Profile: {chosen.name} ({chosen.image_size} px images, backbone {chosen.backbone})")
    print(f"Dataset: {pairs.describe(where=False)}")  # a notebook's outputs travel: no local path in them
    return Context(chosen, pairs, figures)
