"""Learning from candidate lists: the MIL-NCE loss, the one-to-one assignment, pseudo-label accuracy on
hidden partners, fine-tuning with an unlabelled pool, and `finetune --unlabelled`'s errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_official, write_pool

from ttl_utils.cli import main
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.pool import load_pool
from ttl_utils.data.splits import split_pairs
from ttl_utils.train.candidates import (
    assign_one_to_one,
    assignment_accuracy,
    candidate_index,
    hidden_candidates,
    mil_nce_loss,
    pseudo_pairs,
)
from ttl_utils.train.finetune import cached_finetune, finetune
from ttl_utils.train.recipes import FinetuneConfig


def test_mil_nce_matches_a_hand_computation():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])  # cosines to query 0: 1, 0, 0.7071
    in_bag = torch.tensor([[True, False, True], [False, True, False]])
    t = 0.5
    c = 1 / math.sqrt(2)
    first = -math.log((math.exp(1 / t) + math.exp(c / t)) / (math.exp(1 / t) + math.exp(0) + math.exp(c / t)))
    second = -math.log(math.exp(1 / t) / (math.exp(0) + math.exp(1 / t) + math.exp(c / t)))
    assert mil_nce_loss(queries, candidates, in_bag, t).item() == pytest.approx((first + second) / 2, rel=1e-5)
    # a bag holding every candidate costs nothing; one candidate alone is InfoNCE's term
    assert mil_nce_loss(queries, candidates, torch.ones(2, 3, dtype=torch.bool), t).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="at least one candidate in its bag"):
        mil_nce_loss(queries, candidates, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="in_bag must be 2 x 3"):
        mil_nce_loss(queries, candidates, torch.ones(3, 2, dtype=torch.bool))


def test_the_assignment_is_one_to_one_and_takes_the_best_scores_first():
    g = torch.Generator().manual_seed(0)
    n, width = 50, 5
    index = torch.stack([torch.randperm(n, generator=g)[:width] for _ in range(n)])
    index[3, 2:] = -1  # a shorter list
    scores = torch.rand(n, width, generator=g).masked_fill(index < 0, float("-inf"))
    assigned, margin = assign_one_to_one(scores, index, n)
    paired = assigned[assigned >= 0]
    assert len(paired) == len(set(paired.tolist()))  # each right picture at most once
    for i in torch.nonzero(assigned >= 0).flatten().tolist():
        assert assigned[i] in index[i].tolist()  # only a candidate of its own list
        j = index[i].tolist().index(int(assigned[i]))
        others = [scores[i, k].item() for k in range(width) if k != j and index[i, k] >= 0]
        assert margin[i].item() == pytest.approx(scores[i, j].item() - max(others))
    # the best edge of all is always taken
    best = int(torch.argmax(scores.flatten()))
    assert assigned[best // width] == index[best // width, best % width]
    # greedy: a left picture loses its favourite only to a higher score
    for i in range(n):
        favourite = int(index[i, scores[i].argmax()])
        if assigned[i] != favourite:
            rival = int((assigned == favourite).nonzero().flatten()[0])
            rival_score = scores[rival, index[rival].tolist().index(favourite)]
            assert rival_score >= scores[i].max()
    with pytest.raises(ValueError, match="same shape"):
        assign_one_to_one(scores[:, :2], index, n)



def test_the_optimal_assignment_beats_greedy_where_greedy_pairs_badly():
    # greedy takes left 0 -> right 0 (0.9) first and leaves left 1 its poor 0.1: total 1.0;
    # the optimal pairing swaps them: 0.8 + 0.85 = 1.65
    scores = torch.tensor([[0.9, 0.8], [0.85, 0.1]])
    index = torch.tensor([[0, 1], [0, 1]])
    assert assign_one_to_one(scores, index, 2, "greedy")[0].tolist() == [0, 1]
    assigned, margin = assign_one_to_one(scores, index, 2, "optimal")
    assert assigned.tolist() == [1, 0] and margin.tolist() == pytest.approx([0.8 - 0.9, 0.85 - 0.1])
    # pairing more pictures comes first: left 1's only candidate is right 0
    scores = torch.tensor([[0.9, 0.5], [0.2, float("-inf")]])
    index = torch.tensor([[0, 1], [0, -1]])
    assert assign_one_to_one(scores, index, 2, "greedy")[0].tolist() == [0, -1]
    assert assign_one_to_one(scores, index, 2, "optimal")[0].tolist() == [1, 0]
    with pytest.raises(ValueError, match="Unknown assignment 'best'; choose one of: greedy, optimal"):
        assign_one_to_one(scores, index, 2, "best")
    # scores far below zero still pair (each edge outweighs no edge); a right picture named twice keeps its best
    assert assign_one_to_one(torch.tensor([[-5.0], [float("-inf")]]), torch.tensor([[0], [-1]]), 2,
                             "optimal")[0].tolist() == [0, -1]
    assert assign_one_to_one(torch.tensor([[0.9, 0.2, 0.5]]), torch.tensor([[0, 0, 1]]), 2, "optimal")[0].tolist() == [0]
    for method in ("greedy", "optimal"):
        with pytest.raises(ValueError, match="Scores must be finite where index names a candidate"):
            assign_one_to_one(torch.tensor([[float("nan"), 0.1]]), torch.tensor([[0, 1]]), 2, method)


def test_the_optimal_assignment_is_one_to_one_over_candidates_with_the_highest_total():
    g = torch.Generator().manual_seed(3)
    n, width = 60, 6
    index = torch.stack([torch.randperm(n, generator=g)[:width] for _ in range(n)])
    index[5, 3:] = -1
    scores = (20 * torch.rand(n, width, generator=g) - 30).masked_fill(index < 0, float("-inf"))  # all far below 0
    totals = {}
    for method in ("greedy", "optimal"):
        assigned, _ = assign_one_to_one(scores, index, n, method)
        paired = assigned[assigned >= 0]
        assert len(paired) == len(set(paired.tolist()))
        rows = torch.nonzero(assigned >= 0).flatten().tolist()
        assert all(int(assigned[i]) in index[i].tolist() for i in rows)
        totals[method] = (len(rows), sum(scores[i, index[i].tolist().index(int(assigned[i]))].item() for i in rows))
    assert totals["optimal"][0] >= totals["greedy"][0]
    if totals["optimal"][0] == totals["greedy"][0]:
        assert totals["optimal"][1] >= totals["greedy"][1] - 1e-6
    with pytest.raises(ValueError, match="unlabelled_assign"):
        FinetuneConfig(out="ft.pt", unlabelled_assign="hungarian")

def test_pseudo_pairs_keep_the_most_confident_share():
    # embeddings: left i matches right i exactly for even i, faintly for odd i
    g = torch.Generator().manual_seed(1)
    right = torch.nn.functional.normalize(torch.randn(40, 16, generator=g), dim=1)
    noise = torch.randn(40, 16, generator=g)
    left = torch.nn.functional.normalize(torch.stack([right[i] if i % 2 == 0 else right[i] + 2 * noise[i]
                                                      for i in range(40)]), dim=1)
    index = hidden_candidates(40, 10, seed=2)
    ids, partners = pseudo_pairs(left, right, index, keep=0.5)
    assigned, _ = assign_one_to_one((left @ right.T).gather(1, index), index, 40)
    assert len(ids) == round(0.5 * int((assigned >= 0).sum())) and len(set(partners.tolist())) == len(ids)
    assert torch.equal(ids, ids.sort().values)
    assert (ids % 2 == 0).float().mean() >= 0.8 and torch.equal(partners[ids % 2 == 0], ids[ids % 2 == 0])
    with pytest.raises(ValueError, match="keep must be a share"):
        pseudo_pairs(left, right, index, keep=0)


def test_partners_hidden_among_foils_and_the_accuracy_measured_there():
    index = hidden_candidates(30, 20, seed=5)
    assert index.shape == (30, 20)
    for i, row in enumerate(index.tolist()):
        assert row.count(i) == 1 and len(set(row)) == 20 and all(0 <= r < 30 for r in row)
    assert len({row.index(i) for i, row in enumerate(index.tolist())}) > 5  # the partner's place varies
    with pytest.raises(ValueError, match="at least 20 pairs"):
        hidden_candidates(10, 20)
    exact = torch.eye(30)
    found = assignment_accuracy(exact, exact, keep=0.5)
    assert found == {"kept": 0.5, "accuracy": 1.0, "accuracy_all": 1.0, "chance": 0.05}
    shuffled = assignment_accuracy(exact, exact[torch.randperm(30, generator=torch.Generator().manual_seed(0))], 1.0)
    assert shuffled["accuracy"] < 0.5


def test_candidate_index_follows_the_pool(tmp_path):
    pool = load_pool(write_pool(tmp_path / "pool", n=5, n_candidates=3), n_candidates=3)
    index = candidate_index(pool.candidates, pool.left, pool.right)
    assert index.tolist()[4] == [4, 0, 1]
    smaller = pool.without([pool.right[0], pool.left[1]])
    assert [p.stem for p in smaller.left] == ["00000", "00002", "00003", "00004"]
    assert smaller.candidates["00004"] == ["00004", "00001"] and smaller.fingerprint != pool.fingerprint
    index = candidate_index(smaller.candidates, smaller.left, smaller.right)
    assert index.tolist()[3] == [3, 0, -1]  # right 00004 is now at 3, 00001 at 0; the list padded
    assert smaller.base is pool and smaller.without([smaller.left[0]]).base is pool  # whose trunk outputs it shares


@pytest.fixture(scope="module")
def demo():
    return split_pairs(make_demo_pairs(80, 48, seed=11), val=0.3, test=0.1, save=False)  # 48 / 24 / 8


def small(out, **kwargs):
    return FinetuneConfig(**{**dict(out=str(out), image_size=48, batch_size=16, epochs=2, views=2, workers=0,
                                    patience=5, unfreeze=0, unlabelled_keep=0.5, unlabelled_refresh=1), **kwargs})


def test_fine_tuning_with_a_pool_adds_pseudo_pairs_and_measures_them(demo, tmp_path, caplog):
    pool = load_pool(write_pool(tmp_path / "pool", n=24, n_candidates=4, size=48), n_candidates=4)
    with caplog.at_level("INFO", logger="ttl_utils"):
        result = finetune(small(tmp_path / "ft.pt"), demo["train"], demo["val"], pool=pool)
    assert ("Also learning from 24 unlabelled left pictures: pseudo-pairs by the greedy assignment, the most "
            "confident 50% kept, re-assigned every 1 epoch(s)") in caplog.text
    first, second = result.history[1], result.history[2]
    # half of the left pictures the greedy assignment pairs (some find every candidate taken)
    assert 8 <= first["pseudo_pairs"] <= 12 and 8 <= second["pseudo_pairs"] <= 12
    assert 0 <= first["pseudo_val_accuracy"] <= 1 and 0 <= first["pseudo_val_accuracy_all"] <= 1
    plain = finetune(small(tmp_path / "plain.pt"), demo["train"], demo["val"])
    assert "pseudo_pairs" not in plain.history[1]
    assert result.history[1]["train_loss"] != plain.history[1]["train_loss"]  # the pseudo-pairs trained
    # cached runs are keyed by the pool
    cached = cached_finetune(small(""), demo["train"], demo["val"], pool=pool)
    assert cached.checkpoint != cached_finetune(small(""), demo["train"], demo["val"]).checkpoint
    # a pool cut from it reads the whole pool's trunk outputs, the rows of its own pictures
    cut = pool.without([pool.left[0], pool.right[5]])
    # ... here paired optimally (`--unlabelled-assign optimal`)
    shorter = finetune(small(tmp_path / "cut.pt", epochs=1, unlabelled_assign="optimal"), demo["train"], demo["val"],
                       pool=cut)
    assert 8 <= shorter.history[1]["pseudo_pairs"] <= 12
    with pytest.raises(ValueError, match="no candidates.csv"):
        finetune(small(tmp_path / "x.pt"), demo["train"], demo["val"],
                 pool=load_pool(write_pool(tmp_path / "bare", n=4, rows=False)))


@pytest.mark.slow
def test_resume_with_a_pool_reproduces_an_uninterrupted_run(demo, tmp_path):
    pool = load_pool(write_pool(tmp_path / "pool", n=24, n_candidates=4, size=48), n_candidates=4)
    settings = dict(unlabelled_refresh=2, epochs=3)
    straight = finetune(small(tmp_path / "a.pt", **settings), demo["train"], demo["val"], pool=pool)
    finetune(small(tmp_path / "b.pt", **{**settings, "epochs": 2}), demo["train"], demo["val"], pool=pool)
    resumed = finetune(small(tmp_path / "b.pt", **settings), demo["train"], demo["val"], pool=pool, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]


def test_mil_batches_hold_each_left_picture_once_a_pass_with_its_candidates_as_its_bag(demo, tmp_path):
    from ttl_utils.train.finetune import _mil_batches, _Run

    index = torch.tensor([[0, 2, -1], [-1, -1, -1], [1, 3, 4], [4, -1, -1], [0, 1, 2]])  # left 1: no candidate left
    views = torch.arange(5 * 3 * 2, dtype=torch.float16).reshape(5, 3, 2)  # 5 left pictures, 3 views each
    run = _Run(None, None, {"left": torch.zeros(6, 3, 2)}, None, torch.device("cpu"), {}, pool_index=index,
               pool_inputs={"left": views, "right": torch.zeros(6, 3, 2)})
    config = small(tmp_path / "x.pt", batch_size=3)  # 6 labelled pairs: 2 batches an epoch
    batches = _mil_batches(run, config, epoch=0)
    seen = []
    for _ in range(4):
        queries, in_bag = next(batches)
        assert queries.dtype == torch.float32 and in_bag.shape == (3, 6)  # every batch full
        for query, bag in zip(queries, in_bag):
            picture, view = divmod(int(query[0]) // 2, 3)
            assert view in (1, 2)  # an augmented view, never the clean view 0
            assert bag.nonzero().flatten().tolist() == sorted(i for i in index[picture].tolist() if i >= 0)
            seen.append(picture)
    # three passes of the 4 pictures with a candidate, each pass every one of them once
    assert [sorted(seen[i:i + 4]) for i in (0, 4, 8)] == [[0, 2, 3, 4]] * 3
    # the next epoch enters the stream where this one's 2 batches left it (a resumed run draws the same)
    following = [divmod(int(q[0]) // 2, 3)[0] for q in next(_mil_batches(run, config, epoch=1))[0]]
    assert following == seen[6:9]
    run.pool_index = torch.full((5, 3), -1)
    with pytest.raises(ValueError, match="No left picture of the unlabelled pool has a candidate left"):
        next(_mil_batches(run, config, epoch=0))
    with pytest.raises(ValueError, match="Unknown unlabelled_loss 'milnce'; choose one of: pseudo, mil"):
        FinetuneConfig(out="ft.pt", unlabelled_loss="milnce")


@pytest.mark.slow
def test_fine_tuning_with_mil_nce_learns_from_the_lists_and_resumes_exactly(demo, tmp_path, caplog):
    pool = load_pool(write_pool(tmp_path / "pool", n=24, n_candidates=4, size=48), n_candidates=4)
    settings = dict(unlabelled_loss="mil", epochs=3)
    with caplog.at_level("INFO", logger="ttl_utils"):
        straight = finetune(small(tmp_path / "a.pt", **settings), demo["train"], demo["val"], pool=pool)
    assert "MIL-NCE over each one's candidates against the pool's 24 right pictures" in caplog.text
    for record in straight.history[1:]:
        assert record["mil_bank"] == 24 and "pseudo_pairs" not in record and record["mil_loss"] > 0
    # a query's bag is 4 of the 24 right pictures: the loss starts near log(24 / 4), and learning lowers it
    assert abs(straight.history[1]["mil_loss"] - math.log(24 / 4)) < 1.0
    assert straight.history[3]["mil_loss"] < straight.history[1]["mil_loss"]
    finetune(small(tmp_path / "b.pt", **{**settings, "epochs": 2}), demo["train"], demo["val"], pool=pool)
    resumed = finetune(small(tmp_path / "b.pt", **settings), demo["train"], demo["val"], pool=pool, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    # a run's loss keys it apart; the default stays out of keys (older cached runs are found)
    from ttl_utils.train.finetune import _LATER_SETTINGS, _VERSION, _data_key
    from ttl_utils.train.state import run_path

    data = _data_key(demo["train"], demo["val"], pool)
    keys = {loss: run_path("finetune", small("", unlabelled_loss=loss), data, _VERSION, _LATER_SETTINGS).name
            for loss in ("pseudo", "mil")}
    assert keys["pseudo"] != keys["mil"] and _LATER_SETTINGS["unlabelled_loss"] == FinetuneConfig.unlabelled_loss
    # without a pool the pool's settings change nothing: the same cached run, not a second one
    alone = cached_finetune(small("", epochs=1), demo["train"], demo["val"]).checkpoint
    assert cached_finetune(small("", epochs=1, unlabelled_loss="mil", unlabelled_keep=0.9), demo["train"],
                           demo["val"]).checkpoint == alone
    # a state saved before a setting existed resumes only under that setting's old value
    state = torch.load(f"{tmp_path / 'b.pt'}.state.pt", weights_only=True)
    del state["config"]["unlabelled_loss"]
    torch.save(state, f"{tmp_path / 'b.pt'}.state.pt")
    with pytest.raises(ValueError, match="unlabelled_loss='pseudo' \\(now 'mil'\\)"):
        finetune(small(tmp_path / "b.pt", **{**settings, "epochs": 4}), demo["train"], demo["val"], pool=pool,
                 resume=True)


@pytest.mark.parametrize("rows, expected", [
    ([["00000"] + [f"{j:05d}" for j in range(19)]], "line 2: 19 candidates for 00000, expected 20."),
    ([["00000"] + [f"{j:05d}" for j in range(19)] + ["00077"]], "line 2: right/00077 is not a picture"),
    ([[f"{i:05d}"] + [f"{j:05d}" for j in range(19)] + (["00077"] if i == 1 else []) for i in range(4)],
     "candidates.csv: 4 wrong lines: line 2: 19 candidates for 00000, expected 20; line 3: right/00077 is not a "
     "picture of the pool's right/ folder; line 4: 19 candidates for 00002, expected 20; and 1 more."),  # all at once
])
def test_finetune_unlabelled_errors_are_one_line(rows, expected, tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6)
    pool = write_pool(tmp_path / "pool", n=20, n_candidates=20, rows=rows)
    code = main(["finetune", "--data", str(data), "--split", "all", "--out", str(tmp_path / "ft.pt"),
                 "--unlabelled", str(pool), "--profile", "smoke"])
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert code == 1 and "Traceback" not in err and expected in last and last.startswith(f"error: {pool}")


def test_finetune_unlabelled_without_candidates_or_with_a_bad_share(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6)
    bare = write_pool(tmp_path / "bare", n=4, rows=False)
    code = main(["finetune", "--data", str(data), "--split", "all", "--out", str(tmp_path / "ft.pt"),
                 "--unlabelled", str(bare), "--profile", "smoke"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"--unlabelled {bare}: no candidates.csv there" in err
    code = main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft.pt"), "--unlabelled-keep", "1.5"])
    assert code == 2 and "give a share above 0 and at most 1" in capsys.readouterr().err
    code = main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft.pt"), "--unlabelled-assign", "best"])
    err = capsys.readouterr().err  # argparse quotes the choices from Python 3.12 on
    assert code == 2 and "--unlabelled-assign: invalid choice: 'best'" in err and "greedy" in err and "optimal" in err
    for flag, value in (("--unlabelled-keep", "0.5"), ("--unlabelled-refresh", "2"), ("--unlabelled-assign", "optimal"),
                        ("--unlabelled-loss", "mil")):
        code = main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft.pt"), flag, value])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err == f"error: {flag} sets how the unlabelled pool is used: give the pool too (--unlabelled DIR)."
        if flag != "--unlabelled-loss":  # MIL-NCE makes no pseudo-pairs: their settings are refused with it
            code = main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft.pt"), "--unlabelled", str(bare),
                         "--unlabelled-loss", "mil", flag, value])
            err = capsys.readouterr().err.strip()
            assert code == 2 and err == (f"error: {flag} sets the pseudo-pairs, which --unlabelled-loss mil does not "
                                         "make: drop it.")
    assert not (tmp_path / "ft.pt").exists()


def test_a_demo_pool_hides_each_partner_among_its_candidates_and_loads(tmp_path):
    from PIL import Image

    from ttl_utils.data.demo import write_demo_pool

    root = write_demo_pool(tmp_path / "pool", n_pairs=24, size=32, n_candidates=20)
    pool = load_pool(root)
    assert len(pool.left) == len(pool.right) == 24 and len(pool.candidates) == 24
    assert all(len(names) == 20 and len(set(names)) == 20 for names in pool.candidates.values())
    # the partner (the right picture drawn with left i) is among left i's candidates, not always first
    pairs = make_demo_pairs(24, 32, seed=1)
    right = {path.stem: np.asarray(Image.open(path)) for path in pool.right}
    places = []
    for i in range(24):
        partner = np.asarray(pairs.right_image(i))
        found = [j for j, name in enumerate(pool.candidates[f"{i:05d}"])
                 if np.array_equal(right[Path(name).stem], partner)]
        assert len(found) == 1
        places.append(found[0])
    assert len(set(places)) > 3  # shuffled
    before = (root / "candidates.csv").stat().st_mtime_ns
    write_demo_pool(root, n_pairs=24, size=32)  # complete already: left alone
    assert (root / "candidates.csv").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="at least n_candidates=20"):
        write_demo_pool(tmp_path / "small", n_pairs=10, size=32)


def test_pseudo_label_records_and_their_figure():
    import matplotlib

    matplotlib.use("Agg")
    from ttl_utils.present.plots import pseudo_label_plot
    from ttl_utils.train.candidates import pseudo_label_records

    history = [{"epoch": 0, "val_r1": 0.1},
               {"epoch": 1, "pseudo_pairs": 480, "pseudo_val_accuracy": 0.85, "pseudo_val_accuracy_all": 0.46},
               {"epoch": 2},
               {"epoch": 3, "pseudo_pairs": 500}]
    records = pseudo_label_records(history)
    assert records == [{"assigned before epoch": 1, "pseudo-pairs": 480, "accuracy of those kept": 0.85,
                        "accuracy of all assigned": 0.46},
                       {"assigned before epoch": 3, "pseudo-pairs": 500}]
    fig = pseudo_label_plot(records)
    (accuracy,) = fig.axes
    assert [line.get_label() for line in accuracy.get_lines()][:2] == ["accuracy of those kept", "accuracy of all assigned"]
    assert "(480-500 pool pseudo-pairs kept each time)" in accuracy.get_title()


def test_notebook_05_s_pool_is_a_demo_pool_on_demo_data_without_near_copies(tmp_path, monkeypatch):
    from ttl_utils.config import get_profile
    from ttl_utils.pipeline import finetuning_pool_for

    monkeypatch.setenv("TTL_HOME", str(tmp_path))
    monkeypatch.delenv("TTL_UNLABELLED", raising=False)
    profile = get_profile("smoke")
    pairs = make_demo_pairs(40, 48)
    pool, line = finetuning_pool_for(profile, pairs)
    assert pool is not None and len(pool.candidates) == 100 and "near-copies" in line
    assert pool.root.is_relative_to(tmp_path / "artifacts" / "demo-pool")
    real = make_demo_pairs(40, 48)
    object.__setattr__(real, "layout", "official")
    none, why = finetuning_pool_for(profile, real)
    assert none is None and "TTL_UNLABELLED" in why
