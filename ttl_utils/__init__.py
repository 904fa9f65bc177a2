"""ttl_utils: learning human-like image similarity on Totally-Looks-Like.

Modules, in the order data flows through them: `config` (profiles, paths), `pairs`
(the pair set, opening images), `data` (loading and validating folders), `demo` (the
procedural stand-in dataset), `splits`, `download`, `plots`, `cli`.
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
