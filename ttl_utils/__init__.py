"""ttl_utils: learning human-like image similarity on Totally-Looks-Like.

Modules, lowest first (a module imports only those before it):

- utilities: `runtime` (digests, device, workers, memory), `config` (profiles, paths),
  `progress`, `storage` (atomic writes, locks, the cache of values), `digests` (files' content digests,
  remembered by size and time);
- data: `pairs`, `inputs` (pictures users hand in, checked), `data`, `demo`, `splits`, `download`,
  `explore`, `faces`, `transforms`;
- models: `models` (backbones, heads, checkpoints), `engine` (frozen forward passes: ONNX Runtime on CPU),
  `losses`, `optim`, `retrieval` (ranks, metrics), `recipes` (every trainer's settings, built per profile in one place);
- training: `training_state` (one checkpoint + state format, resume, cached runs),
  `pair_classifier` (the learned-distance baseline), `trunk` (the frozen trunk's cache),
  `finetune`, `pretrain` (Barlow Twins);
- evaluation: `report` (tables with CIs, paired gains, verdicts), `evaluation` (embedding
  cache, reports), `ablation`, `saliency`, `saliency_report` (what notebook 03 shows of it),
  `plots`, `results` (the results notebooks hand on, each by one name), `compare` (several
  models ranked on the same pairs: one table with CIs, paired gains, verdicts), `find` (the
  look-alikes of any picture in a gallery), `cues` (which cues a similarity needs: colour, detail,
  outlines), `findings` (each notebook's headline findings, saved beside the figures);
- entry points: `notebook` (the first lines of every notebook), `cli`, `slides` (the talk, built
  from the findings and figures).
"""

from .config import Profile, get_profile
from .data import load_pairs, resolve_pairs
from .demo import make_demo_pairs
from .pairs import DatasetError, PairSet, open_rgb
from .splits import split_pairs

__all__ = [
    "DatasetError", "PairSet", "Profile", "get_profile", "load_pairs", "make_demo_pairs",
    "open_rgb", "resolve_pairs", "split_pairs",
]
__version__ = "0.1.0"
