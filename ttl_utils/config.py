"""Run profiles (`smoke`, `cpu`, `gpu`), the project's paths, and every environment variable it reads.

A profile is the whole set of knobs that make a run small or large. `TTL_PROFILE`
selects one; without it the profile is `gpu` when CUDA is available, else `cpu`.

The environment is read here and nowhere else: the profile chosen at the start travels
explicitly, and the other settings are read through the functions below.

| variable | read by | what it sets |
|---|---|---|
| `TTL_PROFILE` | `get_profile` | the profile |
| `TTL_DATA` | `env_data` | the dataset folder when none is given |
| `TTL_UNLABELLED` | `env_unlabelled` | a pool of pictures without pair labels, for pretraining |
| `TTL_HOME` | `project_root` | where `data/`, `artifacts/` and `figures/` live |
| `TTL_FIGURES` | `figures_dir` | where notebooks save their figures |
| `TTL_MAX_PIXELS` | `max_pixels` | the most pixels a picture may have |
| `TTL_ENGINE` | `engine_override` | `torch`: frozen forwards in torch, not ONNX Runtime |
| `TQDM_DISABLE` | `progress_disabled` | no progress bars |
| `RANK`, `WORLD_SIZE`, `LOCAL_RANK` | `torchrun_ranks` | set by `torchrun` |

>>> get_profile("smoke").image_size
64
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_MAX_PIXELS", "Figures", "Profile", "PROFILES", "artifacts_dir", "data_dir", "engine_override",
           "env_data", "env_unlabelled", "figures_dir", "get_profile", "max_pixels", "progress_disabled", "project_root",
           "torchrun_ranks"]

DEFAULT_MAX_PIXELS = 128_000_000  # admits every phone photo up to 108 megapixels; TTL_MAX_PIXELS changes it


HUB_CORRECTION = True


@dataclass(frozen=True)
class Profile:
    """The size of a run: images, batches, training length, backbone, demo data.

    What each trainer makes of a profile (its recipe) is built in one place: `train.recipes`.
    """

    name: str
    image_size: int
    batch_size: int
    epochs: int
    backbone: str
    num_workers: int
    demo_pairs: int
    demo_size: int
    # evaluate, compare and find rank a fine-tuned checkpoint by CSLS against the training pictures it
    # keeps (`evaluate.hubs.TrainingBank`) unless told otherwise: chosen on held-out folds (README)
    hub_correction: bool = HUB_CORRECTION


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
    name = name or os.environ.get("TTL_PROFILE") or None
    if not name:
        from .runtime import cuda_available  # torch is imported only when the profile depends on it

        name = "gpu" if cuda_available() else "cpu"
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


def env_data() -> str | None:
    """Return the dataset folder `$TTL_DATA` names, or None."""
    return os.environ.get("TTL_DATA") or None


def env_unlabelled() -> str | None:
    """Return the folder of unlabelled pictures `$TTL_UNLABELLED` names, or None."""
    return os.environ.get("TTL_UNLABELLED") or None


@dataclass(frozen=True)
class Figures:
    """Where figures are saved (`folder`) and the small line under each that names its data and
    profile (`stamp`; None: no stamp). Saving a figure and recording a finding take one."""

    folder: Path
    stamp: str | None = None


def figures_dir(profile: Profile, demo: bool = False) -> Path:
    """Return the folder the figures of a run with `profile` are saved in (`demo`: on the demo data).

    `$TTL_FIGURES` if set; the `smoke` profile (tests) writes under `artifacts/figures-smoke`
    and a run on the demo data under `artifacts/figures-demo-<profile>`, so neither ever
    overwrites the presentation figures of real pairs; otherwise `<project root>/figures`.
    """
    if folder := os.environ.get("TTL_FIGURES"):
        return Path(folder)
    if profile.name == "smoke":
        return artifacts_dir() / "figures-smoke"
    if demo:
        return artifacts_dir() / f"figures-demo-{profile.name}"
    return project_root() / "figures"


def max_pixels() -> int:
    """Return the most pixels an image may have: `$TTL_MAX_PIXELS`, else `DEFAULT_MAX_PIXELS` (128 million)."""
    text = os.environ.get("TTL_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except (ValueError, OverflowError):  # "lots", "inf"
        value = 0
    if value < 1:
        raise ValueError(f"TTL_MAX_PIXELS={text!r}: give the most pixels an image may have, e.g. 128000000.")
    return value


def engine_override() -> str | None:
    """Return the engine `$TTL_ENGINE` asks for (`torch`), lower-cased, or None."""
    return os.environ.get("TTL_ENGINE", "").strip().lower() or None


def progress_disabled() -> bool:
    """Return whether `$TQDM_DISABLE` turns progress bars off (1, true or yes)."""
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


def torchrun_ranks() -> tuple[int, int, int]:
    """Return `(rank, world size, local rank)` as `torchrun` sets them; `(0, 1, 0)` without it."""
    if "RANK" not in os.environ:
        return 0, 1, 0
    return int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
