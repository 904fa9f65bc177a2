"""Run profiles (`smoke`, `cpu`, `gpu`) and the project's paths.

A profile is the whole set of knobs that make a run small or large. `TTL_PROFILE`
selects one; without it the profile is `gpu` when CUDA is available, else `cpu`.

>>> from ttl_utils.config import get_profile
>>> get_profile("smoke").image_size
64
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "PROFILES", "get_profile", "project_root", "data_dir", "artifacts_dir"]


@dataclass(frozen=True)
class Profile:
    """The size of a run: images, batches, training length, backbone, demo data.

    What each trainer makes of a profile (its recipe) is built in one place: `recipes`.
    """

    name: str
    image_size: int
    batch_size: int
    epochs: int
    backbone: str
    num_workers: int
    demo_pairs: int
    demo_size: int


PROFILES: dict[str, Profile] = {
    # For pytest --nbval and CI: every notebook well under a minute on 2 CPU cores.
    "smoke": Profile(
        name="smoke", image_size=64, batch_size=32, epochs=1,
        backbone="efficientnet_lite0", num_workers=0, demo_pairs=200, demo_size=64,
    ),
    # The real experiment scaled to a laptop.
    "cpu": Profile(
        name="cpu", image_size=224, batch_size=64, epochs=10,
        # 400 demo pairs: `make figures` without real data runs every notebook in under 20 minutes
        backbone="efficientnet_lite0", num_workers=2, demo_pairs=400, demo_size=128,
    ),
    # The full recipe on one or more GPUs.
    "gpu": Profile(
        name="gpu", image_size=224, batch_size=256, epochs=100,
        backbone="resnet50", num_workers=8, demo_pairs=1000, demo_size=224,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called `name`, else `$TTL_PROFILE`, else `gpu` with CUDA or `cpu`."""
    if not name and not os.environ.get("TTL_PROFILE"):
        from .runtime import cuda_available  # torch is imported only when the profile depends on it

        name = "gpu" if cuda_available() else "cpu"
    name = name or os.environ["TTL_PROFILE"]
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"Unknown profile {name!r} (from the argument or TTL_PROFILE). "
            f"Choose one of: {', '.join(PROFILES)}."
        ) from None


def project_root() -> Path:
    """Return the folder that holds `data/`, `artifacts/` and `figures/`.

    `$TTL_HOME` if set; else the checkout this package was installed from (an editable
    install); else the current directory.
    """
    if home := os.environ.get("TTL_HOME"):
        return Path(home).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd().resolve()


def data_dir() -> Path:
    """Return `<project root>/data`, where downloads and saved splits live."""
    return project_root() / "data"


def artifacts_dir() -> Path:
    """Return `<project root>/artifacts`, the cache of checkpoints, embeddings and ranks."""
    return project_root() / "artifacts"
