"""Profiles and paths."""

from __future__ import annotations

import dataclasses

import pytest

from ttl_utils.config import PROFILES, artifacts_dir, data_dir, get_profile, project_root


def test_profile_comes_from_argument_then_environment(monkeypatch):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("gpu").backbone == "resnet50"
    monkeypatch.delenv("TTL_PROFILE")
    assert get_profile().name in ("cpu", "gpu")


def test_profiles_are_frozen_and_grow_from_smoke_to_gpu():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["cpu"].image_size = 10
    smoke, cpu, gpu = (PROFILES[n] for n in ("smoke", "cpu", "gpu"))
    assert smoke.image_size < cpu.image_size <= gpu.image_size
    assert smoke.demo_pairs < cpu.demo_pairs


def test_unknown_profile_lists_the_choices(monkeypatch):
    monkeypatch.setenv("TTL_PROFILE", "laptop")
    with pytest.raises(ValueError, match=r"Unknown profile 'laptop'.*smoke, cpu, gpu"):
        get_profile()


def test_paths_follow_ttl_home(isolated_project):
    assert project_root() == isolated_project.resolve()
    assert data_dir() == isolated_project.resolve() / "data"
    assert artifacts_dir() == isolated_project.resolve() / "artifacts"
