"""Notebook 06's runs: the pool beside the pairs without their held-out pictures, the seeds, the
ablation and the shorter budget, each trained once and ranked on the same test pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import sample_picture

from ttl_utils.config import get_profile
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.pool import load_pool
from ttl_utils.data.splits import split_pairs
from ttl_utils.pipeline import BARLOW_TWINS, IMAGENET, NO_BLUR, SHORT, VIEWS, budget_points, runs_of


def _rows():
    def row(start, seed, seen, ranks, pretraining_seed=None):
        ranks = np.array(ranks)
        return {"name": f"{start} {seed}", "start": start, "pretraining seed": pretraining_seed, "seed": seed,
                "pictures seen": seen, VIEWS[0]: ranks, VIEWS[1]: ranks + 1, VIEWS[2]: ranks[:2]}

    return [row(IMAGENET, 0, 0, [1, 2, 3, 4]), row(IMAGENET, 1, 0, [1, 1, 3, 4]),
            row(BARLOW_TWINS, 0, 960, [2, 2, 1, 1], 0), row(BARLOW_TWINS, 0, 992, [1, 2, 1, 1], 1),
            row(SHORT, 0, 320, [3, 3, 3, 1], 0)]


def test_runs_of_a_start_by_view_and_pretraining_seed():
    rows = _rows()
    runs = runs_of(rows, BARLOW_TWINS)
    assert set(runs) == set(VIEWS) and [r.tolist() for r in runs[VIEWS[0]]] == [[2, 2, 1, 1], [1, 2, 1, 1]]
    assert [r.tolist() for r in runs_of(rows, BARLOW_TWINS, pretraining_seed=1)[VIEWS[1]]] == [[2, 3, 2, 2]]
    with pytest.raises(ValueError, match="No run starts from 'Barlow Twins, no blur'"):
        runs_of(rows, NO_BLUR)


def test_budget_points_hold_each_runs_recall_at_its_mean_budget():
    points = budget_points(_rows(), {"none": IMAGENET, "short": SHORT, "full": BARLOW_TWINS})
    assert points == {"none": (0.0, [0.25, 0.5]), "short": (320.0, [0.25]), "full": (976.0, [0.5, 0.75])}


@pytest.mark.slow
def test_the_pool_beside_the_pairs_leaves_out_copies_of_held_out_pictures(tmp_path):
    from ttl_utils.pipeline import pretraining_pool

    pairs = make_demo_pairs(30, 64, seed=2)
    split = split_pairs(pairs)
    held = [split["val"].left_image(0), split["test"].right_image(1)]
    (tmp_path / "pool" / "left").mkdir(parents=True)
    (tmp_path / "pool" / "right").mkdir()
    held[0].save(tmp_path / "pool" / "left" / "copy-of-val.png")
    held[1].save(tmp_path / "pool" / "right" / "copy-of-test.png")
    sample_picture("astronaut").resize((64, 64)).save(tmp_path / "pool" / "left" / "astronaut.png")
    sample_picture("chelsea").resize((64, 64)).save(tmp_path / "pool" / "right" / "chelsea.png")
    pool = load_pool(tmp_path / "pool")
    folder, left_out = pretraining_pool(get_profile("smoke"), pairs, pool)
    kept = sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*.png"))
    assert left_out == 2 and kept == ["left/astronaut.png", "right/chelsea.png"]
    assert pretraining_pool(get_profile("smoke"), pairs, pool) == (folder, 2)  # written once, found again


@pytest.mark.slow
def test_seed_runs_train_each_start_once_and_rank_them_on_the_test_pairs(monkeypatch):
    from ttl_utils.models.checkpoints import checkpoint_extra
    from ttl_utils.pipeline import rank_seed_runs, seed_runs
    from ttl_utils.train.recipes import SeedPlan

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    monkeypatch.setenv("TTL_ENGINE", "torch")  # the plan, not the engine, is tested: no ONNX export a model
    profile, pairs = get_profile("smoke"), make_demo_pairs(40, 64, seed=1)
    plan = SeedPlan(imagenet=(0, 1), barlow_twins=((0, (0,)),), ablation=(0,), short=(0,), short_budget=1 / 3)
    runs = seed_runs(profile, pairs, plan=plan)
    assert [(r.start, r.pretrain_seed, r.seed) for r in runs] == [
        (IMAGENET, None, 0), (IMAGENET, None, 1), (BARLOW_TWINS, 0, 0), (NO_BLUR, 0, 0), (SHORT, 0, 0)]
    seen = {r.start: r.pictures_seen for r in runs}
    assert seen[IMAGENET] == 0 and seen[BARLOW_TWINS] == 3 * 16 and seen[SHORT] == 16  # smoke: 3 steps of 16, a third
    pretraining = checkpoint_extra(runs[3].checkpoint)["finetune"]["config"]["init"]
    assert checkpoint_extra(pretraining)["pretrain"]["config"]["blur"] is False
    assert len({r.checkpoint for r in runs}) == 5
    assert seed_runs(profile, pairs, plan=plan) == runs  # cached: the same checkpoints, nothing trained again
    test = split_pairs(pairs)["test"]
    rows = rank_seed_runs(runs, test, np.arange(3))
    assert [row["name"] for row in rows][:3] == ["ImageNet, seed 0", "ImageNet, seed 1",
                                                 "Barlow Twins, pretraining seed 0, seed 0"]
    assert all(len(row[VIEWS[0]]) == len(row[VIEWS[1]]) == len(test) and len(row[VIEWS[2]]) == 3 for row in rows)
    assert all(row[VIEWS[2]].max() <= 3 for row in rows)  # ranked among the three pairs of the subset alone
