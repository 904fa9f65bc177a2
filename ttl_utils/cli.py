"""`python -m ttl_utils COMMAND` (or `ttl COMMAND`): the project's command line.

Commands: `download` (the official TTL release), `check` (validate a dataset folder),
`demo` (write the demo data as a folder, or a picture of it), `evaluate` (retrieval
metrics of a model on a dataset), `compare` (several models on the same pairs: table,
paired gains, verdicts, rank histogram), `find` (the look-alikes of any picture in a
gallery, with why), `pretrain` (Barlow Twins), `finetune` (projection layers and the last
stages, triplet or InfoNCE loss, on TTL pairs), `env` (the settings in force).

A model is named one way everywhere (`--model SPEC`, and `--init SPEC` for where training
starts): a checkpoint file of this project, a backbone (`efficientnet_lite0`: its ImageNet
weights), or `backbone:weights` (`efficientnet_lite0:none` for random weights,
`resnet50:barlowtwins`). This module only builds the parser, light enough that `--help`
answers at once; what each command does is in `commands`, imported when one runs.

Exit status: 0 done, 1 a failure of the data or the run, 2 a usage mistake, 130 interrupted.
With `--json -` the JSON is the only thing on standard output; everything else goes to
standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext, redirect_stdout
from pathlib import Path

from .config import PROFILES, get_profile
from .errors import UsageError
from .models.catalog import BACKBONES, LAYERS
from .train.recipes import ASSIGNMENTS, LOSSES, MINERS, UNLABELLED_LOSSES, FinetuneConfig

log = logging.getLogger("ttl_utils")

__all__ = ["build_parser", "main"]

_SPEC = "a checkpoint file, a backbone, or backbone:weights (" + ", ".join(sorted(BACKBONES)) + "; :none for random weights)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (`error: ...`), with where to read more."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Moved(argparse.Action):
    """An old flag: using it stops with one line naming the flag that replaced it."""

    def __init__(self, option_strings, dest, now: str, nargs="?", **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, help=argparse.SUPPRESS, **kwargs)
        self.now = now

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is now {self.now}")


def _layers(text: str) -> tuple[str, ...]:
    layers = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))  # each once
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise argparse.ArgumentTypeError(f"{text!r}: choose stages among {', '.join(LAYERS)}, comma-separated "
                                         "(e.g. layer3,layer4).")
    return layers


def _file(text: str) -> Path:
    """A file to write (`--json`, `--figure`, `--out`): a name ending in a separator is a folder, refused
    like an existing folder (the separator would otherwise be dropped and a file written beside it)."""
    if text.endswith(("/", "\\")):
        raise argparse.ArgumentTypeError(f"{text}: that is a folder; give a file name in it (e.g. {text}result).")
    return Path(text)


def _positive(text: str) -> int:
    """An integer of at least 1 (0 would mean nothing here, not "the default")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1 (leave the flag out for its default).")
    return value


def _days(text: str) -> float:
    """A number of days above 0 (`cache --prune --older-than`)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of days above 0, e.g. 14 (leave the flag out for 30).")
    return value


def _size(text: str) -> int:
    """A size in bytes from `2GB`, `500MB`, `1.5G` or a number of bytes."""
    units = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30, "T": 2**40,
             "TB": 2**40}
    number = text.strip().upper().rstrip("IB") if text.strip().upper().endswith("IB") else text.strip().upper()
    digits = number.rstrip("BKMGT")
    try:
        value = float(digits) * units[number[len(digits):]]
    except (ValueError, KeyError):
        value = float("nan")
    if not 0 <= value < 2**63:  # nan, inf and negative sizes too
        raise argparse.ArgumentTypeError(f"{text!r}: give a size such as 2GB, 500MB or 1.5G.")
    return int(value)


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


def _share(text: str) -> float:
    """A number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number.") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value}: give a share above 0 and at most 1 (e.g. 0.25).")
    return value


def _device(text: str) -> str:
    """cpu, cuda, cuda:N or mps; whether it is available here is checked when the command starts."""
    name = text.strip().lower()
    if name in ("cpu", "cuda", "mps") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise argparse.ArgumentTypeError(f"{text!r}: choose cpu, cuda, cuda:N or mps.")


def _sizes(text: str) -> tuple[int, ...]:
    """Layer widths joined by dashes, e.g. 8192-8192-8192."""
    try:
        sizes = tuple(int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths joined by dashes, e.g. 1024-1024-1024.") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every width must be at least 1.")
    return sizes


_DATA_HELP = "dataset folder: left/ and right/ (and pairs.csv) (default: $TTL_DATA, else data/ttl, else the demo data)"
_WORKERS_HELP = ("image decoding: threads feeding the inference engine on CPU, processes on a GPU and for "
                 "augmented views (default: cores + 1 threads; spare cores, at most 4, processes); 0: none")
_DEVICE_HELP = "cpu, cuda, cuda:N or mps (default: cuda when available)"
_FLIP_HELP = ("embed each picture as the mean of its own and its mirror image's embeddings (twice the forward "
              "passes; cached apart)")
_BATCH_HELP = "images a forward pass (default: 32 on CPU, the profile's on a GPU)"
_JSON_HELP = "also write the results as JSON to this file; - for standard output (then only the JSON goes there)"


def _common() -> argparse.ArgumentParser:
    """The options every command takes (also before the command's name)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", choices=sorted(PROFILES), default=argparse.SUPPRESS,
                        help="the size of the run: smoke, cpu or gpu (default: $TTL_PROFILE, else gpu with CUDA, else cpu)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="log warnings only")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on a failure, show the whole traceback instead of one line")
    return common


def _command(sub, name: str, help: str, examples: list[str], description: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand `name`, its help ending with `examples`, and the common options."""
    epilog = "examples:\n" + "\n".join(f"  python -m ttl_utils {name} {example}" for example in examples)
    p = sub.add_parser(name, help=help, description=description or (help[0].upper() + help[1:]).replace("%%", "%") + ".",
                       epilog=epilog,
                       parents=[_common()], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=name)
    return p


def _add_download(sub) -> None:
    p = _command(sub, "download", "download and install the official TTL release (6016 pairs) into data/ttl",
                 ["", "--from-zip left.zip right.zip", "--resnet50-weights"])
    p.add_argument("--dest", type=Path, default=None, help="install folder (default: data/ttl)")
    p.add_argument("--from-zip", nargs=2, type=Path, metavar=("LEFT.zip", "RIGHT.zip"),
                   help="install archives downloaded by hand instead of downloading")
    p.add_argument("--resnet50-weights", action="store_true",
                   help="instead: fetch the study's ResNet-50 weights (supervised and Barlow Twins ImageNet) "
                        "into torch.hub's cache, for notebook 06")
    p.add_argument("--weights", action=_Moved, nargs=0, now="--resnet50-weights")


def _add_check(sub) -> None:
    p = _command(sub, "check", "open every image of a dataset once and report all problems at once",
                 ["--data data/ttl"])
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)


def _add_demo(sub) -> None:
    cpu = get_profile("cpu")
    p = _command(sub, "demo", "write the procedurally drawn demo pairs as a dataset folder or a picture of them",
                 ["--out demo/ --n-pairs 100", "--figure figures/demo_pairs"])
    p.add_argument("--n-pairs", type=_positive, default=cpu.demo_pairs, help=f"pairs to draw (default {cpu.demo_pairs})")
    p.add_argument("--size", type=_positive, default=cpu.demo_size, help=f"side of each picture in pixels "
                                                                          f"(default {cpu.demo_size})")
    p.add_argument("--seed", type=int, default=0, help="the same seed draws the same pairs (default 0)")
    p.add_argument("--out", type=Path, help="folder to write left/ and right/ into")
    p.add_argument("--figure", type=_file, help="picture to write, e.g. figures/demo_pairs (.png is added)")
    p.add_argument("--cols", type=_positive, default=4, help="pairs a row in the picture (default 4)")
    p.add_argument("--rows", type=_positive, default=3, help="rows in the picture (default 3)")


def _add_model_flags(p: argparse.ArgumentParser, now: str) -> None:
    """The flags that named a model before `--model`: each says what replaced it."""
    p.add_argument("--checkpoint", action=_Moved, now=f"{now} PATH (a MODEL is {_SPEC})")
    p.add_argument("--backbone", action=_Moved, now=f"{now} BACKBONE[:WEIGHTS] (e.g. {now} efficientnet_lite0)")
    p.add_argument("--weights", action=_Moved, now=f"part of {now}: {now} BACKBONE:WEIGHTS (e.g. efficientnet_lite0:none)")


def _add_hub_bank(p: argparse.ArgumentParser) -> None:
    """evaluate's and compare's hub correction: a bank with both sides, never the evaluated pairs."""
    p.add_argument("--hub-bank", type=Path, default=None, metavar="FOLDER",
                   help="correct for hubs (CSLS) against a folder with left/ and right/ holding none of the evaluated "
                        "pictures, e.g. data/unlabelled; a candidate near many bank pictures ranks lower")
    p.add_argument("--hub-k", type=_positive, default=10, help="bank pictures a candidate is compared with (default 10)")
    _add_hub_correction(p)


def _add_hub_correction(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub-correction", action=argparse.BooleanOptionalAction, default=None,
                   help="rank a fine-tuned checkpoint by CSLS against the training pictures it keeps (default: on in "
                        "every profile; a backbone keeps none and ranks by cosine, and an explicit --hub-correction "
                        "then stops); scores printed stay cosines; --hub-bank gives another bank")


def _add_evaluate(sub) -> None:
    p = _command(sub, "evaluate", "rank all right images for each left image (and back) and report R@k with 95%% CIs",
                 ["--data data/ttl", "--data data/ttl --model runs/ft.pt --json -",
                  "--model efficientnet_lite0:none --split all"])
    p.add_argument("--model", default=None, metavar="SPEC", help=f"{_SPEC} (default: the profile's backbone)")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                   help="which pairs to evaluate on (the saved split under data/splits/; default: test)")
    p.add_argument("--layers", type=_layers, default=None,
                   help="a backbone's stages to pool, comma-separated, e.g. layer2,layer4 (default: layer4)")
    p.add_argument("--grid", type=int, default=None, choices=range(0, 8), metavar="G",
                   help="pool a backbone's stages into G x G cells, keeping the layout (default 0: global average)")
    p.add_argument("--image-size", type=_image_size, default=None,
                   help="crop size in pixels (default: the checkpoint's, else the profile's)")
    p.add_argument("--batch-size", type=_positive, default=None, help=_BATCH_HELP)
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings even if cached under artifacts/")
    p.add_argument("--json", type=_file, help=_JSON_HELP)
    p.add_argument("--flip", action="store_true", help=_FLIP_HELP)
    _add_hub_bank(p)
    _add_model_flags(p, "--model")


def _add_compare(sub) -> None:
    p = _command(sub, "compare", "rank the same pairs with several models: a table with CIs, paired gains, verdicts, "
                 "the rank histogram",
                 ["--model efficientnet_lite0 runs/ft.pt --names ImageNet fine-tuned",
                  "--model runs/ft.pt runs/bt-ft.pt --subset generic --figure out/cmp --json -"],
                 description="Each MODEL ranks the same pairs; gains and verdicts are over the first MODEL.")
    p.add_argument("--model", nargs="+", default=None, metavar="SPEC", help=f"the models, each {_SPEC}")
    p.add_argument("--names", nargs="+", default=None, help="one display name per model (default: the SPECs)")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="the saved split's test pairs (default) or every pair")
    p.add_argument("--subset", choices=("all", "generic"), default="all",
                   help="generic: only pairs with no face found on either side (the study's setting)")
    p.add_argument("--figure", type=_file, help="write PREFIX_rank_histogram.png and PREFIX_cmc.png")
    p.add_argument("--json", type=_file, help=_JSON_HELP + "; it holds the table, verdicts and ranks")
    p.add_argument("--batch-size", type=_positive, default=None, help=_BATCH_HELP)
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings even if cached under artifacts/")
    p.add_argument("--flip", action="store_true", help=_FLIP_HELP)
    _add_hub_bank(p)
    p.add_argument("positional", nargs="*", help=argparse.SUPPRESS)


def _add_find(sub) -> None:
    p = _command(sub, "find", "find the look-alikes of any picture in a gallery of images, and why",
                 ["me.jpg --gallery data/ttl --top 5", "photos/ --gallery data/ttl --side both --explain --figure out/me",
                  "me.jpg --gallery photos/ --model runs/ft.pt --json -"],
                 description="Ranks every picture of the gallery by its similarity to each QUERY (cosine; for a "
                             "fine-tuned model corrected for hubs by default, --no-hub-correction for plain cosine). "
                             "The model: "
                             "--model, else the profile's chosen fine-tuned model when it is cached, else the "
                             "profile's backbone zero-shot.")
    p.add_argument("queries", nargs="+", metavar="QUERY", type=Path, help="an image file, or a folder of them")
    p.add_argument("--gallery", type=Path, required=True,
                   help="a folder of images (searched recursively) or a dataset folder (left/ and right/)")
    p.add_argument("--side", choices=("left", "right", "both"), default="right",
                   help="for a dataset gallery: which images to search (default: right)")
    p.add_argument("--model", default=None, metavar="SPEC", help=_SPEC)
    p.add_argument("--data", type=Path, default=None,
                   help="the dataset whose chosen fine-tuned model is the default (default: $TTL_DATA, data/ttl, demo)")
    p.add_argument("--top", type=_positive, default=5, help="matches a query (default 5)")
    p.add_argument("--keep-self", action="store_true",
                   help="keep a query's own file (the same content) among its matches; by default it is left out")
    p.add_argument("--figure", type=_file, help="write FIGURE.png: each query and its matches")
    p.add_argument("--explain", action="store_true",
                   help="in the figure, overlay the saliency of each similarity on the query and the match")
    p.add_argument("--json", type=_file, help=_JSON_HELP)
    p.add_argument("--batch-size", type=_positive, default=None, help=_BATCH_HELP)
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true",
                   help="embed the whole gallery now, neither reading nor writing artifacts/gallery/")
    p.add_argument("--flip", action="store_true", help=_FLIP_HELP)
    p.add_argument("--hub-bank", type=Path, default=None, metavar="FOLDER",
                   help="correct for hubs (CSLS): pictures of the queries' kind, never the queries themselves, e.g. "
                        "data/ttl/left; a gallery picture near many of them is ranked lower")
    p.add_argument("--hub-k", type=_positive, default=10, help="bank pictures a gallery picture is compared with "
                                                                "(default 10)")
    _add_hub_correction(p)
    _add_model_flags(p, "--model")


def _add_pretrain(sub) -> None:
    p = _command(sub, "pretrain", "Barlow Twins pretraining on a folder of images (torchrun for many GPUs)",
                 ["--data data/ttl --data data/unlabelled --out runs/bt.pt",
                  "--data data/ttl --out runs/bt.pt --init resnet18:none --epochs 100",
                  "--data /imagenet/train --out runs/bt.pt --init resnet50 --resume"],
                 description="Barlow Twins pretraining on every image under --data. Defaults not given come from "
                             "the profile's recipe (ttl_utils.train.recipes): cpu: 1 epoch, batch 32, 96 px, AdamW; "
                             "gpu: LARS at the profile's sizes. Under torchrun: "
                             "torchrun --nproc_per_node=8 -m ttl_utils pretrain ...")
    p.add_argument("--data", type=Path, required=True, action="append",
                   help="image folder, searched recursively (ImageNet train/, TTL, ...); give it again for more "
                        "folders (--data data/ttl --data data/unlabelled)")
    p.add_argument("--out", type=_file, required=True, help="checkpoint path, written after every epoch")
    p.add_argument("--init", default=None, metavar="SPEC",
                   help=f"where training starts: {_SPEC} (default: the profile's backbone, ImageNet weights)")
    p.add_argument("--epochs", type=_positive, default=None, help="default: the profile's recipe")
    p.add_argument("--batch-size", type=_positive, default=None, help="per process (default: the profile's recipe)")
    p.add_argument("--image-size", type=_image_size, default=None, help="default: the profile's recipe")
    p.add_argument("--projector", type=_sizes, default=None,
                   help="e.g. 8192-8192-8192 (default for resnet50, as in the paper; 1024-1024-1024 otherwise)")
    p.add_argument("--optimizer", choices=("adamw", "lars"), default=None, help="default: lars (gpu profile), adamw")
    p.add_argument("--lr", type=float, default=None, help="AdamW's learning rate (default 1e-4; LARS uses the paper's)")
    p.add_argument("--augment", choices=("cpu", "gpu"), default=None,
                   help="cpu: in data-loader workers; gpu: in batches on the device (default: gpu in the gpu profile, else cpu)")
    p.add_argument("--no-blur", action="store_true", help="never blur the views (the paper blurs them; an ablation)")
    p.add_argument("--workers", type=_count, default=None, help="data-loading processes (default: the profile's)")
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--compile", action="store_true", help="compile the model with torch.compile (on a GPU)")
    p.add_argument("--sync-batchnorm", action="store_true", help="synchronise batch-norm statistics across GPUs")
    p.add_argument("--max-steps", type=_positive, default=None, help="stop after this many steps (quick checks)")
    p.add_argument("--seed", type=int, default=None, help="shuffling and augmentation seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    p.add_argument("--backbone", action=_Moved, now="--init BACKBONE (--init BACKBONE:none for random weights)")


def _add_finetune_model(p: argparse.ArgumentParser) -> None:
    """The flags that say which model trains and on what features."""
    p.add_argument("--init", default=None, metavar="SPEC",
                   help=f"where training starts: {_SPEC.replace('; :none for random weights', '')} (default: the "
                        "profile's backbone, ImageNet weights)")
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
    p.add_argument("--backbone", action=_Moved, now="--init BACKBONE")
    p.add_argument("--weights", action=_Moved, now="part of --init: --init BACKBONE:WEIGHTS (e.g. resnet50:barlowtwins)")


def _add_finetune_training(p: argparse.ArgumentParser) -> None:
    """The flags that say how it trains."""
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help=f"infonce or triplet (default {FinetuneConfig.loss}; the better on held-out pairs)")
    p.add_argument("--miner", choices=MINERS, default=None,
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
    p.add_argument("--select-k", type=_positive, default=None, help="early stopping watches validation R@k (default 20)")
    p.add_argument("--patience", type=_positive, default=None, help="epochs without gain before stopping (default 3)")
    p.add_argument("--unlabelled", type=Path, default=None, metavar="DIR",
                   help="also learn from an unlabelled pool: DIR/left, DIR/right and DIR/candidates.csv (each left "
                        "picture's 20 candidates): by default its confident pseudo-pairs join the training pairs "
                        "(see --unlabelled-loss)")
    p.add_argument("--unlabelled-keep", type=_share, default=None, metavar="SHARE",
                   help=f"the share of pseudo-pairs kept, the most confident (default {FinetuneConfig.unlabelled_keep})")
    p.add_argument("--unlabelled-refresh", type=_positive, default=None, metavar="N",
                   help=f"re-assign the pseudo-pairs every N epochs (default {FinetuneConfig.unlabelled_refresh})")
    p.add_argument("--unlabelled-assign", choices=ASSIGNMENTS, default=None,
                   help="pair each pool left picture with one candidate, each right picture once: greedy, the best "
                        "scores first; optimal, as many pairs as the candidate lists allow, then the highest total "
                        f"score (default {FinetuneConfig.unlabelled_assign})")
    p.add_argument("--unlabelled-loss", choices=UNLABELLED_LOSSES, default=None,
                   help="how the candidate lists teach: pseudo, confident pseudo-pairs join the training pairs; mil, "
                        "each pool left picture is pulled towards its candidates together, away from the pool's other "
                        f"right pictures (MIL-NCE) (default {FinetuneConfig.unlabelled_loss})")


def _add_finetune(sub) -> None:
    p = _command(sub, "finetune", "fine-tune projection layers (and the last stages) on TTL pairs",
                 ["--data data/ttl --out runs/ft.pt", "--data data/ttl --out runs/bt-ft.pt --init runs/bt.pt",
                  "--data data/ttl --split all --out runs/all.pt --init resnet50:barlowtwins --loss triplet",
                  "--data data/ttl --out runs/ft-pool.pt --unlabelled data/unlabelled"])
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--split", choices=("train", "all"), default="train",
                   help="train: the saved split's train pairs, early stopping on its val pairs; all: every pair, "
                        "no validation (to evaluate on another dataset)")
    p.add_argument("--out", type=_file, required=True, help="checkpoint path (the best epoch), for evaluate --model")
    _add_finetune_model(p)
    _add_finetune_training(p)
    p.add_argument("--workers", type=_count, default=None, help=_WORKERS_HELP)
    p.add_argument("--device", type=_device, default=None, help=_DEVICE_HELP)
    p.add_argument("--no-cache", action="store_true", help="do not keep the frozen part's outputs under artifacts/")
    p.add_argument("--seed", type=int, default=None, help="initialisation, shuffling and augmentation seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")


def _add_env(sub) -> None:
    p = _command(sub, "env", "print the settings in force: profile, device, data, figures and cache folders, versions",
                 ["", "--profile smoke --json -"])
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--json", type=_file, help=_JSON_HELP)


def _add_cache(sub) -> None:
    p = _command(sub, "cache", "list what artifacts/ holds by kind, with sizes; --prune removes what was not used lately",
                 ["", "--prune --older-than 14", "--prune --max-size 2GB", "--prune --kind embeddings --kind gallery"],
                 description="Every cached result (embeddings, trunk outputs, training runs, ONNX exports, ...) can be "
                             "computed again: removing it costs time, never a result. A cache file's time is the last "
                             "time it was used.")
    p.add_argument("--prune", action="store_true", help="remove the files of --kind, those unused for --older-than "
                                                        "days, the least recently used beyond --max-size, and temporary "
                                                        "files interrupted writes left (alone: --older-than 30)")
    p.add_argument("--older-than", type=_days, default=None, metavar="DAYS",
                   help="with --prune: files not used for this many days (--prune alone: 30)")
    p.add_argument("--max-size", type=_size, default=None, metavar="SIZE",
                   help="with --prune: keep at most this much (e.g. 2GB, 500MB), removing the least recently used first "
                        "(a picture folder goes whole; the notebooks' figures stay)")
    p.add_argument("--kind", action="append", default=None, metavar="KIND",
                   help="with --prune: every file of this kind whatever its age (a folder of artifacts/; give it again "
                        "for more)")
    p.add_argument("--json", type=_file, help=_JSON_HELP)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m ttl_utils`: one small function a subcommand."""
    from . import __version__

    parser = _Parser(prog="python -m ttl_utils", parents=[_common()],
                     description="Learning human-like image similarity on Totally-Looks-Like: evaluate, compare, find, "
                                 "pretrain and fine-tune models of look-alike pictures (`ttl` is the same command).",
                     epilog="`python -m ttl_utils COMMAND --help` shows a command's flags and examples.")
    parser.add_argument("--version", action="version", version=f"ttl_utils {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (_add_download, _add_check, _add_demo, _add_evaluate, _add_compare, _add_find, _add_pretrain,
                _add_finetune, _add_env, _add_cache):
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


def _settle(args: argparse.Namespace) -> None:
    """Give the common options their defaults and choose the profile, once, for everything below."""
    for name, default in (("quiet", False), ("debug", False), ("profile", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        args.profile = get_profile(args.profile)
    except ValueError as err:  # TTL_PROFILE names no profile
        raise UsageError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 2 for a usage mistake, 1 for a failure of the data
    or the run (one `error:` line; the traceback with `--debug`), 130 when interrupted (Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) or a mistake in the arguments (2, said in one line)
        return int(stop.code or 0)
    # the project's messages at INFO; other libraries' (fontTools writing PDFs, ...) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    level = log.level
    try:
        _settle(args)
        log.setLevel(logging.WARNING if args.quiet else logging.INFO)
        args.stdout = sys.stdout  # where `--json -` writes: the only thing there
        with redirect_stdout(sys.stderr) if str(getattr(args, "json", None)) == "-" else nullcontext():
            from . import commands

            getattr(commands, f"{args.run}_command")(args)
    except KeyboardInterrupt:
        resume = " --resume continues the run from its last epoch." if args.command in ("finetune", "pretrain") else ""
        print("Interrupted: the files already written are complete (each is written whole, then renamed)."
              + resume, file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure is one line unless --debug asks for the traceback
        if getattr(args, "debug", False):
            raise
        return _report(err, args)
    finally:
        log.setLevel(level)  # a caller's logging (a test, a notebook) is left as it was
    return 0


def _report(err: Exception, args: argparse.Namespace) -> int:
    """Print `err` as one `error:` line and return its exit status (2: usage, 1: data or run); re-raise
    what is a bug, not the user's doing."""
    from .errors import BusyError, DiskFullError, DownloadError, UnreadableImage, WeightsUnavailableError

    if isinstance(err, UnreadableImage):
        data = getattr(args, "data", None)
        where = f" --data {data}" if data else ""
        print(f"error: {_one_line(err)} To list every unreadable image at once: python -m ttl_utils check{where}",
              file=sys.stderr)
        return 1
    if isinstance(err, RuntimeError) and "Original Traceback" in str(err):  # a data-loading worker's error
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    if not isinstance(err, (ValueError, OSError, FloatingPointError, DownloadError, WeightsUnavailableError, BusyError)):
        raise err  # not the user's doing: a bug, whose traceback is what a report needs
    if isinstance(err, DiskFullError) and args.command in ("finetune", "pretrain"):
        print(f"error: {_one_line(err)} The training state on disk is the last epoch saved whole: add --resume to "
              "continue from it.", file=sys.stderr)
        return 1
    print(f"error: {_one_line(err)}", file=sys.stderr)
    return 2 if isinstance(err, UsageError) else 1
