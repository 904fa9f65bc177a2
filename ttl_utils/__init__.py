"""ttl_utils: learning human-like image similarity on Totally-Looks-Like.

The package is grouped by stage, lowest first; a floor imports only the floors below it
(`tests/test_layout.py` checks it):

- utilities (top-level modules): `config` (profiles, paths, every environment variable),
  `errors` (the errors a user can cause), `runtime` (device, the worker and batch-size policy),
  `progress`, `storage` (atomic writes, locks, tensors saved safely), `digests` (every digest:
  values, weights, files, datasets), `cache` (the cache of results under `artifacts/`);
- `data`: pair sets in both layouts, pictures users hand in, galleries, the demo data,
  splits, the download, faces, image statistics, decoding in threads;
- `models`: the catalog of backbones and the one way to name a model, backbones, the embedder,
  checkpoints, preprocessing, the inference engine;
- `evaluate`: embeddings, the one ranking kernel, metrics and intervals (numpy only),
  reports (no torch), comparisons;
- `train`: losses, optimisers, augmentations, recipes (one registry), the training state,
  the trunk cache, fine-tuning, Barlow Twins pretraining, the pair classifier, recipe ablations;
- `explain`: saliency maps of a similarity, their faithfulness, the cue test;
- `present`: plots and pictures (one theme), findings (`results.json`), slides; no torch;
- entry points (top-level): `pipeline` (the cached results notebooks hand each other, by
  name), `find` (the look-alike finder), `cli` (`python -m ttl_utils`: its flags, light) and
  `commands` (what each command does), `notebook` (a notebook's first lines).

>>> from ttl_utils import load_pairs, split_pairs      # the names most scripts need
"""

from __future__ import annotations

import importlib

__all__ = [
    "DatasetError", "PairSet", "Profile", "get_profile", "load_pairs", "make_demo_pairs", "open_rgb", "resolve_pairs",
    "split_pairs",
]
__version__ = "0.1.0"

# each name is imported when first used, so `import ttl_utils` (and `--help`) stays light
_HOMES = {
    "DatasetError": "data.pairs", "PairSet": "data.pairs", "open_rgb": "data.pairs", "Profile": "config",
    "get_profile": "config", "load_pairs": "data.folders", "resolve_pairs": "data.folders",
    "make_demo_pairs": "data.demo", "split_pairs": "data.splits",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'ttl_utils' has no attribute {name!r}")
