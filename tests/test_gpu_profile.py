"""The `gpu` profile end to end on a CPU: everything but the CUDA kernels runs in CI.

`torchrun` starts two processes (gloo) that pretrain ResNet-50 with LARS and the batched
augmentation on CPU tensors, in float32 (no autocast on a CPU); the checkpoint is then fine-tuned
and evaluated under the same profile. Smoke size: 32 px, a few steps.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import write_pairs
from ttl_utils.models.checkpoints import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_gpu_profile_pretrains_with_torchrun_fine_tunes_and_evaluates_on_a_cpu(tmp_path, monkeypatch):
    from ttl_utils.cli import main

    data = write_pairs(make_demo_pairs(8, 40, seed=5), tmp_path / "demo")
    # TTL_ENGINE=torch: frozen forwards in torch, as on a GPU (ONNX Runtime serves CPUs only)
    monkeypatch.setenv("TTL_ENGINE", "torch")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    bt = tmp_path / "bt.pt"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "ttl_utils"]
    pretrained = subprocess.run([*torchrun, "pretrain", "--profile", "gpu", "--data", str(data), "--out", str(bt),
                                 "--init", "resnet50:none", "--epochs", "1", "--batch-size", "4", "--image-size", "32",
                                 "--projector", "64-64", "--workers", "0", "--device", "cpu"],
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert pretrained.returncode == 0, pretrained.stderr[-3000:]
    assert "2 process(es) on cpu, float32, gpu augmentation" in pretrained.stderr
    embedder, _, extra = load_checkpoint(bt)
    run = extra["pretrain"]
    assert embedder.backbone.name == "resnet50"
    assert (run["processes"], run["device"], run["precision"]) == (2, "cpu", "float32")
    assert (run["config"]["optimizer"], run["config"]["augment"]) == ("lars", "gpu")
    # 16 pictures, 4 a process, 2 processes: 2 steps in the epoch; the first process logs every 5th and the last
    assert run["step"] == 2 and [line["step"] for line in run["history"]] == [2]

    tuned = tmp_path / "ft.pt"
    assert main(["-q", "finetune", "--profile", "gpu", "--init", str(bt), "--data", str(data), "--split", "all",
                 "--out", str(tuned), "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--views", "2",
                 "--workers", "0", "--device", "cpu"]) == 0
    embedder, _, extra = load_checkpoint(tuned)
    settings = extra["finetune"]["config"]
    assert embedder.backbone.name == "resnet50"
    assert (settings["backbone"], settings["unfreeze"], settings["views"]) == ("resnet50", 1, 2)
    assert len(extra["finetune"]["trained_on"]) == 8

    scores = tmp_path / "scores.json"
    assert main(["-q", "evaluate", "--profile", "gpu", "--model", str(tuned), "--data", str(data), "--split", "all",
                 "--image-size", "32", "--device", "cpu", "--json", str(scores)]) == 0
    report = json.loads(scores.read_text())
    assert report["n_queries"] == 8 and report["n_candidates"] == 8
    assert 0.0 <= report["recall"]["1"] <= report["recall"]["5"] <= 1.0
