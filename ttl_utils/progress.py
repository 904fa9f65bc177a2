"""Progress bars for long work (`tqdm.auto`), which a setting can turn off.

`TQDM_DISABLE=1` turns them off everywhere, notebooks included: tqdm's notebook bars
ignore that variable, and `make figures` needs them off so that no widget state is saved
in the committed notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import progress_disabled

__all__ = ["progress"]


def progress(iterable: Iterable, **kwargs) -> Iterable:
    """Return `iterable` wrapped in a `tqdm.auto` bar, unless `TQDM_DISABLE` is set."""
    if progress_disabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
