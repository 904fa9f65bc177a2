"""One checkpoint + training-state format for every trainer, resumed and cached the same way.

A training run writes two files. `OUT` is a model checkpoint (`models.checkpoints.save_checkpoint`),
what `evaluate --model` reads. `OUT.state.pt` is the training state: the settings,
the epoch, the history, the current weights and the optimiser, and whatever else the
trainer needs to continue (the Barlow Twins projector and step count, fine-tuning's best
epoch). Both are written atomically after every epoch, so `resume=True` continues exactly
where a run stopped. `cached_training` keys a run by its settings and data under
`artifacts/<kind>/`, resumes it when interrupted, and, once finished, keeps only the
history in its state (the weights and optimiser state are what make a state large).

>>> path = cached_training("finetune", config, {"train": pairs.fingerprint}, train)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..cache import cache_path
from ..storage import exclusive, load_torch, save_torch, unreadable_torch

__all__ = ["STATE_FORMAT", "cached_training", "finished_run", "keep_summary", "load_state", "run_path", "save_state",
           "state_path"]

log = logging.getLogger(__name__)

STATE_FORMAT = "ttl_utils-training-state-1"
_NOT_SETTINGS = ("out", "workers", "device", "data")  # where a run goes and reads, how fast: not what it computes
# (what a run reads is keyed by its content: the `data` fingerprints given to `cached_training`)


def state_path(out: str | Path) -> Path:
    """Return where the training state of checkpoint `out` lives: `<out>.state.pt`."""
    out = Path(out)
    return out.with_name(out.name + ".state.pt")


def save_state(config, epoch: int, history: list, finished: bool = False, **fields: Any) -> Path:
    """Write the training state of `config.out` (atomically); return its path.

    `fields` are the trainer's own: `state_dict`, `optimizer`, a step count, the best epoch.
    """
    return save_torch({"format": STATE_FORMAT, "config": asdict(config), "epoch": epoch, "history": history,
                       "finished": finished, **fields}, state_path(config.out))


def load_state(config, resumable: set[str] | frozenset[str] = frozenset(), later: dict | None = None) -> dict:
    """Return the training state to resume `config` from, after checking that it can be.

    Raises `FileNotFoundError` when there is none, `ValueError` when it keeps only a
    finished run's summary or was trained with other settings than those in `resumable`.
    `later` gives the value a setting added since had in states saved without it.
    """
    path = state_path(config.out)
    if not path.is_file():
        raise FileNotFoundError(f"resume: no training state at {path} to continue from.")
    state = load_torch(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"resume: {path} is not a training state of this version of ttl_utils; train anew.")
    if "optimizer" not in state:
        raise ValueError(f"resume: {path} keeps only the summary of a finished cached run "
                         "(no weights or optimiser state to continue from); train it anew.")
    now = asdict(config)
    saved = {**{k: v for k, v in (later or {}).items() if k not in state["config"]}, **state["config"]}
    changed = {k: (v, now[k]) for k, v in saved.items()
               if k in now and k not in resumable and k not in _NOT_SETTINGS and v != _comparable(now[k], v)}
    if changed:
        raise ValueError(f"resume: {path} was trained with other settings "
                         + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in changed.items()))
    return state


def _comparable(value: Any, saved: Any) -> Any:
    """A tuple setting compares equal to the list it was saved as."""
    return list(value) if isinstance(value, tuple) and isinstance(saved, list) else value


def keep_summary(out: str | Path) -> dict:
    """Rewrite a finished run's state without its weights and optimiser state; return what is kept."""
    path = state_path(out)
    saved = load_torch(path)
    heavy = ("optimizer", "state_dict")
    if any(k in saved for k in heavy):
        saved = {k: v for k, v in saved.items() if k not in heavy}
        save_torch(saved, path)
    return saved


def cached_training(kind: str, config, data: dict, train: Callable[[Any, bool], Any], version: int,
                    omit: dict | None = None) -> tuple[Path, dict]:
    """Return `(checkpoint, state summary)` of the run `config` on `data` (fingerprints), trained once.

    The checkpoint lives at `artifacts/<kind>/<key>.pt`, keyed by the settings (not where or
    how fast it runs), `data` and the trainer's `version` (bump it when what it computes
    changes). `train(config, resume)` runs the training with `config.out` set to that path;
    an interrupted run is resumed. `omit` lists settings that key a run only when they differ
    from the value given (settings added after runs were cached, so that those stay found).
    """
    out = run_path(kind, config, data, version, omit)
    if finished_run(kind, config, data, version, omit) is not None:
        log.info("Loaded the finished %s run from %s", kind, out)
        return out, keep_summary(out)
    with exclusive(out, flag="the cached run"):  # two notebooks training the same run: the second is told
        _drop_damaged(out)
        train(replace(config, out=str(out)), state_path(out).is_file())
    return out, keep_summary(out)


def _drop_damaged(out: Path) -> None:
    """Remove a cached run's files when its training state or checkpoint cannot be read (truncated,
    overwritten), or a finished run lost its checkpoint: the run then trains anew, after one warning
    naming the file, instead of failing on every rerun."""
    state = state_path(out)
    damaged = {path: why for path, why in ((state, unreadable_torch(state) if state.is_file() else None),
                                           (out, unreadable_torch(out) if out.is_file() else None)) if why}
    if state.is_file() and state not in damaged:
        content = load_torch(state)
        if not isinstance(content, dict) or content.get("format") != STATE_FORMAT:
            damaged[state] = "not a training state"
        elif content.get("finished") and not out.is_file():
            damaged[out] = "missing"
    for path, why in damaged.items():
        log.warning("Cached run file %s is damaged (%s): training the run anew.", path, why)
    if damaged:
        state.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


def run_path(kind: str, config, data: dict, version: int, omit: dict | None = None) -> Path:
    """Return where `cached_training` keeps the run `config` on `data` (which may not exist yet)."""
    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_SETTINGS}
    for name, default in (omit or {}).items():
        if settings.get(name) == default:
            del settings[name]
    settings["version"] = version
    return cache_path(kind, settings=settings, data=data)


def finished_run(kind: str, config, data: dict, version: int, omit: dict | None = None) -> Path | None:
    """Return the checkpoint of the finished cached run `config` on `data`, or None (nothing is trained)."""
    out = run_path(kind, config, data, version, omit)
    state = state_path(out)
    if not (out.is_file() and state.is_file()) or unreadable_torch(state) or unreadable_torch(out):
        return None  # a damaged file is trained again (`cached_training` says which)
    saved = load_torch(state)
    if not (isinstance(saved, dict) and saved.get("finished")):
        return None
    for path in (out, state):  # its time says when it was last used (`python -m ttl_utils cache --prune`)
        try:
            os.utime(path)
        except OSError:
            pass
    return out
