"""What each command of `python -m ttl_utils` does, once `cli` has parsed its flags.

One function a command (`evaluate_command(args)`, ...). Each loads only what it needs, so
`check` never imports a model. Human-readable lines are printed; `--json` content goes
through `write_json` (to the file, or alone to standard output with `--json -`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .config import Figures, artifacts_dir, figures_dir, torchrun_ranks
from .errors import UsageError
from .models.catalog import ModelSpec, parse_model

log = logging.getLogger("ttl_utils")

__all__ = ["check_command", "compare_command", "demo_command", "download_command", "env_command", "evaluate_command",
           "find_command", "finetune_command", "pretrain_command"]


def _usage(make: Callable[[], Any]) -> Any:
    """Return `make()`; a `ValueError` or `TypeError` it raises (settings that do not go together,
    a device that is not here) is a usage mistake."""
    try:
        return make()
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def _spec(text: str, flag: str) -> ModelSpec:
    """Return the MODEL `text` given to `flag`, or raise a usage error naming the flag."""
    try:
        return parse_model(text)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(f"{flag} {str(err).removeprefix('MODEL ')}") from None


def _output(path: Path | None, flag: str, example: str = "results.json") -> None:
    """Check before any work that `flag`'s file can be written: not a folder, and a file can be made in
    the nearest folder on its way (`storage.cannot_write`: permissions alone cannot tell)."""
    from .storage import cannot_write

    if path is None or str(path) == "-":
        return
    if path.is_dir() or str(path).endswith(("/", "\\")):
        raise UsageError(f"{flag} {path}: that is a folder; give a file name (e.g. {path / example}).")
    reason = cannot_write(path)
    if reason:
        raise UsageError(f"{flag} {path}: {reason}.")


def _figure_path(path: Path | None) -> Path | None:
    """Return `--figure`'s path without an image extension (`out.png` -> `out`: `.png` is added)."""
    known = (".png", ".pdf", ".jpg", ".jpeg", ".svg")
    return path.with_suffix("") if path is not None and path.suffix.lower() in known else path


def write_json(content: Any, args: argparse.Namespace) -> None:
    """Write `--json`'s content to its file (atomically), or alone to standard output for `-`."""
    from .storage import save_json

    if str(args.json) == "-":
        args.stdout.write(json.dumps(content, indent=1) + "\n")
        return
    save_json(content, args.json)
    print(f"Wrote {args.json}")


def _pairs(args: argparse.Namespace, split: str):
    """Return the pairs a command runs on: `--data` (checked image by image header), its `split`."""
    from .data.folders import resolve_pairs
    from .data.splits import split_pairs

    pairs = resolve_pairs(args.data, args.profile, validate="headers")
    return pairs if split == "all" else split_pairs(pairs)[split]


def _enough_pairs(pairs, split: str) -> None:
    """Refuse a pair set too small to rank (with the flag to change)."""
    if len(pairs) < 2:
        raise UsageError(f"{pairs.name} has {len(pairs)} pair(s) to rank: too few (at least 2)"
                         + (f"; its {split} split is small, use --split all." if split != "all" else "."))
    if len(pairs) < 20:
        log.warning("Warning: %s has only %d pairs to rank: R@k moves in steps of 1/%d and the CIs are wide.",
                    pairs.name, len(pairs), len(pairs))


def _warn_if_trained_on(name, extra: dict, pairs) -> None:
    """Warn when a checkpoint is judged on pairs it was fine-tuned on (its `extra` records them)."""
    from .evaluate.compare import training_overlap

    seen = training_overlap(extra, pairs)
    if seen:
        log.warning("Warning: %d of the %d evaluated pairs are among %s's training pairs, so its recalls are "
                    "optimistic. Judge it on pairs it never saw (a checkpoint trained with --split train, "
                    "on --split test).", seen, len(pairs), name)


def download_command(args: argparse.Namespace) -> None:
    if args.resnet50_weights:
        from .models.backbones import build_backbone, hub_weights_path
        from .pipeline import STUDY_WEIGHTS

        for weights in STUDY_WEIGHTS.values():
            build_backbone("resnet50", weights)  # fetched into torch.hub's cache, checksum checked
            print(f"ResNet-50 {weights} weights: {hub_weights_path('resnet50', weights)}")
        return
    from .data.download import download_ttl, install_archives

    if args.from_zip:
        install_archives(*args.from_zip, dest=args.dest)
    else:
        download_ttl(dest=args.dest)


def check_command(args: argparse.Namespace) -> None:
    from .data.folders import resolve_pairs

    start = time.perf_counter()
    pairs = resolve_pairs(args.data, args.profile, validate=True)
    seconds = time.perf_counter() - start
    print(f"OK: {pairs.describe()}; every image opened in {seconds:.1f} s; fingerprint {pairs.fingerprint}")


def demo_command(args: argparse.Namespace) -> None:
    from .data.demo import make_demo_pairs
    from .data.folders import write_pairs

    figure = _figure_path(args.figure)
    _output(figure, "--figure", "demo_pairs")
    pairs = make_demo_pairs(args.n_pairs, args.size, args.seed)
    if args.out:
        write_pairs(pairs, Path(args.out))
        print(f"Wrote {len(pairs)} demo pairs to {args.out} (official layout)")
    if figure:
        from .present.pictures import pair_grid
        from .present.plots import save_fig, set_theme

        set_theme()
        fig = pair_grid(pairs, indices=list(range(min(args.n_pairs, args.cols * args.rows))), cols=args.cols)
        stamp = f"demo data, {len(pairs)} pairs of {args.size} px, seed {args.seed}"
        print(f"Wrote {save_fig(fig, figure.name, Figures(figure.parent, stamp))}")


def _flipped(preprocessing, args: argparse.Namespace):
    """Return `preprocessing` with test-time flip averaging when `--flip` asked for it."""
    from dataclasses import replace

    return replace(preprocessing, flip=True) if getattr(args, "flip", False) else preprocessing


def _evaluated_model(args: argparse.Namespace):
    """Return `(embedder, preprocessing, extra)` of `evaluate --model` (a backbone's `--layers` and
    `--grid` applied; a checkpoint keeps its own)."""
    from .models.checkpoints import load_checkpoint
    from .models.embedder import build_embedder
    from .models.preprocessing import Preprocessing

    spec = _spec(args.model or args.profile.backbone, "--model")
    if spec.checkpoint is not None:
        if args.grid is not None or args.layers is not None:
            raise UsageError("--layers and --grid apply to a backbone's features; a checkpoint keeps those it was "
                             "trained with.")
        embedder, preprocessing, extra = load_checkpoint(spec.checkpoint)
        if args.image_size:
            preprocessing = Preprocessing.for_size(args.image_size, mean=preprocessing.mean, std=preprocessing.std)
        return embedder, preprocessing, extra
    embedder = build_embedder(spec.backbone, spec.weights, args.layers or ("layer4",), grid=args.grid or 0,
                              seed=0)  # random weights (none) drawn with a fixed seed: reproducible, cached
    return embedder, Preprocessing.for_size(args.image_size or args.profile.image_size), {}


def _hub_bank(args: argparse.Namespace, pairs, extra: dict | None = None, name: str = "the model", announce: bool = True):
    """Return the bank `evaluate`, `compare` and `find` rank by CSLS with: `--hub-bank FOLDER` (checked
    against the evaluated pairs); else, with hub correction on (`--hub-correction`, or the profile's
    default), the training pictures a fine-tuned checkpoint keeps (`extra`); else None. Says which,
    unless `announce` is False (the caller may yet decide not to use it)."""
    from .evaluate.hubs import TrainingBank

    if args.hub_bank is not None:
        if args.hub_correction is False:
            raise UsageError("--hub-bank and --no-hub-correction contradict each other: give one of them.")
        from .evaluate.compare import HubBank

        bank = HubBank(args.hub_bank, args.hub_k)
        if pairs is not None:
            bank.check(pairs)
    else:
        on = args.profile.hub_correction if args.hub_correction is None else args.hub_correction
        bank = TrainingBank.from_extra(extra, args.hub_k) if on else None
        if on and bank is None and args.hub_correction:
            raise UsageError(f"--hub-correction: {name} keeps no training pictures to correct with (a backbone, or a "
                             "checkpoint fine-tuned before banks were kept): give --hub-bank FOLDER.")
    if bank is not None and announce:
        print(f"{name}: {bank.describe()}")
    return bank


def evaluate_command(args: argparse.Namespace) -> None:
    from .evaluate.compare import evaluate_model
    from .evaluate.report import format_report, summary
    from .runtime import choose_device, inference_batch

    _output(args.json, "--json")
    device = _usage(lambda: choose_device(args.device))
    embedder, preprocessing, extra = _evaluated_model(args)
    preprocessing = _flipped(preprocessing, args)
    pairs = _pairs(args, args.split)
    _enough_pairs(pairs, args.split)
    _warn_if_trained_on(args.model, extra, pairs)
    bank = _hub_bank(args, pairs, extra, args.model or args.profile.backbone)
    report = evaluate_model(embedder, preprocessing, pairs, batch_size=inference_batch(args.profile, device, args.batch_size),
                            device=device, num_workers=args.workers, cache=not args.no_cache, bank=bank)
    print(format_report(report))
    if args.json:
        write_json(summary(report), args)


def compare_command(args: argparse.Namespace) -> None:
    from .evaluate.compare import compare_models, load_models
    from .evaluate.report import comparison_summary, comparison_table, format_comparison, unique_names, verdicts
    from .models.checkpoints import checkpoint_extra
    from .runtime import choose_device, inference_batch

    if args.positional:
        raise UsageError(f"models are given with --model: compare --model {' '.join(args.positional)}")
    if not args.model:
        raise UsageError("--model: give the models to compare, e.g. --model efficientnet_lite0 runs/ft.pt.")
    if args.names is not None and len(args.names) != len(args.model):
        raise UsageError(f"--names: give one name per model ({len(args.model)} models, {len(args.names)} names).")
    specs = [_spec(text, "--model") for text in args.model]
    names = unique_names(args.names or args.model)
    figure = _figure_path(args.figure)
    _output(figure, "--figure", "comparison")
    _output(args.json, "--json")
    device = _usage(lambda: choose_device(args.device))
    loaded = {name: (embedder, _flipped(preprocessing, args))
              for name, (embedder, preprocessing) in load_models(dict(zip(names, args.model)), args.profile).items()}
    pairs = _pairs(args, args.split)
    if args.subset == "generic":
        from .data.faces import generic_subset

        pairs = generic_subset(pairs)
    _enough_pairs(pairs, args.split)
    extras = {name: checkpoint_extra(spec.checkpoint) if spec.checkpoint is not None else {}
              for name, spec in zip(names, specs)}
    for name, spec in zip(names, specs):
        if spec.checkpoint is not None:
            _warn_if_trained_on(spec.text, extras[name], pairs)
    banks = _compare_banks(args, pairs, extras)
    ranked = compare_models(loaded, pairs, device, inference_batch(args.profile, device, args.batch_size), args.workers,
                            cache=not args.no_cache, bank=banks)
    table, lines = comparison_table(ranked), verdicts(ranked)
    print(format_comparison(table, lines, f"{pairs.name}: {len(pairs)} queries among {len(pairs)} candidates"))
    if figure:
        from .present.plots import comparison_figures, save_fig, set_theme

        set_theme()
        figures = comparison_figures({m.name: m.left_to_right for m in ranked}, len(pairs), f"{pairs.name}, left -> right")
        for suffix, fig in zip(("rank_histogram", "cmc"), figures):
            print(f"Wrote {save_fig(fig, f'{figure.name}_{suffix}', Figures(figure.parent))}")
    if args.json:
        write_json(comparison_summary(ranked, table, lines, data=pairs.name, fingerprint=pairs.fingerprint,
                                      split=args.split, subset=args.subset, specs=dict(zip(names, args.model)),
                                      hub_correction={name: bank.to_dict() if bank is not None else None
                                                      for name, bank in banks.items()}), args)


def _compare_banks(args: argparse.Namespace, pairs, extras: dict[str, dict]) -> dict:
    """Return each compared model's hub bank (`_hub_bank`), or None where it ranks by cosine; asked for
    explicitly (`--hub-correction`), at least one model must keep a bank."""
    explicit = args.hub_correction
    if explicit and args.hub_bank is None and not any(extra.get("hub_bank") for extra in extras.values()):
        raise UsageError("--hub-correction: none of the models keeps training pictures to correct with: give "
                         "--hub-bank FOLDER.")
    if args.hub_bank is not None:
        shared = _hub_bank(args, pairs, name="every model")
        return {name: shared for name in extras}
    quiet = argparse.Namespace(**{**vars(args), "hub_correction": None if not explicit else True})
    banks = {name: _hub_bank(quiet, pairs, extra, name) if extra.get("hub_bank") or not explicit else None
             for name, extra in extras.items()}
    if any(bank is None for bank in banks.values()) and any(bank is not None for bank in banks.values()):
        print("Ranked by cosine (no bank of training pictures): "
              + ", ".join(name for name, bank in banks.items() if bank is None))
    return banks


def find_command(args: argparse.Namespace) -> None:
    import numpy as np

    from .data.gallery import Gallery
    from .data.inputs import image_files, read_image
    from .evaluate.embeddings import gallery_embeddings
    from .find import choose_model, find_lookalikes, own_files
    from .runtime import choose_device, inference_batch

    if args.explain and not args.figure:
        raise UsageError("--explain draws the saliency in the figure: add --figure PATH.")
    if args.model:
        _spec(args.model, "--model")
    figure = _figure_path(args.figure)
    _output(figure, "--figure", "lookalikes")
    _output(args.json, "--json")
    device = _usage(lambda: choose_device(args.device))
    queries = image_files(args.queries, "query image")
    images = [read_image(path) for path in queries]  # every query checked before any work
    gallery = Gallery.from_folder(args.gallery, args.side)
    if args.hub_bank is not None and not args.hub_bank.is_dir():
        what = "a file, not a folder" if args.hub_bank.exists() else "no such folder"
        raise UsageError(f"--hub-bank {args.hub_bank}: {what} (give a folder of pictures of the queries' kind, e.g. "
                         "data/ttl/left).")
    embedder, preprocessing, described, extra = choose_model(args.profile, args.model, args.data)
    preprocessing = _flipped(preprocessing, args)
    print(f"Model: {described}" + (", flip-averaged" if preprocessing.flip else ""))
    kept, vectors = gallery_embeddings(embedder, preprocessing, gallery, device,
                                       inference_batch(args.profile, device, args.batch_size), args.workers,
                                       cache=not args.no_cache)
    penalty = _find_penalty(args, extra, kept, vectors, embedder, preprocessing, device)
    own = [set() for _ in queries] if args.keep_self else own_files(queries, kept)
    found = find_lookalikes(embedder, preprocessing, queries, kept, vectors, args.top, penalty=penalty, leave_out=own)
    for path, matches, rows in zip(queries, found, own):
        print(f"{path}: {len(matches)} look-alikes among {len(kept)} pictures of {kept.name}"
              + (f" (its own file, {', '.join(kept.labels[r] for r in sorted(rows))}, left out: --keep-self keeps it)"
                 if rows else ""))
        for m in matches:
            print(f"  {m.rank:>3}. {m.label}  cosine {m.score:.3f}")
    if figure:
        _find_figure(args, figure, queries, images, kept, found, embedder, preprocessing)
    if args.json:
        write_json({"model": described, "gallery": kept.name, "gallery_size": len(kept),
                    "queries": [{"query": str(path), "matches": [
                        {"rank": m.rank, "label": m.label, "cosine": m.score,
                         "file": None if isinstance(kept.images[m.index], np.ndarray) else str(kept.images[m.index])}
                        for m in matches]} for path, matches in zip(queries, found)]}, args)


def _find_penalty(args: argparse.Namespace, extra: dict, gallery, vectors, embedder, preprocessing, device):
    """Return the gallery's CSLS penalty for `find` (`--hub-bank FOLDER` of pictures like the queries, or the
    training pictures the checkpoint keeps: `_hub_bank`), or None to rank by cosine."""
    from .data.gallery import Gallery
    from .evaluate.embeddings import gallery_embeddings
    from .evaluate.hubs import gallery_penalty, hubness
    from .runtime import inference_batch

    if args.hub_bank is not None:
        if args.hub_correction is False:
            raise UsageError("--hub-bank and --no-hub-correction contradict each other: give one of them.")
        _, bank = gallery_embeddings(embedder, preprocessing, Gallery.from_folder(args.hub_bank), device,
                                     inference_batch(args.profile, device, args.batch_size), args.workers,
                                     cache=not args.no_cache)
        print(f"Hub correction (CSLS): {len(bank)} bank pictures of {args.hub_bank}, {args.hub_k} nearest")
        return hubness(vectors, bank, args.hub_k)
    bank = _hub_bank(args, None, extra, "the model", announce=False)
    if bank is None:
        return None
    from .digests import source_digests

    held = sum(d in bank.pictures for d in source_digests(list(gallery.images), desc="Reading the gallery"))
    if held:
        print(f"The gallery holds {held} of the model's training pictures, whose partners are in its hub bank: ranking "
              "by cosine, without hub correction (--hub-bank FOLDER gives another bank).")
        return None
    print(f"the model: {bank.describe()}")
    return gallery_penalty(vectors, gallery.labels, bank.left, bank.right, bank.k)


def _find_figure(args, figure: Path, queries, images, gallery, found, embedder, preprocessing) -> None:
    from .find import lookalike_rows
    from .present.pictures import lookalike_grid
    from .present.plots import save_fig, set_theme
    from .train.recipes import SaliencySettings

    settings = SaliencySettings.for_profile(args.profile)
    rows = lookalike_rows(embedder, preprocessing, [(f"query: {path.name}", image) for path, image in zip(queries, images)],
                          gallery, found, settings if args.explain else None)
    set_theme()
    fig = lookalike_grid(rows, signed=settings.method != "gradcam")
    stamp = f"gallery {gallery.name}, {len(gallery)} pictures · {args.profile.name} profile"
    print(f"Wrote {save_fig(fig, figure.name, Figures(figure.parent, stamp))}")


def _pretrain_start(args: argparse.Namespace) -> tuple[str, str]:
    """Return `(backbone, init)` of `pretrain --init SPEC`: init is a weights name, `none` or a checkpoint."""
    from .models.checkpoints import checkpoint_description

    if args.init in ("imagenet", "none"):
        raise UsageError(f"--init {args.init} is now --init BACKBONE" + (":none" if args.init == "none" else "")
                         + f" (e.g. --init {args.profile.backbone}" + (":none" if args.init == "none" else "") + ").")
    spec = _spec(args.init or args.profile.backbone, "--init")
    if spec.checkpoint is not None:
        return checkpoint_description(spec.checkpoint)["backbone"], str(spec.checkpoint)
    return spec.backbone, spec.weights or "none"


def pretrain_command(args: argparse.Namespace) -> None:
    from .runtime import choose_device
    from .storage import exclusive
    from .train.pretrain import pretrain
    from .train.recipes import PretrainConfig

    _output(args.out, "--out", "bt.pt")
    _usage(lambda: choose_device(args.device))
    backbone, init = _pretrain_start(args)
    config = _usage(lambda: PretrainConfig.for_profile(
        args.profile, data=tuple(str(folder) for folder in args.data), out=str(args.out), backbone=backbone, init=init,
        epochs=args.epochs, blur=False if args.no_blur else None, batch_size=args.batch_size, image_size=args.image_size,
        projector=args.projector, optimizer=args.optimizer, lr=args.lr, augment=args.augment, workers=args.workers,
        device=args.device, compile=args.compile or None, sync_batchnorm=args.sync_batchnorm or None,
        max_steps=args.max_steps, seed=args.seed))
    with exclusive(args.out) if torchrun_ranks()[0] == 0 else nullcontext():
        written = pretrain(config, resume=args.resume)
    print(f"Wrote {written}")


def _finetune_start(args: argparse.Namespace) -> dict:
    """Return the settings of `finetune --init SPEC`: a checkpoint to start from, or a backbone and its weights."""
    spec = _spec(args.init or args.profile.backbone, "--init")
    if spec.checkpoint is not None:
        return {"init": str(spec.checkpoint)}
    if spec.weights is None:
        raise UsageError(f"--init {spec.text}: fine-tuning starts from pretrained weights; give {spec.backbone} "
                         f"(ImageNet) or {spec.backbone}:WEIGHTS.")
    return {"backbone": spec.backbone, "weights": spec.weights}


def _finetune_pool(args: argparse.Namespace, pairs):
    """Return the unlabelled pool of `finetune --unlabelled DIR`, without near-copies of the pictures
    the run is chosen or judged on (the saved split's validation and test pairs)."""
    from .data.pool import CANDIDATES_FILE, load_pool
    from .data.splits import split_pairs
    from .pipeline import finetuning_pool

    pool = load_pool(args.unlabelled)
    if pool.candidates is None:
        raise UsageError(f"--unlabelled {args.unlabelled}: no {CANDIDATES_FILE} there; fine-tuning learns from each "
                         "left picture's candidate right pictures.")
    held = [] if args.split == "all" else [*split_pairs(pairs)["val"].ids, *split_pairs(pairs)["test"].ids]
    pool, left_out = finetuning_pool(args.profile, pairs, pool, held)
    print(f"Learning also from {pool.describe()}" + (f"; {left_out} left out as near-copies of validation or test "
                                                     "pictures" if left_out else ""))
    return pool


def finetune_command(args: argparse.Namespace) -> None:
    from .data.folders import resolve_pairs
    from .data.splits import split_pairs
    from .runtime import choose_device
    from .storage import exclusive
    from .train.finetune import finetune, keep_hub_bank
    from .train.recipes import FinetuneConfig

    _output(args.out, "--out", "ft.pt")
    _usage(lambda: choose_device(args.device))
    if args.unlabelled is None:
        given = [flag for flag, value in (("--unlabelled-keep", args.unlabelled_keep),
                                          ("--unlabelled-refresh", args.unlabelled_refresh),
                                          ("--unlabelled-assign", args.unlabelled_assign),
                                          ("--unlabelled-loss", args.unlabelled_loss)) if value is not None]
        if given:
            raise UsageError(f"{given[0]} sets how the unlabelled pool is used: give the pool too (--unlabelled DIR).")
    elif args.unlabelled_loss == "mil":
        given = [flag for flag, value in (("--unlabelled-keep", args.unlabelled_keep),
                                          ("--unlabelled-refresh", args.unlabelled_refresh),
                                          ("--unlabelled-assign", args.unlabelled_assign)) if value is not None]
        if given:
            raise UsageError(f"{given[0]} sets the pseudo-pairs, which --unlabelled-loss mil does not make: drop it.")
    config = _usage(lambda: FinetuneConfig.for_profile(
        args.profile, out=str(args.out), **_finetune_start(args), unfreeze=args.unfreeze, layers=args.layers,
        grid=args.grid, head=args.head, loss=args.loss, miner=args.miner, margin=args.margin,
        temperature=args.temperature, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        backbone_lr=args.backbone_lr, image_size=args.image_size, views=args.views, select_k=args.select_k,
        patience=args.patience, seed=args.seed, device=args.device, workers=args.workers,
        cache=False if args.no_cache else None, unlabelled_keep=args.unlabelled_keep,
        unlabelled_refresh=args.unlabelled_refresh, unlabelled_assign=args.unlabelled_assign,
        unlabelled_loss=args.unlabelled_loss))
    pairs = resolve_pairs(args.data, args.profile, validate="headers")
    if args.split == "train":
        split = split_pairs(pairs)
        train, val = split["train"], split["val"]
        if len(val) == 0:
            raise UsageError(f"{pairs.name} has too few pairs for a validation split; use --split all.")
    else:
        train, val = pairs, None
    print(f"Training on {train.describe()}" + (f"; validating on {len(val)} pairs" if val is not None else ""))
    pool = _finetune_pool(args, pairs) if args.unlabelled is not None else None
    with exclusive(args.out):
        result = finetune(config, train, val, resume=args.resume, pool=pool)
        bank = keep_hub_bank(result.checkpoint, config, train)
    if bank is not None:
        print(f"The checkpoint keeps {len(bank['left'])} training pairs' embeddings for hub correction "
              "(evaluate, compare and find --hub-correction)")
    print(best_epoch_report(result.best_epoch, result.best, len(result.history) - 1))
    print(f"Wrote {result.checkpoint} (training state: {result.checkpoint}.state.pt)")
    print(f"Evaluate it: python -m ttl_utils evaluate --model {result.checkpoint} --data DIR --split test")


def best_epoch_report(best_epoch: int, best: dict, trained: int) -> str:
    """Return what `finetune` says of the epoch it kept: its validation metrics, and when that is
    epoch 0 after `trained` epochs, that the checkpoint is the untrained starting point and why.

    >>> best_epoch_report(2, {"val_r5": 0.5, "train_loss": 1.0}, 3)
    'Best epoch 2: val_r5 0.500'
    """
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in best.items() if k.startswith("val_"))
    line = f"Best epoch {best_epoch}" + (f": {metrics}" if metrics else "")
    if best_epoch == 0 and trained > 0:
        line += (f"\nNote: none of the {trained} training epochs beat the starting point on the validation pairs, "
                 "so the checkpoint is the model before training. More pairs or --epochs may help; "
                 "--split all trains on every pair and keeps the last epoch (then evaluate it on another dataset).")
    return line


def _folder_size(folder: Path) -> int:
    """Return the bytes of every file under `folder` (0 when it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def _versions() -> dict[str, str | None]:
    """Return the installed version of each package the project runs on (None: not installed)."""
    from importlib import metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("ttl_utils", "torch", "torchvision", "onnxruntime", "onnx", "numpy", "pandas", "matplotlib",
                 "pillow", "captum", "opencv-python-headless"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def env_command(args: argparse.Namespace) -> None:
    from .data.folders import chosen_data
    from .models.engine import engine_name
    from .runtime import choose_device, cuda_available

    profile, data = args.profile, chosen_data(args.data)
    device = choose_device()
    cache = artifacts_dir()
    settings = {
        "profile": {"name": profile.name, "image_size": profile.image_size, "batch_size": profile.batch_size,
                    "epochs": profile.epochs, "backbone": profile.backbone, "hub_correction": profile.hub_correction},
        "device": device, "cuda": cuda_available(), "engine": engine_name(device), "cores": os.cpu_count(),
        "data": str(data) if data is not None else f"the demo data ({profile.demo_pairs} pairs at {profile.demo_size} px)",
        "figures": str(figures_dir(profile, demo=data is None)),
        "cache": str(cache), "cache_bytes": _folder_size(cache),
        "versions": _versions(),
    }
    p = settings["profile"]
    print(f"profile   {profile.name}: {p['image_size']} px, batch {p['batch_size']}, {p['epochs']} epochs, "
          f"backbone {p['backbone']}; hub correction {'on' if p['hub_correction'] else 'off'} for fine-tuned "
          "checkpoints (--hub-correction)")
    print(f"device    {device} ({'CUDA available' if settings['cuda'] else 'no CUDA'}; {settings['cores']} cores; "
          f"frozen forwards in {settings['engine']})")
    print(f"data      {settings['data']}")
    print(f"figures   {settings['figures']}")
    print(f"cache     {cache} ({settings['cache_bytes'] / 2**20:.1f} MB)")
    print("versions  " + ", ".join(f"{name} {version or 'not installed'}" for name, version in settings["versions"].items()))
    if args.json:
        write_json(settings, args)


def _megabytes(size: float) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 / 10 else f"{size / 2**10:.0f} KB"


def _pruned_line(removed: list, args: argparse.Namespace, days: float | None, root: Path) -> str:
    """Say what `cache --prune` removed, and by which rule."""
    from .cache import FOLDER_KINDS, OUTPUT_PREFIXES

    folders = sum(path.parent.parent == root and path.parent.name in FOLDER_KINDS for path, _ in removed)
    rules = ([f"all of {', '.join(args.kind)}"] if args.kind else []) + \
        ([f"unused for {days:g} days"] if days is not None else []) + \
        ([f"least recently used beyond {_megabytes(args.max_size)}"] if args.max_size is not None else [])
    results = [kind for kind in args.kind or () if kind.startswith(OUTPUT_PREFIXES)]
    return (f"Removed {len(removed) - folders} file(s) and {folders} folder(s), {_megabytes(sum(s for _, s in removed))} "
            f"({'; '.join(rules + ['what interrupted writes left'])}). Caches are computed again when needed"
            + (f"; the notebooks make {', '.join(results)} again." if results else "."))


def cache_command(args: argparse.Namespace) -> None:
    from .cache import OUTPUT_PREFIXES, cache_files, prune

    root = artifacts_dir()
    kinds = cache_files(root)
    if (args.kind or args.max_size is not None or args.older_than is not None) and not args.prune:
        raise UsageError("--kind, --older-than and --max-size say what --prune removes: add --prune.")
    unknown = [kind for kind in args.kind or () if kind not in kinds]
    if unknown:
        raise UsageError(f"--kind {unknown[0]}: artifacts/ holds no such kind; it holds "
                         + (", ".join(kinds) or "nothing") + ".")
    days = args.older_than if args.older_than is not None or args.kind or args.max_size is not None else 30
    removed = prune(root, kinds, tuple(args.kind or ()), None if days is None else time.time() - days * 86400,
                    args.max_size) if args.prune else []
    table = {kind: {"files": len(files), "bytes": sum(p.stat().st_size for p in files if p.exists())}
             for kind, files in kinds.items() if files}
    for kind, row in sorted(table.items(), key=lambda item: -item[1]["bytes"]):
        print(f"{kind:<20} {row['files']:>6} files {row['bytes'] / 2**20:>10.1f} MB")
    total = sum(row["bytes"] for row in table.values())
    print(f"{'total':<20} {sum(r['files'] for r in table.values()):>6} files {total / 2**20:>10.1f} MB  ({root})")
    outputs = [kind for kind in table if kind.startswith(OUTPUT_PREFIXES)]
    if outputs:
        print(f"{', '.join(outputs)}: the notebooks' results, not caches: --prune removes them only with --kind.")
    if args.prune:
        print(_pruned_line(removed, args, days, root))
    if args.json:
        write_json({"folder": str(root), "kinds": table, "bytes": total,
                    "removed": [str(p.relative_to(root)) for p, _ in removed]}, args)
