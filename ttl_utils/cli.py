"""`python -m ttl_utils COMMAND`: the project's command line.

Commands: `download` (the official TTL release), `check` (validate a dataset folder),
`demo` (write the demo data as a folder, or a picture of it), `evaluate` (retrieval
metrics of a backbone or checkpoint on a dataset), `compare` (several models on the same
pairs: table, paired gains, verdicts, rank histogram), `find` (the look-alikes of any
picture in a gallery, with why), `pretrain` (Barlow Twins), `finetune`
(projection layers and the last stages, triplet or InfoNCE loss, on TTL pairs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .config import Figures, get_profile, torchrun_ranks
from .data.download import DownloadError, download_ttl, install_archives
from .data.folders import resolve_pairs, write_pairs
from .data.pairs import DatasetError, UnreadableImage
from .data.splits import split_pairs
from .models.backbones import BACKBONES, LAYERS, WeightsUnavailableError
from .runtime import choose_device, inference_batch
from .storage import BusyError, exclusive, save_json
from .train.recipes import LOSSES, FinetuneConfig, PretrainConfig

log = logging.getLogger("ttl_utils")


class UsageError(ValueError):
    """A command-line choice that cannot work here."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (`error: ...`), with where to read more."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _layers(text: str) -> tuple[str, ...]:
    layers = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))  # each once
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise argparse.ArgumentTypeError(f"{text!r}: choose stages among {', '.join(LAYERS)}, comma-separated "
                                         "(e.g. layer3,layer4).")
    return layers


def _positive(text: str) -> int:
    """An integer of at least 1 (0 would mean nothing here, not "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1 (leave the flag out for the profile's default).")
    return value


def _image_size(text: str) -> int:
    """A crop size a backbone can run on: at least 32 pixels (five halvings leave one cell)."""
    from .data.inputs import MIN_SIDE

    value = _positive(text)
    if value < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"{value}: at least {MIN_SIDE} pixels (the backbones halve it five times).")
    return value


def _count(text: str) -> int:
    """A whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number.") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: give 0 or more.")
    return value


def _device(text: str) -> str:
    """cpu, cuda, cuda:N or mps; whether it is available here is checked when the command starts."""
    name = text.strip().lower()
    if name in ("cpu", "cuda", "mps") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise argparse.ArgumentTypeError(f"{text!r}: choose cpu, cuda, cuda:N or mps.")


def _output(path: Path | None, flag: str, example: str = "results.json") -> None:
    """Check before any work that `flag`'s file can be written: not a folder, its folder creatable."""
    if path is None or str(path) == "-":
        return
    if path.is_dir() or str(path).endswith(("/", "\\")):
        raise UsageError(f"{flag} {path}: that is a folder; give a file name (e.g. {path / example}).")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: no permission to write in {parent}.")


def _lead_process() -> bool:
    """Return whether this is the process that writes files (rank 0 under torchrun, or alone)."""
    return torchrun_ranks()[0] == 0


def _write_json(content, path: Path) -> None:
    """Write `--json`'s content to `path` (atomically), or to standard output for `-`."""
    if str(path) == "-":
        print(json.dumps(content, indent=1))
        return
    save_json(content, path)
    print(f"Wrote {path}")


def _download(args: argparse.Namespace) -> None:
    if args.weights:
        from .models.backbones import build_backbone, hub_weights_path
        from .pipeline import STUDY_WEIGHTS

        for weights in STUDY_WEIGHTS.values():
            build_backbone("resnet50", weights)  # fetched into torch.hub's cache, checksum checked
            print(f"ResNet-50 {weights} weights: {hub_weights_path('resnet50', weights)}")
        return
    if args.from_zip:
        install_archives(*args.from_zip, dest=args.dest)
    else:
        download_ttl(dest=args.dest)


def _check(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    pairs = resolve_pairs(args.data, args.profile, validate=True)
    seconds = time.perf_counter() - start
    print(f"OK: {pairs.describe()}; every image opened in {seconds:.1f} s; fingerprint {pairs.fingerprint}")


def _demo(args: argparse.Namespace) -> None:
    from .data.demo import make_demo_pairs

    pairs = make_demo_pairs(args.n_pairs, args.size, args.seed)
    if args.out:
        write_pairs(pairs, Path(args.out))
        print(f"Wrote {len(pairs)} demo pairs to {args.out} (official layout)")
    if args.figure:
        from .present.pictures import pair_grid
        from .present.plots import save_fig, set_theme

        set_theme()
        fig = pair_grid(pairs, indices=np.arange(min(args.n_pairs, args.cols * args.rows)), cols=args.cols)
        for path in save_fig(fig, Path(args.figure).name, Figures(Path(args.figure).parent)):
            print(f"Wrote {path}")


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate.compare import evaluate_model
    from .evaluate.report import format_report, summary
    from .models.checkpoints import load_checkpoint
    from .models.embedder import build_embedder
    from .models.preprocessing import Preprocessing

    profile = args.profile
    _output(args.json, "--json")
    device = choose_device(args.device)
    extra = {}
    if args.checkpoint:
        if args.grid:
            raise UsageError("--grid applies to a backbone's features; a checkpoint keeps the grid it was trained with.")
        embedder, preprocessing, extra = load_checkpoint(args.checkpoint)
        if args.image_size:
            preprocessing = Preprocessing.for_size(args.image_size, mean=preprocessing.mean, std=preprocessing.std)
    else:
        weights = None if args.weights == "none" else args.weights
        embedder = build_embedder(args.backbone or profile.backbone, weights, args.layers, grid=args.grid,
                                  seed=0)  # random weights (none) drawn with a fixed seed: reproducible, cached
        preprocessing = Preprocessing.for_size(args.image_size or profile.image_size)
    pairs = resolve_pairs(args.data, profile, validate="headers")
    if args.split != "all":
        pairs = split_pairs(pairs)[args.split]
    _enough_pairs(pairs, args.split)
    _warn_if_trained_on(args.checkpoint, extra, pairs)
    report = evaluate_model(embedder, preprocessing, pairs, batch_size=inference_batch(profile, device, args.batch_size),
                            device=device, num_workers=args.workers, cache=not args.no_cache)
    print(format_report(report))
    if args.json:
        _write_json(summary(report), args.json)


def _warn_if_trained_on(name, extra: dict, pairs) -> None:
    """Warn when a checkpoint is judged on pairs it was fine-tuned on (its `extra` records them)."""
    from .evaluate.compare import training_overlap

    seen = training_overlap(extra, pairs)
    if seen:
        log.warning("Warning: %d of the %d evaluated pairs are among %s's training pairs, so its recalls are "
                    "optimistic. Judge it on pairs it never saw (a checkpoint trained with --split train, "
                    "on --split test).", seen, len(pairs), name)


def _enough_pairs(pairs, split: str) -> None:
    """Refuse a pair set too small to rank (with the flag to change)."""
    if len(pairs) < 2:
        raise UsageError(f"{pairs.name} has {len(pairs)} pair(s) to rank: too few (at least 2)"
                         + (f"; its {split} split is small, use --split all." if split != "all" else "."))
    if len(pairs) < 20:
        log.warning("Warning: %s has only %d pairs to rank: R@k moves in steps of 1/%d and the CIs are wide.",
                    pairs.name, len(pairs), len(pairs))


def _pretrain(args: argparse.Namespace) -> None:
    from .train.pretrain import pretrain

    _output(args.out, "--out", "bt.pt")
    choose_device(args.device)
    if args.init not in ("imagenet", "none") and not Path(args.init).is_file():
        raise UsageError(f"--init {args.init}: give imagenet, none (random weights) or a checkpoint file of this "
                         "project; no such file.")
    config = PretrainConfig.for_profile(
        args.profile, data=str(args.data), out=str(args.out), backbone=args.backbone, init=args.init, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, projector=args.projector, optimizer=args.optimizer,
        lr=args.lr, augment=args.augment, workers=args.workers, device=args.device, compile=args.compile or None,
        sync_batchnorm=args.sync_batchnorm or None, max_steps=args.max_steps, seed=args.seed)
    with exclusive(args.out) if _lead_process() else nullcontext():
        written = pretrain(config, resume=args.resume)
    print(f"Wrote {written}")


def _finetune(args: argparse.Namespace) -> None:
    from .train.finetune import finetune

    if args.init is not None and not Path(args.init).is_file():
        raise UsageError(f"--init: no checkpoint at {args.init}.")
    _output(args.out, "--out", "ft.pt")
    choose_device(args.device)
    config = FinetuneConfig.for_profile(
        args.profile, out=str(args.out), backbone=args.backbone, init=str(args.init) if args.init else None,
        weights=args.weights,
        unfreeze=args.unfreeze, layers=args.layers, grid=args.grid, head=args.head, loss=args.loss, miner=args.miner,
        margin=args.margin, temperature=args.temperature, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        backbone_lr=args.backbone_lr, image_size=args.image_size, views=args.views, select_k=args.select_k,
        patience=args.patience, seed=args.seed, device=args.device, workers=args.workers,
        cache=False if args.no_cache else None)
    pairs = resolve_pairs(args.data, args.profile, validate="headers")
    if args.split == "train":
        split = split_pairs(pairs)
        train, val = split["train"], split["val"]
        if len(val) == 0:
            raise UsageError(f"{pairs.name} has too few pairs for a validation split; use --split all.")
    else:
        train, val = pairs, None
    print(f"Training on {train.describe()}" + (f"; validating on {len(val)} pairs" if val is not None else ""))
    with exclusive(args.out):
        result = finetune(config, train, val, resume=args.resume)
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.best.items() if k.startswith("val_"))
    print(f"Best epoch {result.best_epoch}" + (f": {metrics}" if metrics else ""))
    print(f"Wrote {result.checkpoint} (training state: {result.checkpoint}.state.pt)")
    print(f"Evaluate it: python -m ttl_utils evaluate --checkpoint {result.checkpoint} --data DIR --split test")


def _compare(args: argparse.Namespace) -> None:
    from .data.faces import generic_subset
    from .evaluate.compare import compare_models, load_models
    from .evaluate.report import comparison_summary, comparison_table, format_comparison, unique_names, verdicts
    from .models.checkpoints import checkpoint_extra

    if args.names is not None and len(args.names) != len(args.models):
        raise UsageError(f"--names: give one name per MODEL ({len(args.models)} models, {len(args.names)} names).")
    names = unique_names(args.names or args.models)
    args.figure = _figure_prefix(args.figure)
    _output(args.figure, "--figure", "comparison")
    _output(args.json, "--json")
    device = choose_device(args.device)
    loaded = load_models(dict(zip(names, args.models)), args.profile)
    pairs = resolve_pairs(args.data, args.profile, validate="headers")
    if args.split != "all":
        pairs = split_pairs(pairs)[args.split]
    if args.subset == "generic":
        pairs = generic_subset(pairs)
    _enough_pairs(pairs, args.split)
    for spec in args.models:
        if Path(spec).is_file():
            _warn_if_trained_on(spec, checkpoint_extra(spec), pairs)
    ranked = compare_models(loaded, pairs, device, inference_batch(args.profile, device, args.batch_size), args.workers,
                            cache=not args.no_cache)
    table, lines = comparison_table(ranked), verdicts(ranked)
    print(format_comparison(table, lines, f"{pairs.name}: {len(pairs)} queries among {len(pairs)} candidates"))
    if args.figure:
        from .present.plots import comparison_figures, save_fig, set_theme

        set_theme()
        figures = comparison_figures({m.name: m.left_to_right for m in ranked}, len(pairs),
                                     f"{pairs.name}, left -> right")
        for suffix, fig in zip(("rank_histogram", "cmc"), figures):
            for path in save_fig(fig, f"{args.figure.name}_{suffix}", Figures(args.figure.parent)):
                print(f"Wrote {path}")
    if args.json:
        _write_json(comparison_summary(ranked, table, lines, data=pairs.name, fingerprint=pairs.fingerprint,
                                     split=args.split, subset=args.subset, specs=dict(zip(names, args.models))),
                  args.json)


def _figure_prefix(path: Path | None) -> Path | None:
    """Return `--figure`'s path without an image extension (`out.png` -> `out`: both files are written)."""
    known = (".png", ".pdf", ".jpg", ".jpeg", ".svg")
    return path.with_suffix("") if path is not None and path.suffix.lower() in known else path


def _find(args: argparse.Namespace) -> None:
    from .data.gallery import Gallery
    from .data.inputs import image_files, read_image
    from .evaluate.embeddings import gallery_embeddings
    from .find import choose_model, find_lookalikes

    if args.top < 1:
        raise UsageError(f"--top {args.top}: ask for at least one match.")
    if args.explain and not args.figure:
        raise UsageError("--explain draws the saliency in the figure: add --figure PATH.")
    args.figure = _figure_prefix(args.figure)
    _output(args.figure, "--figure", "lookalikes")
    _output(args.json, "--json")
    device = choose_device(args.device)
    queries = image_files(args.queries, "query image")
    images = [read_image(path) for path in queries]  # every query checked before any work
    gallery = Gallery.from_folder(args.gallery, args.side)
    spec = str(args.checkpoint) if args.checkpoint else args.backbone
    embedder, preprocessing, described = choose_model(args.profile, spec, args.data)
    print(f"Model: {described}")
    kept, vectors = gallery_embeddings(embedder, preprocessing, gallery, device,
                                       inference_batch(args.profile, device, args.batch_size), args.workers)
    found = find_lookalikes(embedder, preprocessing, images, kept, vectors, args.top)
    for path, matches in zip(queries, found):
        print(f"{path}: {len(matches)} look-alikes among {len(kept)} pictures of {kept.name}")
        for m in matches:
            print(f"  {m.rank:>3}. {m.label}  cosine {m.score:.3f}")
    if args.figure:
        _find_figure(args, queries, images, kept, found, embedder, preprocessing)
    if args.json:
        _write_json({"model": described, "gallery": kept.name, "gallery_size": len(kept),
                   "queries": [{"query": str(path), "matches": [
                       {"rank": m.rank, "label": m.label, "cosine": m.score,
                        "file": None if isinstance(kept.images[m.index], np.ndarray) else str(kept.images[m.index])}
                       for m in matches]} for path, matches in zip(queries, found)]}, args.json)


def _find_figure(args, queries, images, gallery, found, embedder, preprocessing) -> None:
    from .find import lookalike_rows
    from .present.pictures import lookalike_grid
    from .present.plots import save_fig, set_theme
    from .train.recipes import SaliencySettings

    settings = SaliencySettings.for_profile(args.profile)
    rows = lookalike_rows(embedder, preprocessing, [(f"query: {path.name}", image) for path, image in zip(queries, images)],
                          gallery, found, settings if args.explain else None)
    set_theme()
    fig = lookalike_grid(rows, signed=settings.method != "gradcam")
    for written in save_fig(fig, args.figure.name, Figures(args.figure.parent)):
        print(f"Wrote {written}")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-"))


_DATA_HELP = "dataset folder (default: $TTL_DATA, data/ttl, demo)"
_WORKERS_HELP = ("image decoding: threads feeding the inference engine on CPU, processes on a GPU and for "
                 "augmented views (default: cores + 1 threads; spare cores, at most 4, processes); 0: none")
_DEVICE_HELP = "cpu or cuda (default: cuda when available)"


def _add_download(sub) -> None:
    p = sub.add_parser("download", help="download and install the official TTL release")
    p.add_argument("--dest", type=Path, default=None, help="install folder (default: data/ttl)")
    p.add_argument("--from-zip", nargs=2, type=Path, metavar=("LEFT.zip", "RIGHT.zip"),
                   help="install archives downloaded by hand instead of downloading")
    p.add_argument("--weights", action="store_true",
                   help="instead: fetch the study's ResNet-50 weights (supervised and Barlow Twins ImageNet) "
                        "into torch.hub's cache, for notebook 06")
    p.set_defaults(run=_download)


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="open every image of a dataset once and report all problems")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.set_defaults(run=_check)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="write the procedurally drawn demo pairs as a folder or a figure")
    p.add_argument("--n-pairs", type=_positive, default=get_profile("cpu").demo_pairs)
    p.add_argument("--size", type=_positive, default=get_profile("cpu").demo_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="folder to write left/ and right/ into")
    p.add_argument("--figure", type=Path, help="figure path without extension, e.g. figures/demo_pairs")
    p.add_argument("--cols", type=int, default=4, help="pairs a row in the figure")
    p.add_argument("--rows", type=int, default=3, help="rows in the figure")
    p.set_defaults(run=_demo)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="rank all right images for each left image (and back) and report R@k")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                   help="which pairs to evaluate on (the saved split under data/splits/; default: test)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=None, help="default: the profile's backbone")
    p.add_argument("--weights", default="imagenet", help="imagenet, barlowtwins (resnet50) or none")
    p.add_argument("--layers", type=_layers, default=("layer4",),
                   help="stages to pool, comma-separated, e.g. layer2,layer4 (default: layer4)")
    p.add_argument("--grid", type=int, default=0, choices=range(0, 8), metavar="G",
                   help="pool each layer into G x G cells, keeping the layout (default 0: global average)")
    p.add_argument("--checkpoint", type=Path, help="a checkpoint written by this project (overrides --backbone)")
    p.add_argument("--image-size", type=_image_size, default=None, help="crop size in pixels (default: the profile's)")
    p.add_argument("--batch-size", type=_positive, default=None, help="default: 32 on CPU, the profile's on GPU")
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings even if cached under artifacts/")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.set_defaults(run=_evaluate)


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="Barlow Twins pretraining on a folder of images (torchrun for many GPUs)",
                       description="Defaults not given below come from the profile's recipe (ttl_utils.recipes): "
                                   "cpu: 8 epochs, batch 32, 96 px, AdamW; gpu: LARS at the profile's sizes.")
    p.add_argument("--data", type=Path, required=True, help="image folder, searched recursively (ImageNet train/, TTL, ...)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path, written after every epoch")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=None, help="default: the profile's backbone")
    p.add_argument("--init", default="imagenet", help="imagenet, none (random), or a checkpoint of this project")
    p.add_argument("--epochs", type=_positive, default=None, help="default: the profile's recipe")
    p.add_argument("--batch-size", type=_positive, default=None, help="per process (default: the profile's recipe)")
    p.add_argument("--image-size", type=_image_size, default=None, help="default: the profile's recipe")
    p.add_argument("--projector", type=_sizes, default=None,
                   help="e.g. 8192-8192-8192 (default for resnet50, as in the paper; 1024-1024-1024 otherwise)")
    p.add_argument("--optimizer", choices=("adamw", "lars"), default=None, help="default: lars (gpu profile), adamw")
    p.add_argument("--lr", type=float, default=None, help="AdamW's learning rate (default 1e-4; LARS uses the paper's)")
    p.add_argument("--augment", choices=("cpu", "gpu"), default=None, help="default: cpu (in data-loader workers)")
    p.add_argument("--workers", type=_count, default=None, help="default: the profile's")
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--sync-batchnorm", action="store_true")
    p.add_argument("--max-steps", type=_positive, default=None, help="stop after this many steps (quick checks)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    p.set_defaults(run=_pretrain)


def _add_finetune_model(p: argparse.ArgumentParser) -> None:
    """The flags that say which model trains and on what features."""
    start = p.add_mutually_exclusive_group()
    start.add_argument("--backbone", choices=sorted(BACKBONES), default=None,
                       help="ImageNet backbone (default: the profile's)")
    start.add_argument("--init", type=Path, default=None, help="start from a checkpoint of this project (e.g. pretrain's)")
    p.add_argument("--weights", default=None, help="the backbone's pretrained weights: imagenet (default) or "
                                                   "barlowtwins (resnet50, the official checkpoint)")
    p.add_argument("--unfreeze", type=int, default=None, choices=range(0, 5),
                   help=f"how many of the backbone's last stages train (0: the head alone; default {FinetuneConfig.unfreeze})")
    p.add_argument("--layers", type=_layers, default=None,
                   help=f"stages pooled under the head, comma-separated (default: {','.join(FinetuneConfig.layers)}); "
                        "with --unfreeze N none may come before the frozen part's last stage")
    p.add_argument("--grid", type=int, default=None, choices=range(0, 8), metavar="G",
                   help=f"pool the layers into G x G cells, the head mapping each (default {FinetuneConfig.grid}; "
                        "0: global average)")
    p.add_argument("--head", choices=("none", "linear", "mlp"), default=None,
                   help="projection head (default linear, starting as the identity)")


def _add_finetune_training(p: argparse.ArgumentParser) -> None:
    """The flags that say how it trains."""
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help=f"infonce (default {FinetuneConfig.loss}; the better on held-out pairs) or triplet")
    p.add_argument("--miner", choices=("all", "semihard", "hard"), default=None,
                   help="in-batch triplet mining (default semihard; hard: batch-hard)")
    p.add_argument("--margin", type=float, default=None, help="triplet margin (default 0.2; unit-length embeddings)")
    p.add_argument("--temperature", type=float, default=None, help="InfoNCE temperature (default 0.05)")
    p.add_argument("--epochs", type=_positive, default=None, help="at most this many (default: the profile's)")
    p.add_argument("--batch-size", type=_positive, default=None, help="pairs a batch (default: the profile's, at most 64 on CPU)")
    p.add_argument("--lr", type=float, default=None, help="the head's learning rate (default 1e-3)")
    p.add_argument("--backbone-lr", type=float, default=None, help="the unfrozen stages' learning rate (default 1e-4)")
    p.add_argument("--image-size", type=_image_size, default=None, help="crop size in pixels (default: the profile's)")
    p.add_argument("--views", type=_count, default=None,
                   help="augmented views a training image, computed once by the frozen part (default 4, 1 in the "
                        "smoke profile); 0: fresh every step")
    p.add_argument("--select-k", type=int, default=None, help="early stopping watches validation R@k (default 20)")
    p.add_argument("--patience", type=int, default=None, help="epochs without gain before stopping (default 3)")


def _add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune projection layers (and the last stages) on TTL pairs")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("train", "all"), default="train",
                   help="train: the saved split's train pairs, early stopping on its val pairs; all: every pair, "
                        "no validation (to evaluate on another dataset)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (the best epoch), for evaluate --checkpoint")
    _add_finetune_model(p)
    _add_finetune_training(p)
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="do not keep the frozen part's outputs under artifacts/")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    p.set_defaults(run=_finetune)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="rank the same pairs with several models: a table with CIs, paired gains, "
                                       "verdicts, the rank histogram",
                       description="Each MODEL is a checkpoint of this project or a backbone name, optionally "
                                   "with weights (resnet50:barlowtwins), used zero-shot. Gains and verdicts are "
                                   "over the first MODEL.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint file or backbone[:weights]")
    p.add_argument("--names", nargs="+", default=None,
                   help="one display name per MODEL, after the MODELs: compare m1.pt m2.pt --names A B "
                        "(default: as given)")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="the saved split's test pairs (default) or every pair")
    p.add_argument("--subset", choices=("all", "generic"), default="all",
                   help="generic: only pairs with no face found on either side (the study's setting)")
    p.add_argument("--figure", type=Path, help="write PREFIX_rank_histogram and PREFIX_cmc (.png, .pdf)")
    p.add_argument("--json", type=Path, help="write the table, verdicts and ranks to this JSON file")
    p.add_argument("--batch-size", type=_positive, default=None, help="default: 32 on CPU, the profile's on GPU")
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings even if cached under artifacts/")
    p.set_defaults(run=_compare)


def _add_find(sub) -> None:
    p = sub.add_parser("find", help="find the look-alikes of any picture in a gallery of images",
                       description="Ranks every picture of the gallery by cosine similarity to each QUERY. "
                                   "The model: --checkpoint or --backbone, else the profile's chosen fine-tuned "
                                   "model when it is cached, else the profile's backbone zero-shot.")
    p.add_argument("queries", nargs="+", metavar="QUERY", type=Path, help="an image file, or a folder of them")
    p.add_argument("--gallery", type=Path, required=True,
                   help="a folder of images (searched recursively) or a dataset folder (left/ and right/)")
    p.add_argument("--side", choices=("left", "right", "both"), default="right",
                   help="for a dataset gallery: which images to search (default: right)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", type=Path, help="a checkpoint written by this project")
    model.add_argument("--backbone", help="a backbone, optionally with weights (resnet50:barlowtwins), zero-shot")
    p.add_argument("--data", type=Path, default=None,
                   help="the dataset whose chosen fine-tuned model is the default (default: $TTL_DATA, data/ttl, demo)")
    p.add_argument("--top", type=_positive, default=5, help="matches a query (default 5)")
    p.add_argument("--figure", type=Path, help="write FIGURE.png and .pdf: each query and its matches")
    p.add_argument("--explain", action="store_true",
                   help="in the figure, overlay the saliency of each similarity on the query and the match")
    p.add_argument("--json", type=Path, help="write the matches to this JSON file")
    p.add_argument("--batch-size", type=_positive, default=None, help="default: 32 on CPU, the profile's on GPU")
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.set_defaults(run=_find)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m ttl_utils`: one small function a subcommand."""
    parser = _Parser(prog="python -m ttl_utils", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_download, _add_check, _add_demo, _add_evaluate, _add_compare, _add_find, _add_pretrain,
                _add_finetune):
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """Return the message of `err` as one line. An error raised in a data-loading worker arrives
    wrapped in the worker's traceback: its own last line is what the user needs."""
    text = str(err).strip() or type(err).__name__
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        text = rest if sep and "." in head and " " not in head else last
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 2 for bad input (data, download, model, arguments,
    a file that cannot be read or written), 130 when interrupted (Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a mistake in the arguments (2, said in one line)
        return int(stop.code or 0)
    # the project's messages at INFO; other libraries' (fontTools writing PDFs, ...) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    level = log.level
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        args.profile = get_profile()  # chosen once here; everything below is handed it
        args.run(args)
    except KeyboardInterrupt:
        resume = " --resume continues the run from its last epoch." if args.command in ("finetune", "pretrain") else ""
        print("Interrupted: the files already written are complete (each is written whole, then renamed)."
              + resume, file=sys.stderr)
        return 130
    except UnreadableImage as err:
        data = getattr(args, "data", None)
        where = f" --data {data}" if data else ""
        print(f"error: {_one_line(err)} To list every unreadable image at once: python -m ttl_utils check{where}",
              file=sys.stderr)
        return 2
    except (DatasetError, DownloadError, WeightsUnavailableError, BusyError, OSError, FloatingPointError,
            ValueError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if "Original Traceback" not in str(err):
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)  # a data-loading worker's error
        return 2
    finally:
        log.setLevel(level)  # a caller's logging (a test, a notebook) is left as it was
    return 0
