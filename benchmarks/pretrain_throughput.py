"""Barlow Twins pretraining throughput, in images a second, part by part and end to end.

    python benchmarks/pretrain_throughput.py                        # CPU: a tiny configuration
    python benchmarks/pretrain_throughput.py --backbone resnet50 --image-size 224 \
        --batch-size 256 --projector 8192-8192-8192 --workers 16 --compile   # one GPU, the paper's model

Prints one line a measurement:
- `step fp32` / `step fp16+scaler` (the official code's step) / `step bf16+channels_last`
  (`+compile` with `--compile`): forward, loss, backward and optimiser step on two batches of
  views already on the device;
- `loader cpu-augment`: the CPU augmentation pipeline alone (decode, two views, collate) with
  `--workers` processes, what feeds the official code;
- `end-to-end --augment cpu` and `end-to-end --augment gpu`: `pretrain`'s own loop from JPEG
  files (on a GPU, `--augment gpu` decodes JPEGs with nvJPEG and augments on the device).

Goal on one H200 with 16 cores (ResNet-50, 224 px, 8192-8192-8192, batch 256): end to end
at 2500 images/s or more, within 10% of the bare compiled step. Without `--data`, JPEGs of
the demo data are written to a temporary folder (`--images` of them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.models.backbones import build_backbone
from ttl_utils.models.embedder import Embedder
from ttl_utils.train.pretrain import BarlowTwins, ImageFolderImages, pretrain
from ttl_utils.train.recipes import PretrainConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(args, device: torch.device, channels_last: bool) -> BarlowTwins:
    model = BarlowTwins(Embedder(build_backbone(args.backbone, None)), args.projector).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def time_step(args, device: torch.device, precision: str, compile_model: bool = False) -> float:
    """Images a second of bare training steps on random views already on the device."""
    channels_last = precision == "bf16"
    model = _model(args, device, channels_last)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    runner = torch.compile(model) if compile_model else model
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    views = [torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device).contiguous(memory_format=fmt)
             for _ in range(2)]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = runner(*views)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    for _ in range(args.warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def time_loader(args, folder: Path) -> float:
    """Images a second of the CPU augmentation pipeline alone (what feeds the official code)."""
    data = ImageFolderImages(folder, args.image_size, two_views=True)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                        persistent_workers=False)
    batches = iter(loader)
    next(batches)  # workers started
    start, seen = time.perf_counter(), 0
    for i, (view_1, _) in enumerate(batches):
        seen += len(view_1)
        if i + 1 >= args.steps:
            break
    return seen / (time.perf_counter() - start)


def time_end_to_end(args, folder: Path, device: torch.device, augment: str) -> float:
    """Images a second of `pretrain` itself (one epoch of `--steps` steps after `--warmup`), from JPEG files."""
    with tempfile.TemporaryDirectory() as tmp:
        config = PretrainConfig(
            data=str(folder), out=str(Path(tmp) / "bt.pt"), backbone=args.backbone, init="none", epochs=1,
            batch_size=args.batch_size, image_size=args.image_size, projector=args.projector, augment=augment,
            workers=args.workers, device=device.type, compile=args.compile, max_steps=args.warmup + args.steps,
            log_every=1,
        )
        pretrain(config)
        lines = (Path(tmp) / "bt.pt.log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # images/s is cumulative over the epoch: take the rate between the end of warm-up and the end
    first, last = records[args.warmup - 1], records[-1]
    seen_first = first["step"] * args.batch_size
    seen_last = last["step"] * args.batch_size
    elapsed = seen_last / last["images_per_s"] - seen_first / first["images_per_s"]
    return (seen_last - seen_first) / elapsed


def demo_folder(n_images: int, size: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bt-bench-"))
    pairs = make_demo_pairs(max(1, n_images // 2), size, seed=0)
    (folder / "images").mkdir()
    for i in range(len(pairs)):
        pairs.left_image(i).save(folder / "images" / f"{i:05d}-l.jpg", quality=90)
        pairs.right_image(i).save(folder / "images" / f"{i:05d}-r.jpg", quality=90)
    return folder


def main(argv: list[str] | None = None) -> dict[str, float]:
    os.environ.setdefault("TQDM_DISABLE", "1")
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    on = "on this machine, with CUDA" if cuda else "on this machine, without CUDA"
    parser.add_argument("--backbone", default="resnet50" if cuda else "resnet18", help="default %(default)s " + on)
    parser.add_argument("--image-size", type=int, default=224 if cuda else 64, help="default %(default)s " + on)
    parser.add_argument("--batch-size", type=int, default=256 if cuda else 16, help="default %(default)s " + on)
    parser.add_argument("--projector", type=lambda t: tuple(int(p) for p in t.split("-")),
                        default=(8192, 8192, 8192) if cuda else (256, 256), help="widths, e.g. 8192-8192-8192")
    parser.add_argument("--steps", type=int, default=20 if cuda else 4, help="timed steps (default %(default)s " + on + ")")
    parser.add_argument("--warmup", type=int, default=5 if cuda else 1,
                        help="untimed steps first, at least 1 (default %(default)s " + on + ")")
    parser.add_argument("--workers", type=int, default=16 if cuda else 1,
                        help="data-loading processes (default %(default)s " + on + ")")
    parser.add_argument("--compile", action="store_true", help="also time (and run end to end with) torch.compile")
    parser.add_argument("--data", type=Path, help="a folder of JPEGs (default: demo JPEGs in a temporary folder)")
    parser.add_argument("--images", type=int, default=None, help="demo images to write (default: enough for the run)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps: at least 1 each")
    device = torch.device("cuda" if cuda else "cpu")
    if args.data is not None:
        return _measure(args, device, args.data)
    folder = demo_folder(args.images or args.batch_size * (args.steps + args.warmup + 1), 250)
    try:
        return _measure(args, device, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the demo JPEGs: thousands of pictures a GPU run


def _measure(args: argparse.Namespace, device: torch.device, folder: Path) -> dict[str, float]:
    """Time each part on the JPEGs of `folder`, print one line a measurement and return them."""
    cuda = device.type == "cuda"
    print(f"{device}: {args.backbone}, {args.image_size} px, batch {args.batch_size}, projector "
          f"{'-'.join(map(str, args.projector))}, {args.workers} workers, {torch.get_num_threads()} threads")
    results = {"step fp32": time_step(args, device, "fp32")}
    if cuda:
        results["step fp16+scaler (official)"] = time_step(args, device, "fp16")
        results["step bf16+channels_last"] = time_step(args, device, "bf16")
        if args.compile:
            results["step bf16+channels_last+compile"] = time_step(args, device, "bf16", compile_model=True)
    results["loader cpu-augment"] = time_loader(args, folder)
    results["end-to-end --augment cpu"] = time_end_to_end(args, folder, device, "cpu")
    results["end-to-end --augment gpu"] = time_end_to_end(args, folder, device, "gpu")
    for name, rate in results.items():
        print(f"{name:34s} {rate:9.1f} images/s")
    if cuda:
        bare = max(v for k, v in results.items() if k.startswith("step"))
        e2e = results["end-to-end --augment gpu"]
        print(f"end to end / best bare step: {e2e / bare:.2f} (goal >= 0.90); goal 2500 images/s: "
              f"{'met' if e2e >= 2500 else 'not met'}")
    return results


if __name__ == "__main__":
    main()
