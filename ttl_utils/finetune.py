"""Fine-tuning an embedder on TTL pairs with InfoNCE or a triplet loss.

The model is a backbone with a projection head (`models.Embedder`) on the pooled features
of `layers` (by default `layer3` and `layer4`, each pooled in 4 x 4 cells, trained with
InfoNCE: the recipe chosen on pairs held out from training; see `ablation`).
`unfreeze` says how many of the backbone's last stages train (0: the head alone; 4:
everything; by default 1, as two gained nothing clear for twice the time), at
`backbone_lr`, lower than the head's `lr`. The frozen lower part is the *trunk*; what it
computes does not change during training, so by default it runs once: on the clean image
and on `views` augmented views of every training image (`PairAugmentation`), and each step
draws one cached view per image. With `unfreeze=0` the cache holds pooled feature vectors
and an epoch takes a fraction of a second on a CPU; with `unfreeze=1` it holds the
`layer3` maps and an epoch of 700 pairs takes about 15 s on 2 cores, with `unfreeze=2`
the `layer2` maps and about 32 s. With `views=0` (or `unfreeze=4`) every step augments
images afresh and runs the whole network.

Each epoch ends with R@k on the validation pairs; the best epoch is kept (ties broken by
the mean reciprocal rank; early stopping after `patience` epochs without gain) and written to `out` in the checkpoint format that
`evaluate --checkpoint` reads. The training state (current weights, optimiser, history)
goes to `<out>.state.pt` after every epoch, atomically; `resume=True` continues from it
and reproduces an uninterrupted run, because every epoch's shuffling and view choice
depend only on `(seed, epoch)`.

>>> config = FinetuneConfig(out="runs/ft.pt", unfreeze=1, miner="semihard")   # doctest: +SKIP
>>> result = finetune(config, train_pairs, val_pairs)                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .evaluation import model_fingerprint
from .losses import MINERS, info_nce_loss, pair_triplet_loss
from .models import LAYERS, Embedder, build_backbone, load_checkpoint, save_checkpoint
from .pairs import ImageSource, PairSet, open_rgb
from .progress import progress
from .retrieval import default_workers, mean_reciprocal_rank, rank_of_match, recall_at_k
from .storage import cache_path, load_torch, save_torch
from .transforms import PairAugmentation, Preprocessing

__all__ = ["FinetuneConfig", "FinetuneResult", "LOSSES", "build_model", "cached_finetune", "finetune",
           "physical_memory", "state_path", "trunk_inputs"]

log = logging.getLogger(__name__)

LOSSES = ("triplet", "infonce")
_LATER_SETTINGS = {"layers": ("layer4",), "grid": 0}  # settings added after runs were cached, with the value those runs had:
                                           # that value stays out of cache keys, so they are still found
_RESUMABLE_CHANGES = {"epochs", "patience", "device", "workers", "cache", "out"}  # what may differ on resume


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of `finetune`; the command line's flags have the same names."""

    out: str
    backbone: str = "efficientnet_lite0"
    init: str | None = None                # a checkpoint of this project (Barlow Twins, ...) instead of ImageNet
    unfreeze: int = 1                      # how many of the last backbone stages train (0-4)
    layers: tuple[str, ...] = ("layer3", "layer4")  # stages pooled (each L2-normalised, concatenated) under the head
    grid: int = 4                          # pool into grid x grid cells, the head on each (0: global pooling)
    head: str = "linear"                   # none | linear | mlp
    identity_init: bool = True             # start a linear head as the identity (the zero-shot model)
    out_dim: int | None = None             # head output size (default: the feature size)
    loss: str = "infonce"                  # infonce | triplet (held-out pairs favour InfoNCE: see ablation.py)
    miner: str = "semihard"                # all | semihard | hard (batch-hard), for the triplet loss
    margin: float = 0.2
    temperature: float = 0.05
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                       # the head's
    backbone_lr: float = 1e-4              # the unfrozen stages'
    weight_decay: float = 1e-4
    image_size: int = 224
    views: int = 4                         # cached augmented views per training image; 0: augment every step
    min_scale: float = 0.5                 # smallest crop, as a fraction of the image
    select_k: int = 20                     # early stopping watches validation R@select_k
    patience: int = 3
    seed: int = 0
    device: str = "cpu"
    workers: int | None = None
    cache: bool = True                     # keep the trunk's outputs under artifacts/finetune-inputs/

    def __post_init__(self) -> None:
        if not 0 <= self.unfreeze <= len(LAYERS):
            raise ValueError(f"unfreeze must be between 0 and {len(LAYERS)} stages, got {self.unfreeze}.")
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}.")
        if self.miner not in MINERS:
            raise ValueError(f"Unknown miner {self.miner!r}; choose one of: {', '.join(MINERS)}.")
        object.__setattr__(self, "layers", tuple(self.layers))  # a list from JSON or a saved state reads the same
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ValueError(f"layers must name stages among {', '.join(LAYERS)}; got {list(self.layers)}.")
        if 0 < self.unfreeze < len(LAYERS):
            cut = LAYERS[len(LAYERS) - 1 - self.unfreeze]  # the frozen trunk's last stage: its map is cached
            early = [layer for layer in self.layers if LAYERS.index(layer) < LAYERS.index(cut)]
            if early:
                raise ValueError(f"With unfreeze {self.unfreeze} the cached trunk ends at {cut}: layers {early} come "
                                 f"before it; unfreeze more stages or drop them.")
        if not 0 <= self.grid <= 7:
            raise ValueError(f"grid must be between 0 (global pooling) and 7 cells a side, got {self.grid}.")
        if self.unfreeze == 0 and self.head == "none":
            raise ValueError("With a frozen backbone (unfreeze 0) there is nothing to train: choose head linear or mlp.")
        if self.epochs < 1 or self.batch_size < 2 or self.views < 0:
            raise ValueError(f"Need epochs >= 1, batch_size >= 2 and views >= 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.views}.")

    @property
    def start(self) -> str | None:
        """The first trainable stage (None when only the head trains)."""
        return LAYERS[len(LAYERS) - self.unfreeze] if self.unfreeze else None

    @property
    def cached(self) -> bool:
        """Whether the trunk's outputs are computed once (else every step, on fresh views)."""
        return self.views > 0 and self.unfreeze < len(LAYERS)


@dataclass
class FinetuneResult:
    """What `finetune` returns: the best checkpoint, its epoch and validation metrics, the history."""

    checkpoint: Path
    best_epoch: int
    best: dict
    history: list[dict]
    embedder: Embedder


def state_path(out: str | Path) -> Path:
    """Return where the resumable training state of checkpoint `out` lives: `<out>.state.pt`."""
    out = Path(out)
    return out.with_name(out.name + ".state.pt")


def build_model(config: FinetuneConfig) -> Embedder:
    """Return the embedder to fine-tune: ImageNet `backbone` (or `init`'s backbone) and a new head."""
    if config.init:
        source = load_checkpoint(config.init)[0]
        backbone = source.backbone
        if source.layers != config.layers:
            log.info("Using the backbone of %s; its layers %s are replaced by %s", config.init, source.layers,
                     config.layers)
    else:
        backbone = build_backbone(config.backbone, "imagenet")
    if not str(backbone.weights).endswith("+finetune"):  # reports and checkpoints say what the weights are
        backbone.weights = f"{backbone.weights}+finetune"
    head = {"kind": config.head}
    if config.head != "none":
        head.update(out_dim=config.out_dim, identity_init=config.identity_init and config.head == "linear")
        if config.head == "mlp":
            head.pop("identity_init")
    return Embedder(backbone, config.layers, head, config.grid).eval()


# --- the frozen trunk and the trainable top -------------------------------------------------------

def _trunk(embedder: Embedder, images: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    """Return what the frozen part computes from normalised images: the input of the trainable part."""
    if config.unfreeze == len(LAYERS):
        return images
    with torch.no_grad():
        if config.unfreeze == 0:
            return embedder.pooled_features(images)
        before = LAYERS[LAYERS.index(config.start) - 1]
        return embedder.backbone(images, (before,))[before]


def _top(embedder: Embedder, inputs: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    """Return L2-normalised embeddings from the trunk's outputs."""
    if config.unfreeze == 0:
        return embedder.embed_features(inputs)
    return embedder(inputs, start=config.start)


class _Views(Dataset):
    """Image `i`, clean (view 0) or augmented (view v > 0) with a seed fixed by (seed, v, i)."""

    def __init__(self, sources: list[ImageSource], view_ids: list[int], config: FinetuneConfig, salt: int = 0):
        self.sources, self.view_ids, self.salt = sources, view_ids, salt
        self.clean = Preprocessing.for_size(config.image_size)
        self.augment = PairAugmentation(config.image_size, config.min_scale)
        self.seed = config.seed

    def __len__(self) -> int:
        return len(self.sources) * len(self.view_ids)

    def __getitem__(self, k: int) -> torch.Tensor:
        i, v = divmod(k, len(self.view_ids))
        view = self.view_ids[v]
        image = open_rgb(self.sources[i])
        if view == 0:
            return self.clean(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.salt, view, i)) % 2**62)
            return self.augment(image)


def physical_memory() -> int | None:
    """Return this machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _allocate(shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Return an empty float16 tensor for the trunk's outputs, after checking that it fits in memory."""
    size = int(np.prod(shape)) * 2
    log.info("%s: %s float16 values, %.2f GB", what, " x ".join(map(str, shape)), size / 2**30)
    total = physical_memory()
    if total is not None and size > 0.6 * total:
        raise ValueError(f"{what} would take {size / 2**30:.1f} GB, more than 60% of this machine's "
                         f"{total / 2**30:.0f} GB: use fewer --views (0 augments every step instead of caching), "
                         "a smaller --image-size, or --unfreeze 0 (pooled features only).")
    return torch.empty(shape, dtype=torch.float16)


def _run_trunk(embedder: Embedder, sources: list[ImageSource], view_ids: list[int], config: FinetuneConfig,
               device: torch.device, desc: str, salt: int = 0) -> torch.Tensor:
    """Return the trunk's outputs for every image and view: `N x V x ...`, float16 on the CPU."""
    workers = default_workers() if config.workers is None else config.workers
    loader = DataLoader(_Views(sources, view_ids, config, salt), batch_size=32, num_workers=workers)
    out, filled = None, 0
    for batch in progress(loader, desc=desc, unit="batch", leave=False):
        result = _trunk(embedder, batch.to(device), config).half().cpu()
        if out is None:  # filled in place: no second copy of what may be gigabytes
            out = _allocate((len(sources) * len(view_ids), *result.shape[1:]), desc)
        out[filled:filled + len(result)] = result
        filled += len(result)
    return out.reshape(len(sources), len(view_ids), *out.shape[1:])


def _cut(unfreeze: int) -> str:
    """Where the trunk ends: `pooled` (features), a stage name (its feature map), or `images`."""
    return "pooled" if unfreeze == 0 else "images" if unfreeze == len(LAYERS) else LAYERS[len(LAYERS) - 1 - unfreeze]


def _continue_trunk(embedder: Embedder, stored: torch.Tensor, cut: str, unfreeze: int) -> torch.Tensor:
    """Run the stages between the stored outputs at stage `cut` and the end of `unfreeze`'s trunk."""
    start = LAYERS[LAYERS.index(cut) + 1]
    target = _cut(unfreeze)
    flat = stored.flatten(0, 1)
    out, filled = None, 0
    with torch.no_grad():
        for chunk in flat.split(64):
            chunk = chunk.float()
            result = embedder.pooled_features(chunk, start=start) if target == "pooled" \
                else embedder.backbone(chunk, (target,), start=start)[target]
            if out is None:
                out = _allocate((len(flat), *result.shape[1:]), f"Trunk outputs at {target}")
            out[filled:filled + len(result)] = result.half()
            filled += len(result)
    return out.reshape(*stored.shape[:2], *out.shape[1:])


def trunk_inputs(embedder: Embedder, pairs: PairSet, config: FinetuneConfig, augmented: bool,
                 device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Return `{"left", "right"}` trunk outputs of `pairs` (`N x V x ...`): view 0 is the clean image,
    views 1.. are augmented when `augmented`.

    With `config.cache` they are kept under `artifacts/finetune-inputs/`; a trunk that ends
    later is derived from the cached outputs of one that ends earlier (unfreeze 2 -> 1 -> 0),
    which costs a fraction of running it on the images again.
    """
    device = torch.device(device)
    view_ids = list(range(config.views + 1)) if augmented else [0]

    def key(unfreeze: int) -> dict:
        described = {"model": model_fingerprint(embedder.backbone), "backbone": embedder.backbone.name,
                     "cut": _cut(unfreeze), "image_size": config.image_size, "views": view_ids,
                     "min_scale": config.min_scale, "seed": config.seed, "data": pairs.fingerprint, "version": 1}
        if unfreeze == 0:  # pooled features also depend on the layers
            described["layers"] = list(embedder.layers)
            if embedder.grid:
                described["grid"] = embedder.grid
        return described

    path = cache_path("finetune-inputs", **key(config.unfreeze))
    if config.cache and path.is_file():
        log.info("Loaded the cached trunk outputs from %s", path)
        return load_torch(path)
    embedder.to(device).eval()
    usable = [u for u in range(config.unfreeze + 1, len(LAYERS))  # a pooled cut needs every layer after the stored one
              if config.unfreeze > 0 or all(LAYERS.index(layer) >= LAYERS.index(_cut(u)) for layer in embedder.layers)]
    earlier = [cache_path("finetune-inputs", **key(u)) for u in usable]
    source = next((p for p in earlier if p.is_file()), None) if config.cache else None
    if source is not None:
        cut = _cut(usable[earlier.index(source)])
        log.info("Deriving the trunk outputs from the cached %s maps in %s", cut, source)
        stored = load_torch(source)
        result = {side: _continue_trunk(embedder, stored[side], cut, config.unfreeze) for side in ("left", "right")}
    else:
        result = {side: _run_trunk(embedder, list(getattr(pairs, side)), view_ids, config, device,
                                   desc=f"Frozen trunk, {side} images", salt=s)
                  for s, side in enumerate(("left", "right"))}
    if config.cache:
        save_torch(result, path)
    return result


# --- training ------------------------------------------------------------------------------------

def _trainable(embedder: Embedder, config: FinetuneConfig) -> list[dict]:
    for p in embedder.parameters():
        p.requires_grad_(False)
    groups = []
    head = list(embedder.head.parameters())
    if head:
        groups.append({"params": head, "lr": config.lr})
    stages = LAYERS[len(LAYERS) - config.unfreeze:]
    backbone = [p for layer in stages for module in embedder.backbone.stage_modules(layer) for p in module.parameters()]
    if backbone:
        groups.append({"params": backbone, "lr": config.backbone_lr})
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    return groups


def _train_mode(embedder: Embedder) -> None:
    # the backbone keeps its batch-norm statistics and no drop-connect (batches of 64 pairs are
    # too small and too alike to re-estimate them); only the head's batch norm, if any, learns
    embedder.eval()
    embedder.head.train()


def _loss(left: torch.Tensor, right: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    if config.loss == "infonce":
        return info_nce_loss(left, right, config.temperature)
    return pair_triplet_loss(left, right, config.miner, config.margin)


def _epoch_generator(config: FinetuneConfig, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(config.seed * 100003 + epoch)


def _cached_batches(inputs: dict[str, torch.Tensor], config: FinetuneConfig, epoch: int):
    """Yield `(left, right)` trunk outputs: a shuffled batch of pairs, one random augmented view of each image."""
    g = _epoch_generator(config, epoch)
    n, n_views = inputs["left"].shape[:2]
    order = torch.randperm(n, generator=g)
    for s in range(0, n - config.batch_size + 1 if n >= config.batch_size else 1, config.batch_size):
        idx = order[s:s + config.batch_size]
        if n_views > 1:
            view_l = torch.randint(1, n_views, (len(idx),), generator=g)
            view_r = torch.randint(1, n_views, (len(idx),), generator=g)
        else:
            view_l = view_r = torch.zeros(len(idx), dtype=torch.long)
        yield inputs["left"][idx, view_l].float(), inputs["right"][idx, view_r].float()


class _PairViews(Dataset):
    """Pair `i` as two freshly augmented images, seeded by (seed, epoch, i)."""

    def __init__(self, pairs: PairSet, config: FinetuneConfig, epoch: int):
        self.pairs, self.seed, self.epoch = pairs, config.seed, epoch
        self.augment = PairAugmentation(config.image_size, config.min_scale)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.epoch, i)) % 2**62)
            return self.augment(self.pairs.left_image(i)), self.augment(self.pairs.right_image(i))


def _online_batches(embedder: Embedder, pairs: PairSet, config: FinetuneConfig, epoch: int, device: torch.device):
    g = _epoch_generator(config, epoch)
    workers = default_workers() if config.workers is None else config.workers
    loader = DataLoader(_PairViews(pairs, config, epoch), batch_size=config.batch_size, shuffle=True, generator=g,
                        drop_last=len(pairs) >= config.batch_size, num_workers=workers)
    for left, right in loader:
        yield _trunk(embedder, left.to(device), config), _trunk(embedder, right.to(device), config)


@torch.no_grad()
def _validate(embedder: Embedder, inputs: dict[str, torch.Tensor], config: FinetuneConfig,
              device: torch.device) -> dict:
    embedder.eval()
    left, right = ([_top(embedder, inputs[side][i:i + 128, 0].float().to(device), config).cpu()
                    for i in range(0, len(inputs[side]), 128)] for side in ("left", "right"))
    left, right = torch.cat(left), torch.cat(right)
    ranks = [rank_of_match(left, right), rank_of_match(right, left)]
    k = config.select_k
    return {"val_r1": float(np.mean([recall_at_k(r, 1) for r in ranks])),
            f"val_r{k}": float(np.mean([recall_at_k(r, k) for r in ranks])),
            "val_mrr": float(np.mean([mean_reciprocal_rank(r) for r in ranks]))}


def _save_state(config: FinetuneConfig, embedder: Embedder, optimiser, epoch: int, history: list,
                best: dict, best_epoch: int, bad_epochs: int, data: dict, finished: bool = False) -> None:
    save_torch({"config": asdict(config), "data": data, "epoch": epoch, "state_dict": embedder.state_dict(),
                "optimizer": optimiser.state_dict(), "history": history, "best": best, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "finished": finished}, state_path(config.out))


def finetune(config: FinetuneConfig, train: PairSet, val: PairSet | None = None, resume: bool = False) -> FinetuneResult:
    """Fine-tune on the pairs `train`, select the epoch on `val` (or keep the last without it);
    return the result, whose checkpoint is `config.out`. See the module doc."""
    device = torch.device(config.device)
    if len(train) < 2:
        raise ValueError(f"Fine-tuning needs at least 2 training pairs, got {len(train)}.")
    if resume and not state_path(config.out).is_file():
        raise FileNotFoundError(f"resume: no training state at {state_path(config.out)} to continue from.")
    torch.manual_seed(config.seed)
    embedder = build_model(config)
    preprocessing = Preprocessing.for_size(config.image_size)
    # the trunk's outputs come from the initial weights, which the trunk keeps
    train_inputs = trunk_inputs(embedder, train, config, augmented=True, device=device) if config.cached else None
    val_inputs = trunk_inputs(embedder, val, config, augmented=False, device=device) if val is not None else None
    embedder.to(device)
    optimiser = torch.optim.AdamW(_trainable(embedder, config), weight_decay=config.weight_decay)
    start_epoch, history, best, best_epoch, bad_epochs = 0, [], {}, 0, 0
    if resume:
        state = load_torch(state_path(config.out), map_location=device)
        if "optimizer" not in state:
            raise ValueError(f"resume: {state_path(config.out)} keeps only the summary of a finished cached run "
                             "(no weights or optimiser state to continue from); train it anew.")
        changed = {k: (v, getattr(config, k)) for k, v in state["config"].items()
                   if k not in _RESUMABLE_CHANGES and v != getattr(config, k, v)}
        if changed:
            raise ValueError(f"resume: {state_path(config.out)} was trained with other settings "
                             + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in changed.items()))
        embedder.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], list(state["history"])
        best, best_epoch, bad_epochs = dict(state["best"]), state["best_epoch"], state["bad_epochs"]
    else:
        initial = _validate(embedder, val_inputs, config, device) if val_inputs is not None else {}
        history.append({"epoch": 0, "train_loss": None, **initial, "seconds": 0.0})
        log.info("Before training: %s", json.dumps(history[0]))
    key = f"val_r{config.select_k}"
    data = {"train": train.fingerprint, "val": val.fingerprint if val is not None else None}
    log.info("Fine-tuning %s (%d stages unfrozen, head %s on %s, %s loss%s) on %d pairs", embedder.backbone.name,
             config.unfreeze, config.head,
             "+".join(config.layers) + (f" in {config.grid}x{config.grid} cells" if config.grid else ""), config.loss,
             f", {config.miner} miner" if config.loss == "triplet" else "", len(train))
    for epoch in range(start_epoch, config.epochs):
        if val_inputs is not None and bad_epochs >= config.patience:
            log.info("Stopping early: no gain in %s for %d epochs", key, config.patience)
            break
        tick = time.perf_counter()
        _train_mode(embedder)
        batches = _cached_batches(train_inputs, config, epoch) if train_inputs is not None \
            else _online_batches(embedder, train, config, epoch, device)
        losses = []
        bar = progress(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False)
        for left, right in bar:
            loss = _loss(_top(embedder, left.to(device), config), _top(embedder, right.to(device), config), config)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"The loss became {loss.item()} in epoch {epoch + 1}; lower the learning rate.")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
        if val_inputs is not None:
            record.update(_validate(embedder, val_inputs, config, device))
        record["seconds"] = round(time.perf_counter() - tick, 2)
        history.append(record)
        log.info(json.dumps(record))
        # R@k decides; on a tie (R@k saturates on easy data) the mean reciprocal rank does
        reference = best or history[0]
        improved = val_inputs is None or (record[key], record["val_mrr"]) > (reference[key], reference["val_mrr"])
        if improved:
            best, best_epoch, bad_epochs = record, epoch + 1, 0
            save_checkpoint(config.out, embedder, preprocessing, finetune={
                "config": asdict(config), "data": data, "epoch": epoch + 1, "metrics": record})
        else:
            bad_epochs += 1
        _save_state(config, embedder, optimiser, epoch + 1, history, best, best_epoch, bad_epochs, data)
    if best_epoch == 0:  # validation never improved on the starting point: keep that
        save_checkpoint(config.out, build_model(config), preprocessing,
                        finetune={"config": asdict(config), "data": data, "epoch": 0, "metrics": history[0]})
        best = history[0]
    _save_state(config, embedder, optimiser, len(history) - 1, history, best, best_epoch, bad_epochs, data,
                finished=True)
    final, _, _ = load_checkpoint(config.out, device)
    return FinetuneResult(Path(config.out), best_epoch, best, history, final)


def cached_finetune(config: FinetuneConfig, train: PairSet, val: PairSet | None = None) -> FinetuneResult:
    """Return `finetune`'s result for `config` on these pairs, trained once and then read back.

    The checkpoint goes under `artifacts/finetune/`, keyed by the settings (except `out`)
    and the data; an interrupted run is resumed. Notebooks use this, so that running one
    again costs seconds, and notebook 06 finds notebook 05's model. Once a run is finished,
    its training state keeps only the history (the last weights and the optimiser state,
    three times the checkpoint's size, are dropped: a run with other settings has another key).
    """
    settings = {k: v for k, v in asdict(config).items() if k not in ("out", "workers", "device")}
    for name, default in _LATER_SETTINGS.items():  # settings added later key a run only when changed,
        if settings[name] == default:               # so that earlier runs stay found
            del settings[name]
    settings["version"] = 2  # of the training code: a change of what it computes must bump it
    data = {"train": train.fingerprint, "val": val.fingerprint if val is not None else None}
    out = cache_path("finetune", settings=settings, data=data)
    config = replace(config, out=str(out))
    state = state_path(out)
    if state.is_file() and out.is_file():
        saved = load_torch(state)
        if saved.get("finished"):
            log.info("Loaded the fine-tuned model from %s", out)
            _keep_summary(state, saved)  # states cached before summaries were kept
            return FinetuneResult(out, saved["best_epoch"], saved["best"], saved["history"], load_checkpoint(out)[0])
    result = finetune(config, train, val, resume=state.is_file())
    _keep_summary(state, load_torch(state))
    return result


def _keep_summary(path: Path, saved: dict) -> None:
    """Rewrite a finished training state without its weights and optimiser state."""
    if "optimizer" in saved or "state_dict" in saved:
        save_torch({k: v for k, v in saved.items() if k not in ("optimizer", "state_dict")}, path)
