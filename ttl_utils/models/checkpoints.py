"""The checkpoint format every trainer writes, and the one way to name a model (`load_model`).

A checkpoint holds only tensors and plain types (loaded with `weights_only=True`): the
backbone's name and original weights, the layers, the head's config, the preprocessing,
the state dict, and what its trainer recorded (`extra`). A MODEL, everywhere a command or a
notebook takes one, is a checkpoint file of this project or a backbone name with optional
`:weights` (`efficientnet_lite0`, `efficientnet_lite0:none`, `resnet50:barlowtwins`).

>>> embedder, preprocessing = load_model("efficientnet_lite0", get_profile("smoke"))   # doctest: +SKIP
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from ..config import Profile
from ..errors import CheckpointError
from ..storage import load_torch, save_torch
from .backbones import build_backbone
from .catalog import parse_model
from .embedder import Embedder, build_embedder
from .preprocessing import Preprocessing

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_description", "checkpoint_extra", "load_checkpoint", "load_model",
           "save_checkpoint"]

CHECKPOINT_FORMAT = "ttl_utils.embedder/1"


def save_checkpoint(path: str | Path, embedder: Embedder, preprocessing: Preprocessing, **extra) -> Path:
    """Write a checkpoint that `load_checkpoint` and `evaluate --model` read; return its path.

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


def load_model(spec: str, profile: Profile) -> tuple[Embedder, Preprocessing]:
    """Return `(embedder, preprocessing)` for a MODEL (`catalog.parse_model`): a checkpoint file of this
    project, or a backbone with optional `:weights` (zero-shot, pooled last stage, the profile's image
    size; `none`: random weights drawn with a fixed seed, so the same model every run)."""
    model = parse_model(spec)
    if model.checkpoint is not None:
        embedder, preprocessing, _ = load_checkpoint(model.checkpoint)
        return embedder, preprocessing
    embedder = build_embedder(model.backbone, model.weights, seed=0)  # random weights with a fixed seed: cached
    return embedder, Preprocessing.for_size(profile.image_size)


def checkpoint_description(path: str | Path) -> dict:
    """Return what a checkpoint says of its model (backbone, weights, layers, head, preprocessing),
    without building it; raises `CheckpointError` like `load_checkpoint`."""
    return {key: value for key, value in _read_checkpoint(Path(path), "cpu").items() if key not in ("state_dict", "extra")}
