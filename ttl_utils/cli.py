"""`python -m ttl_utils COMMAND`: the project's command line.

Commands: `download` (the official TTL release), `check` (validate a dataset folder),
`demo` (write the demo data as a folder, or a picture of it), `evaluate` (retrieval
metrics of a backbone or checkpoint on a dataset), `pretrain` (Barlow Twins).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .config import get_profile
from .data import resolve_pairs, write_pairs
from .demo import make_demo_pairs
from .download import DownloadError, download_ttl, install_archives
from .evaluation import evaluate_model, format_report, summary
from .models import BACKBONES, WeightsUnavailableError, build_embedder, load_checkpoint
from .pairs import DatasetError
from .splits import split_pairs
from .storage import save_json
from .transforms import Preprocessing

log = logging.getLogger("ttl_utils")


class UsageError(ValueError):
    """A command-line choice that cannot work here."""


def _layers(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _download(args: argparse.Namespace) -> None:
    if args.from_zip:
        install_archives(*args.from_zip, dest=args.dest)
    else:
        download_ttl(dest=args.dest)


def _check(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    pairs = resolve_pairs(args.data, validate=True)
    seconds = time.perf_counter() - start
    print(f"OK: {pairs.describe()}; every image opened in {seconds:.1f} s; fingerprint {pairs.fingerprint}")


def _demo(args: argparse.Namespace) -> None:
    pairs = make_demo_pairs(args.n_pairs, args.size, args.seed)
    if args.out:
        write_pairs(pairs, Path(args.out))
        print(f"Wrote {len(pairs)} demo pairs to {args.out} (official layout)")
    if args.figure:
        from .plots import pair_grid, save_fig, set_theme

        set_theme()
        fig = pair_grid(pairs, indices=np.arange(min(args.n_pairs, args.cols * args.rows)), cols=args.cols)
        for path in save_fig(fig, Path(args.figure).name, Path(args.figure).parent):
            print(f"Wrote {path}")


def _evaluate(args: argparse.Namespace) -> None:
    import torch

    profile = get_profile()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but CUDA is not available here; use --device cpu.")
    if args.checkpoint:
        embedder, preprocessing, _ = load_checkpoint(args.checkpoint)
        if args.image_size:
            preprocessing = Preprocessing.for_size(args.image_size, mean=preprocessing.mean, std=preprocessing.std)
    else:
        weights = None if args.weights == "none" else args.weights
        embedder = build_embedder(args.backbone or profile.backbone, weights, args.layers)
        preprocessing = Preprocessing.for_size(args.image_size or profile.image_size)
    pairs = resolve_pairs(args.data, profile)
    if args.split != "all":
        pairs = split_pairs(pairs)[args.split]
    batch_size = args.batch_size or (profile.batch_size if device.startswith("cuda") else 32)
    report = evaluate_model(embedder, preprocessing, pairs, batch_size=batch_size,
                            device=device, num_workers=args.workers, cache=not args.no_cache)
    print(format_report(report))
    if args.json:
        save_json(summary(report), args.json)
        print(f"Wrote {args.json}")


def _pretrain(args: argparse.Namespace) -> None:
    from .pretrain import PretrainConfig, pretrain

    profile = get_profile()
    backbone = args.backbone or profile.backbone
    config = PretrainConfig(
        data=str(args.data), out=str(args.out), backbone=backbone, init=args.init,
        epochs=args.epochs or profile.epochs, batch_size=args.batch_size or profile.batch_size,
        image_size=args.image_size or profile.image_size, projector=args.projector or default_projector(backbone),
        optimizer=args.optimizer,
        lr=args.lr, augment=args.augment, workers=args.workers, device=args.device or _default_device(),
        compile=args.compile, sync_batchnorm=args.sync_batchnorm, max_steps=args.max_steps, seed=args.seed,
    )
    print(f"Wrote {pretrain(config, resume=args.resume)}")


def default_projector(backbone: str) -> tuple[int, ...]:
    """Return the projector sizes: the paper's 8192-8192-8192 for ResNet-50, 1024-1024-1024 for smaller backbones."""
    return (8192, 8192, 8192) if backbone == "resnet50" else (1024, 1024, 1024)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-"))


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m ttl_utils`."""
    parser = argparse.ArgumentParser(prog="python -m ttl_utils", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download and install the official TTL release")
    p.add_argument("--dest", type=Path, default=None, help="install folder (default: data/ttl)")
    p.add_argument("--from-zip", nargs=2, type=Path, metavar=("LEFT.zip", "RIGHT.zip"),
                   help="install archives downloaded by hand instead of downloading")
    p.set_defaults(run=_download)

    p = sub.add_parser("check", help="open every image of a dataset once and report all problems")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: $TTL_DATA, data/ttl, demo)")
    p.set_defaults(run=_check)

    p = sub.add_parser("demo", help="write the procedurally drawn demo pairs as a folder or a figure")
    p.add_argument("--n-pairs", type=int, default=get_profile("cpu").demo_pairs)
    p.add_argument("--size", type=int, default=get_profile("cpu").demo_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="folder to write left/ and right/ into")
    p.add_argument("--figure", type=Path, help="figure path without extension, e.g. figures/demo_pairs")
    p.add_argument("--cols", type=int, default=4, help="pairs a row in the figure")
    p.add_argument("--rows", type=int, default=3, help="rows in the figure")
    p.set_defaults(run=_demo)

    p = sub.add_parser("evaluate", help="rank all right images for each left image (and back) and report R@k")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: $TTL_DATA, data/ttl, demo)")
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                   help="which pairs to evaluate on (the saved split under data/splits/; default: test)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=None, help="default: the profile's backbone")
    p.add_argument("--weights", default="imagenet", help="imagenet, barlowtwins (resnet50) or none")
    p.add_argument("--layers", type=_layers, default=("layer4",),
                   help="stages to pool, comma-separated, e.g. layer2,layer4 (default: layer4)")
    p.add_argument("--checkpoint", type=Path, help="a checkpoint written by this project (overrides --backbone)")
    p.add_argument("--image-size", type=int, default=None, help="crop size in pixels (default: the profile's)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, the profile's on GPU")
    p.add_argument("--workers", type=int, default=None, help="data-loading processes (default: spare cores, at most 4)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings even if cached under artifacts/")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("pretrain", help="Barlow Twins pretraining on a folder of images (torchrun for many GPUs)")
    p.add_argument("--data", type=Path, required=True, help="image folder, searched recursively (ImageNet train/, TTL, ...)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path, written after every epoch")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=None, help="default: the profile's backbone")
    p.add_argument("--init", default="imagenet", help="imagenet, none (random), or a checkpoint of this project")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="per process")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--projector", type=_sizes, default=None,
                   help="e.g. 8192-8192-8192 (default for resnet50, as in the paper; 1024-1024-1024 otherwise)")
    p.add_argument("--optimizer", choices=("adamw", "lars"), default="adamw")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW's learning rate (LARS uses the paper's, scaled)")
    p.add_argument("--augment", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--sync-batchnorm", action="store_true")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (quick checks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint at --out")
    p.set_defaults(run=_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad input: data, download, model, arguments)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        args.run(args)
    except (DatasetError, DownloadError, WeightsUnavailableError, FileNotFoundError, FloatingPointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
