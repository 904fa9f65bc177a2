"""Damaged caches heal themselves: a truncated, empty, random or misplaced cache file is treated as
missing (one warning naming it), the value is computed again and the file rewritten; the ONNX
exports are rebuilt, kept few in memory, and pruned on disk."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from ttl_utils.cache import cache_path, cached
from ttl_utils.config import artifacts_dir
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.gallery import Gallery
from ttl_utils.storage import read_cache, save_cache, unreadable_torch

DAMAGES = ("truncated", "zero bytes", "random bytes", "another cache's file")


def damage(path, how: str, other=None) -> None:
    """Damage the cache file `path` in one of the ways a crash, a copy or a user could."""
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == "zero bytes":
        path.write_bytes(b"")
    elif how == "random bytes":
        path.write_bytes(os.urandom(4096))
    else:
        shutil.copyfile(other, path)


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_cached_value_is_computed_again_and_rewritten(how, caplog):
    calls = []

    def compute(value):
        calls.append(value)
        return {"ranks": torch.arange(5) * value}

    clean = cached("ranks", lambda: compute(2), data="a")
    cached("ranks", lambda: compute(3), data="b")  # another key: another file
    path = cache_path("ranks", data="a")
    damage(path, how, other=cache_path("ranks", data="b"))
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        again = cached("ranks", lambda: compute(2), data="a")
    assert torch.equal(again["ranks"], clean["ranks"]) and calls == [2, 3, 2]
    assert f"Cache file {path} is damaged" in caplog.text and caplog.text.count("is damaged") == 1
    assert unreadable_torch(path) is None and read_cache(path) is not None  # rewritten whole
    assert torch.equal(cached("ranks", lambda: compute(9), data="a")["ranks"], clean["ranks"])  # read back now


def test_read_cache_checks_the_content_and_old_files_without_a_header(caplog):
    path = artifacts_dir() / "x" / "k.pt"
    save_cache({"ids": [1, 2]}, path)
    assert read_cache(path, lambda value: value["ids"] == [1, 2]) == {"ids": [1, 2]}
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        assert read_cache(path, lambda value: len(value["ids"]) == 3) is None
        torch.save({"ids": [1, 2]}, path)  # as an older ttl_utils wrote caches
        assert read_cache(path) is None
    assert "does not match" in caplog.text and "no cache header" in caplog.text


@pytest.fixture(scope="module")
def tiny():
    from ttl_utils.models.embedder import build_embedder
    from ttl_utils.models.preprocessing import Preprocessing

    return make_demo_pairs(6, 48, seed=3), build_embedder("efficientnet_lite0", None, seed=0), Preprocessing.for_size(48)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_pair_and_gallery_embeddings_heal(how, tiny, caplog):
    from ttl_utils.evaluate.embeddings import _embedding_key, embed_pairs, gallery_embeddings

    pairs, embedder, preprocessing = tiny
    left, right = embed_pairs(embedder, preprocessing, pairs, num_workers=0)
    gallery = Gallery.from_pairs(pairs, "right")
    _, vectors = gallery_embeddings(embedder, preprocessing, gallery, num_workers=0)
    key = _embedding_key(embedder, preprocessing, pairs)
    path = cache_path("embeddings", side="left", **key)
    damage(path, how, other=cache_path("embeddings", side="right", **key))
    store = next((artifacts_dir() / "gallery").glob("*.pt"))
    damage(store, how, other=path if how != "another cache's file" else cache_path("embeddings", side="right", **key))
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        left_again, right_again = embed_pairs(embedder, preprocessing, pairs, num_workers=0)
        _, vectors_again = gallery_embeddings(embedder, preprocessing, gallery, num_workers=0)
    assert torch.allclose(left_again, left, atol=1e-5) and torch.equal(right_again, right)
    assert torch.allclose(vectors_again, vectors, atol=1e-5)
    assert str(path) in caplog.text and str(store) in caplog.text
    assert read_cache(path) is not None and read_cache(store) is not None


def test_a_comparison_says_from_the_cache_only_when_no_forward_pass_was_made(tiny, caplog):
    """A damaged cache file exists but is embedded again: it is not announced as read from the cache."""
    from ttl_utils.evaluate.compare import compare_models
    from ttl_utils.evaluate.embeddings import _embedding_key

    pairs, embedder, preprocessing = tiny
    loaded = {"lite0": (embedder, preprocessing)}
    with caplog.at_level(logging.INFO, logger="ttl_utils"):
        compare_models(loaded, pairs, num_workers=0)
        assert "Embedded 1 of 1 models, 0 from the cache" in caplog.text
        caplog.clear()
        compare_models(loaded, pairs, num_workers=0)
        assert "lite0: embeddings from the cache (no forward pass)" in caplog.text
        assert "All 1 models' embeddings came from the cache" in caplog.text
        damage(cache_path("embeddings", side="right", **_embedding_key(embedder, preprocessing, pairs)), "truncated")
        caplog.clear()
        compare_models(loaded, pairs, num_workers=0)
    assert "is damaged" in caplog.text and "Embedded 1 of 1 models, 0 from the cache" in caplog.text
    assert "no forward pass" not in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_trunk_outputs_heal(how, tiny, caplog):
    from ttl_utils.train.finetune import build_model
    from ttl_utils.train.recipes import FinetuneConfig
    from ttl_utils.train.trunk import trunk_inputs

    pairs = tiny[0]
    config = FinetuneConfig(out="", image_size=48, batch_size=4, epochs=1, views=1, workers=0, unfreeze=1)
    clean = trunk_inputs(build_model(config), pairs, config, augmented=True)
    other = trunk_inputs(build_model(config), pairs.subset([0, 1, 2, 3]), config, augmented=True)
    assert other["left"].shape[0] == 4
    files = sorted((artifacts_dir() / "finetune-inputs").glob("*.pt"), key=lambda p: p.stat().st_size)
    path, smaller = files[-1], files[0]
    damage(path, how, other=smaller)
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        again = trunk_inputs(build_model(config), pairs, config, augmented=True)
    assert all(torch.equal(again[side], clean[side]) for side in ("left", "right"))
    assert f"Cache file {path} is damaged" in caplog.text and read_cache(path) is not None


@pytest.mark.slow
@pytest.mark.parametrize("which", ["state", "checkpoint"])
def test_a_damaged_cached_run_trains_anew_to_the_same_weights(which, caplog):
    from ttl_utils.train.finetune import cached_finetune
    from ttl_utils.train.recipes import FinetuneConfig
    from ttl_utils.train.state import state_path

    pairs = make_demo_pairs(24, 48, seed=4)
    train, val = pairs.subset(list(range(16))), pairs.subset(list(range(16, 24)))
    config = FinetuneConfig(out="", image_size=48, batch_size=8, epochs=1, views=1, workers=0, unfreeze=0)
    first = cached_finetune(config, train, val)
    weights = {k: v.clone() for k, v in first.embedder.state_dict().items()}
    damaged = state_path(first.checkpoint) if which == "state" else first.checkpoint
    damage(damaged, "truncated")
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        again = cached_finetune(config, train, val)
    assert again.checkpoint == first.checkpoint and f"{damaged} is damaged" in caplog.text
    assert all(torch.allclose(v, weights[k], atol=1e-6) for k, v in again.embedder.state_dict().items())


def test_a_damaged_onnx_export_is_rebuilt_and_sessions_and_exports_stay_bounded(own_engine, tiny, caplog):
    from ttl_utils.models import engine

    pairs, embedder, preprocessing = tiny
    batch = torch.stack([preprocessing(pairs.left_image(i)) for i in range(2)])
    clean = engine.frozen_embedder(embedder)(batch)
    path = next((artifacts_dir() / "engine").glob("*.onnx"))
    size = path.stat().st_size
    engine._sessions.clear()
    damage(path, "truncated")
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        again = engine.frozen_embedder(embedder)(batch)
    assert torch.allclose(again, clean, atol=1e-5)
    assert f"ONNX file {path} is damaged" in caplog.text and path.stat().st_size == size
    assert "running it in torch" not in caplog.text  # rebuilt, not given up on
    # six input sizes in one process: at most MAX_SESSIONS stay loaded
    for side in (40, 44, 52, 56, 60, 64):
        engine.frozen_embedder(embedder)(torch.zeros(1, 3, side, side))
    assert len(engine._sessions) == engine.MAX_SESSIONS
    # pruning removes the least recently used exports, never the one kept
    exports = sorted((artifacts_dir() / "engine").glob("*.onnx"), key=lambda p: p.stat().st_mtime)
    for age, export in enumerate(exports):
        os.utime(export, (1_000_000 + age, 1_000_000 + age))
    engine._sessions.clear()
    limit = exports[0].stat().st_size + exports[-1].stat().st_size
    removed = engine.prune_engine_folder(artifacts_dir() / "engine", limit=limit, keep=exports[0])
    left = set((artifacts_dir() / "engine").glob("*.onnx"))
    assert exports[0] in left and exports[-1] in left and len(left) == 2 and len(removed) == len(exports) - 2


def test_the_cache_command_lists_kinds_and_prunes_by_kind_and_age(capsys):
    import json

    from ttl_utils.cli import main

    cached("ranks", lambda: {"x": torch.zeros(100)}, data="a")
    old = cache_path("embeddings", data="b")
    save_cache({"x": torch.zeros(10)}, old)
    os.utime(old, (1_000_000, 1_000_000))  # unused since 1970
    (old.parent / ".x.pt.host-1.abc.tmp").write_bytes(b"half")  # left by an interrupted write on another host
    os.utime(old.parent / ".x.pt.host-1.abc.tmp", (1_000_000, 1_000_000))  # a day ago and more
    (old.parent / ".y.pt.host-1.abc.tmp").write_bytes(b"")  # another machine may be writing it now: kept
    assert main(["cache", "--json", "-"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kinds"]["ranks"]["files"] == 1 and listed["kinds"]["embeddings"]["files"] == 3
    assert main(["cache", "--prune", "--json", "-"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert sorted(pruned["removed"]) == sorted([f"embeddings/{old.name}", "embeddings/.x.pt.host-1.abc.tmp"])
    assert pruned["kinds"]["embeddings"]["files"] == 1 and cache_path("ranks", data="a").is_file()
    assert main(["cache", "--prune", "--kind", "ranks"]) == 0
    assert not cache_path("ranks", data="a").exists() and not cache_path("ranks", data="a").parent.exists()
    assert "Removed 1 file(s) and 0 folder(s), 2 KB (all of ranks; what interrupted writes left). Caches are" in \
        capsys.readouterr().out
    assert main(["cache", "--prune", "--kind", "nothing"]) == 2
    assert "artifacts/ holds no such kind" in capsys.readouterr().err


def test_cache_prune_max_size_removes_the_least_recently_used_first(capsys):
    import json

    from ttl_utils.cli import main

    paths = [cache_path("embeddings", data=name) for name in "abc"]
    for used, path in enumerate(paths):  # 400 KB each; a used first, c last
        save_cache({"x": torch.zeros(100_000)}, path)
        os.utime(path, (1_000_000 + used, 1_000_000 + used))
    read_cache(paths[0])  # reading a file makes it the most recently used
    figure = artifacts_dir() / "figures-smoke" / "old.png"  # a result, not a cache: never pruned without --kind
    pictures = artifacts_dir() / "pretrain-images" / "abc"  # a picture folder: removed whole or not at all
    for path, size in ((figure, 300_000), (pictures / "left" / "1.jpg", 10), (pictures / "right" / "1.jpg", 10)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(size))
        os.utime(path, (1_000, 1_000))
    os.utime(pictures / "right" / "1.jpg")  # used now: the folder counts as used now
    assert main(["cache", "--prune", "--max-size", "1MB", "--json", "-"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["removed"] == [f"embeddings/{paths[1].name}"] and pruned["bytes"] <= 2**20 + 300_020
    # by age: the old cache file goes; the folder's old picture stays with the folder, used now
    assert main(["cache", "--prune", "--older-than", "1", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [f"embeddings/{paths[2].name}"]
    assert (pictures / "left" / "1.jpg").is_file() and figure.is_file()
    assert main(["cache", "--prune", "--max-size", "0", "--json", "-"]) == 0
    left = json.loads(capsys.readouterr().out)
    assert sorted(left["removed"]) == [f"embeddings/{paths[0].name}", "pretrain-images/abc"] and not pictures.exists()
    assert left["kinds"] == {"figures-smoke": {"files": 1, "bytes": 300_000}} and not any(p.exists() for p in paths)
    assert main(["cache", "--prune", "--kind", "figures-smoke"]) == 0 and not figure.exists()
    assert "the notebooks make figures-smoke again." in capsys.readouterr().out
    assert main(["cache", "--prune", "--max-size", "lots"]) == 2
    assert "'lots': give a size such as 2GB, 500MB or 1.5G." in capsys.readouterr().err
    assert main(["cache", "--max-size", "1GB"]) == 2
    assert "say what --prune removes: add --prune" in capsys.readouterr().err
