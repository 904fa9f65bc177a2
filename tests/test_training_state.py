"""One training-state format: written by both trainers, checked on resume, cached and slimmed the same way."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from ttl_utils.storage import save_torch
from ttl_utils.train.state import STATE_FORMAT, cached_training, keep_summary, load_state, save_state, state_path


@dataclass(frozen=True)
class Settings:
    out: str
    lr: float = 0.1
    epochs: int = 2
    device: str = "cpu"


def test_state_round_trip_and_resume_checks(tmp_path):
    config = Settings(out=str(tmp_path / "run.pt"))
    with pytest.raises(FileNotFoundError, match="no training state at .*run.pt.state.pt"):
        load_state(config)
    save_state(config, 1, [{"epoch": 1}], state_dict={"w": 1}, optimizer={"step": 1})
    state = load_state(replace(config, epochs=5, device="cuda"), resumable={"epochs"})
    assert state["format"] == STATE_FORMAT and state["epoch"] == 1 and state["config"]["lr"] == 0.1
    with pytest.raises(ValueError, match=r"trained with other settings lr=0.1 \(now 0.2\)"):
        load_state(replace(config, lr=0.2))
    kept = keep_summary(config.out)
    assert "optimizer" not in kept and "state_dict" not in kept and kept["history"] == [{"epoch": 1}]
    with pytest.raises(ValueError, match="keeps only the summary of a finished cached run"):
        load_state(config)


def test_cached_training_trains_once_resumes_once_and_keys_by_settings(isolated_project):
    calls = []

    def train(config, resume):
        calls.append((config.lr, resume))
        save_state(config, 2, [], finished=not (config.lr == 0.3 and not resume), state_dict={}, optimizer={})
        save_torch({"weights": []}, config.out)  # a checkpoint PyTorch can read (an empty file is damaged)

    out, summary = cached_training("toy", Settings(out=""), {"data": "abc"}, train, version=1)
    assert out.parent == isolated_project.resolve() / "artifacts" / "toy" and summary["finished"]
    assert cached_training("toy", Settings(out="", device="cuda"), {"data": "abc"}, train, version=1)[0] == out
    assert calls == [(0.1, False)]  # where it runs is not what it computes: found, not trained again
    assert "optimizer" not in summary and state_path(out).is_file()
    cached_training("toy", Settings(out="", lr=0.3), {"data": "abc"}, train, version=1)  # stops unfinished
    cached_training("toy", Settings(out="", lr=0.3), {"data": "abc"}, train, version=1)  # resumes it
    assert calls[1:] == [(0.3, False), (0.3, True)]
    other, _ = cached_training("toy", Settings(out=""), {"data": "xyz"}, train, version=1)
    assert other != out and calls[-1] == (0.1, False)
    omitted, _ = cached_training("toy", Settings(out=""), {"data": "abc"}, train, version=1, omit={"lr": 0.1})
    assert omitted != out  # a setting left out of the key at its old value gives another key
