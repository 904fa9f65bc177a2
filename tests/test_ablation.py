"""Comparing fine-tuning recipes on held-out training pairs: the split, the rows, the script."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_official

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.evaluate.metrics import mean_reciprocal_rank
from ttl_utils.evaluate.report import format_rows
from ttl_utils.models.checkpoints import save_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.train.ablation import compare_variants, inner_split, inner_splits, pair_ranks
from ttl_utils.train.recipes import RECIPES, FinetuneConfig

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_inner_split_holds_out_the_last_pairs():
    train = make_demo_pairs(10, 32, seed=3)
    fit, held_out = inner_split(train, holdout=3)
    assert fit.ids == train.ids[:7] and held_out.ids == train.ids[7:]
    assert len({fit.fingerprint, held_out.fingerprint, train.fingerprint}) == 3
    for bad in (0, 9, 10):
        with pytest.raises(ValueError, match="hold out at least 1 of the 10 training pairs to score on and leave at least 2"):
            inner_split(train, holdout=bad)
    fit_b, held_b = inner_split(train, holdout=3, first=True)
    assert fit_b.ids == train.ids[3:] and held_b.ids == train.ids[:3]
    both = inner_splits(train, holdout=3, both_ways=True)
    assert [(f.ids, h.ids) for f, h in both] == [(fit.ids, held_out.ids), (fit_b.ids, held_b.ids)]
    assert len(inner_splits(train, holdout=3)) == 1


@pytest.mark.slow
def test_compare_variants_scores_each_against_zero_shot(tmp_path):
    fit, held_out = inner_split(make_demo_pairs(40, 32, seed=5), holdout=12)
    base = FinetuneConfig(out="", image_size=32, batch_size=8, epochs=2, views=1, workers=0, select_k=5)
    rows = compare_variants(base, [(fit, held_out)], ["triplet-frozen", "mine"], overrides={"mine": {"unfreeze": 0, "lr": 1e-2}},
                            ks=(1, 5), n_bootstrap=50)
    assert [row["variant"] for row in rows] == ["zero-shot", "triplet-frozen", "mine"]
    assert "R@1 gain" not in rows[0] and all(0 <= rows[0][k] <= 1 for k in ("R@1", "R@5", "MRR"))
    # zero-shot is the backbone's usual embedding (pooled layer4, no grid), whatever the defaults
    usual = pair_ranks(build_embedder("efficientnet_lite0"), Preprocessing.for_size(32), held_out, workers=0)
    assert rows[0]["MRR"] == pytest.approx(mean_reciprocal_rank(usual))
    for row in rows[1:]:
        diff, low, high = row["R@5 gain"]
        assert low <= diff <= high and diff == pytest.approx(row["R@5"] - rows[0]["R@5"])
        assert row["MRR gain"][0] == pytest.approx(row["MRR"] - rows[0]["MRR"])
        assert 0 <= row["epoch"] <= 2 and row["train s"] >= 0
    assert rows[1]["R@1"] != rows[2]["R@1"] or rows[1]["MRR"] != rows[2]["MRR"]  # a ten times higher lr differs
    table = format_rows(rows).splitlines()
    assert table[0].startswith("| variant | R@1 | R@5 | MRR | R@1 gain | R@5 gain | MRR gain |") and len(table) == 5
    assert table[2].startswith(f"| zero-shot | {rows[0]['R@1']:.3f} |")
    with pytest.raises(ValueError, match=r"Unknown variants \['best'\]"):
        compare_variants(base, [(fit, held_out)], ["best"])


@pytest.mark.slow
def test_both_ways_pools_the_two_held_out_sets_and_gains_can_be_over_a_variant():
    train = make_demo_pairs(40, 32, seed=5)
    base = FinetuneConfig(out="", image_size=32, batch_size=8, epochs=1, views=1, workers=0, select_k=5)
    mine = {"mine": {"unfreeze": 0, "lr": 1e-2}}
    one_way = compare_variants(base, inner_splits(train, 12), ["triplet-frozen", "mine"], mine, ks=(1, 5),
                               n_bootstrap=50)
    other = compare_variants(base, [inner_split(train, 12, first=True)], ["triplet-frozen", "mine"], mine, ks=(1, 5),
                             n_bootstrap=50)
    rows = compare_variants(base, inner_splits(train, 12, both_ways=True), ["triplet-frozen", "mine"], mine,
                            ks=(1, 5), n_bootstrap=50, against="triplet-frozen")
    for i in range(3):  # 24 pooled pairs: the mean of the two 12-pair scores
        assert rows[i]["MRR"] == pytest.approx((one_way[i]["MRR"] + other[i]["MRR"]) / 2)
    assert rows[1]["epoch"] == f"{one_way[1]['epoch']}/{other[1]['epoch']}"
    assert "MRR gain" not in rows[0] and "MRR gain" not in rows[1]  # zero-shot, and the reference itself
    assert rows[2]["MRR gain"][0] == pytest.approx(rows[2]["MRR"] - rows[1]["MRR"])
    with pytest.raises(ValueError, match="against: 'infonce' is not among the compared variants"):
        compare_variants(base, inner_splits(train, 12), ["mine"], mine, against="infonce")


def test_every_recipe_is_a_valid_setting():
    for slug, recipe in RECIPES.items():
        assert recipe.slug == slug and recipe.label
        assert {"loss", "layers", "grid", "unfreeze"} <= set(recipe.settings), slug  # so they do not drift with the defaults
        assert FinetuneConfig(out="", **recipe.settings), slug


def _script():
    spec = importlib.util.spec_from_file_location("finetune_variants", TOOLS / "finetune_variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_script_prints_the_table_and_explains_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "a", n=20)
    script = _script()
    out = tmp_path / "rows.json"
    assert script.main(["--data", str(data), "--holdout", "4", "--epochs", "1", "--workers", "0", "--json", str(out),
                        "infonce-ms-frozen"]) == 0
    printed = capsys.readouterr().out
    assert "fitting on" in printed and "| zero-shot |" in printed and "| infonce-ms-frozen |" in printed
    assert "gains over zero-shot" in printed and "ranks pooled" not in printed
    rows = json.loads(out.read_text())
    assert [row["variant"] for row in rows] == ["zero-shot", "infonce-ms-frozen"] and np.isfinite(rows[1]["R@20"])
    assert script.main(["--data", str(data), "--holdout", "50", "infonce-ms-frozen"]) == 2
    assert "holdout 50: hold out at least 1 of the" in capsys.readouterr().err
    assert script.main(["--data", str(data), "frozen"]) == 2  # before any data is read
    assert "unknown variant 'frozen'; choose from" in capsys.readouterr().err
    assert script.main(["--data", str(data), "--against", "triplet", "infonce-ms-frozen"]) == 2
    assert "--against triplet: not among the compared variants (infonce-ms-frozen)." in capsys.readouterr().err
    assert script.main(["--data", str(data), "--init", str(tmp_path / "none.pt"), "infonce-ms-frozen"]) == 2
    assert f"error: --init {tmp_path / 'none.pt'}: no such checkpoint file" in capsys.readouterr().err
    assert script.main(["--data", str(data), "--backbone", "efficientnet_lite2", "infonce-ms-frozen"]) == 2
    assert "--backbone is now --init BACKBONE (e.g. --init efficientnet_lite2)." in capsys.readouterr().err
    assert script.main(["--data", str(data), "--init", "efficientnet_lite0:none", "infonce-ms-frozen"]) == 2
    assert "fine-tuning starts from pretrained weights" in capsys.readouterr().err
    start = save_checkpoint(tmp_path / "start.pt", build_embedder("efficientnet_lite0"), Preprocessing.for_size(64))
    assert script.main(["--data", str(data), "--holdout", "4", "--epochs", "1", "--workers", "0", "--init", str(start),
                        "infonce-ms-frozen"]) == 0
    printed = capsys.readouterr().out
    assert "| infonce-ms-frozen@init |" in printed and "| infonce-ms-frozen |" not in printed


@pytest.mark.slow
def test_the_script_compares_two_variants_both_ways(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "a", n=20)
    script = _script()
    out = tmp_path / "rows.json"
    names = ["infonce-ms-frozen", "infonce-ms-grid4-frozen"]
    assert script.main(["--data", str(data), "--holdout", "4", "--epochs", "1", "--workers", "0", "--both-ways",
                        "--against", names[0], "--json", str(out), *names]) == 0
    printed = capsys.readouterr().out
    assert "ranks pooled" in printed and f"gains over {names[0]}" in printed
    rows = json.loads(out.read_text())
    assert [row["variant"] for row in rows] == ["zero-shot", *names]
    assert "MRR gain" not in rows[1] and len(rows[2]["MRR gain"]) == 3 and rows[2]["epoch"].count("/") == 1
    assert script.main(["--data", str(data), "--holdout", "4", "--against", "infonce", *names]) == 2
    assert "--against infonce: not among the compared variants" in capsys.readouterr().err
