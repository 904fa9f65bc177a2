"""The finder's test-time options: flip averaging and hub correction (CSLS) against a bank of training pictures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.splits import folds
from ttl_utils.evaluate.embeddings import embed, flip_averaged
from ttl_utils.evaluate.hubs import csls_ranks, hub_first_places, hubness
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


def test_flip_is_a_setting_kept_apart_in_cache_keys_and_checkpoints_and_off_by_default():
    plain = Preprocessing.for_size(64)
    assert "flip" not in plain.to_dict()  # the settings (and the cache keys made from them) read as before
    flipped = Preprocessing.for_size(64, flip=True)
    assert flipped.to_dict()["flip"] is True and Preprocessing.from_dict(flipped.to_dict()) == flipped
    assert Preprocessing.from_dict(plain.to_dict()) == plain


def test_flip_averaging_gives_a_picture_and_its_mirror_the_same_unit_embedding():
    torch.manual_seed(0)
    embedder = build_embedder("efficientnet_lite0", None, seed=0)
    picture = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    mirror = picture[:, ::-1].copy()
    preprocessing = Preprocessing(resize=32, crop=32, flip=True)
    both = embed(embedder, [picture, mirror], preprocessing, num_workers=0)
    assert both.shape == (2, 1280)
    assert torch.allclose(both.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(both[0], both[1], atol=1e-4)  # the mean of the two views is the same for either
    plain = embed(embedder, [picture, mirror], Preprocessing(resize=32, crop=32), num_workers=0)
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)  # without it, a mirror embeds elsewhere
    calls = []
    flip_averaged(lambda batch: calls.append(batch) or batch.mean(dim=(2, 3)))(torch.ones(2, 3, 4, 4))
    assert len(calls) == 2 and torch.equal(calls[1], torch.ones(2, 3, 4, 4).flip(-1))


def test_csls_lowers_a_hub_below_the_true_partner_by_its_hubness_against_the_bank():
    queries = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    hub = torch.tensor([0.7, 0.7, 0.1])  # near both queries, and near every bank picture
    gallery = torch.stack([torch.tensor([0.6, 0.0, 0.8]), torch.tensor([0.0, 0.6, 0.8]), hub])
    bank = torch.tensor([[0.6, 0.6, 0.0], [0.7, 0.7, 0.2], [0.5, 0.6, 0.1]])
    assert rank_of_match(queries, gallery[[0, 1]]).tolist() == [1, 1]
    plain = rank_of_match(queries, gallery)  # partners 0 and 1; the hub comes first for both
    assert plain.tolist() == [2, 2]
    penalty = hubness(gallery, bank, k=2)
    unit = torch.nn.functional.normalize
    expected = (unit(gallery, dim=1) @ unit(bank, dim=1).T).topk(2, dim=1).values.mean(dim=1)
    assert torch.allclose(penalty, expected)
    assert penalty[2] > penalty[0] and penalty[2] > penalty[1]
    assert csls_ranks(queries, gallery, [0, 1], bank, k=2).tolist() == [1, 1]
    assert hub_first_places(queries, gallery) == (2, 1)  # the top hub takes both first places
    assert hub_first_places(queries, gallery, penalty=penalty) == (1, 1)
    with pytest.raises(ValueError, match="bank of training pictures is empty"):
        hubness(gallery, bank[:0])


def test_folds_hold_out_every_pair_once_and_refuse_a_bad_k():
    pairs = make_demo_pairs(11, 16)
    parts = folds(pairs, k=4, seed=1)
    held = [set(h.ids) for _, h in parts]
    assert sorted(len(h) for h in held) == [2, 3, 3, 3] and set().union(*held) == set(pairs.ids)
    assert all(not set(train.ids) & h for (train, _), h in zip(parts, held))
    assert [list(h.ids) for _, h in folds(pairs, k=4, seed=1)] == [list(h.ids) for _, h in parts]  # reproducible
    with pytest.raises(ValueError, match="Need 2 <= k <= 11"):
        folds(pairs, k=1)


def test_search_ranks_by_csls_with_a_penalty_and_still_reports_cosines():
    from ttl_utils.evaluate.ranking import search

    queries = torch.tensor([[1.0, 0.0]])
    gallery = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), dim=1)
    scores, indices = search(queries, gallery, top=2)
    assert indices.tolist() == [[0, 1]]
    scores, indices = search(queries, gallery, top=2, penalty=torch.tensor([0.9, 0.0]))  # the first is a hub
    assert indices.tolist() == [[1, 0]]
    assert scores[0].tolist() == pytest.approx([float(gallery[1, 0]), float(gallery[0, 0])])


@pytest.mark.slow
def test_cli_find_and_evaluate_take_flip_and_a_hub_bank(tmp_path, monkeypatch, capsys):
    from conftest import write_official

    from ttl_utils.cli import main

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=8, size=48)
    argv = ["find", str(data / "left" / "00002.jpg"), "--gallery", str(data), "--model", "efficientnet_lite0:none",
            "--top", "3", "--workers", "0", "--json", "-"]
    assert main(argv + ["--flip", "--hub-bank", str(data / "left"), "--hub-k", "3"]) == 0
    printed = capsys.readouterr()
    assert "flip-averaged" in printed.err and "Hub correction (CSLS): 8 bank pictures" in printed.err
    assert len(json.loads(printed.out)["queries"][0]["matches"]) == 3
    assert main(argv + ["--hub-bank", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere: no such folder (give a folder of pictures of the queries' "
                                                    "kind, e.g. data/ttl/left).")
    assert main(argv + ["--hub-bank", str(data / "left" / "00001.jpg")]) == 2  # a picture, not a folder of them
    assert "00001.jpg: a file, not a folder (give a folder" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--model", "efficientnet_lite0:none", "--split", "all", "--flip",
                 "--workers", "0"]) == 0
    assert "px, flip-averaged; 95% bootstrap CIs" in capsys.readouterr().out  # the table says how it was ranked


@pytest.mark.slow
def test_the_options_tool_measures_every_setting_on_held_out_folds(tmp_path, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    from conftest import write_official

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=12, size=48)
    spec = importlib.util.spec_from_file_location(
        "lookalike_options", Path(__file__).resolve().parents[1] / "tools" / "lookalike_options.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit):
        script.main(["--data", str(data), "--seeds", "2"])  # an ensemble of fine-tuned runs needs --finetuned
    assert "--seeds: a number of fine-tuning seeds from 1 up, with --finetuned" in capsys.readouterr().err
    out = tmp_path / "options.json"
    assert script.main(["--data", str(data), "--folds", "3", "--k", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [row["setting"] for row in rows] == ["plain", "flip", "CSLS", "flip + CSLS"]
    assert all(row["queries"] == 12 and 0 <= row["R@1"] <= 1 for row in rows)  # every pair held out once
    assert "R@1 gain" not in rows[0] and len(rows[2]["R@1 gain a fold"]) == 3
    assert all(0 <= row["R@1, all candidates"] <= row["R@1"] for row in rows)  # more candidates, no easier
    assert "setting: CSLS" in capsys.readouterr().out


@pytest.mark.slow
def test_the_options_tool_measures_pseudo_pairs_against_the_default(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    from conftest import write_official, write_pool

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=60, size=48)  # 2 folds: 30 to train on, 20 of them validate
    pool = write_pool(tmp_path / "pool", n=20, n_candidates=20, size=48)
    spec = importlib.util.spec_from_file_location(
        "lookalike_options", Path(__file__).resolve().parents[1] / "tools" / "lookalike_options.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "options.json"
    assert script.main(["--data", str(data), "--folds", "2", "--k", "2", "--holdout", "20", "--unlabelled", str(pool),
                        "--finetuned", "--seeds", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    models = [row["model"] for row in rows]
    assert models.count(script.DEFAULT) == 4 and models.count(script.POOLED) == 5  # 4 settings, and the summary
    # the ensemble of seeds 0 and 1: seed 0 is the default's own run, so a fold trains 3 runs, not 4
    ensemble = {row["setting"]: row for row in rows if row["model"] == script.ENSEMBLE.format(n=2)}
    assert list(ensemble) == ["plain", "flip", "CSLS", "flip + CSLS"] and ensemble["plain"]["queries"] == 60
    assert "R@1 vs default, same setting" in ensemble["CSLS"] and "R@1 vs default, same setting" not in ensemble["plain"]
    assert len(ensemble["plain"]["R@20 vs default a fold"]) == 2
    runs = (Path(os.environ["TTL_HOME"]) / "artifacts" / "finetune").glob("*.pt")
    assert len([run for run in runs if not run.name.endswith(".state.pt")]) == 2 * 3
    pooled_plain = next(row for row in rows if row["model"] == script.POOLED and row.get("setting") == "plain")
    assert len(pooled_plain["R@1 vs default a fold"]) == 2 and "R@20 vs default, all candidates" in pooled_plain
    default_plain = next(row for row in rows if row["model"] == script.DEFAULT and row["setting"] == "plain")
    assert "R@1 vs default" not in default_plain  # not compared with itself
    summary = rows[-1]["pseudo-labels"]
    first, last = summary["accuracy of those kept (first, last)"]
    assert 0 <= first <= 1 and 0 <= last <= 1 and summary["chance"] == 0.05
    assert (summary["assignment"], summary["keep"]) == ("greedy", 0.25)  # the settings measured
    # MIL-NCE runs are summarised by their loss (epoch 0 is the untrained start: no MIL loss)
    histories = [[{"epoch": 0, "seconds": 0.0}, {"epoch": 1, "mil_loss": 4.5, "seconds": 10.0},
                  {"epoch": 2, "mil_loss": 4.0, "seconds": 12.0}],
                 [{"epoch": 0, "seconds": 0.0}, {"epoch": 1, "mil_loss": 4.3, "seconds": 9.0}]]
    assert script.mil_summary(histories) == {"loss": "mil", "MIL-NCE loss (first epoch, last)": (4.4, 4.15),
                                             "epochs a run": 1.5, "seconds a run": 15.5}


def test_joined_embeddings_are_unit_rows_whose_cosines_are_the_members_mean():
    from ttl_utils.evaluate.ensemble import join_embeddings

    generator = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(5, d, generator=generator) * 3 for d in (4, 4, 7))  # neither unit length nor one size
    cosine = lambda x: torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(x, dim=1).T  # noqa: E731
    joined = join_embeddings([a, b, c])
    assert joined.shape == (5, 15)
    assert torch.allclose(joined.norm(dim=1), torch.ones(5))
    assert torch.allclose(joined @ joined.T, (cosine(a) + cosine(b) + cosine(c)) / 3, atol=1e-6)
    assert torch.allclose(join_embeddings([a]), torch.nn.functional.normalize(a, dim=1))
    with pytest.raises(ValueError, match="different numbers of pictures: \\[4, 5\\]"):
        join_embeddings([a, b[:4]])
    with pytest.raises(ValueError, match="at least one"):
        join_embeddings([])


def test_rank_pairs_ranks_by_csls_with_each_direction_s_penalty():
    from ttl_utils.evaluate.hubs import hub_penalties
    from ttl_utils.evaluate.ranking import rank_pairs

    queries = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    hub = torch.tensor([0.7, 0.7, 0.1])
    right = torch.stack([torch.tensor([0.6, 0.0, 0.8]), torch.tensor([0.0, 0.6, 0.8]), hub])
    bank = torch.tensor([[0.6, 0.6, 0.0], [0.7, 0.7, 0.2], [0.5, 0.6, 0.1]])
    plain = rank_pairs("plain", queries, right, candidates=False)
    penalties = hub_penalties(queries, right, bank, bank, k=2)
    assert torch.allclose(penalties["left -> right"], hubness(right, bank, 2))
    corrected = rank_pairs("csls", queries, right, candidates=False, penalties=penalties)
    assert plain.ranks["left -> right"].tolist()[:2] == [2, 2]
    assert corrected.ranks["left -> right"].tolist()[:2] == [1, 1]
    assert corrected.ranks["left -> right"].tolist() == csls_ranks(queries, right, [0, 1, 2], bank, k=2).tolist()
    # a penalty given for one direction leaves the other as it was
    one_way = rank_pairs("x", queries, right, candidates=False, penalties={"left -> right": penalties["left -> right"]})
    assert one_way.ranks["right -> left"].tolist() == plain.ranks["right -> left"].tolist()


@pytest.mark.slow
def test_evaluate_and_compare_correct_hubs_against_a_bank_never_the_evaluated_pictures(tmp_path, monkeypatch, capsys):
    from conftest import write_official, write_pool

    from ttl_utils.cli import main

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=24, size=48)
    pool = write_pool(tmp_path / "pool", n=6, size=48, rows=False)
    common = ["--data", str(data), "--split", "all", "--workers", "0"]
    assert main(["evaluate", "--model", "efficientnet_lite0:none", *common, "--json", "-"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", "efficientnet_lite0:none", *common, "--hub-bank", str(pool), "--hub-k", "3",
                 "--json", "-"]) == 0
    printed = capsys.readouterr()
    corrected = json.loads(printed.out)
    assert corrected["hub_correction"] == {"bank": str(pool), "pictures": [6, 6], "k": 3}
    assert "hub_correction" not in plain  # a backbone keeps no bank: plain cosine by default
    assert "efficientnet_lite0:none: hub correction (CSLS): 3 nearest of 6 left and 6 right pictures" in printed.err
    assert main(["compare", "--model", "efficientnet_lite0:none", "efficientnet_lite0", *common,
                 "--hub-bank", str(pool)]) == 0
    assert main(["evaluate", *common, "--hub-bank", str(data)]) == 2
    assert "holds 48 of the evaluated pictures" in capsys.readouterr().err
    assert main(["evaluate", *common, "--hub-bank", str(data / "left")]) == 2
    assert "no left/ folder" in capsys.readouterr().err


def test_gallery_penalty_scales_each_side_by_the_other_side_s_bank():
    from ttl_utils.evaluate.hubs import gallery_penalty

    left_bank = torch.tensor([[1.0, 0.0, 0.0]])
    right_bank = torch.tensor([[0.0, 1.0, 0.0]])
    vectors = torch.eye(3)
    penalty = gallery_penalty(vectors, ["right/a", "left/b", "c.jpg"], left_bank, right_bank, k=1)
    # right/a against the left bank (cos 1), left/b against the right bank (cos 1), c against both (best 0)
    assert penalty.tolist() == [1.0, 1.0, 0.0]
    penalty = gallery_penalty(vectors, ["left/a", "right/b", "c.jpg"], left_bank, right_bank, k=1)
    assert penalty.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_a_fine_tuned_checkpoint_keeps_its_training_pictures_and_corrects_hubs_with_them(tmp_path, monkeypatch, capsys):
    from conftest import write_official

    from ttl_utils.cli import main
    from ttl_utils.data.folders import load_pairs
    from ttl_utils.evaluate.hubs import TrainingBank
    from ttl_utils.models.checkpoints import checkpoint_extra
    from ttl_utils.train.finetune import finetune, keep_hub_bank
    from ttl_utils.train.recipes import FinetuneConfig

    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=24, size=48)
    pairs = load_pairs(data)
    train, val = pairs.subset(list(range(16))), pairs.subset(list(range(16, 24)))
    out = tmp_path / "ft.pt"
    config = FinetuneConfig(out=str(out), image_size=48, batch_size=8, epochs=1, views=1, workers=0, unfreeze=1)
    finetune(config, train, val)
    assert "hub_bank" not in checkpoint_extra(out)
    keep_hub_bank(out, config, train)
    kept = checkpoint_extra(out)["hub_bank"]
    assert keep_hub_bank(out, config, train) is not None  # kept once: read back
    few = tmp_path / "few.pt"
    import shutil

    shutil.copyfile(tmp_path / "ft.pt", few)
    trimmed = checkpoint_extra(few)
    del trimmed["hub_bank"]
    from ttl_utils.models.checkpoints import load_checkpoint, save_checkpoint

    model, preprocessing, _ = load_checkpoint(few)
    save_checkpoint(few, model, preprocessing, **trimmed)
    assert len(keep_hub_bank(few, config, train, most_bytes=4 * kept["left"].shape[1] * 5)["left"]) == 5  # capped
    older = {**trimmed, "hub_bank": {"left": kept["left"], "right": kept["right"]}}  # kept before digests were
    save_checkpoint(few, model, preprocessing, **older)
    assert len(keep_hub_bank(few, config, train)["pictures"]) == 32  # made again, with its pictures' digests
    assert kept["left"].shape[0] == kept["right"].shape[0] == 16 and kept["left"].dtype == torch.float16
    assert torch.allclose(kept["left"].float().norm(dim=1), torch.ones(16), atol=1e-2)
    bank = TrainingBank.from_extra(checkpoint_extra(out), k=3)
    assert bank is not None and bank.to_dict()["pictures"] == [16, 16]
    assert TrainingBank.from_extra({}, 3) is None

    evaluate = ["evaluate", "--data", str(data), "--model", str(out), "--split", "all", "--workers", "0", "--json", "-"]
    assert main(evaluate + ["--hub-correction", "--hub-k", "3"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["hub_correction"] == {"bank": "the checkpoint's training pictures",
                                                         "pictures": [16, 16], "k": 3}
    assert "16 left and 16 right training pictures" in printed.err
    assert main(evaluate + ["--no-hub-correction"]) == 0
    assert "hub_correction" not in json.loads(capsys.readouterr().out)
    # a backbone keeps no training pictures; a folder bank and no correction contradict each other
    assert main(["evaluate", "--data", str(data), "--model", "efficientnet_lite0:none", "--split", "all",
                 "--hub-correction", "--workers", "0"]) == 2
    assert "keeps no training pictures" in capsys.readouterr().err
    assert main(evaluate + ["--hub-bank", str(data), "--no-hub-correction"]) == 2
    assert "contradict" in capsys.readouterr().err
    # compare: the checkpoint by CSLS, the backbone by cosine, both recorded
    assert main(["compare", "--data", str(data), "--split", "all", "--model", "efficientnet_lite0:none", str(out),
                 "--names", "random", "tuned", "--hub-correction", "--workers", "0", "--json", "-"]) == 0
    printed = capsys.readouterr()
    recorded = json.loads(printed.out)["hub_correction"]
    assert recorded["random"] is None and recorded["tuned"]["pictures"] == [16, 16]
    assert "Ranked by cosine (no bank of training pictures): random" in printed.err
    # find: a gallery of pictures it never trained on is scaled by the left training pictures ...
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for number in range(16, 24):
        shutil.copyfile(data / "right" / f"{number:05d}.jpg", gallery / f"{number:05d}.jpg")
    assert main(["find", str(data / "left" / "00002.jpg"), "--gallery", str(gallery), "--model", str(out),
                 "--top", "3", "--workers", "0", "--json", "-"]) == 0
    printed = capsys.readouterr()
    assert "hub correction (CSLS)" in printed.err and len(json.loads(printed.out)["queries"][0]["matches"]) == 3
    assert "training pictures, whose partners" not in printed.err
    # ... one that holds its training pictures (their partners are in the bank) is ranked by cosine
    assert main(["find", str(data / "left" / "00002.jpg"), "--gallery", str(data), "--model", str(out),
                 "--top", "3", "--workers", "0", "--json", "-"]) == 0
    printed = capsys.readouterr().err
    assert "The gallery holds 16 of the model's training pictures" in printed
    assert "hub correction (CSLS)" not in printed  # not announced, then not used
