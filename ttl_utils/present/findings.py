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
from ..storage import save_json

__all__ = ["RESULTS_FILE", "conclusion", "read_results", "record"]

RESULTS_FILE = "results.json"


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


def record(figures: Figures, step: str, title: str, finding: str, figure: str | None = None,
           **numbers: Any) -> str:
    """Save `finding` (one sentence, as the notebook printed it) as step `step`'s headline in
    `<figures.folder>/results.json`, with its slide `title`, its key `figure` (a name `save_fig`
    wrote there) and `numbers` (plain values), and return the sentence. The file also records
    which data and profile the figures show (`figures.stamp`). The write is atomic: a reader
    never sees half a file."""
    results = read_results(figures.folder)
    results["data"] = figures.stamp or results.get("data")
    results["steps"][str(step)] = {"title": title, "finding": finding, "figure": figure,
                                   "numbers": {key: _plain(value) for key, value in numbers.items()}}
    results["steps"] = dict(sorted(results["steps"].items()))
    save_json(results, Path(figures.folder) / RESULTS_FILE)
    return finding


def _plain(value: Any) -> Any:
    """Return `value` as JSON-ready numbers, strings or lists (numpy scalars and arrays included)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def conclusion(steps: dict, comparison: str) -> str:
    """Return the talk's closing sentence from the findings recorded so far (`read_results()["steps"]`)
    and notebook 06's `comparison` verdict: what fine-tuning (05) gained, what the learned distance
    (02) and the Barlow Twins continuation (04) did, each as its notebook measured it; the steps
    not recorded yet are left out."""
    def numbers(step: str, *keys: str) -> dict | None:
        found = steps.get(step, {}).get("numbers", {})
        return found if all(key in found for key in keys) else None  # recorded by an older notebook: left out

    parts = []
    if n := numbers("05", "r1_gain", "r1_low", "r1_high"):
        parts.append(f"fine-tuning on the pairs raises R@1 by {interval(n['r1_gain'], n['r1_low'], n['r1_high'], signed=True)}")
    if n := numbers("02", "verdict_r25"):
        parts.append(f"a learned distance on frozen features {n['verdict_r25']} plain cosine at R@25")
    if n := numbers("04", "verdict", "r10_gain", "low", "high"):
        parts.append(f"a short Barlow Twins continuation {n['verdict']} validation R@10 "
                     f"({interval(n['r10_gain'], n['low'], n['high'], signed=True)})")
    parts.append(comparison)
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + ("" if sentence.endswith(".") else ".")
