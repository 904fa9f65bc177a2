"""`python -m ttl_utils COMMAND`: the project's command line.

Commands: `download` (the official TTL release), `check` (validate a dataset folder),
`demo` (write the demo data as a folder, or a picture of it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .config import get_profile
from .data import resolve_pairs, write_pairs
from .demo import make_demo_pairs
from .download import DownloadError, download_ttl, install_archives
from .pairs import DatasetError

log = logging.getLogger("ttl_utils")


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for a bad dataset or download)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        args.run(args)
    except (DatasetError, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
