"""Trust: caches keyed by content, resume that checks what it resumes, every bad input one clear line.

One test a case of the "trust" issue; each asserts the message and that nothing already
written was lost or left half-written.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_official
from PIL import Image

from ttl_utils import digests as DIGESTS
from ttl_utils.cli import main
from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.download import _read_checksums
from ttl_utils.data.folders import load_pairs, write_pairs
from ttl_utils.data.gallery import Gallery
from ttl_utils.data.inputs import why_unreadable
from ttl_utils.data.pairs import open_rgb, to_rgb
from ttl_utils.errors import BusyError, CheckpointError, DownloadError, UnreadableImage
from ttl_utils.evaluate.embeddings import embed_pairs, gallery_embeddings
from ttl_utils.models.checkpoints import load_checkpoint, save_checkpoint
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.runtime import decode_workers
from ttl_utils.storage import exclusive, remove_stale_temporaries, save_json

SMALL = Preprocessing.for_size(32)


def _one_line_error(capsys, argv: list[str], code: int = 1) -> str:
    """Run the CLI, check its exit status (1: the data or the run failed; 2: a usage mistake) and that
    it said one error line on stderr (a dataset's problems are listed below theirs, one a line);
    return what it said."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("error:") or line.startswith("Interrupted")]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err), err
    return "\n".join(err[err.index(lines[0]):])


def _bmp_dataset(root: Path, n: int = 6) -> Path:
    """A dataset of same-sized BMPs: swapping two files keeps every name and byte size."""
    pairs = make_demo_pairs(n, 32, seed=7)
    write_pairs(pairs, root, extension=".bmp")
    return root


# --- 1. caches keyed by content -----------------------------------------------------------------

@pytest.mark.slow
def test_same_size_content_swap_changes_the_fingerprint_and_the_embeddings(tmp_path, caplog):
    data = _bmp_dataset(tmp_path / "bmp")
    embedder = build_embedder("efficientnet_lite0", None)
    before = load_pairs(data)
    embed_pairs(embedder, SMALL, before, num_workers=0)
    right = sorted((data / "right").iterdir())
    sizes = [p.stat().st_size for p in right]
    contents = [p.read_bytes() for p in right]
    for path, content in zip(right, contents[1:] + contents[:1]):  # a permutation of same-sized files
        path.write_bytes(content)
    assert [p.stat().st_size for p in right] == sizes
    after = load_pairs(data)
    assert after.fingerprint != before.fingerprint and after.pair_digests() != before.pair_digests()
    with caplog.at_level(logging.INFO, logger="ttl_utils"):
        _, cached_right = embed_pairs(embedder, SMALL, after, num_workers=0)
    assert "Loaded cached" not in caplog.text  # neither side: the key is the content
    _, fresh_right = embed_pairs(embedder, SMALL, after, num_workers=0, cache=False)
    assert torch.allclose(cached_right, fresh_right)


@pytest.mark.slow
def test_touch_without_change_recomputes_nothing_and_one_changed_file_only_itself(tmp_path, monkeypatch, caplog):
    data = _bmp_dataset(tmp_path / "bmp")
    calls = []
    real = DIGESTS.bytes_digest
    monkeypatch.setattr(DIGESTS, "bytes_digest", lambda path: calls.append(Path(path).name) or real(path))
    first = load_pairs(data)
    assert len(calls) == 12
    calls.clear()
    assert load_pairs(data).fingerprint == first.fingerprint and calls == []  # remembered by size and time
    touched = data / "left" / "demo00002.bmp"
    later = time.time() + 10
    os.utime(touched, (later, later))
    assert load_pairs(data).fingerprint == first.fingerprint and calls == ["demo00002.bmp"]  # read again, same digest

    embedder = build_embedder("efficientnet_lite0", None)
    gallery = Gallery.from_folder(data / "right")
    gallery_embeddings(embedder, SMALL, gallery, num_workers=0)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(data / "right" / "demo00003.bmp")
    with caplog.at_level(logging.INFO, logger="ttl_utils"):
        gallery_embeddings(embedder, SMALL, Gallery.from_folder(data / "right"), num_workers=0)
    assert "6 pictures, 1 embedded now, 5 from the cache" in caplog.text


# --- 2. resume checks what it resumes -----------------------------------------------------------

FT = ["--epochs", "1", "--image-size", "32", "--batch-size", "4", "--views", "1", "--workers", "0", "--device", "cpu",
      "--split", "all"]


@pytest.mark.slow
def test_finetune_resume_on_other_data_is_refused(tmp_path, capsys):
    a, b = write_official(tmp_path / "a", n=8), _bmp_dataset(tmp_path / "b", n=8)
    out = tmp_path / "r.pt"
    assert main(["-q", "finetune", "--data", str(a), "--out", str(out), *FT]) == 0
    before = out.read_bytes()
    line = _one_line_error(capsys, ["-q", "finetune", "--data", str(b), "--out", str(out), "--resume", *FT])
    assert "resume:" in line and "was trained on other data: train pairs" in line
    assert out.read_bytes() == before


@pytest.mark.slow
def test_pretrain_resume_with_other_backbone_or_images_is_refused(tmp_path, capsys):
    images = write_pairs(make_demo_pairs(8, 40, seed=5), tmp_path / "imgs")
    out = tmp_path / "bt.pt"
    common = ["--epochs", "2", "--batch-size", "8", "--image-size", "32", "--projector", "32-32",
              "--workers", "0", "--max-steps", "1", "--device", "cpu"]
    assert main(["-q", "pretrain", "--data", str(images), "--out", str(out), "--init", "resnet18:none", *common]) == 0
    before = out.read_bytes()
    line = _one_line_error(capsys, ["-q", "pretrain", "--data", str(images), "--out", str(out), "--resume",
                                    "--init", "efficientnet_lite0:none", *common])
    assert "backbone='resnet18' (now 'efficientnet_lite0')" in line
    moved = shutil.copytree(images, tmp_path / "moved")  # the same images elsewhere: resumes
    assert main(["-q", "pretrain", "--data", str(moved), "--out", str(out), "--resume", "--init", "resnet18:none",
                 "--epochs", "3", *common[2:]]) == 0
    before = out.read_bytes()
    first, second = sorted((images / "left").iterdir())[:2]
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)  # the same names, other content
    second.write_bytes(a)
    line = _one_line_error(capsys, ["-q", "pretrain", "--data", str(images), "--out", str(out), "--resume",
                                    "--init", "resnet18:none", *common])
    assert "was trained on other images than" in line
    assert out.read_bytes() == before


# --- 3. memory on huge images -------------------------------------------------------------------

def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    Image.new("1", (13000, 13000)).save(huge)  # 169 megapixels, a few kB on disk
    assert huge.stat().st_size < 1_000_000
    assert "too many pixels (13000 x 13000, more than 128,000,000" in why_unreadable(huge)
    with pytest.raises(UnreadableImage, match="huge.png: too many pixels"):
        open_rgb(huge)
    monkeypatch.setenv("TTL_MAX_PIXELS", "1000")
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 40)).save(small)
    assert "more than 1,000" in why_unreadable(small)
    for text in ("lots", "inf", "0"):
        monkeypatch.setenv("TTL_MAX_PIXELS", text)
        with pytest.raises(ValueError, match=f"TTL_MAX_PIXELS='{text}'"):
            open_rgb(small)


def test_large_jpegs_are_decoded_reduced_to_what_the_model_needs(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1600, 2400, 3), dtype=np.uint8)).save(photo)
    assert open_rgb(photo).size == (2400, 1600)
    reduced = open_rgb(photo, min_side=256)
    assert reduced.size == (600, 400)  # a quarter: the smallest power-of-two reduction keeping >= 256 a side
    assert open_rgb(photo, min_side=1000).size == (2400, 1600)  # halving would go below: decoded whole


def test_decoding_threads_are_bounded_by_memory_and_cores():
    gib = 2**30
    assert decode_workers(cores=16, memory=8 * gib, largest_pixels=128_000_000) == 2
    assert decode_workers(cores=16, memory=8 * gib, largest_pixels=200 * 245) == 16
    assert decode_workers(cores=2, memory=8 * gib, largest_pixels=200 * 245) == 4
    assert decode_workers(cores=16, memory=1 * gib, largest_pixels=128_000_000) == 1


# --- 4. images that fail to decode mid-run; links --------------------------------------------------

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the header survives, the pixels do not


@pytest.mark.slow
def test_an_image_truncated_mid_run_is_one_line_naming_it_and_check(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    _truncate(data / "right" / "00004.jpg")
    line = _one_line_error(capsys, ["-q", "evaluate", "--data", str(data), "--split", "all", "--model", "efficientnet_lite0:none",
                                    "--image-size", "32", "--workers", "0", "--device", "cpu"])
    assert "right/00004.jpg: truncated." in line and f"python -m ttl_utils check --data {data}" in line
    line = _one_line_error(capsys, ["-q", "finetune", "--data", str(data), "--out", str(tmp_path / "f.pt"), *FT])
    assert "right/00004.jpg: truncated." in line
    assert not (tmp_path / "f.pt").exists()


def test_bad_headers_stop_a_run_before_any_work(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=6, size=48)
    (data / "left" / "00001.jpg").write_bytes(b"not a picture at all" * 20)
    (data / "right" / "00002.jpg").write_bytes(b"\x89PNG nope" * 20)
    line = _one_line_error(capsys, ["-q", "evaluate", "--data", str(data), "--split", "all", "--model", "efficientnet_lite0:none",
                                    "--image-size", "32", "--workers", "0"])
    assert "2 problem(s)" in line
    assert not (Path(os.environ["TTL_HOME"]) / "artifacts" / "embeddings").exists()  # no forward pass ran


def test_check_lists_every_broken_or_outside_link_and_other_commands_skip_outside_links(tmp_path, caplog):
    data = write_official(tmp_path / "ttl", n=6, size=32)
    outside = tmp_path / "elsewhere.jpg"
    shutil.move(data / "left" / "00001.jpg", outside)
    (data / "left" / "00001.jpg").symlink_to(outside)
    (data / "right" / "00002.jpg").unlink()
    (data / "right" / "00002.jpg").symlink_to(tmp_path / "gone.jpg")
    (data / "right" / "00003.jpg").unlink()
    (data / "right" / "00003.jpg").symlink_to(tmp_path / "gone-too.jpg")
    with pytest.raises(Exception) as err:
        load_pairs(data, validate=True)
    problems = err.value.problems
    assert problems["broken link (its target does not exist)"] == ["right/00002.jpg", "right/00003.jpg"]
    assert problems["link to a file outside the dataset folder"] == ["left/00001.jpg"]
    for name in ("00002.jpg", "00003.jpg"):
        (data / "right" / name).unlink()
        Image.new("RGB", (32, 32)).save(data / "right" / name)
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        pairs = load_pairs(data)
    assert len(pairs) == 5 and "00001" not in pairs.ids
    assert "Leaving out 1 pair(s) whose image is a link to a file outside" in caplog.text


# --- 5. bad checkpoints -----------------------------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (print, ("this would run",))


def test_every_bad_checkpoint_is_one_checkpoint_error_line(tmp_path, capsys):
    good = save_checkpoint(tmp_path / "good.pt", build_embedder("efficientnet_lite0", None), SMALL)
    cases = {}
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    cases["random.pt"] = "is not a checkpoint: not a file PyTorch wrote"
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:5000])
    cases["truncated.pt"] = "is truncated or damaged"
    with open(tmp_path / "payload.pt", "wb") as f:
        pickle.dump({"format": _Payload()}, f, protocol=2)
    cases["payload.pt"] = "holds Python objects that could run code when loaded"
    torch.save({"format": "ttl_utils-training-state-1", "epoch": 1}, tmp_path / "run.pt.state.pt")
    cases["run.pt.state.pt"] = f"is a training state (for --resume), not a model checkpoint: give {tmp_path / 'run.pt'}"
    torch.save({"format": "ttl_utils.embedder/1"}, tmp_path / "only-format.pt")
    cases["only-format.pt"] = "is a damaged ttl_utils checkpoint: it lacks backbone, weights"
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    cases["other.pt"] = "a dict of tensors without this project's format"
    for name, message in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        text = str(err.value)
        assert message in text and "\n" not in text and "weights_only" not in text, text
        line = _one_line_error(capsys, ["-q", "evaluate", "--model", str(tmp_path / name), "--workers", "0"])
        assert message in line
    assert load_checkpoint(good)[0] is not None


# --- 6. smaller cases ---------------------------------------------------------------------------------

def test_16_bit_greyscale_maps_monotonically_onto_8_bits(tmp_path):
    values = []
    for level in (200, 255, 300, 30000, 65535):
        path = tmp_path / f"{level}.png"
        Image.fromarray(np.full((8, 8), level, np.uint16)).save(path)
        values.append(int(np.asarray(open_rgb(path))[0, 0, 0]))
    assert values == sorted(values) and values[0] == 1 and values[-1] == 255  # 300 no longer above 255
    assert to_rgb(Image.fromarray(np.full((4, 4), 0.5, np.float32))).getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize("flag", ["--epochs", "--image-size", "--batch-size"])
def test_zero_is_an_error_where_it_is_meaningless(flag, tmp_path, capsys):
    line = _one_line_error(capsys, ["finetune", "--out", str(tmp_path / "x.pt"), flag, "0"], code=2)
    assert f"argument {flag}: 0: give at least 1" in line
    assert not (tmp_path / "x.pt").exists()


def test_pretrain_with_fewer_images_than_a_batch_is_refused(tmp_path, capsys):
    images = write_pairs(make_demo_pairs(3, 32, seed=1), tmp_path / "few")
    out = tmp_path / "bt.pt"
    line = _one_line_error(capsys, ["-q", "pretrain", "--data", str(images), "--out", str(out), "--init", "resnet18:none",
                                    "--batch-size", "16", "--workers", "0", "--device", "cpu"])
    assert "holds 6 image(s), fewer than one batch (16 x 1 process(es))" in line
    assert not out.exists()


@pytest.mark.slow
def test_leftover_temporaries_are_cleaned_and_a_resumed_log_has_no_duplicates(tmp_path):
    target = tmp_path / "run.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from ttl_utils.storage import _host

    leftover = tmp_path / f".run.pt.{_host()}-{int(dead.stdout)}.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    mine = tmp_path / f".run.pt.{_host()}-{os.getpid()}.xyz.tmp"  # a write in progress in a live process
    mine.write_bytes(b"")
    save_json({"ok": 1}, target)
    assert not leftover.exists() and mine.exists() and target.is_file()
    assert remove_stale_temporaries(target) == []

    from ttl_utils.train.pretrain import pretrain
    from ttl_utils.train.recipes import PretrainConfig
    images = write_pairs(make_demo_pairs(8, 40, seed=5), tmp_path / "imgs")
    config = PretrainConfig(data=str(images), out=str(tmp_path / "bt.pt"), backbone="resnet18", init="none", epochs=1,
                            batch_size=8, image_size=32, projector=(32, 32), workers=0, log_every=1)
    pretrain(config)
    log_file = tmp_path / "bt.pt.log.jsonl"
    lines = log_file.read_text().splitlines()
    log_file.write_text("\n".join(lines + [lines[-1]]) + "\n")  # a step logged, then killed before its save
    from dataclasses import replace
    pretrain(replace(config, epochs=2), resume=True)
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in log_file.read_text().splitlines()]
    assert steps == sorted(set(steps)) and len(steps) == 4


def test_ctrl_c_is_one_line_and_code_130(monkeypatch, capsys):
    import ttl_utils.commands as COMMANDS

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(COMMANDS, "check_command", interrupted)
    line = _one_line_error(capsys, ["check"], code=130)
    assert line == "Interrupted: the files already written are complete (each is written whole, then renamed)."


def test_layers_json_folder_and_devices_are_refused_before_any_work(tmp_path, capsys):
    line = _one_line_error(capsys, ["evaluate", "--layers", "layer9"], code=2)
    assert "argument --layers: 'layer9': choose stages among layer1, layer2, layer3, layer4" in line
    line = _one_line_error(capsys, ["evaluate", "--json", str(tmp_path), "--model", "efficientnet_lite0:none"], code=2)
    assert f"--json {tmp_path}: that is a folder" in line
    assert not (Path(os.environ["TTL_HOME"]) / "artifacts" / "embeddings").exists()
    line = _one_line_error(capsys, ["evaluate", "--device", "tpu"], code=2)
    assert "argument --device: 'tpu': choose cpu, cuda, cuda:N or mps" in line
    if not torch.cuda.is_available():
        line = _one_line_error(capsys, ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "bt.pt"),
                                        "--device", "cuda"], code=2)
        assert "--device cuda was asked for, but CUDA is not available here" in line


def test_names_that_are_not_utf8_a_latin1_csv_and_a_malformed_checksum_file(tmp_path, capsys):
    data = write_official(tmp_path / "ttl", n=4, size=32)
    bad = os.path.join(os.fsencode(data / "left"), b"caf\xe9.jpg")
    shutil.copy(data / "left" / "00001.jpg", bad)
    line = _one_line_error(capsys, ["check", "--data", str(data)])
    assert "- file name that is not valid UTF-8 (1): left/caf\\xe9.jpg" in line
    os.remove(bad)

    csv_set = tmp_path / "csvset"
    write_official(csv_set, n=3, size=32)
    padding = "".join(f"# a comment line {i}\n" for i in range(1000))  # the bad byte well past the first 8 kB
    (csv_set / "pairs.csv").write_bytes(f"left,right\n{padding}00000,00000\ncaf\xe9,00001\n".encode("latin-1"))
    line = _one_line_error(capsys, ["check", "--data", str(csv_set)])
    assert "pairs.csv is not UTF-8 text (byte 0xe9 on line 1003): save it as UTF-8" in line

    sums = tmp_path / "dest"
    sums.mkdir()
    (sums / "SHA256SUMS").write_text("not-a-digest left.zip\n")
    with pytest.raises(DownloadError, match=r"SHA256SUMS, line 1: expected '<64 hex digits>  <file name>'"):
        _read_checksums(sums)


def test_a_second_run_on_the_same_out_is_refused_and_a_killed_one_s_lock_is_taken_over(tmp_path):
    out = tmp_path / "ft.pt"
    with exclusive(out):
        with pytest.raises(BusyError, match=r"--out .*ft.pt: another run \(process \d+ on .*\) is writing it"):
            with exclusive(out):
                pass
    assert not (tmp_path / "ft.pt.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from ttl_utils.storage import _host

    (tmp_path / "ft.pt.lock").write_text(f"{_host()} {int(dead.stdout)}")
    with exclusive(out):
        assert (tmp_path / "ft.pt.lock").read_text() == f"{_host()} {os.getpid()}"


@pytest.mark.slow
def test_a_small_split_and_a_checkpoint_evaluated_on_its_training_pairs_are_warned(tmp_path, capsys, caplog):
    data = write_official(tmp_path / "ttl", n=10, size=32)
    out = tmp_path / "all.pt"
    assert main(["-q", "finetune", "--data", str(data), "--out", str(out), *FT]) == 0
    assert len(load_checkpoint(out)[2]["finetune"]["trained_on"]) == 10
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        assert main(["-q", "evaluate", "--data", str(data), "--model", str(out), "--workers", "0"]) == 0
    assert "2 of the 2 evaluated pairs are among" in caplog.text and "optimistic" in caplog.text
    assert "has only 2 pairs to rank" in caplog.text
    line = _one_line_error(capsys, ["-q", "evaluate", "--data", str(write_official(tmp_path / "tiny", n=3, size=32)),
                                    "--model", "efficientnet_lite0:none", "--workers", "0"], code=2)
    assert "has 1 pair(s) to rank: too few (at least 2); its test split is small, use --split all." in line


@pytest.mark.slow
def test_what_a_fresh_eyes_review_found(tmp_path, monkeypatch, capsys, caplog):
    from ttl_utils.data.inputs import header_problem
    from ttl_utils.digests import model_fingerprint
    from ttl_utils.models.embedder import build_embedder

    assert "argument --image-size: 8: at least 32 pixels" in _one_line_error(capsys, ["evaluate", "--image-size", "8"], 2)
    assert "argument --workers: -1: give 0 or more" in _one_line_error(capsys, ["evaluate", "--workers", "-1"], 2)
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 MP: over twice Pillow's own limit
    assert "more than 128,000,000; TTL_MAX_PIXELS raises the limit" in header_problem(huge)
    monkeypatch.setenv("TTL_MAX_PIXELS", "500000000")
    assert header_problem(huge) is None  # the project's limit, raised, is the one that holds
    monkeypatch.delenv("TTL_MAX_PIXELS")
    assert "is a file, not a folder" in _one_line_error(capsys, ["check", "--data", str(huge)])
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    line = _one_line_error(capsys, ["evaluate", "--model", str(tmp_path / "plain.pkl")])
    assert "plain.pkl is not a checkpoint: PyTorch cannot read it" in line and "Warning" not in line
    torch.save({"format": "ttl_utils-training-state-1"}, tmp_path / "state.pt")
    assert "give the model checkpoint it was saved beside" in str(pytest.raises(CheckpointError, load_checkpoint,
                                                                                 tmp_path / "state.pt").value)
    a, b = build_embedder("resnet18", None, seed=0), build_embedder("resnet18", None, seed=0)
    assert model_fingerprint(a) == model_fingerprint(b)  # evaluate --model resnet18:none: the same model, cached
    line = _one_line_error(capsys, ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "bt.pt"),
                                    "--init", "foo"], code=2)
    assert "--init foo: neither a checkpoint file nor a backbone" in line
    data = write_official(tmp_path / "ttl", n=6, size=32)
    out = tmp_path / "all.pt"
    assert main(["-q", "finetune", "--data", str(data), "--out", str(out), *FT]) == 0
    with caplog.at_level(logging.WARNING, logger="ttl_utils"):
        assert main(["-q", "compare", "--data", str(data), "--split", "all", "--model", str(out), "--workers", "0"]) == 0
    assert f"6 of the 6 evaluated pairs are among {out}'s training pairs" in caplog.text


def _hold_the_lock(path: str, results, ready) -> None:
    import time

    from ttl_utils.errors import BusyError
    from ttl_utils.storage import exclusive

    ready.wait(60)  # both processes started (their imports can differ by seconds): they try the lock at once
    try:
        with exclusive(path):
            results.put("held")
            time.sleep(1.0)
    except BusyError:
        results.put("refused")


@pytest.mark.slow
def test_two_runs_starting_at_once_on_a_stale_lock_cannot_both_take_it(tmp_path):
    import multiprocessing

    out = tmp_path / "ft.pt"
    (tmp_path / "ft.pt.lock").write_text("otherhost 999999")  # left by a run that died
    context = multiprocessing.get_context("spawn")
    results, ready = context.Queue(), context.Barrier(2)
    runs = [context.Process(target=_hold_the_lock, args=(str(out), results, ready)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert sorted(results.get(timeout=5) for _ in runs) == ["held", "refused"]
    assert not (tmp_path / "ft.pt.lock").exists()


def test_an_output_place_that_cannot_be_written_is_said_at_once_and_nothing_is_left(tmp_path):
    from ttl_utils.storage import cannot_write

    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert cannot_write(blocker / "result.json") == f"{blocker} is a file, not a folder"
    assert cannot_write(tmp_path / "new" / "deeper" / "result.json") is None  # made when written, not now
    assert cannot_write(tmp_path) is None  # a folder to fill
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no probe, no folder left


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_unwritable_json_figure_and_out_stop_before_the_work_in_one_line(tmp_path, isolated_project, capsys):
    from ttl_utils.storage import atomic_write

    data = write_official(tmp_path / "ttl")
    capsys.readouterr()
    for command in (["evaluate", "--data", str(data), "--json", "/proc/ttl-result.json"],
                    ["find", str(data / "left" / "00001.jpg"), "--gallery", str(data / "right"), "--figure", "/proc/ttl-fig"],
                    ["finetune", "--data", str(data), "--out", "/proc/ttl-ft.pt"]):
        assert main(command) == 2
        flag, value = command[-2:]
        assert capsys.readouterr().err == (f"error: {flag} {value}: nothing can be written in /proc (No such file or "
                                           "directory); choose another place.\n")
    made = [p for p in (isolated_project / "artifacts").glob("*/*") if p.parent.name != "engine"]  # (shared exports)
    assert made == []  # nothing embedded, split or trained first
    with pytest.raises(OSError, match=r"^/proc/ttl-result.json: cannot be written \(No such file or directory\); nothing"):
        atomic_write("/proc/ttl-result.json", lambda tmp: tmp.write_text("{}"))
