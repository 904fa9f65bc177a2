"""Evaluating a model on a pair set, the embedding cache, and `python -m ttl_utils evaluate`."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_csv_layout

from ttl_utils.cli import main
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.digests import model_fingerprint
from ttl_utils.evaluate import embeddings as evaluation
from ttl_utils.evaluate.compare import evaluate_model
from ttl_utils.evaluate.metrics import RECALL_KS
from ttl_utils.evaluate.report import format_report
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def small_model():
    return build_embedder("efficientnet_lite0")


@pytest.mark.slow
def test_report_has_every_metric_in_both_directions(small_model):
    pairs = make_demo_pairs(30, 32)
    report = evaluate_model(small_model, Preprocessing(resize=32, crop=32), pairs, num_workers=0, n_bootstrap=50)
    for part in (report, report["right_to_left"]):
        assert part["n_queries"] == 30 and len(part["ranks"]) == 30
        assert list(part["recall"]) == [str(k) for k in RECALL_KS]
        assert all(0 <= v <= 1 for v in part["recall"].values())
        assert part["recall"]["100"] == 1.0  # 30 candidates: everything is in the top 100
        low, high = part["recall_ci"]["5"]
        assert low <= part["recall"]["5"] <= high
        assert 0 <= part["candidate_top2"] <= 1
    table = format_report(report)
    assert "left -> right" in table and "R@25" in table and "top-2 of 20" in table


@pytest.mark.slow
def test_embeddings_are_cached_by_model_preprocessing_and_data(small_model, monkeypatch, isolated_project):
    pairs = make_demo_pairs(6, 32)
    pre = Preprocessing(resize=32, crop=32)
    first = evaluation.embed_pairs(small_model, pre, pairs, num_workers=0)
    assert len(list((isolated_project / "artifacts" / "embeddings").glob("*.pt"))) == 2

    def no_recompute(*args, **kwargs):
        raise AssertionError("embeddings were recomputed")

    monkeypatch.setattr(evaluation, "embed", no_recompute)
    again = evaluation.embed_pairs(small_model, pre, pairs, num_workers=0)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    with pytest.raises(AssertionError, match="recomputed"):   # other preprocessing: another key
        evaluation.embed_pairs(small_model, Preprocessing(resize=40, crop=32), pairs, num_workers=0)


def test_model_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    a = build_embedder("resnet18", None)
    b = build_embedder("resnet18", None)
    assert model_fingerprint(a) != model_fingerprint(b)
    b.load_state_dict(a.state_dict())
    assert model_fingerprint(a) == model_fingerprint(b)


@pytest.mark.slow
def test_cli_evaluate_on_demo_data_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    out = tmp_path / "out.json"
    assert main(["-q", "evaluate", "--split", "test", "--image-size", "32", "--workers", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "R@1 " in printed and "median rank" in printed
    result = json.loads(out.read_text())
    assert result["dataset"] == "demo-64px-seed0/test"
    assert result["n_queries"] == 40  # 20% of the smoke profile's 200 demo pairs
    assert set(result["recall"]) == {str(k) for k in RECALL_KS}
    assert {"median_rank", "mrr", "candidate_top2", "right_to_left"} <= set(result)
    assert "ranks" not in result


@pytest.mark.slow
def test_cli_evaluate_on_a_pairs_csv_folder_with_a_checkpoint(tmp_path, capsys):
    from ttl_utils.models.checkpoints import save_checkpoint

    root = write_csv_layout(tmp_path / "csv", n=24)
    ckpt = save_checkpoint(tmp_path / "m.pt", build_embedder("efficientnet_lite0", layers=("layer3",)),
                           Preprocessing(resize=32, crop=32))
    out = tmp_path / "o.json"
    assert main(["-q", "evaluate", "--data", str(root), "--split", "all", "--model", str(ckpt),
                 "--workers", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_queries"] == 24 and result["model"]["layers"] == ["layer3"]
    assert result["preprocessing"]["crop"] == 32
    assert main(["evaluate", "--data", str(root), "--model", str(ckpt), "--grid", "2"]) == 2
    assert "a checkpoint keeps those it was trained with" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_evaluate_with_a_grid_reports_it(tmp_path, capsys):
    root = write_csv_layout(tmp_path / "csv", n=12)
    out = tmp_path / "o.json"
    assert main(["-q", "evaluate", "--data", str(root), "--split", "all", "--grid", "3", "--image-size", "64",
                 "--workers", "0", "--no-cache", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["model"]["grid"] == 3
    assert "layer4 + 3x3 grid, 64 px" in capsys.readouterr().out


def test_cli_evaluate_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    assert main(["evaluate", "--model", str(tmp_path / "missing.pt")]) == 2
    assert f"error: --model {tmp_path / 'missing.pt'}: no such checkpoint file" in capsys.readouterr().err
    assert main(["evaluate", "--model", "alexnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model alexnet: neither a checkpoint file nor a backbone") and err.count("\n") == 1
    assert main(["evaluate", "--model", "efficientnet_lite0:barlowtwins"]) == 2
    assert "has no 'barlowtwins' weights; choose efficientnet_lite0:imagenet or" in capsys.readouterr().err
    for old, new in (("--checkpoint", "--model PATH"), ("--backbone", "--model BACKBONE[:WEIGHTS]"),
                     ("--weights", "part of --model")):
        assert main(["evaluate", old, "x"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {old} is now {new}") and err.count("\n") == 1
