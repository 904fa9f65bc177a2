"""The headline findings of every notebook, kept beside the figures in `results.json`.

A notebook prints its verdicts from its own numbers; `record` saves the same sentence, the
step's key figure and the numbers behind it to `<figures folder>/results.json`, so the
findings travel with the figures (no `artifacts/` needed) and `make slides` can build the
talk from the committed files alone.

>>> import tempfile
>>> figures = Figures(Path(tempfile.mkdtemp()), stamp="demo data, 200 pairs · smoke profile")
>>> record(figures, "02", "A learned distance", "It does not beat cosine.", figure="02_rank_histograms")
'It does not beat cosine.'
>>> read_results(figures.folder)["steps"]["02"]["finding"]
'It does not beat cosine.'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import Figures
from ..evaluate.report import interval
from ..storage import folder_lock, save_json

__all__ = ["RESULTS_FILE", "SERIES_FILE", "conclusion", "read_results", "read_series", "record"]

RESULTS_FILE = "results.json"
SERIES_FILE = "results-series.json"  # the arrays behind the slides' plots (ranks, curves), one entry a step


def read_results(folder: str | Path) -> dict:
    """Return the findings saved in `<folder>/results.json` (`{"data": ..., "steps": {step: {...}}}`),
    or an empty record."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return {"data": None, "steps": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg}, line {error.lineno}); delete it and rerun the "
                         f"notebooks.") from None


def read_series(folder: str | Path) -> dict:
    """Return the arrays saved with the findings in `<folder>/results-series.json` (`{step: {name: values}}`),
    or an empty dict."""
    path = Path(folder) / SERIES_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg}, line {error.lineno}); delete it and rerun the "
                         f"notebooks.") from None


def record(figures: Figures, step: str, title: str, finding: str, figure: str | None = None,
           series: dict[str, Any] | None = None, **numbers: Any) -> str:
    """Save `finding` (one sentence, as the notebook printed it) as step `step`'s headline in
    `<figures.folder>/results.json`, with its slide `title`, its key `figure` (a name `save_fig`
    wrote there) and `numbers` (plain values), and return the sentence. The file also records
    which data and profile the figures show (`figures.stamp`). `series` (arrays: ranks, curves, a
    loss history) go to `<figures.folder>/results-series.json`, for the slides to draw. The writes
    are atomic (a reader never sees half a file), and two notebooks recording at once take turns
    (`folder_lock`), so neither entry is lost."""
    with folder_lock(figures.folder):
        results = read_results(figures.folder)
        results["data"] = figures.stamp or results.get("data")
        results["steps"][str(step)] = {"title": title, "finding": finding, "figure": figure,
                                       "numbers": {key: _plain(value) for key, value in numbers.items()}}
        results["steps"] = dict(sorted(results["steps"].items()))
        save_json(results, Path(figures.folder) / RESULTS_FILE)
        if series is not None:
            saved = read_series(figures.folder)
            saved[str(step)] = {key: _plain(value) for key, value in series.items()}
            save_json(dict(sorted(saved.items())), Path(figures.folder) / SERIES_FILE)
    return finding


def _plain(value: Any) -> Any:
    """Return `value` as JSON-ready numbers, strings or lists (numpy scalars and arrays included)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(key): _plain(v) for key, v in value.items()}
    return value


def conclusion(steps: dict, comparison: str) -> str:
    """Return the talk's closing sentence from the findings recorded so far (`read_results()["steps"]`)
    and notebook 06's `comparison` verdict: what fine-tuning (05) gained, what the learned distance
    (02) and the Barlow Twins continuation (04) did, each as its notebook measured it and with its
    scope (model, pairs, candidates, runs) where the notebook recorded it; the steps not recorded
    yet are left out."""
    def numbers(step: str, *keys: str) -> dict | None:
        found = steps.get(step, {}).get("numbers", {})
        return found if all(key in found for key in keys) else None  # recorded by an older notebook: left out

    parts = []
    if n := numbers("05", "r1_gain", "r1_low", "r1_high"):
        scope = (f" ({n['model']}, {n['train_pairs']} training pairs, {n['candidates']} test candidates, one run)"
                 if numbers("05", "model", "train_pairs", "candidates") else "")
        parts.append(f"fine-tuning on the pairs{scope} raises R@1 by "
                     f"{interval(n['r1_gain'], n['r1_low'], n['r1_high'], signed=True)}")
    if n := numbers("02", "verdict_r25"):
        scope = f" (among {n['candidates']} test candidates, one run)" if "candidates" in n else ""
        parts.append(f"a learned distance on frozen features {n['verdict_r25']} plain cosine at R@25{scope}")
    if n := numbers("04", "verdict", "r10_gain", "low", "high"):
        scope = (f" ({n['scale']}, one pretraining seed, {n['val_pairs']} validation pairs)"
                 if numbers("04", "scale", "val_pairs") else "")
        parts.append(f"Barlow Twins pretraining{scope} {n['verdict']} zero-shot validation R@10 "
                     f"({interval(n['r10_gain'], n['low'], n['high'], signed=True)})")
    parts.append(comparison)
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + ("" if sentence.endswith(".") else ".")
