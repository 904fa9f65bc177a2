"""The one reporting layer: metric tables with 95% bootstrap CIs, paired gains, verdicts, sentences.

`evaluate`, `compare`, the recipe table and every notebook format their numbers here, so an
interval always reads `0.250 [0.200, 0.300]` and a gain `+0.050 [+0.010, +0.090]` (both by
`interval`), and a verdict is printed from its interval, never written by hand. Works on ranks
(`metrics.Ranked`) and numbers alone: no torch.

>>> interval(0.25, 0.2, 0.3)
'0.250 [0.200, 0.300]'
>>> gain_text({"difference": 0.05, "low": 0.01, "high": 0.09})
'+0.050 [+0.010, +0.090]'
>>> verdict({"difference": 0.05, "low": 0.01, "high": 0.09})
'beats'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .metrics import (
    CANDIDATE_TOP,
    DIRECTIONS,
    N_CANDIDATES,
    RECALL_KS,
    TOP_OF_CANDIDATES,
    Ranked,
    holm,
    holm_levels,
    median_rank,
    metric,
    metric_intervals,
    paired_gain,
    recall_at_k,
    retrieval_metrics,
    seed_paired_gain,
)

__all__ = ["budget_findings", "comparison_summary", "comparison_table", "correlation_findings", "counted", "direction_report",
           "format_comparison", "format_report", "format_rows", "gain_cells", "gain_text", "interval",
           "learned_distance_summary", "lookalike_finding", "metric_cells", "metric_table", "preregistered_findings",
           "preregistered_test", "seed_comparison", "seed_table", "separation_findings", "summary", "unique_names",
           "variant_row", "verdict", "verdicts"]

TABLE_KS = (1, 5, 10, 25)
GAIN_KS = (1, 10)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """Return `n` and `noun` agreeing in number: `counted(1, "epoch")` is "1 epoch", `counted(3, "run")` "3 runs".

    >>> counted(1, "epoch"), counted(4, "run"), counted(2, "pretraining seed")
    ('1 epoch', '4 runs', '2 pretraining seeds')
    """
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def interval(value: float | None, low: float, high: float, digits: int = 3, signed: bool = False,
             percent: bool = False) -> str:
    """Return `value [low, high]` with `digits` decimals (`+` signs with `signed`; shares as percentages
    with `percent`: `0.63 [0.45, 0.77]` -> `63% [45%, 77%]`; "n/a" for None)."""
    if value is None:
        return "n/a"
    form = f"{'+' if signed else ''}.{digits}{'%' if percent else 'f'}"
    value, low, high = (round(v, digits + 2 * percent) + 0.0 for v in (value, low, high))  # never "-0.000"
    return f"{value:{form}} [{low:{form}}, {high:{form}}]"


def gain_text(gain: dict, digits: int = 3) -> str:
    """Return a paired gain (`metrics.paired_gain`'s dict) as `+difference [+low, +high]`."""
    return interval(gain["difference"], gain["low"], gain["high"], digits=digits, signed=True)


def verdict(gain: dict, better: str = "beats", worse: str = "loses to",
            same: str = "does not clearly differ from") -> str:
    """Return `better` when the gain's interval lies above zero, `worse` below, else `same`."""
    return better if gain["low"] > 0 else worse if gain["high"] < 0 else same


def _names(ks: Sequence[int], mrr: bool) -> list[str]:
    return [f"R@{k}" for k in ks] + (["MRR"] if mrr else [])


def metric_cells(ranks: np.ndarray, names: Sequence[str] = tuple(_names(TABLE_KS, False)),
                 candidates: np.ndarray | None = None, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, str]:
    """Return `{name: "value [low, high]"}` for each metric of `names` (`metrics.metric`), with 95%
    bootstrap CIs over queries: 3 decimals, 1 for the median rank, "n/a" where not measured."""
    found = metric_intervals(ranks, names, candidates, n_bootstrap, seed)
    return {name: "n/a" if value is None else interval(*value, digits=1 if name == "median rank" else 3)
            for name, value in found.items()}


def gain_cells(ranks: np.ndarray, reference: np.ndarray, ks: Sequence[int] = (1, 10), mrr: bool = False,
               n_bootstrap: int = 1000, seed: int = 0) -> dict[str, str]:
    """Return `{"R@k gain": "+difference [+low, +high]", ...}`: paired gains over `reference`."""
    return {f"{'MRR' if k is None else f'R@{k}'} gain": gain_text(paired_gain(ranks, reference, k, n_bootstrap, seed))
            for k in ((*ks, None) if mrr else ks)}


def metric_table(ranks: dict[str, np.ndarray], ks: Sequence[int] = TABLE_KS, mrr: bool = False,
                 reference: str | None = None, gain_ks: Sequence[int] = (), n_bootstrap: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Return a table, one row a model: R@k (and MRR) with CIs, and the gains over the row `reference`."""
    rows = {}
    for name, r in ranks.items():
        rows[name] = metric_cells(r, _names(ks, mrr), n_bootstrap=n_bootstrap, seed=seed)
        if reference is not None and name != reference and gain_ks:
            rows[name] |= gain_cells(r, ranks[reference], gain_ks, n_bootstrap=n_bootstrap, seed=seed)
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def direction_report(ranks: np.ndarray, candidates: np.ndarray | None, n_candidates: int, n_bootstrap: int = 1000,
                     seed: int = 0) -> dict:
    """Return every metric of one retrieval direction with its 95% bootstrap CI, and the ranks
    (`candidates`: the ranks among 20 candidates, or None), as `evaluate --json` writes them."""
    found = metric_intervals(ranks, [*_names(RECALL_KS, True), "median rank", TOP_OF_CANDIDATES], candidates,
                             n_bootstrap, seed)

    def value(name: str):
        return (None, None) if found[name] is None else (found[name][0], list(found[name][1:]))

    report: dict = {"n_queries": len(ranks), "n_candidates": n_candidates, "recall": {}, "recall_ci": {}}
    for k in RECALL_KS:
        report["recall"][str(k)], report["recall_ci"][str(k)] = value(f"R@{k}")
    report["median_rank"], report["median_rank_ci"] = value("median rank")
    report["mrr"], report["mrr_ci"] = value("MRR")
    report["candidate_top2"], report["candidate_top2_ci"] = value(TOP_OF_CANDIDATES)
    report["ranks"] = np.asarray(ranks).tolist()
    return report


def _cell(value, bounds, digits: int = 3) -> str:
    return interval(value, *(bounds or (0.0, 0.0)), digits=digits)


def format_report(report: dict) -> str:
    """Return an `evaluate_model` report as a text table: one row a metric, one column a direction."""
    back = report["right_to_left"]
    model = report["model"]
    title = (f"{report['dataset']}: {report['n_queries']} queries among {report['n_candidates']} candidates; "
             f"{model['backbone']} ({model['weights'] or 'none'}) {'+'.join(model['layers'])}"
             + (f" + {model['grid']}x{model['grid']} grid" if model.get("grid") else "")
             + f", {report['preprocessing']['crop']} px"
             + (", flip-averaged" if report["preprocessing"].get("flip") else "") + "; 95% bootstrap CIs")
    rows = [("N", str(report["n_queries"]), str(back["n_queries"]))]
    for k in RECALL_KS:
        rows.append((f"R@{k}", _cell(report["recall"][str(k)], report["recall_ci"][str(k)]),
                     _cell(back["recall"][str(k)], back["recall_ci"][str(k)])))
    rows.append(("median rank", _cell(report["median_rank"], report["median_rank_ci"], 1),
                 _cell(back["median_rank"], back["median_rank_ci"], 1)))
    rows.append(("MRR", _cell(report["mrr"], report["mrr_ci"]), _cell(back["mrr"], back["mrr_ci"])))
    rows.append((f"top-{CANDIDATE_TOP} of {N_CANDIDATES}", _cell(report["candidate_top2"], report["candidate_top2_ci"]),
                 _cell(back["candidate_top2"], back["candidate_top2_ci"])))
    width = max(len(r[1]) for r in rows) + 2
    lines = [title, f"{'metric':<14}{'left -> right':<{width}}{'right -> left'}"]
    lines += [f"{name:<14}{a:<{width}}{b}" for name, a, b in rows]
    return "\n".join(lines)


def summary(report: dict) -> dict:
    """Return the report without the per-query ranks (for JSON files people read)."""
    def strip(part: dict) -> dict:
        return {k: v for k, v in part.items() if k != "ranks"}

    return {**strip(report), "right_to_left": strip(report["right_to_left"])}


def variant_row(name: str, ranks: np.ndarray, reference: np.ndarray | None, ks: tuple[int, ...],
                n_bootstrap: int) -> dict:
    """Return one row of the recipe table: R@k and MRR over all `ranks`, and with a `reference`, the gains in
    R@ks[0], R@ks[-1] and MRR as `(difference, low, high)`."""
    row = {"variant": name, **retrieval_metrics(ranks, ks)}
    if reference is not None:
        for k in (ks[0], ks[-1], None):
            gain = paired_gain(ranks, reference, k, n_bootstrap)
            row[f"{'MRR' if k is None else f'R@{k}'} gain"] = (gain["difference"], gain["low"], gain["high"])
    return row


def format_rows(rows: list[dict]) -> str:
    """Return the rows as a Markdown table (gains as `+0.050 [+0.010, +0.090]`)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, tuple):
            return interval(*value, signed=True)
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def _check_same_queries(ranked: Sequence[Ranked]) -> None:
    sizes = {model.name: model.n_queries for model in ranked}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Models must be ranked on the same pairs; got query counts {sizes}.")


def comparison_table(ranked: Sequence[Ranked], n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Return one row per (direction, model): metrics with 95% CIs, and paired gains over the first model."""
    _check_same_queries(ranked)
    names = [*_names(TABLE_KS, False), "median rank", "MRR", TOP_OF_CANDIDATES]
    rows = {}
    reference = ranked[0]
    for direction in DIRECTIONS:
        for model in ranked:
            if model.ranks.get(direction) is None:
                continue
            row = {"N": str(model.n_queries),
                   **metric_cells(model.ranks[direction], names, model.candidates.get(direction), n_bootstrap, seed)}
            if model is not reference and reference.ranks.get(direction) is not None:
                row |= gain_cells(model.ranks[direction], reference.ranks[direction], GAIN_KS, mrr=True,
                                  n_bootstrap=n_bootstrap, seed=seed)
            rows[(direction, model.name)] = row
    table = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["direction", "model"])
    return table


def verdicts(ranked: Sequence[Ranked], n_bootstrap: int = 1000, seed: int = 0) -> list[str]:
    """Return one sentence per model after the first, from the paired CI of left -> right R@1."""
    _check_same_queries(ranked)
    reference, lines = ranked[0], []
    for model in ranked[1:]:
        gain = paired_gain(model.left_to_right, reference.left_to_right, 1, n_bootstrap, seed)
        ahead = verdict(gain, better=model.name, worse=reference.name, same="")
        if ahead == model.name:
            shown, behind = gain, reference.name
        elif ahead:
            shown = {"difference": -gain["difference"], "low": -gain["high"], "high": -gain["low"]}
            behind = model.name
        else:
            lines.append(f"{model.name} vs {reference.name}: no clear difference (R@1 {gain_text(gain)})")
            continue
        lines.append(f"{ahead} finds the partner first more often than {behind}: {gain_text(shown)}")
    return lines


def format_comparison(table: pd.DataFrame, lines: Sequence[str], title: str = "") -> str:
    """Return the table as text, one block per direction, then the verdicts."""
    out = [title] if title else []
    for direction in table.index.get_level_values("direction").unique():
        part = table.xs(direction, level="direction")
        gains = [c for c in part.columns if c.endswith(" gain")]
        out += ["", f"{direction} (95% bootstrap CIs):", part.drop(columns=gains).to_string()]
        if gains:
            rows = part[gains][(part[gains] != "").any(axis=1)]  # the reference has no gain over itself
            out += ["", f"{direction}, paired gain over {table.index[0][1]}:", rows.to_string()]
    if lines:
        out += ["", "Verdicts (left -> right R@1, paired bootstrap):", *(f"- {line}" for line in lines)]
    return "\n".join(out)


def comparison_summary(ranked: Sequence[Ranked], table: pd.DataFrame, lines: Sequence[str], **about) -> dict:
    """Return what `compare --json` writes: `about` (data, split, ...), the table's cells, the verdicts,
    and every model's ranks (so the figures can be redrawn without the models)."""
    return {
        **about,
        "n_queries": ranked[0].n_queries,
        "models": [model.name for model in ranked],
        "table": {f"{direction} | {name}": row for (direction, name), row in table.to_dict(orient="index").items()},
        "verdicts": list(lines),
        "ranks": {model.name: {d: r.tolist() for d, r in model.ranks.items() if r is not None} for model in ranked},
    }


def unique_names(names: Sequence[str]) -> list[str]:
    """Return `names` with repeats told apart: `a, a` -> `a, a (2)`."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _in_words(n: int) -> str:
    """Return a small count as a word ("six"), a larger one as digits."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def learned_distance_summary(table: pd.DataFrame, variants: dict, base) -> list[str]:
    """Return two sentences on notebook 02's heads (`pipeline.learned_distance_variants`' table and
    heads, `base` the first): the test R@25 of the heads that differ from `base` only in their
    negatives, and the heads ranked by validation R@25, with the range of their test R@25."""
    same_head = {config.negatives: table.loc[label, "test R@25"] for label, config in variants.items()
                 if (config.features, config.hidden) == (base.features, base.hidden)}
    negatives = dict(sorted(same_head.items()))
    heads = table.loc[list(variants)]
    by_val = heads["val R@25"]
    return [
        f"Test R@25 with {' / '.join(map(str, negatives))} negatives: " + " / ".join(f"{v:.3f}" for v in negatives.values()),
        f"Heads, ranked on validation R@25: best {by_val.idxmax()} ({by_val.max():.2f}), worst {by_val.idxmin()} "
        f"({by_val.min():.2f}); test R@25 of all {_in_words(len(heads))} from {heads['test R@25'].min():.3f} to "
        f"{heads['test R@25'].max():.3f}",
    ]


def correlation_findings(stats: dict[str, dict[str, float]]) -> list[str]:
    """Return what Barlow Twins did to its cross-correlation matrix, from `train.pretrain.correlation_stats`
    before and after (`{"before": ..., "after": ...}`): each one's mean diagonal and off-diagonal, and
    how far the diagonal moved towards 1 and whether the off-diagonal shrank."""
    lines = [f"{name}: mean diagonal {s['diagonal']:.3f}, mean |off-diagonal| {s['off_diagonal']:.3f}"
             for name, s in stats.items()]
    (d0, o0), (d1, o1) = ((s["diagonal"], s["off_diagonal"]) for s in (stats["before"], stats["after"]))
    lines.append(f"The diagonal moved {'towards' if d1 > d0 else 'away from'} 1 ({d0:.2f} -> {d1:.2f}, "
                 f"{'more than half' if d1 - d0 > (1 - d0) / 2 else 'less than half'} of the way); the off-diagonal "
                 f"{'shrank' if o1 < o0 else 'grew'} ({o0:.3f} -> {o1:.3f}).")
    return lines


def separation_findings(gaps: dict[str, dict[str, float]]) -> list[str]:
    """Return how fine-tuning moved partners apart from the others, from `ranking.partner_distances`
    of two models (`{name: ...}`, before first): each one's mean distances and gap in standard
    deviations, then whether the gain comes from a wider gap or a narrower spread."""
    lines = [f"{name}: mean distance to the partner {g['partner']:.3f}, to the others {g['others']:.3f}, "
             f"gap {g['separation']:.2f} sd" for name, g in gaps.items()]
    before, after = gaps.values()
    gap0, gap1 = (g["others"] - g["partner"] for g in (before, after))
    wider, tighter = gap1 / gap0, before["spread"] / after["spread"]
    lines.append(f"Mean gap (others minus partner) {gap0:.3f} -> {gap1:.3f} (x{wider:.2f}); spread of the distances to "
                 f"the others {before['spread']:.3f} -> {after['spread']:.3f} (x{1 / tighter:.2f}): most of the gain "
                 "comes from " + ("a wider gap." if wider > tighter else
                                  "a narrower spread, the others packed at one distance, not a wider gap."))
    return lines


def lookalike_finding(ranks: np.ndarray, top: int, gallery_size: int) -> tuple[str, dict]:
    """Return the sentence of notebook 07 on where the true partners of test queries land among all
    `gallery_size` pictures, and its numbers: how many first, how many in the `top`, the median rank."""
    ranks = np.asarray(ranks)
    numbers = {"first": int((ranks == 1).sum()), "in_top": int((ranks <= top).sum()),
               "median_rank": float(median_rank(ranks))}
    sentence = (f"Searching all {gallery_size} pictures, the true partner ranked first for {numbers['first']} of "
                f"{len(ranks)} test queries, in the top {top} for {numbers['in_top']} ({recall_at_k(ranks, top):.1%}); "
                f"median rank {int(numbers['median_rank'])}.")
    return sentence, numbers


def seed_table(runs: Sequence[dict], view: str = "left -> right", ks: Sequence[int] = (1, 10)) -> pd.DataFrame:
    """Return one row a fine-tuned run (`{"start", "pretraining seed", "seed", "pictures seen", view: ranks}`,
    every run ranked on the same queries) with its R@k and MRR on `view`, then after each start's runs
    a row of their means (seed "mean")."""
    columns = [f"R@{k}" for k in ks] + ["MRR"]
    rows = [{"start": run["start"], "pretraining seed": "" if run["pretraining seed"] is None else run["pretraining seed"],
             "seed": run["seed"], "pictures seen": run["pictures seen"],
             **{name: value for name, value in retrieval_metrics(np.asarray(run[view]), ks).items() if name in columns}}
            for run in runs]
    table = pd.DataFrame(rows)
    parts = []
    for start, group in table.groupby("start", sort=False):
        mean = {"start": start, "pretraining seed": "", "seed": "mean",
                **group[["pictures seen", *columns]].mean().to_dict()}
        parts += [group, pd.DataFrame([mean])]
    ordered = pd.concat(parts, ignore_index=True)
    ordered["pictures seen"] = ordered["pictures seen"].round().astype(int)
    return ordered.set_index(["start", "pretraining seed", "seed"])


def preregistered_test(runs_a: dict[str, list[np.ndarray]], runs_b: dict[str, list[np.ndarray]],
                       primary: tuple[str, str], secondary: Sequence[tuple[str, str]], alpha: float = 0.05,
                       n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Return the pre-registered comparison of model A and model B, each trained with several seeds.

    `runs_a[view]` holds A's ranks a seed on one view of the test queries (e.g. "left -> right",
    "right -> left", "generic, left -> right"); `primary` and each of `secondary` is `(view, metric)`.
    Each query's metric is averaged over a model's seeds, then the paired difference A - B is
    bootstrapped over queries (`metrics.seed_paired_gain`). The primary test is at `1 - alpha`; the
    secondary ones are corrected for their number with Holm's step-down procedure: each interval is at
    the level Holm tests it at, and a difference is clear when its Holm-adjusted p is under `alpha`.
    One row a test: difference, interval, level, p, Holm's p, verdict ("A", "B" or "no clear difference").
    """
    rows = []
    first = seed_paired_gain(runs_a[primary[0]], runs_b[primary[0]], primary[1], 1 - alpha, n_bootstrap, seed)
    rows.append({"test": f"{primary[0]} {primary[1]}", "role": "primary", **first, "p (Holm)": first["p"],
                 "verdict": _winner(first, clear=first["low"] > 0 or first["high"] < 0)})
    if secondary:
        plain = [seed_paired_gain(runs_a[v], runs_b[v], m, 1 - alpha, n_bootstrap, seed)["p"] for v, m in secondary]
        for (view, name), p_holm, level in zip(secondary, holm(plain), holm_levels(plain, alpha)):
            gain = seed_paired_gain(runs_a[view], runs_b[view], name, level, n_bootstrap, seed)
            rows.append({"test": f"{view} {name}", "role": "secondary", **gain, "p (Holm)": p_holm,
                         "verdict": _winner(gain, clear=p_holm < alpha)})
    return pd.DataFrame(rows).set_index("test")


def _winner(gain: dict, clear: bool) -> str:
    return ("A" if gain["difference"] > 0 else "B") if clear else "no clear difference"


def preregistered_findings(table: pd.DataFrame, a: str, b: str) -> list[str]:
    """Return one sentence a test of `preregistered_test`'s table, printed from its numbers: the primary
    first, then the secondary ones with their Holm-corrected level. `a` and `b` name the two models."""
    lines = []
    for test, row in table.iterrows():
        gain = {"difference": row.difference, "low": row.low, "high": row.high}
        where = (f"{row.level:.0%} interval" if row.role == "primary" else
                 f"{row.level:.1%} interval, Holm-adjusted p {row['p (Holm)']:.3f}")
        said = (f"{a} beats {b}" if row.verdict == "A" else f"{b} beats {a}" if row.verdict == "B" else
                f"no clear difference between {a} and {b}")
        lines.append(f"{row.role.capitalize()} test, {test}: {said} (the first minus the second: {gain_text(gain)}, "
                     f"{where}).")
    return lines


def seed_comparison(a: str, runs_a: Sequence[np.ndarray], b: str, runs_b: Sequence[np.ndarray], name: str = "R@1",
                    about: str = "", n_bootstrap: int = 2000, seed: int = 0) -> tuple[str, dict]:
    """Return a sentence comparing two models trained with several seeds on metric `name` (each query's
    value averaged over seeds, then a paired bootstrap over queries: `metrics.seed_paired_gain`), and the
    gain (A - B). The sentence names the winner only when the 95% interval excludes zero."""
    gain = seed_paired_gain(runs_a, runs_b, name, 0.95, n_bootstrap, seed)
    mean_a, mean_b = (float(np.mean([metric(name)(np.asarray(r)) for r in runs])) for runs in (runs_a, runs_b))
    said = verdict(gain, f"{a} beats {b}", f"{b} beats {a}", f"no clear difference between {a} and {b}")
    where = f" {about}" if about else ""
    return (f"{said[0].upper()}{said[1:]}{where}: {name} {mean_a:.3f} ({counted(len(runs_a), 'run')}) against "
            f"{mean_b:.3f} ({counted(len(runs_b), 'run')}), difference {gain_text(gain)}."), gain


def budget_findings(points: dict[str, tuple[float, Sequence[float]]], name: str = "R@1") -> list[str]:
    """Return the budget curve's numbers as sentences: for each `{label: (pictures seen, [one value a
    run])}`, by pictures seen, the mean and range over runs, then which way the means move."""
    ordered = sorted(points.items(), key=lambda item: item[1][0])
    lines = [f"{label}: {seen:,.0f} pictures seen, {name} {np.mean(values):.3f} (runs {min(values):.3f} to "
             f"{max(values):.3f}, {counted(len(values), 'run')})" for label, (seen, values) in ordered]
    means = [float(np.mean(values)) for _, (_, values) in ordered]
    steps = np.sign(np.diff(means))
    trend = ("rises with every step of budget" if (steps > 0).all() else "falls with every step of budget"
             if (steps < 0).all() else "does not move one way with the budget")
    lines.append(f"The mean {name} {trend} ({' -> '.join(f'{m:.3f}' for m in means)}); the seed bands say how much "
                 "of that a rerun could undo.")
    return lines
