"""The benchmark scripts run in a tiny configuration (CI runs them this way on CPU)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
from conftest import write_official

from ttl_utils.config import get_profile
from ttl_utils.data.demo import make_demo_pairs

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_pretrain_throughput_measures_every_part(capsys):
    bench = _load("pretrain_throughput")
    results = bench.main(["--backbone", "resnet18", "--image-size", "32", "--batch-size", "4", "--projector", "32-32",
                          "--steps", "2", "--warmup", "1", "--workers", "0", "--images", "16"])
    assert set(results) == {"step fp32", "loader cpu-augment", "end-to-end --augment cpu", "end-to-end --augment gpu"}
    assert all(rate > 0 for rate in results.values())
    out = capsys.readouterr().out
    assert "resnet18, 32 px, batch 4" in out and "images/s" in out


@pytest.mark.slow
def test_finetune_benchmark_times_the_command_and_reports_memory(tmp_path, capsys):
    bench = _load("finetune_benchmark")
    data = write_official(tmp_path / "a", n=8)
    flags = ["--split", "all", "--epochs", "2", "--image-size", "32", "--batch-size", "4", "--views", "1",
             "--workers", "0", "--device", "cpu"]
    result = bench.main(["--data", str(data), "--json", str(tmp_path / "bench.json"), "--", *flags])
    assert result["epochs"] == 2 and result["best_epoch"] == 2  # no validation: the last epoch is kept
    assert 0 < result["epochs_s"] <= result["total_s"] and result["trunk_and_setup_s"] >= 0
    assert result["peak_rss_gb"] > 0.1 and result["goal_s"] == 900
    out = capsys.readouterr().out
    assert "finetune end to end" in out and "2 epochs" in out and "goal 15 min: met" in out
    assert (tmp_path / "bench.json").read_text().count('"total_s"') == 1


def test_finetune_benchmark_stops_with_the_command_s_error(tmp_path, capsys):
    bench = _load("finetune_benchmark")
    data = write_official(tmp_path / "a", n=8)
    with pytest.raises(SystemExit, match="finetune failed"):
        bench.main(["--data", str(data), "--", "--split", "all", "--unfreeze", "2", "--layers", "layer1,layer4"])
    assert "cached trunk ends at layer2" in capsys.readouterr().err


@pytest.mark.slow
def test_study_resnet50_rows_and_their_benchmark_on_stand_in_weights(tmp_path, monkeypatch, capsys):
    """Notebook 06's ResNet-50 rows with weight files of the right shapes in torch.hub's cache: no network."""
    from ttl_utils.cli import main
    from ttl_utils.pipeline import missing_study_weights, study_resnet50

    bench = _load("study_resnet50")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the script sets its own; restored after
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    monkeypatch.setenv("TTL_ENGINE", "torch")  # the rows, not the engine, are tested: no ONNX export of ResNet-50
    assert [p.name for p in missing_study_weights()] == ["resnet50-11ad3fa6.pth", "resnet50.pth"]
    profile = dataclasses.replace(get_profile("smoke"), image_size=32)  # ResNet-50 at its smallest: a fast test
    with pytest.raises(FileNotFoundError, match="not in torch.hub's cache"):
        study_resnet50(profile, make_demo_pairs(16, 32))
    data = write_official(tmp_path / "a", n=10, size=32)
    result = bench.main(["--data", str(data), "--profile", "smoke", "--image-size", "32",
                         "--json", str(tmp_path / "b.json")])
    assert result["pairs"] == 10 and result["test_pairs"] == 2 and result["image_size"] == 32
    assert 0 < result["build_and_finetune_s"] <= result["total_s"] and result["peak_rss_gb"] > 0.1
    assert result["rows"] == {"ResNet-50 supervised, zero-shot": {"weights": "imagenet", "layers": ["layer4"]},
                              "ResNet-50 supervised, fine-tuned": {"weights": "imagenet+finetune", "layers": ["layer4"]},
                              "ResNet-50 Barlow Twins, zero-shot": {"weights": "barlowtwins", "layers": ["layer4"]},
                              "ResNet-50 Barlow Twins, fine-tuned": {"weights": "barlowtwins+finetune",
                                                                     "layers": ["layer4"]}}
    assert "ResNet-50 rows on" in capsys.readouterr().out
    assert not (tmp_path / "torch").exists()  # stand-in weights went to the script's own folder
    bench.stand_in_weights(tmp_path / "torch")
    assert missing_study_weights() == []
    assert main(["-q", "compare", "--model", "resnet50", "resnet50:barlowtwins", "--data", str(data), "--split", "all",
                 "--workers", "0"]) == 0
    assert "resnet50:barlowtwins vs resnet50: no clear difference" in capsys.readouterr().out  # 10 pairs: no verdict


@pytest.mark.slow
def test_find_latency_benchmark_times_queries_for_each_size(capsys):
    bench = _load("find_latency")
    rows = bench.main(["--sizes", "50,200", "--queries", "2", "--image-size", "32"])
    assert [(r["model"], r["gallery"]) for r in rows] == [("zero-shot", 50), ("zero-shot", 200),
                                                          ("chosen fine-tuned", 50), ("chosen fine-tuned", 200)]
    assert rows[0]["dim"] == 1280 and rows[2]["dim"] == 16 * (112 + 1280)  # at 32 px the grid is still 4 x 4
    assert all(0 < r["median_s"] <= r["max_s"] for r in rows) and rows[-1]["peak_rss_gb"] > 0.1
    assert "goal: median under 1.0 s at 6016 pictures" in capsys.readouterr().out


@pytest.mark.slow
def test_check_memory_benchmark_measures_check_and_the_pixel_limit(monkeypatch, capsys):
    bench = _load("check_memory")
    monkeypatch.setenv("TTL_MAX_PIXELS", "1000000")  # a 1200 x 1200 picture is then over the limit
    result = bench.main(["--pairs", "1", "--side", "600", "--huge-side", "1200"])
    assert result["photos"]["rc"] == 0 and result["photos"]["said"].startswith("OK")
    assert result["huge"]["rc"] == 1 and "too many pixels (1200 x 1200, more than 1,000,000" in result["huge"]["said"]
    assert result["photos"]["peak_rss_gb"] > 0.05
    assert "check on 1 pairs of 600 x 600 JPEGs" in capsys.readouterr().out


@pytest.mark.slow
def test_embedding_throughput_benchmark_reports_the_three_paths(capsys):
    bench = _load("embedding_throughput")
    rows = bench.main(["--images", "8", "--image-size", "32", "--batch-size", "4"])
    row = rows[0]
    assert row["backbone"] == "efficientnet_lite0" and row["engine"] == "onnxruntime" and row["images"] == 8
    assert row["project_from_files"] > 0 and row["onnxruntime_tensors"] > 0 and row["torch_eager"] > 0
    assert row["gap_to_onnxruntime"] == round(1 - row["project_from_files"] / row["onnxruntime_tensors"], 3)
    assert "ONNX Runtime on tensors" in capsys.readouterr().out


def test_engine_parity_benchmark_finds_no_difference_beyond_1e4(tmp_path, capsys):
    bench = _load("engine_parity")
    data = write_official(tmp_path / "a", n=8, size=48)
    rows = bench.main(["--data", str(data), "--profile", "smoke", "--json", str(tmp_path / "p.json")])
    assert rows[0]["images"] == 16 and rows[0]["max_abs_diff"] < 1e-4
    assert rows[0]["left -> right"]["changed"] == rows[0]["left -> right"]["near_ties"]
    assert "goal under 0.0001: met" in capsys.readouterr().out
