"""The benchmark scripts run in a tiny configuration (CI runs them this way on CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pretrain_throughput_measures_every_part(capsys):
    bench = _load("pretrain_throughput")
    results = bench.main(["--backbone", "resnet18", "--image-size", "32", "--batch-size", "4", "--projector", "32-32",
                          "--steps", "2", "--warmup", "1", "--workers", "0", "--images", "16"])
    assert set(results) == {"step fp32", "loader cpu-augment", "end-to-end --augment cpu", "end-to-end --augment gpu"}
    assert all(rate > 0 for rate in results.values())
    out = capsys.readouterr().out
    assert "resnet18, 32 px, batch 4" in out and "images/s" in out
