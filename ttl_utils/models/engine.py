"""The inference engine: every frozen forward pass (no gradient) of a backbone, fast on CPU.

On CPU, the stages of a backbone that a command only runs forward (all of them for
embeddings; those below the first trained stage for fine-tuning's trunk cache) run through
ONNX Runtime, several times faster than PyTorch eager: the engine fuses each convolution
with its batch norm and clamp. The network is exported to ONNX once per backbone weights
(their fingerprint), stages and input size, and kept under `artifacts/engine/`, so a
fine-tuned checkpoint gets its own. On a GPU, or when an export fails (one log line says
so), the torch path runs, in channels-last memory format. `TTL_ENGINE=torch` chooses the
torch path everywhere (to compare, or to debug).

>>> maps = frozen_maps(embedder.backbone, ("layer4",))      # doctest: +SKIP
>>> maps(images)["layer4"].shape    # N x 1280 x 7 x 7 at 224 px            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import artifacts_dir, engine_override
from ..digests import content_digest, model_fingerprint
from ..storage import atomic_write
from .backbones import Backbone
from .catalog import LAYERS
from .embedder import Embedder

__all__ = ["ENGINE_VERSION", "MAX_ENGINE_BYTES", "MAX_SESSIONS", "engine_name", "frozen_embedder", "frozen_maps",
           "onnx_path", "prune_engine_folder"]

log = logging.getLogger(__name__)

ENGINE_VERSION = 1  # of the exported graphs: bump it when what is exported changes
_OPSET = 17
_sessions: OrderedDict[str, object] = OrderedDict()  # loaded ONNX Runtime sessions, by file, most recent last
MAX_SESSIONS = 4  # sessions kept loaded in one process (each holds its graph's weights: 15-100 MB)
MAX_ENGINE_BYTES = 512 * 2**20  # artifacts/engine is pruned to this, least recently used exports first
_failed: set[str] = set()  # exports that failed in this process (said once)
_lock = threading.Lock()

Maps = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def engine_name(device: str | torch.device = "cpu") -> str:
    """Return which engine runs frozen forwards on `device`: "onnxruntime" or "torch"."""
    if torch.device(device).type != "cpu" or engine_override() == "torch":
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnxruntime"


class _Stages(nn.Module):
    """The backbone from stage `start` to the deepest of `layers`, returning their maps in order."""

    def __init__(self, backbone: Backbone, layers: tuple[str, ...], start: str):
        super().__init__()
        self.backbone, self.layers, self.start = backbone, layers, start

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.backbone(x, self.layers, self.start)
        return tuple(maps[layer] for layer in self.layers)


def _stages_fingerprint(backbone: Backbone, layers: Sequence[str], start: str) -> str:
    """Return a digest of the weights of the stages from `start` to the deepest of `layers`: what an
    export computes with (the stages above may be training meanwhile)."""
    deepest = max(LAYERS.index(layer) for layer in layers)
    modules = [m for layer in LAYERS[LAYERS.index(start):deepest + 1] for m in backbone.stage_modules(layer)]
    return model_fingerprint(nn.ModuleList(modules))


def onnx_path(backbone: Backbone, layers: Sequence[str], start: str, input_shape: Sequence[int]) -> Path:
    """Return where the export of these stages of `backbone` for `input_shape` (C, H, W) is kept."""
    key = content_digest(_stages_fingerprint(backbone, layers, start), backbone.name, list(layers), start,
                         list(input_shape), ENGINE_VERSION, _OPSET)
    return artifacts_dir() / "engine" / f"{backbone.name}-{key}.onnx"


def _export(module: _Stages, path: Path, input_shape: Sequence[int]) -> None:
    """Write the ONNX graph of `module` (any batch size, inputs of `input_shape`) to `path`, atomically."""
    example = torch.zeros(2, *input_shape)
    names = list(module.layers)
    axes = {"images": {0: "batch"}, **{name: {0: "batch"} for name in names}}

    def write(tmp: Path) -> None:
        # the tracer needs ordinary tensors, also when called from inside a caller's inference mode
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing and deprecation
            torch.onnx.export(module, (example,), str(tmp), input_names=["images"], output_names=names,
                              dynamic_axes=axes, opset_version=_OPSET, dynamo=False)

    modes = {m: m.training for m in module.modules()}
    module.eval()  # exported as it runs frozen (batch norm with its running statistics)
    try:
        atomic_write(path, write)
    finally:
        for m, training in modes.items():  # a model that is training meanwhile is left as it was
            m.training = training


def _session(path: Path):
    """Return the ONNX Runtime session of `path`, loaded once a process with the torch thread count; at
    most `MAX_SESSIONS` stay loaded (the least recently used is freed first)."""
    import onnxruntime as ort

    with _lock:
        if str(path) not in _sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only
            # idle engine threads sleep instead of spinning: the cores are shared with image decoding
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            _sessions[str(path)] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            try:
                os.utime(path)  # its time says when it was last used: pruning removes the oldest first
            except OSError:
                pass
            while len(_sessions) > MAX_SESSIONS:
                _sessions.popitem(last=False)
        _sessions.move_to_end(str(path))
        return _sessions[str(path)]


def _loaded_or_exported(module_of: Callable[[], nn.Module], path: Path, shape: tuple[int, ...]):
    """Return the session of the export at `path`, exporting it first when missing, and again (once, with a
    warning naming the file) when the file on disk cannot be loaded (truncated, overwritten)."""
    if not path.is_file():
        _export(module_of(), path, shape)
        prune_engine_folder(path.parent, keep=path)
        return _session(path)
    try:
        return _session(path)
    except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own kinds for a damaged graph
        why = (str(err).strip().splitlines() or [type(err).__name__])[0].replace(str(path), "it")
        log.warning("ONNX file %s is damaged (%s): exporting it again.", path, why if len(why) <= 120 else why[:119] + "…")
        path.unlink(missing_ok=True)
        _export(module_of(), path, shape)
        return _session(path)


def prune_engine_folder(folder: Path, limit: int = MAX_ENGINE_BYTES, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used exports under `folder` until it holds at most `limit` bytes (never
    `keep`, nor one loaded in this process); return what was removed. An export is made again when needed."""
    try:
        files = [(p.stat(), p) for p in folder.glob("*.onnx")]
    except OSError:
        return []
    total = sum(stat.st_size for stat, _ in files)
    removed = []
    for stat, path in sorted(files, key=lambda item: item[0].st_mtime):
        if total <= limit:
            break
        if path == keep or str(path) in _sessions:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= stat.st_size
        removed.append(path)
    if removed:
        log.info("Pruned %d old ONNX export(s) from %s (kept under %d MB)", len(removed), folder, limit // 2**20)
    return removed


def _torch_maps(backbone: Backbone, layers: tuple[str, ...], start: str, device: torch.device) -> Maps:
    """The torch path: the backbone as it is (its device, its modes), channels-last inputs, no gradients."""
    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # not inference mode: the maps may feed stages that train
            x = x.to(device, non_blocking=True)
            if x.dim() == 4 and device.type in ("cpu", "cuda"):
                x = x.contiguous(memory_format=torch.channels_last)
            return backbone(x, layers, start)

    return run


def frozen_maps(backbone: Backbone, layers: Sequence[str], start: str = "layer1",
                device: str | torch.device = "cpu") -> Maps:
    """Return a function from a batch (normalised images, or with `start` the maps of the stage
    before it) to `{layer: map}` for `layers`, run without gradients by the engine for `device`
    (`engine_name`). The result is on `device` (the CPU for ONNX Runtime), float32.

    The backbone is used as it is: on `device`, in eval mode for its frozen stages (the
    export is always made in eval mode, its weights' modes restored after).
    """
    layers = tuple(layers)
    if not layers or any(layer not in LAYERS for layer in layers):
        raise ValueError(f"Unknown layers {list(layers)}; choose from {', '.join(LAYERS)}.")
    device = torch.device(device)
    if engine_name(device) == "torch":
        return _torch_maps(backbone, layers, start, device)
    fallback: list[Maps] = []
    by_shape: dict[tuple[int, ...], object] = {}

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if fallback:
            return fallback[0](x)
        shape = tuple(x.shape[1:])
        if shape not in by_shape:
            path = onnx_path(backbone, layers, start, shape)
            try:
                if str(path) in _failed:  # failed before in this process: not traced again
                    raise RuntimeError("the export failed before")
                by_shape[shape] = _loaded_or_exported(lambda: _Stages(backbone, layers, start), path, shape)
            except Exception as err:  # any exporter or runtime failure: the torch path computes the same
                if str(path) not in _failed:
                    _failed.add(str(path))
                    log.warning("ONNX export of %s (%s) failed (%s): running it in torch, channels-last.",
                                backbone.name, "+".join(layers), str(err).strip().splitlines()[0][:160] if str(err).strip()
                                else type(err).__name__)
                fallback.append(_torch_maps(backbone, layers, start, device))
                return fallback[0](x)
        outputs = by_shape[shape].run(None, {"images": np.ascontiguousarray(x.detach().cpu().float().numpy())})
        return {layer: torch.from_numpy(out) for layer, out in zip(layers, outputs)}

    return run


def frozen_embedder(embedder: Embedder, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """Return a function from a normalised image batch to `embedder`'s embeddings on `device`: the
    backbone through the engine (`frozen_maps`), the pooling and the head in torch, no gradients."""
    device = torch.device(device)
    maps = frozen_maps(embedder.backbone, embedder.layers, device=device)

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return embedder.embed_features(embedder.pool({k: v.to(device) for k, v in maps(images).items()}))

    return run
