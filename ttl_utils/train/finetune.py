"""Fine-tuning an embedder on TTL pairs with InfoNCE or a triplet loss.

The model is a backbone with a projection head (`models.embedder.Embedder`) on the pooled features
of `layers` (by default `layer3` and `layer4`, each pooled in 4 x 4 cells, trained with
InfoNCE: the recipe chosen on pairs held out from training; see `ablation`).
`unfreeze` says how many of the backbone's last stages train (0: the head alone; 4:
everything; by default 1, as two gained nothing clear for twice the time), at
`backbone_lr`, lower than the head's `lr`. The frozen lower part, the *trunk*, runs once
and is cached (`trunk`); with `views=0` (or `unfreeze=4`) every step augments images
afresh and runs the whole network. The settings and what each profile makes of them are
in `recipes` (`FinetuneConfig.for_profile`).

The run goes in stages: `_set_up` (the model, the trunk's outputs, the optimiser, the state
resumed from), `_train_epoch`, `_validate` and `_select` (the checkpoint of the best epoch),
and `_save` (the training state).

Each epoch ends with R@k on the validation pairs; the best epoch is kept (ties broken by
the mean reciprocal rank; early stopping after `patience` epochs without gain) and written
to `out` in the checkpoint format that `evaluate --model` reads. The training state (current weights, optimiser, history)
goes to `<out>.state.pt` after every epoch, atomically, in the format every trainer shares
(`training_state`); `resume=True` continues from it
and reproduces an uninterrupted run, because every epoch's shuffling and view choice
depend only on `(seed, epoch)`. `keep_hub_bank` adds to a checkpoint its training pictures'
embeddings: the bank `evaluate`, `compare` and `find` correct for hubs with
(`evaluate.hubs.TrainingBank`); `finetune --out` and the pipeline's chosen model keep one.

>>> config = FinetuneConfig(out="runs/ft.pt", unfreeze=1, miner="semihard")   # doctest: +SKIP
>>> result = finetune(config, train_pairs, val_pairs)                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..data.pairs import PairSet
from ..data.pool import UnlabelledPool
from ..digests import source_digests
from ..evaluate.metrics import retrieval_metrics
from ..evaluate.ranking import rank_pairs
from ..models.backbones import build_backbone
from ..models.catalog import LAYERS
from ..models.checkpoints import load_checkpoint, save_checkpoint
from ..models.embedder import Embedder
from ..models.preprocessing import Preprocessing
from ..progress import progress
from ..runtime import loader_workers
from .augment import PairAugmentation
from .candidates import PoolSides, assignment_accuracy, candidate_index, mil_nce_loss, pseudo_pairs
from .losses import info_nce_loss, pair_triplet_loss
from .recipes import FinetuneConfig
from .state import cached_training, finished_run, load_state, save_state, state_path
from .trunk import top_forward, trunk_inputs, trunk_runner

__all__ = ["HUB_BANK_BYTES", "FinetuneResult", "build_model", "cached_finetune", "finetune", "finished_finetune",
           "keep_hub_bank", "zero_shot_reference"]

log = logging.getLogger(__name__)

# settings added after runs were cached, with the value those runs had: that value stays out of
# cache keys, so they are found
_LATER_SETTINGS = {"layers": ("layer4",), "grid": 0, "weights": "imagenet", "view_seed": None,
                   "unlabelled_keep": 0.25, "unlabelled_refresh": 2, "unlabelled_assign": "greedy",
                   "unlabelled_loss": "pseudo"}
_RESUMABLE_CHANGES = frozenset({"epochs", "patience", "cache"})  # what may differ on resume (besides where it runs)
HUB_BANK_BYTES = 64 * 2**20  # the most a checkpoint's hub bank takes (700 pairs at 22272 dimensions fit)
_VERSION = 2  # of the training code: a change of what it computes must bump it


@dataclass
class FinetuneResult:
    """What `finetune` returns: the best checkpoint, its epoch and validation metrics, the history."""

    checkpoint: Path
    best_epoch: int
    best: dict
    history: list[dict]
    embedder: Embedder


def build_model(config: FinetuneConfig) -> Embedder:
    """Return the embedder to fine-tune: `backbone` with its pretrained `weights` (or `init`'s backbone)
    and a new head."""
    if config.init:
        source = load_checkpoint(config.init)[0]
        backbone = source.backbone
        if source.layers != config.layers:
            log.info("Using the backbone of %s; its layers %s are replaced by %s", config.init, source.layers,
                     config.layers)
    else:
        backbone = build_backbone(config.backbone, config.weights)
    if not str(backbone.weights).endswith("+finetune"):  # reports and checkpoints say what the weights are
        backbone.weights = f"{backbone.weights}+finetune"
    head = {"kind": config.head}
    if config.head != "none":
        head.update(out_dim=config.out_dim, identity_init=config.identity_init and config.head == "linear")
        if config.head == "mlp":
            head.pop("identity_init")
    return Embedder(backbone, config.layers, head, config.grid).eval()


def zero_shot_reference(config: FinetuneConfig) -> Embedder:
    """Return what fine-tuning is measured against: the starting backbone's usual embedding, pooled
    `layer4` (an identity head changes nothing)."""
    return build_model(replace(config, layers=("layer4",), grid=0))


# --- one epoch -----------------------------------------------------------------------------------

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


def _cached_batches(inputs: dict[str, torch.Tensor], config: FinetuneConfig, epoch: int,
                    pseudo: tuple | None = None):
    """Yield `(left, right)` trunk outputs: a shuffled batch of pairs, one random augmented view of each image.

    `pseudo` = `(pool inputs, left ids, right ids)` adds pseudo-pairs of an unlabelled pool, shuffled
    in with the labelled pairs (numbered after them).
    """
    g = _epoch_generator(config, epoch)
    n_labelled, n_views = inputs["left"].shape[:2]
    n = n_labelled + (len(pseudo[1]) if pseudo is not None else 0)
    order = torch.randperm(n, generator=g)
    for s in range(0, n - config.batch_size + 1 if n >= config.batch_size else 1, config.batch_size):
        idx = order[s:s + config.batch_size]
        if n_views > 1:
            view_l = torch.randint(1, n_views, (len(idx),), generator=g)
            view_r = torch.randint(1, n_views, (len(idx),), generator=g)
        else:
            view_l = view_r = torch.zeros(len(idx), dtype=torch.long)
        if pseudo is None:
            yield inputs["left"][idx, view_l].float(), inputs["right"][idx, view_r].float()
            continue
        pool, left_ids, right_ids = pseudo
        own, extra = idx < n_labelled, idx >= n_labelled
        picked = idx[extra] - n_labelled
        yield (torch.cat([inputs["left"][idx[own], view_l[own]], pool["left"][left_ids[picked], view_l[extra]]]).float(),
               torch.cat([inputs["right"][idx[own], view_r[own]], pool["right"][right_ids[picked], view_r[extra]]]).float())


def batches_per_epoch(n_pairs: int, batch_size: int) -> int:
    """How many batches an epoch of `n_pairs` (pseudo-pairs included) has: whole batches only, or one
    smaller batch when there are fewer pairs than a batch (`_cached_batches`, `_online_batches`)."""
    return max(1, n_pairs // batch_size)


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
    loader = DataLoader(_PairViews(pairs, config, epoch), batch_size=config.batch_size, shuffle=True, generator=g,
                        drop_last=len(pairs) >= config.batch_size, num_workers=loader_workers(config.workers))
    forward = trunk_runner(embedder, config, device)  # the frozen stages, exported once for the run
    for left, right in loader:
        yield forward(left), forward(right)


@dataclass
class _Run:
    """What a fine-tuning run carries from stage to stage."""

    embedder: Embedder
    optimiser: torch.optim.Optimizer
    train_inputs: dict | None
    val_inputs: dict | None
    device: torch.device
    data: dict
    start_epoch: int = 0
    history: list = None
    best: dict = None
    best_epoch: int = 0
    bad_epochs: int = 0
    trained_on: tuple = ()  # digests of the training pairs (`PairSet.pair_digests`)
    pool_inputs: dict | None = None  # an unlabelled pool's trunk outputs, its candidate lists, the pseudo-pairs
    pool_index: torch.Tensor | None = None
    pseudo: tuple | None = None
    pool_bank: torch.Tensor | None = None  # with `unlabelled_loss="mil"`: the pool's right pictures, embedded


def _mil_batches(run: _Run, config: FinetuneConfig, epoch: int):
    """Yield, endlessly, `(queries, in_bag)`: the trunk outputs of `batch_size` of the pool's left pictures
    (one random augmented view each) and the mask of their candidates among the pool's right pictures
    (`batch x n_right`).

    The pictures come from one seeded stream of passes (each pass every picture with a candidate once,
    shuffled), which each epoch enters where the previous one left it (an epoch takes a pool batch
    for each labelled batch): over the epochs every picture is seen, and a resumed run draws the same."""
    index, inputs = run.pool_index, run.pool_inputs
    usable = torch.nonzero((index >= 0).any(dim=1)).flatten()
    if len(usable) == 0:
        raise ValueError("No left picture of the unlabelled pool has a candidate left: MIL-NCE has nothing to learn from.")
    n_views, n_right = inputs["left"].shape[1], len(inputs["right"])
    size = config.batch_size
    per_epoch = max(1, len(run.train_inputs["left"]) // size) if run.train_inputs is not None else 1

    def shuffled(number: int) -> torch.Tensor:
        return usable[torch.randperm(len(usable), generator=torch.Generator().manual_seed(
            config.seed * 100003 + 50021 + number))]

    number, offset = divmod(epoch * per_epoch * size, len(usable))
    waiting = shuffled(number)[offset:]
    g = _epoch_generator(config, epoch + 70001)  # the views
    while True:
        while len(waiting) < size:
            number += 1
            waiting = torch.cat([waiting, shuffled(number)])
        ids, waiting = waiting[:size], waiting[size:]
        views = torch.randint(1, n_views, (size,), generator=g) if n_views > 1 else torch.zeros(size, dtype=torch.long)
        rows = index[ids]
        valid = rows >= 0
        in_bag = torch.zeros(size, n_right, dtype=torch.bool)
        in_bag[torch.nonzero(valid)[:, 0], rows[valid]] = True
        yield inputs["left"][ids, views].float(), in_bag


def _train_epoch(run: _Run, config: FinetuneConfig, train: PairSet, epoch: int) -> dict:
    """Train one epoch; return its history record (the mean training loss)."""
    _train_mode(run.embedder)
    pseudo = (run.pool_inputs, *run.pseudo) if run.pseudo is not None else None
    batches = _cached_batches(run.train_inputs, config, epoch, pseudo) if run.train_inputs is not None \
        else _online_batches(run.embedder, train, config, epoch, run.device)
    mil = _mil_batches(run, config, epoch) if run.pool_bank is not None else None
    losses, mil_losses = [], []
    total = batches_per_epoch(len(train) + (len(run.pseudo[0]) if run.pseudo is not None else 0), config.batch_size)
    for left, right in progress(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                                total=total):
        loss = _loss(top_forward(run.embedder, left.to(run.device), config),
                     top_forward(run.embedder, right.to(run.device), config), config)
        if mil is not None:  # a batch of the pool's left pictures beside each labelled batch
            queries, in_bag = next(mil)
            extra = mil_nce_loss(top_forward(run.embedder, queries.to(run.device), config), run.pool_bank,
                                 in_bag.to(run.device), config.temperature)
            mil_losses.append(extra.item())
            loss = loss + extra
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The loss became {loss.item()} in epoch {epoch + 1}; lower the learning rate.")
        run.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        run.optimiser.step()
        losses.append(loss.item())
    return {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
            **({"mil_loss": float(np.mean(mil_losses))} if mil_losses else {})}


# --- validation and selection --------------------------------------------------------------------

@torch.no_grad()
def _clean_embeddings(embedder: Embedder, inputs: dict[str, torch.Tensor], config: FinetuneConfig,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the embeddings of the clean views (view 0) of `inputs`' left and right pictures."""
    embedder.eval()
    return tuple(torch.cat([top_forward(embedder, inputs[side][i:i + 128, 0].float().to(device), config).cpu()
                            for i in range(0, len(inputs[side]), 128)]) for side in ("left", "right"))


def _validate(embedder: Embedder, inputs: dict[str, torch.Tensor], config: FinetuneConfig,
              device: torch.device) -> dict:
    """Return R@1, R@select_k and the MRR on the validation pairs, both directions pooled."""
    left, right = _clean_embeddings(embedder, inputs, config, device)
    metrics = retrieval_metrics(rank_pairs("", left, right, candidates=False).both_ways(), (1, config.select_k))
    return {"val_r1": metrics["R@1"], f"val_r{config.select_k}": metrics[f"R@{config.select_k}"],
            "val_mrr": metrics["MRR"]}


def _refresh_pseudo(run: _Run, config: FinetuneConfig) -> dict:
    """Assign the pool's left pictures to their candidates with the current model (`candidates.pseudo_pairs`);
    return what to record: how many pseudo-pairs, and how accurate the same assignment is on the
    validation pairs, each partner hidden among 19 foils."""
    left, right = _clean_embeddings(run.embedder, run.pool_inputs, config, run.device)
    run.pseudo = pseudo_pairs(left, right, run.pool_index, config.unlabelled_keep, config.unlabelled_assign)
    record = {"pseudo_pairs": len(run.pseudo[0])}
    if run.val_inputs is not None and len(run.val_inputs["left"]) >= 20:
        found = assignment_accuracy(*_clean_embeddings(run.embedder, run.val_inputs, config, run.device),
                                    config.unlabelled_keep, seed=config.seed,
                                    method=config.unlabelled_assign)
        record.update(pseudo_val_accuracy=round(found["accuracy"], 4), pseudo_val_accuracy_all=round(found["accuracy_all"], 4))
    log.info("Pseudo-pairs from the unlabelled pool: %s", json.dumps(record))
    return record


@torch.no_grad()
def _refresh_bank(run: _Run, config: FinetuneConfig) -> dict:
    """Embed the pool's right pictures (clean views) with the current model: the candidates and negatives
    each MIL-NCE query of the epoch is scored against (no gradient flows into them)."""
    run.embedder.eval()
    right = run.pool_inputs["right"]
    run.pool_bank = torch.cat([top_forward(run.embedder, right[i:i + 128, 0].float().to(run.device), config)
                               for i in range(0, len(right), 128)])
    return {"mil_bank": len(right)}


def _select(run: _Run, config: FinetuneConfig, record: dict) -> None:
    """Keep `record`'s epoch when it beats the best so far (R@k, ties broken by the MRR): write the checkpoint."""
    key = f"val_r{config.select_k}"
    reference = run.best or run.history[0]
    # R@k decides; on a tie (R@k saturates on easy data) the mean reciprocal rank does
    if run.val_inputs is None or (record[key], record["val_mrr"]) > (reference[key], reference["val_mrr"]):
        run.best, run.best_epoch, run.bad_epochs = record, record["epoch"], 0
        _write_checkpoint(config, run.embedder, run.data, record, run.trained_on)
    else:
        run.bad_epochs += 1


def _write_checkpoint(config: FinetuneConfig, embedder: Embedder, data: dict, record: dict,
                      trained_on: tuple[str, ...]) -> None:
    """Write the checkpoint; it records the digests of the pairs it was trained on (`evaluate` warns
    when it is evaluated on any of them)."""
    save_checkpoint(config.out, embedder, Preprocessing.for_size(config.image_size), finetune={
        "config": asdict(config), "data": data, "epoch": record["epoch"], "metrics": record,
        "trained_on": list(trained_on)})


def _save(run: _Run, config: FinetuneConfig, epoch: int, finished: bool = False) -> None:
    save_state(config, epoch, run.history, finished, state_dict=run.embedder.state_dict(),
               optimizer=run.optimiser.state_dict(), data=run.data, best=run.best, best_epoch=run.best_epoch,
               bad_epochs=run.bad_epochs, pseudo=[ids.tolist() for ids in run.pseudo] if run.pseudo is not None else None)


# --- set-up, the loop, the cached run ------------------------------------------------------------

def _set_up(config: FinetuneConfig, train: PairSet, val: PairSet | None, resume: bool,
            pool: UnlabelledPool | None = None) -> _Run:
    """Return a run ready for its first epoch: the model, the trunk's outputs (an unlabelled pool's too),
    the optimiser, and the state it resumes from (or the zero-shot validation as epoch 0)."""
    if len(train) < 2:
        raise ValueError(f"Fine-tuning needs at least 2 training pairs, got {len(train)}.")
    if pool is not None and pool.candidates is None:
        raise ValueError(f"The unlabelled pool {pool.root} has no candidates.csv: learning from it needs each left "
                         "picture's candidate right pictures.")
    if pool is not None and not config.cached:
        raise ValueError("Learning from an unlabelled pool needs cached views (--views 1 or more, --unfreeze 3 or less).")
    state = load_state(config, _RESUMABLE_CHANGES, later=_LATER_SETTINGS) if resume else None
    data = _data_key(train, val, pool)
    if state is not None and state.get("data") != data:
        saved = state.get("data") or {}
        differs = [f"{part} pairs {saved.get(part)} (now {data.get(part)})" for part in {**saved, **data}
                   if saved.get(part) != data.get(part)]
        raise ValueError(f"resume: {state_path(config.out)} was trained on other data: " + ", ".join(differs)
                         + " (fingerprints of the images' content); give the same --data and --split, or train anew.")
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    embedder = build_model(config)
    # the trunk's outputs come from the initial weights, which the trunk keeps
    train_inputs = trunk_inputs(embedder, train, config, augmented=True, device=device) if config.cached else None
    val_inputs = trunk_inputs(embedder, val, config, augmented=False, device=device) if val is not None else None
    embedder.to(device)
    optimiser = torch.optim.AdamW(_trainable(embedder, config), weight_decay=config.weight_decay)
    run = _Run(embedder, optimiser, train_inputs, val_inputs, device, data, history=[], best={},
               trained_on=train.pair_digests())
    if pool is not None:
        run.pool_inputs = _pool_inputs(embedder, pool, config, device)
        run.pool_index = candidate_index(pool.candidates, pool.left, pool.right)
        if not bool((run.pool_index >= 0).any()):
            raise ValueError(f"No left picture of the unlabelled pool {pool.root} has a candidate left: nothing to learn "
                             "from.")
    if state is not None:
        embedder.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimizer"])
        run.start_epoch, run.history = state["epoch"], list(state["history"])
        run.best, run.best_epoch, run.bad_epochs = dict(state["best"]), state["best_epoch"], state["bad_epochs"]
        if state.get("pseudo") is not None and pool is not None and config.unlabelled_loss == "pseudo":
            run.pseudo = tuple(torch.tensor(ids, dtype=torch.long) for ids in state["pseudo"])
    else:
        initial = _validate(embedder, val_inputs, config, device) if val_inputs is not None else {}
        run.history.append({"epoch": 0, "train_loss": None, **initial, "seconds": 0.0})
        log.info("Before training: %s", json.dumps(run.history[0]))
    return run


def _pool_inputs(embedder: Embedder, pool: UnlabelledPool, config: FinetuneConfig, device: torch.device) -> dict:
    """Return the trunk's outputs of `pool`'s pictures, computed (and cached) for the whole pool it was cut
    from, so that pools cut differently (a fold's near-copies left out) share them."""
    whole = pool.base or pool
    found = trunk_inputs(embedder, PoolSides(whole.left, whole.right, whole.fingerprint), config, augmented=True,
                         device=device)
    if whole is pool:
        return found
    for side in ("left", "right"):
        place = {path: i for i, path in enumerate(getattr(whole, side))}
        found[side] = found[side][torch.tensor([place[path] for path in getattr(pool, side)], dtype=torch.long)]
    return found


def finetune(config: FinetuneConfig, train: PairSet, val: PairSet | None = None, resume: bool = False,
             pool: UnlabelledPool | None = None) -> FinetuneResult:
    """Fine-tune on the pairs `train`, select the epoch on `val` (or keep the last without it);
    return the result, whose checkpoint is `config.out`. See the module doc.

    With an unlabelled `pool` that has candidate lists, its pseudo-pairs join the training pairs
    (`candidates.pseudo_pairs`: the top `unlabelled_keep` share by margin, re-assigned by the current
    model every `unlabelled_refresh` epochs), or with `unlabelled_loss="mil"` each labelled batch
    comes with a batch of its left pictures scored by MIL-NCE against its right pictures embedded at
    the start of the epoch (`_mil_batches`, `_refresh_bank`; added to the labelled loss at weight 1)."""
    run = _set_up(config, train, val, resume, pool)
    log.info("Fine-tuning %s (%d stages unfrozen, head %s on %s, %s loss%s) on %d pairs", run.embedder.backbone.name,
             config.unfreeze, config.head,
             "+".join(config.layers) + (f" in {config.grid}x{config.grid} cells" if config.grid else ""), config.loss,
             f", {config.miner} miner" if config.loss == "triplet" else "", len(train))
    if pool is not None and config.unlabelled_loss == "mil":
        log.info("Also learning from %d unlabelled left pictures: MIL-NCE over each one's candidates against the "
                 "pool's %d right pictures, embedded anew every epoch",
                 int((run.pool_index >= 0).any(dim=1).sum()), len(pool.right))
    elif pool is not None:
        log.info("Also learning from %d unlabelled left pictures: pseudo-pairs by the %s assignment, the most "
                 "confident %.0f%% kept, re-assigned every %d epoch(s)", len(pool.left), config.unlabelled_assign,
                 100 * config.unlabelled_keep, config.unlabelled_refresh)
    for epoch in range(run.start_epoch, config.epochs):
        if run.val_inputs is not None and run.bad_epochs >= config.patience:
            log.info("Stopping early: no gain in R@%d for %d epochs", config.select_k, config.patience)
            break
        tick = time.perf_counter()
        if pool is not None and config.unlabelled_loss == "mil":
            refreshed = _refresh_bank(run, config)  # every epoch: a resumed run is the same run
        else:
            refreshed = _refresh_pseudo(run, config) if pool is not None and (
                epoch % config.unlabelled_refresh == 0 or run.pseudo is None) else {}
        record = {**_train_epoch(run, config, train, epoch), **refreshed}
        if run.val_inputs is not None:
            record.update(_validate(run.embedder, run.val_inputs, config, run.device))
        record["seconds"] = round(time.perf_counter() - tick, 2)
        run.history.append(record)
        log.info(json.dumps(record))
        _select(run, config, record)
        _save(run, config, epoch + 1)
    if run.best_epoch == 0:  # validation never improved on the starting point: keep that
        _write_checkpoint(config, build_model(config), run.data, run.history[0], ())  # untrained
        run.best = run.history[0]
    _save(run, config, len(run.history) - 1, finished=True)
    final, _, _ = load_checkpoint(config.out, run.device)
    return FinetuneResult(Path(config.out), run.best_epoch, run.best, run.history, final)


def keep_hub_bank(checkpoint: str | Path, config: FinetuneConfig, train: PairSet,
                  most_bytes: int = HUB_BANK_BYTES) -> dict[str, torch.Tensor] | None:
    """Add to a fine-tuned `checkpoint` the bank `evaluate`, `compare` and `find` correct for hubs with
    (`evaluate.hubs.TrainingBank`): the unit embeddings of the clean views of its training pairs
    `train` (their trunk outputs, cached), at most `most_bytes` in float16 (pairs drawn with the
    run's seed). Written atomically once; return the bank (None when the run has no cached views)."""
    embedder, preprocessing, extra = load_checkpoint(checkpoint)
    if "pictures" in (extra.get("hub_bank") or {}):
        return extra["hub_bank"]
    if not config.cached:
        return None
    # the trunk's outputs as training computed them (from the initial weights): read from its cache, or
    # without one, only the clean views computed
    inputs = trunk_inputs(build_model(config), train, config, augmented=config.cache)
    left, right = _clean_embeddings(embedder, inputs, config, torch.device("cpu"))
    most = max(1, most_bytes // (2 * 2 * left.shape[1]))
    if len(left) > most:
        keep = torch.randperm(len(left), generator=torch.Generator().manual_seed(config.seed))[:most].sort().values
        left, right = left[keep], right[keep]
    bank = {side: F.normalize(vectors.float(), dim=1).half() for side, vectors in (("left", left), ("right", right))}
    # the content digests of every training picture: `find` tells a gallery that holds them
    bank["pictures"] = source_digests([*train.left, *train.right], desc="Reading the training pictures")
    kept = {key: value for key, value in extra.items() if key != "hub_bank"}  # one from before digests were kept
    save_checkpoint(checkpoint, embedder, preprocessing, **kept, hub_bank=bank)
    return bank


def _data_key(train: PairSet, val: PairSet | None, pool: UnlabelledPool | None = None) -> dict:
    key = {"train": train.fingerprint, "val": val.fingerprint if val is not None else None}
    if pool is not None:  # runs without a pool keep the key they always had
        key["unlabelled"] = pool.fingerprint
    return key


_POOL_SETTINGS = ("unlabelled_keep", "unlabelled_refresh", "unlabelled_assign", "unlabelled_loss")


def _without_pool_settings(config: FinetuneConfig, pool: UnlabelledPool | None) -> FinetuneConfig:
    """Return `config` with the settings of learning from a pool at their defaults when there is no pool:
    they change nothing then, so they must not key a second copy of the same run."""
    if pool is not None:
        return config
    return replace(config, **{name: FinetuneConfig.__dataclass_fields__[name].default for name in _POOL_SETTINGS})


def finished_finetune(config: FinetuneConfig, train: PairSet, val: PairSet | None = None,
                      pool: UnlabelledPool | None = None) -> Path | None:
    """Return the checkpoint of `cached_finetune(config, train, val, pool)` if that run is finished, else
    None (nothing is trained)."""
    config = _without_pool_settings(config, pool)
    return finished_run("finetune", config, _data_key(train, val, pool), _VERSION, omit=_LATER_SETTINGS)


def cached_finetune(config: FinetuneConfig, train: PairSet, val: PairSet | None = None,
                    pool: UnlabelledPool | None = None) -> FinetuneResult:
    """Return `finetune`'s result for `config` on these pairs, trained once and then read back.

    The checkpoint goes under `artifacts/finetune/`, keyed by the settings (except where and
    how fast it runs) and the data (`state.cached_training`); an interrupted run is
    resumed. Once a run is finished, its training state keeps only the history. Without a `pool`, the
    settings of learning from one are ignored (a run with other values is the same run).
    """
    config = _without_pool_settings(config, pool)
    out, saved = cached_training("finetune", config, _data_key(train, val, pool),
                                 lambda c, resume: finetune(c, train, val, resume, pool),
                                 _VERSION, omit=_LATER_SETTINGS)
    return FinetuneResult(out, saved["best_epoch"], saved["best"], saved["history"], load_checkpoint(out)[0])
