"""`find` keeps its work: the gallery is saved chunk by chunk, files that vanish mid-run are skipped and
listed, a query decodes as its gallery copy, and a query's own file is left out of its matches."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import write_official

from ttl_utils.cli import main
from ttl_utils.config import artifacts_dir
from ttl_utils.data.gallery import Gallery
from ttl_utils.evaluate import embeddings
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.storage import read_cache


@pytest.fixture
def model():
    return build_embedder("efficientnet_lite0", None, seed=0), Preprocessing.for_size(48)


def test_a_kill_during_the_gallery_costs_one_chunk(tmp_path, model, monkeypatch):
    data = write_official(tmp_path / "ttl", n=7, size=48)
    gallery = Gallery.from_folder(data, "right")
    monkeypatch.setattr(embeddings, "GALLERY_CHUNK", 2)
    real, calls = embeddings.embed, []

    def killed_on_the_third(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings, "embed", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        embeddings.gallery_embeddings(*model, gallery, num_workers=0)
    saved = read_cache(next((artifacts_dir() / "gallery").glob("*.pt")))
    assert len(saved["digests"]) == 4  # two chunks of two were kept
    calls.clear()
    monkeypatch.setattr(embeddings, "embed", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k))[1])
    kept, vectors = embeddings.gallery_embeddings(*model, gallery, num_workers=0)
    assert calls == [2, 1] and len(kept) == 7  # only the three pictures left were embedded
    monkeypatch.setattr(embeddings, "GALLERY_CHUNK", 256)
    _, fresh = embeddings.gallery_embeddings(*model, gallery, num_workers=0, cache=False)
    assert torch.allclose(vectors, fresh, atol=1e-5)


def test_a_file_that_vanishes_mid_run_is_skipped_and_listed(tmp_path, model, monkeypatch, caplog):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    gallery = Gallery.from_folder(data, "right")
    real = embeddings.embed

    def vanishing(*args, **kwargs):
        (data / "right" / "00003.jpg").unlink(missing_ok=True)  # gone after the check, before the decoding
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings, "embed", vanishing)
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        kept, vectors = embeddings.gallery_embeddings(*model, gallery, num_workers=0)
    assert len(kept) == 5 and "right/00003" not in kept.labels and vectors.shape[0] == 5
    assert "Skipped 1 unreadable gallery file(s): right/00003 (no such file)" in caplog.text


def test_a_query_in_the_gallery_is_left_out_unless_kept_and_then_matches_itself_exactly(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    query = data / "left" / "00002.jpg"
    argv = ["find", str(query), "--gallery", str(data), "--side", "both", "--model", "efficientnet_lite0:none",
            "--top", "3", "--workers", "0", "--profile", "smoke", "--json", "-"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    labels = [m["label"] for m in json.loads(printed.out)["queries"][0]["matches"]]
    assert "left/00002" not in labels and len(labels) == 3
    assert "its own file, left/00002, left out: --keep-self keeps it" in printed.err
    assert main(argv + ["--keep-self"]) == 0
    first = json.loads(capsys.readouterr().out)["queries"][0]["matches"][0]
    assert first["label"] == "left/00002" and first["cosine"] > 0.99999  # decoded as the gallery copy is
