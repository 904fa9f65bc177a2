"""`find`: the look-alikes of any picture in a gallery; the gallery cache; bad input."""

from __future__ import annotations

import datetime
import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import write_official  # noqa: E402
from PIL import Image  # noqa: E402

from ttl_utils.cli import main  # noqa: E402
from ttl_utils.config import get_profile  # noqa: E402
from ttl_utils.data.folders import load_pairs  # noqa: E402
from ttl_utils.data.gallery import Gallery
from ttl_utils.data.inputs import read_image  # noqa: E402
from ttl_utils.data.splits import split_pairs  # noqa: E402
from ttl_utils.errors import InputError  # noqa: E402
from ttl_utils.evaluate import embeddings as EMBEDDINGS
from ttl_utils.evaluate.embeddings import gallery_embeddings
from ttl_utils.evaluate.ranking import partner_ranks, search
from ttl_utils.find import Match, choose_model, find_lookalikes, lookalike_picker, lookalike_rows
from ttl_utils.models.checkpoints import save_checkpoint  # noqa: E402
from ttl_utils.models.embedder import build_embedder  # noqa: E402
from ttl_utils.models.preprocessing import Preprocessing  # noqa: E402
from ttl_utils.pipeline import chosen_if_trained, finetuned  # noqa: E402
from ttl_utils.present.pictures import lookalike_grid  # noqa: E402
from ttl_utils.train.recipes import SaliencySettings  # noqa: E402

SMALL = Preprocessing(resize=32, crop=32)


@pytest.fixture(scope="module")
def model():
    return build_embedder("efficientnet_lite0", None)  # random weights: fast, and enough to test the plumbing


def picture(seed: int, size: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def counting_embed(monkeypatch) -> list[int]:
    """Record how many pictures each gallery embedding pass embeds."""
    counts: list[int] = []
    real = EMBEDDINGS.embed

    def embed(model, images, *args, **kwargs):
        counts.append(len(images))
        return real(model, images, *args, **kwargs)

    monkeypatch.setattr(EMBEDDINGS, "embed", embed)
    return counts


@pytest.mark.slow
def test_the_partner_of_a_demo_pair_is_found_by_a_seeded_fine_tuned_model(tmp_path):
    profile = get_profile("smoke")
    data = write_official(tmp_path / "ttl", n=80, size=64)
    pairs = load_pairs(data)
    assert "zero-shot (no fine-tuned model" in choose_model(profile, None, data)[2]
    result = finetuned(profile, pairs)  # seeded: the same weights every run
    assert chosen_if_trained(profile, pairs) == result.checkpoint
    embedder, preprocessing, described, extra = choose_model(profile, None, data)  # now the default
    assert len(extra['hub_bank']['left']) == len(split_pairs(pairs)['train'])  # its training pictures
    assert described == f"the chosen fine-tuned model of {pairs.name} ({result.checkpoint})"
    test = split_pairs(pairs)["test"]
    kept, vectors = gallery_embeddings(embedder, preprocessing, Gallery.from_pairs(test, "right"),
                                            num_workers=0)
    queries = [test.left[i] for i in range(len(test))]  # paths: checked and opened by find_lookalikes
    found = find_lookalikes(embedder, preprocessing, queries, kept, vectors, top=5)
    hits = [f"right/{test.ids[i]}" in [m.label for m in matches] for i, matches in enumerate(found)]
    assert len(found) == len(test) == 16 and all(len(m) == 5 for m in found)
    assert np.mean(hits) >= 0.6, np.mean(hits)  # chance: 5 of 16
    assert [m.rank for m in found[0]] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(found[0], found[0][1:]))


def test_the_gallery_cache_embeds_only_what_changed(tmp_path, model, monkeypatch):
    folder = tmp_path / "gallery"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        picture(i).save(folder / ("sub" if i == 4 else ".") / f"p{i}.png")
    counts = counting_embed(monkeypatch)
    kept, first = gallery_embeddings(model, SMALL, Gallery.from_folder(folder), num_workers=0)
    assert kept.labels == ["p0.png", "p1.png", "p2.png", "p3.png", "sub/p4.png"] and counts == [5]
    assert torch.allclose(first.norm(dim=1), torch.ones(5))
    _, again = gallery_embeddings(model, SMALL, Gallery.from_folder(folder), num_workers=0)
    assert counts == [5] and torch.equal(again, first)  # all from the cache: no forward pass
    picture(10).save(folder / "p1.png")  # changed
    picture(11).save(folder / "p5.png")  # added
    kept, third = gallery_embeddings(model, SMALL, Gallery.from_folder(folder), num_workers=0)
    assert counts == [5, 2] and len(kept) == 6
    assert torch.equal(third[0], first[0]) and not torch.allclose(third[1], first[1])


def test_unreadable_gallery_files_are_skipped_and_listed_once(tmp_path, model, caplog):
    folder = tmp_path / "gallery"
    folder.mkdir()
    for i in range(3):
        picture(i).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"not a picture")
    (folder / "empty.png").write_bytes(b"")
    with caplog.at_level("WARNING"):
        kept, vectors = gallery_embeddings(model, SMALL, Gallery.from_folder(folder), num_workers=0)
    assert kept.labels == ["p0.png", "p1.png", "p2.png"] and vectors.shape[0] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "2 unreadable" in warnings[0] and "broken.jpg (not a readable image)" in warnings[0]
    assert "empty.png (empty file (0 bytes))" in warnings[0]


def test_read_image_names_each_kind_of_bad_query(tmp_path, monkeypatch):
    good = tmp_path / "good.png"
    picture(0, 64).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    picture(1, 20).save(tmp_path / "tiny.png")
    cases = {"truncated.png": "truncated", "text.jpg": "not a readable image", "empty.jpg": "empty file",
             "tiny.png": "too small (20 x 20 px; at least 32 px a side)", "missing.png": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(InputError, match=re.escape(reason)) as err:
            read_image(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
    monkeypatch.setenv("TTL_MAX_PIXELS", str(64 * 64 // 4))  # the project's limit, checked from the header
    with pytest.raises(InputError, match=re.escape("too many pixels (64 x 64, more than 1,024; TTL_MAX_PIXELS")):
        read_image(good)
    assert read_image.__module__ == "ttl_utils.data.inputs"


@pytest.mark.slow
def test_cli_find_prints_matches_writes_figure_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=8, size=48)
    out = tmp_path / "found.json"
    argv = ["find", str(data / "left" / "00002.jpg"), str(data / "left" / "00005.jpg"), "--gallery", str(data),
            "--model", "efficientnet_lite0:none", "--top", "3", "--workers", "0", "--json", str(out),
            "--figure", str(tmp_path / "fig" / "lookalikes"), "--explain"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Model: efficientnet_lite0:none (None)" in printed and "3 look-alikes among 8 pictures" in printed
    result = json.loads(out.read_text())
    assert [q["query"].endswith(name) for q, name in zip(result["queries"], ("00002.jpg", "00005.jpg"))] == [True] * 2
    first = result["queries"][0]["matches"]
    assert [m["rank"] for m in first] == [1, 2, 3] and first[0]["label"].startswith("right/")
    assert first[0]["file"].endswith(".jpg") and -1 <= first[0]["cosine"] <= 1
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["lookalikes.png"]
    assert main(argv[:-5] + ["--side", "both"]) == 0
    assert "3 look-alikes among 16 pictures" in capsys.readouterr().out
    assert main(argv[:-5] + ["--json", "-"]) == 0  # --json -: only the JSON goes to standard output, no file named "-"
    printed = capsys.readouterr()
    assert json.loads(printed.out)["gallery_size"] == 8 and "3 look-alikes among 8 pictures" in printed.err
    assert not (tmp_path / "-").exists()


@pytest.mark.slow
def test_cli_find_bad_input_is_one_line_and_keeps_the_cache(tmp_path, monkeypatch, capsys, isolated_project):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    data = write_official(tmp_path / "ttl", n=6, size=48)
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_embedder("efficientnet_lite0", None), SMALL)  # fixed weights
    base = ["--gallery", str(data), "--model", str(checkpoint), "--workers", "0"]
    assert main(["find", str(data / "left" / "00001.jpg"), *base]) == 0
    cache = sorted((isolated_project / "artifacts" / "gallery").iterdir())
    capsys.readouterr()
    (tmp_path / "bad.jpg").write_text("not an image")
    (tmp_path / "empty_gallery").mkdir()
    state = tmp_path / "state.pt"
    torch.save({"format": "something else"}, state)
    cases = [  # a failure of the data or the model: exit status 1
        (["find", str(tmp_path / "bad.jpg"), *base], f"{tmp_path / 'bad.jpg'}: not a readable image."),
        (["find", str(tmp_path / "nothing.jpg"), *base], "nothing.jpg: no such file or folder."),
        (["find", str(data / "left" / "00001.jpg"), "--gallery", str(tmp_path / "empty_gallery")],
         "empty_gallery: no gallery image files"),
        (["find", str(data / "left" / "00001.jpg"), "--gallery", str(data), "--model", str(state)],
         "is not a ttl_utils checkpoint"),
    ]
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    cases += [
        (["find", str(data / "left" / "00001.jpg"), "--gallery", str(data), "--model", str(tmp_path / "notes.txt")],
         "notes.txt is not a checkpoint: not a file PyTorch wrote"),
    ]
    usage = [  # a usage mistake: exit status 2
        (["find", str(data / "left" / "00001.jpg"), *base, "--top", "0"], "argument --top: 0: give at least 1"),
        (["find", str(data / "left" / "00001.jpg"), *base, "--explain"], "--explain draws the saliency in the figure"),
        (["find", str(data / "left" / "00001.jpg"), "--gallery", str(data), "--checkpoint", str(checkpoint)],
         "--checkpoint is now --model PATH"),
    ]
    for argv, message, code in [(*case, 1) for case in cases] + [(*case, 2) for case in usage]:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    # a picture of the gallery goes bad after the first run: skipped with a warning, the rest from the cache
    (data / "right" / "00003.jpg").write_bytes(b"broken")
    counts = counting_embed(monkeypatch)
    assert main(["find", str(data / "left" / "00001.jpg"), *base, "--figure", str(tmp_path / "f.png")]) == 0
    assert counts == [] and "5 pictures of" in capsys.readouterr().out
    assert sorted((isolated_project / "artifacts" / "gallery").iterdir()) == cache
    assert sorted(p.name for p in tmp_path.glob("f*")) == ["f.png"]  # not f.png.png
    stored = [path.read_bytes() for path in cache]
    assert main(["find", str(data / "left" / "00001.jpg"), *base, "--no-cache"]) == 0  # embeds all, keeps nothing
    assert counts == [5] and [path.read_bytes() for path in cache] == stored


def test_a_gallery_file_that_cannot_even_be_read_is_skipped(tmp_path, model):
    (tmp_path / "looks_like.png").mkdir()  # reading its bytes fails with an OSError
    gallery = Gallery("odd", ["fine", "odd"], [np.zeros((40, 40, 3), np.uint8), tmp_path / "looks_like.png"])
    kept, vectors = gallery_embeddings(model, SMALL, gallery, num_workers=0)
    assert kept.labels == ["fine"] and vectors.shape[0] == 1


def test_partner_ranks_and_the_rows_of_the_figure(model):
    gallery = Gallery("hand-made", ["a", "b", "c"], [np.zeros((40, 40, 3), np.uint8)] * 3)
    vectors = torch.eye(3)
    queries = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.2, 1.0]])
    assert partner_ranks(queries, gallery.index_of(["a", "b", "c"]), vectors).tolist() == [1, 2, 1]
    with pytest.raises(InputError, match="Partners not in the gallery hand-made: z"):
        gallery.index_of(["z"])
    scores, indices = search(queries, vectors, top=5)  # more than there are: all three
    assert indices.shape == (3, 3) and indices[2].tolist() == [2, 1, 0]
    found = [[Match(1, 2, "c", 0.9), Match(2, 0, "a", 0.1)]]
    rows = lookalike_rows(model, SMALL, [("q", picture(0))], gallery, found)
    assert rows[0]["title"] == "q" and [caption for _, caption in rows[0]["matches"]] == ["1. c\ncosine 0.900",
                                                                                         "2. a\ncosine 0.100"]
    settings = SaliencySettings.for_profile(get_profile("smoke"))
    explained = lookalike_rows(model, SMALL, [("q", picture(0))], gallery, found, settings)
    assert settings.method == "gradcam" and len(explained[0]["maps"]) == 2
    assert explained[0]["maps"][0][0].shape == (32, 32)  # the query's map, at the model's crop size
    fig = lookalike_grid(explained)
    # the matches on one line, the query's maps under them, a colour key: 3 wide, never 1 + 2 x matches
    assert len(fig.axes) == 2 * 3 + 1 and fig.axes[1].get_title() == "1. c\ncosine 0.900"
    assert fig.axes[-1].get_xlabel() == "saliency of the similarity: how much each region matters"
    marked = lookalike_rows(model, SMALL, [("q", picture(0))], gallery, found, partners=["a"])
    fig = lookalike_grid(marked)
    assert len(fig.axes) == 3 and fig.axes[2].get_title() == "2. a\ncosine 0.100\n(the true partner)"
    assert fig.axes[1].get_title() == "1. c\ncosine 0.900"


@pytest.mark.slow
def test_the_upload_button_shows_matches_or_one_line(tmp_path, model, capsys):
    """Outside a Jupyter kernel the button's output area prints to stdout."""
    gallery = Gallery("hand-made", ["a", "b"], [np.full((40, 40, 3), v, np.uint8) for v in (0, 200)])
    vectors = gallery_embeddings(model, SMALL, gallery, num_workers=0)[1]
    box = lookalike_picker(model, SMALL, gallery, vectors, top=1)
    upload, output = box.children
    good = tmp_path / "good.png"
    picture(3).save(good)
    upload.set_trait("value", ({"name": "tiny.png", "content": memoryview(b"junk"), "size": 4, "type": "image/png",
                                "last_modified": datetime.datetime(2026, 1, 1)},))
    assert "error: tiny.png: not a readable image." in capsys.readouterr().out
    upload.set_trait("value", ({"name": "good.png", "content": memoryview(good.read_bytes()), "size": 1,
                                "type": "image/png", "last_modified": datetime.datetime(2026, 1, 1)},))
    shown = capsys.readouterr().out
    assert "error" not in shown and "Figure" in shown  # the look-alike grid was displayed
