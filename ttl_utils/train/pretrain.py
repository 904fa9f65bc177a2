"""Barlow Twins pretraining: the model, the image-folder data, and the training loop.

Runs on one CPU, one GPU, or many with `torchrun --nproc_per_node=N -m ttl_utils pretrain`
(DDP: NCCL on GPUs, Gloo on CPUs). A checkpoint is written atomically after every epoch in
the format `evaluate --model` reads (the backbone as an embedder, with the projector),
and beside it the training state (weights, optimiser, step) in the format every trainer
shares (`training_state`), so `--resume` continues exactly where it stopped. The run goes
in stages: `_set_up`, `_loader`, `_views`, `_step`, `_save`; `cached_pretrain` trains a
run once under `artifacts/pretrain/`. Settings: `recipes.PretrainConfig`.

>>> config = PretrainConfig(data="data/ttl", out="runs/bt.pt", backbone="resnet18", epochs=1)   # doctest: +SKIP
>>> pretrain(config)                                                                              # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torchvision
import torchvision.transforms.functional as TF
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ..config import torchrun_ranks
from ..data.inputs import header_problem
from ..data.pairs import IMAGE_EXTENSIONS, open_rgb
from ..digests import content_digest, file_digests
from ..errors import DatasetError
from ..models.backbones import build_backbone
from ..models.catalog import BACKBONES
from ..models.checkpoints import load_checkpoint, save_checkpoint
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from ..progress import progress
from ..runtime import io_threads
from ..storage import atomic_write
from .augment import BARLOW_TWINS_VIEWS, BatchTwoViewAugment, TwoViewTransform, ViewAugmentation
from .losses import barlow_twins_loss, cross_correlation
from .optim import LARS, barlow_twins_param_groups, warmup_cosine
from .recipes import PretrainConfig
from .state import cached_training, load_state, save_state

__all__ = ["BarlowTwins", "ImageFolderImages", "build_projector", "cached_pretrain", "correlation_stats", "decode_batch",
           "pretrain", "projector_correlation"]

log = logging.getLogger(__name__)

# may differ on resume; the folder (`data`) may move: its content is compared instead
_RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "log_every", "compile", "data"})
_VERSION = 1  # of the training code: a change of what it computes must bump it


def build_projector(in_dim: int, sizes: tuple[int, ...]) -> nn.Sequential:
    """Return the Barlow Twins projector: (Linear-BN-ReLU) blocks, then a Linear without bias."""
    dims = (in_dim, *sizes)
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


class BarlowTwins(nn.Module):
    """Backbone (pooled last stage) + projector; `forward(view_1, view_2)` returns the loss."""

    def __init__(self, embedder: Embedder, projector_sizes: tuple[int, ...], lambd: float = 0.0051):
        super().__init__()
        self.embedder = embedder
        self.projector = build_projector(embedder.feature_dim, projector_sizes)
        self.lambd = lambd
        # the ImageNet classifier takes no part (and DDP refuses parameters that get no gradient)
        for name in ("fc", "_fc"):
            if hasattr(embedder.backbone.net, name):
                getattr(embedder.backbone.net, name).requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.embedder.backbone(x, self.embedder.layers)
        return torch.cat([maps[layer].mean(dim=(2, 3)) for layer in self.embedder.layers], dim=1)

    def forward(self, view_1: torch.Tensor, view_2: torch.Tensor) -> torch.Tensor:
        z1 = self.projector(self.features(view_1))
        z2 = self.projector(self.features(view_2))
        return barlow_twins_loss(z1.float(), z2.float(), lambd=self.lambd)


def _images_under(root: Path) -> list[Path]:
    """Return every image under `root`, recursively, hidden entries and links out of `root` left out."""
    if not root.is_dir():
        raise DatasetError(f"The image folder {root} does not exist.")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    outside = {p for p in paths if p.is_symlink() and p.exists() and not p.resolve().is_relative_to(root.resolve())}
    if outside:
        log.warning("Leaving out %d image(s) that link to files outside %s, e.g. %s.", len(outside), root,
                    sorted(outside)[0].relative_to(root))
    return [p for p in paths if p not in outside]


class ImageFolderImages(Dataset):
    """Every image under one or more folders, recursively (ImageNet's `train/`, a TTL folder, an
    unlabelled pool beside it).

    Pairing and labels are ignored: self-supervised pretraining needs images only. With
    `two_views`, an item is the pair of augmented views (CPU augmentation, by `views`); else it
    is the image resized and centre-cropped to `size` as a `uint8` tensor, for
    `BatchTwoViewAugment`; with `raw_bytes`, it is the file's bytes, for `decode_batch` on the GPU.
    """

    def __init__(self, roots: str | Path | Sequence[str | Path], size: int, two_views: bool = True,
                 raw_bytes: bool = False, views: tuple[ViewAugmentation, ViewAugmentation] = BARLOW_TWINS_VIEWS):
        self.roots = [Path(root) for root in ([roots] if isinstance(roots, (str, Path)) else roots)]
        self.paths = [path for root in self.roots for path in _images_under(root)]
        if not self.paths:
            raise DatasetError(f"No images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under "
                               f"{', '.join(map(str, self.roots))}.")
        self.two_views, self.raw_bytes = two_views and not raw_bytes, raw_bytes
        self.views = TwoViewTransform(size, views=views) if self.two_views else None
        self.size = round(size * 1.14)  # room for the batched random crops

    def __len__(self) -> int:
        return len(self.paths)

    def _name(self, path: Path) -> str:
        """Return `path` as the run knows it: its folder's place among the roots, then its path inside it."""
        for k, root in enumerate(self.roots):
            if path.is_relative_to(root):
                return str(path.relative_to(root)) if len(self.roots) == 1 else f"{k}/{path.relative_to(root)}"
        return str(path)

    def listing(self) -> str:
        """Return a digest of what the folders hold: each image's path (relative) and content (`digests`:
        every file read once, then remembered while its size and times are unchanged)."""
        digests = file_digests(self.paths, desc="Reading the images once (their content keys the run)")
        return content_digest([(self._name(p), d) for p, d in zip(self.paths, digests)])

    def check_headers(self) -> None:
        """Read every image's header (cheap) and raise one `DatasetError` listing every bad file."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(io_threads()) as pool:
            reasons = list(pool.map(header_problem, self.paths))
        bad = [f"{self._name(path)} ({why})" for path, why in zip(self.paths, reasons) if why]
        if bad:
            shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise DatasetError(f"{len(bad)} image(s) under {', '.join(map(str, self.roots))} cannot be opened: "
                               f"{shown}. Fix or remove them (the run would stop at the first).")

    def __getitem__(self, i: int):
        if self.raw_bytes:
            return torchvision.io.read_file(str(self.paths[i]))
        image = open_rgb(self.paths[i], min_side=2 * self.size)  # room for the random crops
        if self.two_views:
            return self.views(image)
        image = TF.center_crop(TF.resize(image, self.size, antialias=True), self.size)
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)


@torch.no_grad()
def projector_correlation(embedder: Embedder, config: PretrainConfig, images: list, projector_state: dict | None = None,
                          seed: int = 1) -> torch.Tensor:
    """Return the Barlow Twins cross-correlation matrix of two augmented views of `images` (PIL images)
    through `embedder` and a projector (`projector_state`, else a freshly initialised one)."""
    model = BarlowTwins(embedder, config.projector, config.lambd)
    if projector_state is not None:
        model.projector.load_state_dict(projector_state)
    model.eval()
    views = TwoViewTransform(config.image_size, views=config.views)
    torch.manual_seed(seed)
    pairs = [views(image) for image in images]
    v1, v2 = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return cross_correlation(model.projector(model.features(v1)), model.projector(model.features(v2)))


def correlation_stats(matrix: torch.Tensor) -> dict[str, float]:
    """Return the mean diagonal of a cross-correlation matrix (Barlow Twins pulls it to 1) and the mean
    absolute off-diagonal entry (pushed to 0)."""
    diagonal = torch.diagonal(matrix)
    return {"diagonal": diagonal.mean().item(), "off_diagonal": (matrix - torch.diag(diagonal)).abs().mean().item()}


def _is_jpeg(data: torch.Tensor) -> bool:
    return len(data) > 2 and int(data[0]) == 0xFF and int(data[1]) == 0xD8


def _resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    image = TF.resize(image, size, antialias=True)
    return TF.center_crop(image, size)


def decode_batch(files: list[torch.Tensor], size: int, device: torch.device | str) -> torch.Tensor:
    """Return the images in `files` (encoded bytes, as `read_file` gives them) as `N x 3 x size x size`
    uint8 on `device`: resized (shorter side) and centre-cropped, like `ImageFolderImages` without views.

    JPEGs are decoded on `device` in one call (nvJPEG on a GPU), so that data-loader
    workers only read files; other formats, and any JPEG the decoder refuses (CMYK, broken
    headers), go through PIL on the CPU.
    """
    device = torch.device(device)
    out: list[torch.Tensor | None] = [None] * len(files)
    jpegs = [i for i, data in enumerate(files) if _is_jpeg(data)]
    if jpegs:
        try:
            decoded = torchvision.io.decode_jpeg([files[i] for i in jpegs], mode=torchvision.io.ImageReadMode.RGB,
                                                 device=device, apply_exif_orientation=True)
            for i, image in zip(jpegs, decoded):
                out[i] = _resize_crop(image, size)
        except RuntimeError as err:  # one bad file fails the whole call: fall back to PIL for all
            log.debug("Batched JPEG decoding failed (%s); decoding with PIL", err)
    for i, image in enumerate(out):
        if image is None:
            pil = open_rgb(io.BytesIO(files[i].numpy().tobytes()))
            out[i] = _resize_crop(torch.from_numpy(np.array(pil)).permute(2, 0, 1).to(device), size)
    return torch.stack(out)


def _as_list(batch: list) -> list:
    return batch


def _distributed() -> tuple[int, int, int]:
    """Initialise the process group under torchrun; return (rank, world size, local rank)."""
    _, world, local_rank = torchrun_ranks()
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def _initial_embedder(config: PretrainConfig) -> Embedder:
    """Return the model pretraining starts from: `config.backbone` with the weights `config.init` names
    (`none`: random), or the checkpoint at `config.init`."""
    if config.init == "none" or config.init in BACKBONES[config.backbone].weights:
        return Embedder(build_backbone(config.backbone, None if config.init == "none" else config.init))
    return load_checkpoint(config.init)[0]


def _optimiser(model: BarlowTwins, config: PretrainConfig, world: int) -> torch.optim.Optimizer:
    if config.optimizer == "lars":
        return LARS(barlow_twins_param_groups(model, config.batch_size * world), lr=0.0, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "base_lr": config.lr}]
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose adamw or lars.")


@dataclass
class _Run:
    """What a pretraining run carries from stage to stage."""

    model: BarlowTwins
    trainer: nn.Module
    optimiser: torch.optim.Optimizer
    device: torch.device
    rank: int
    world: int
    start_epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    images: str | None = None  # what the resumed run trained on (`ImageFolderImages.listing`)


def precision(device: torch.device) -> str:
    """The precision of a step on `device`: `bfloat16` (autocast, AMP) on a GPU; `float32` on a CPU,
    where autocast is left off."""
    return "bfloat16" if device.type == "cuda" else "float32"


def _save(run: _Run, config: PretrainConfig, epoch: int, finished: bool = False, images: str | None = None) -> None:
    """Write the checkpoint (the backbone as an embedder, the projector, the history, how it ran) and the
    training state."""
    model = run.model
    save_checkpoint(config.out, model.embedder, Preprocessing.for_size(config.image_size),
                    pretrain={"epoch": epoch, "step": run.step, "config": asdict(config),
                              "projector": model.projector.state_dict(), "history": run.history,
                              "processes": run.world, "device": run.device.type,
                              "precision": precision(run.device)})
    save_state(config, epoch, run.history, finished, state_dict=model.state_dict(), optimizer=run.optimiser.state_dict(),
               step=run.step, images=images)


def _set_up(config: PretrainConfig, resume: bool) -> _Run:
    """Return a run ready for its first epoch: the model on its device, wrapped for DDP (and compiled),
    the optimiser, and the state it resumes from."""
    rank, world, local_rank = _distributed()
    device = torch.device(f"cuda:{local_rank}" if config.device == "cuda" else config.device)
    state = load_state(config, _RESUMABLE_CHANGES) if resume else None
    torch.manual_seed(config.seed)
    model = BarlowTwins(_initial_embedder(config), config.projector, config.lambd)
    if state is not None:
        model.load_state_dict(state["state_dict"])
    if config.sync_batchnorm and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimiser = _optimiser(model, config, world)
    run = _Run(model, model, optimiser, device, rank, world)
    if state is not None:
        optimiser.load_state_dict(state["optimizer"])
        run.start_epoch, run.step, run.history = state["epoch"], state["step"], list(state["history"])
        run.images = state.get("images")
    if world > 1:
        run.trainer = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    if config.compile:
        run.trainer = torch.compile(run.trainer)
    return run


def _loader(data: ImageFolderImages, config: PretrainConfig, epoch: int, world: int, gpu_decode: bool,
            device: torch.device) -> DataLoader:
    """Return the epoch's loader; its shuffling depends on (seed, epoch) only, so a resumed run repeats it."""
    generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
    sampler = DistributedSampler(data, seed=config.seed + epoch, drop_last=True) if world > 1 \
        else RandomSampler(data, generator=generator)
    return DataLoader(data, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                      num_workers=config.workers, generator=generator, pin_memory=device.type == "cuda",
                      persistent_workers=False, collate_fn=_as_list if gpu_decode else None)


def _views(batch, data: ImageFolderImages, gpu_augment, gpu_decode: bool, device: torch.device):
    """Return the two augmented views of a batch on `device` (channels-last on a GPU)."""
    if gpu_decode:
        view_1, view_2 = gpu_augment(decode_batch(batch, data.size, device), generator=None)
    elif gpu_augment is not None:
        view_1, view_2 = gpu_augment(batch.to(device, non_blocking=True), generator=None)
    else:
        view_1, view_2 = (v.to(device, non_blocking=True) for v in batch)
    if device.type == "cuda":
        view_1 = view_1.contiguous(memory_format=torch.channels_last)
        view_2 = view_2.contiguous(memory_format=torch.channels_last)
    return view_1, view_2


def _step(run: _Run, config: PretrainConfig, view_1: torch.Tensor, view_2: torch.Tensor, total_steps: int,
          warmup: int, epoch: int) -> torch.Tensor:
    """Take one optimiser step at the scheduled learning rate; return the loss."""
    scale = warmup_cosine(run.step, total_steps, warmup)
    for group in run.optimiser.param_groups:
        group["lr"] = group["base_lr"] * scale
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=precision(run.device) == "bfloat16"):
        loss = run.trainer(view_1, view_2)
    if not torch.isfinite(loss):
        out = Path(config.out)
        raise FloatingPointError(
            f"The loss became {loss.item()} at step {run.step} (epoch {epoch + 1}); stopping. The last good "
            f"checkpoint is {out if out.is_file() else 'not written yet'}. Lower the learning rate or check the data.")
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    run.step += 1
    return loss


def _log_step(run: _Run, config: PretrainConfig, loss: torch.Tensor, epoch: int, seen: int, tick: float) -> None:
    record = {"step": run.step, "epoch": epoch + 1, "loss": round(loss.item(), 6),
              "lr": run.optimiser.param_groups[0]["lr"], "images_per_s": round(seen / (time.perf_counter() - tick), 2)}
    run.history.append(record)
    with open(_log_path(config), "a") as f:
        f.write(json.dumps(record) + "\n")


def _log_path(config: PretrainConfig) -> Path:
    return Path(config.out).with_suffix(Path(config.out).suffix + ".log.jsonl")


def _start_log(config: PretrainConfig, history: list) -> None:
    """Start `<out>.log.jsonl` with the lines of the steps `history` holds (none for a new run): a
    resumed run does not repeat the lines of the steps it trains again."""
    save_text = "".join(json.dumps(record) + "\n" for record in history)
    atomic_write(_log_path(config), lambda tmp: tmp.write_text(save_text))


def pretrain(config: PretrainConfig, resume: bool = False) -> Path:
    """Pretrain `config.backbone` with the Barlow Twins loss on the images under `config.data`;
    return the checkpoint path. With `resume`, continue from the training state `<out>.state.pt`.

    Logs one JSON line every `log_every` steps (loss, learning rate, images/s) to
    `<out>.log.jsonl`. A NaN or infinite loss stops the run with `FloatingPointError`; the
    last good checkpoint (from the end of the previous epoch) stays in place.
    """
    run = _set_up(config, resume)
    # --augment gpu on a GPU: workers only read files; JPEGs are decoded and augmented on the device
    gpu_decode = config.augment == "gpu" and run.device.type == "cuda"
    data = ImageFolderImages(config.data, config.image_size, two_views=config.augment == "cpu", raw_bytes=gpu_decode,
                             views=config.views)
    if len(data) < config.batch_size * run.world:
        raise ValueError(f"--data {' '.join(config.data)} holds {len(data)} image(s), fewer than one batch "
                         f"({config.batch_size} x {run.world} process(es)): give more images or a smaller --batch-size.")
    images = data.listing() if run.rank == 0 else None  # the process that saves the state checks it
    if run.images is not None and images is not None and run.images != images:
        raise ValueError(f"resume: {config.out}.state.pt was trained on other images than {' '.join(config.data)} holds now "
                         "(their names or content differ); give the same images, or train anew.")
    if run.rank == 0:
        data.check_headers()
        _start_log(config, run.history)
    gpu_augment = BatchTwoViewAugment(config.image_size, views=config.views).to(run.device) if config.augment == "gpu" else None
    steps_per_epoch = max(1, len(data) // (config.batch_size * run.world))
    full = min(config.max_steps or config.epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    total_steps = max(1, round(config.budget * full))  # a shorter budget: the same schedule, fitted to fewer steps
    warmup = round(config.warmup_epochs * steps_per_epoch * config.budget)  # a shorter budget warms up as much shorter
    if run.rank == 0:
        log.info("Barlow Twins: %d images, %d steps an epoch, %d process(es) on %s, %s, %s augmentation", len(data),
                 steps_per_epoch, run.world, run.device, precision(run.device), config.augment)
    epochs_done = run.start_epoch
    for epoch in range(run.start_epoch, config.epochs):
        if run.step >= total_steps:
            break
        torch.manual_seed(config.seed * 100003 + epoch)  # the epoch's augmentations, like its shuffling
        run.trainer.train()
        tick, seen = time.perf_counter(), 0
        for batch in progress(_loader(data, config, epoch, run.world, gpu_decode, run.device),
                              desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                              disable=run.rank != 0):
            if run.step >= total_steps:
                break
            view_1, view_2 = _views(batch, data, gpu_augment, gpu_decode, run.device)
            loss = _step(run, config, view_1, view_2, total_steps, warmup, epoch)
            seen += len(view_1) * run.world
            if run.rank == 0 and (run.step % config.log_every == 0 or run.step == total_steps):
                _log_step(run, config, loss, epoch, seen, tick)
        if run.rank == 0:
            _save(run, config, epoch + 1, images=images)
        epochs_done = epoch + 1
        if run.world > 1:
            dist.barrier()
    if run.rank == 0:
        _save(run, config, epochs_done, finished=True, images=images)
    return Path(config.out)


def cached_pretrain(config: PretrainConfig, images: str) -> Path:
    """Return the checkpoint of `pretrain(config)`, trained once under `artifacts/pretrain/` and then read back.

    `images` is the fingerprint of what `config.data` holds: the run is keyed by it and by
    the settings (not by the folder's path); an interrupted run is resumed.
    """
    return cached_training("pretrain", config, {"images": images}, lambda c, resume: pretrain(c, resume),
                           _VERSION)[0]
