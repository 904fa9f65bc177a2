"""Loading dataset folders: both layouts, every kind of bad input, data resolution."""

from __future__ import annotations

import csv
import logging
import pickle
import shutil

import numpy as np
import pytest
from conftest import TTL_DEV, write_csv_layout, write_official

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.data.folders import SHOW_AT_MOST, load_pairs, resolve_pairs, write_pairs
from ttl_utils.errors import DatasetError


def test_official_layout_pairs_by_name_in_sorted_order(official):
    pairs = load_pairs(official)
    assert pairs.layout == "official"
    assert pairs.ids == tuple(f"{i:05d}" for i in range(6))
    assert [p.name for p in pairs.left] == [p.name for p in pairs.right]
    assert pairs.left_image(2).mode == "RGB" and pairs.left_image(2).size == (32, 32)
    assert pairs.no_faces is None


def test_official_layout_pairs_across_extensions(tmp_path):
    root = write_official(tmp_path / "d", n=3)
    src = root / "right" / "00001.jpg"
    from PIL import Image
    Image.open(src).save(root / "right" / "00001.png")
    src.unlink()
    pairs = load_pairs(root)
    assert pairs.right[1].name == "00001.png" and pairs.left[1].name == "00001.jpg"


@pytest.mark.parametrize("with_extension", [True, False])
def test_csv_layout_keeps_row_order_with_or_without_extension(tmp_path, with_extension):
    root = write_csv_layout(tmp_path / "c", n=5, with_extension=with_extension)
    pairs = load_pairs(root)
    assert pairs.layout == "pairs-csv"
    assert pairs.ids == ("l000", "l001", "l002", "l003", "l004")
    assert [p.name for p in pairs.right] == ["r000.png", "r007.png", "r014.png", "r021.png", "r028.png"]


def test_csv_layout_with_bom_extra_columns_and_spaces(csv_layout):
    rows = list(csv.reader(open(csv_layout / "pairs.csv")))
    with open(csv_layout / "pairs.csv", "w", newline="", encoding="utf-8-sig") as f:
        f.write("Left , right,score\n")
        for left, right in rows[1:]:
            f.write(f" {left} ,{right},0.5\n")
    assert len(load_pairs(csv_layout)) == 6


def test_fingerprint_changes_with_names_and_sizes(official):
    before = load_pairs(official).fingerprint
    assert load_pairs(official).fingerprint == before
    with open(official / "left" / "00003.jpg", "ab") as f:
        f.write(b"\0")
    assert load_pairs(official).fingerprint != before


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*TTL_DATA"):
        load_pairs(tmp_path / "nowhere")


def test_missing_right_folder(tmp_path):
    (tmp_path / "d" / "left").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no right/ folder"):
        load_pairs(tmp_path / "d")


def test_partners_missing_on_either_side_are_all_listed(official):
    (official / "right" / "00001.jpg").unlink()
    (official / "left" / "00004.jpg").unlink()
    with pytest.raises(DatasetError) as err:
        load_pairs(official)
    assert err.value.problems["left image with no right partner"] == ["left/00001.jpg"]
    assert err.value.problems["right image with no left partner"] == ["right/00004.jpg"]
    assert "What to do" in str(err.value)


def test_a_stray_non_image_file_in_the_official_layout_is_an_error(official):
    (official / "left" / "notes.txt").write_text("hello")
    (official / "left" / ".DS_Store").write_bytes(b"\0")  # hidden files are OS noise: skipped
    with pytest.raises(DatasetError) as err:
        load_pairs(official)
    assert err.value.problems == {"not an image file (unsupported extension)": ["left/notes.txt"]}


def test_same_name_with_two_extensions_is_ambiguous(official):
    shutil.copy(official / "left" / "00002.jpg", official / "left" / "00002.png")
    with pytest.raises(DatasetError, match=r"00002.jpg \+ 00002.png"):
        load_pairs(official)


def test_csv_names_without_files_and_duplicates(csv_layout):
    with open(csv_layout / "pairs.csv", "a", newline="") as f:
        f.write("l000.png,r000.png\n")          # a duplicate row
        f.write("ghost,r007\n")                 # no such left file; r007 reused
        f.write("l001.png\n")                   # malformed
    with pytest.raises(DatasetError) as err:
        load_pairs(csv_layout)
    problems = err.value.problems
    assert problems["duplicate row in pairs.csv"] == ["line 8: l000.png,r000.png"]
    assert problems["name in pairs.csv with no file in left/"] == ["line 9: ghost"]
    assert problems["malformed row in pairs.csv"] == ["line 10: l001.png"]


def test_csv_image_in_two_rows_is_refused(csv_layout):
    with open(csv_layout / "pairs.csv", "a", newline="") as f:
        f.write("l005.png,r000.png\n")
    with pytest.raises(DatasetError) as err:
        load_pairs(csv_layout)
    assert "right/r000.png (2 rows)" in err.value.problems["right image used in several rows"]
    assert "left/l005.png (2 rows)" in err.value.problems["left image used in several rows"]


@pytest.mark.parametrize("header", ["a,b", "left,rigth", ""])
def test_csv_wrong_header(csv_layout, header):
    lines = (csv_layout / "pairs.csv").read_text().splitlines()
    (csv_layout / "pairs.csv").write_text("\n".join([header] + lines[1:]) + "\n" if header else "")
    with pytest.raises(DatasetError, match=r"(needs the columns 'left' and 'right'|is empty)"):
        load_pairs(csv_layout)


def test_unreferenced_images_in_csv_layout_are_reported_in_the_log(csv_layout, caplog):
    lines = (csv_layout / "pairs.csv").read_text().splitlines()
    (csv_layout / "pairs.csv").write_text("\n".join(lines[:-1]) + "\n")
    with caplog.at_level(logging.WARNING):
        assert len(load_pairs(csv_layout)) == 5
    assert "2 image(s)" in caplog.text


def test_empty_file_is_found_without_opening_images(official):
    (official / "right" / "00002.jpg").write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        load_pairs(official)
    assert err.value.problems == {"empty file (0 bytes)": ["right/00002.jpg"]}


def test_validate_lists_every_bad_image_at_once(official):
    good = (official / "left" / "00000.jpg").read_bytes()
    (official / "left" / "00001.jpg").write_bytes(good[: len(good) // 2])   # truncated
    (official / "right" / "00003.jpg").write_bytes(b"this is not a JPEG" * 10)
    assert len(load_pairs(official)) == 6  # without validate, images are not opened
    (official / "right" / "00005.jpg").write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        load_pairs(official, validate=True)
    problems = err.value.problems
    assert problems["image that cannot be opened: truncated"] == ["left/00001.jpg"]
    assert problems["image that cannot be opened: not a readable image"] == ["right/00003.jpg"]
    assert problems["empty file (0 bytes)"] == ["right/00005.jpg"]
    assert "3 problem(s)" in str(err.value)


def test_long_lists_name_the_first_files_and_count_the_rest(tmp_path):
    root = write_official(tmp_path / "d", n=SHOW_AT_MOST + 5, size=16)
    for path in (root / "right").iterdir():
        path.unlink()
    with pytest.raises(DatasetError) as err:
        load_pairs(root)
    message = str(err.value)
    assert f"left image with no right partner ({SHOW_AT_MOST + 5})" in message
    assert "left/00019.jpg" in message and "left/00020.jpg" not in message
    assert "and 5 more" in message


def _write_metadata(root, content):
    with open(root / "metadata.pkl", "wb") as f:
        pickle.dump(content, f)


def test_metadata_no_faces_mask_is_read(official):
    mask = np.array([True, False, True, True, False, False])
    _write_metadata(official, {"image_list": [f"{i}.jpg" for i in range(6)], "no_faces": mask})
    pairs = load_pairs(official)
    assert pairs.no_faces.tolist() == mask.tolist()
    assert pairs.subset([0, 1]).no_faces.tolist() == [True, False]
    assert "3 without faces" in pairs.describe()


def test_metadata_of_another_size_is_refused(official):
    _write_metadata(official, {"no_faces": np.ones(6016, dtype=bool)})
    with pytest.raises(DatasetError, match=r"6016 entries but the folder holds 6 pairs"):
        load_pairs(official)


class _Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_metadata_that_would_run_code_is_refused(official, capsys):
    _write_metadata(official, {"no_faces": _Sneaky()})
    with pytest.raises(DatasetError, match=r"builtins.print"):
        load_pairs(official)
    assert "must never run" not in capsys.readouterr().out


def test_images_open_as_rgb_whatever_the_format(tmp_path):
    root = write_official(tmp_path / "d", n=4, ext=".png")
    from PIL import Image
    for i, (mode, ext) in enumerate([("L", ".webp"), ("P", ".png"), ("RGBA", ".png"), ("CMYK", ".jpg")]):
        path = root / "left" / f"{i:05d}.png"
        image = Image.open(path).convert(mode)
        path.unlink()
        image.save(path.with_suffix(ext))
    pairs = load_pairs(root, validate=True)
    assert {pairs.left_image(i).mode for i in range(4)} == {"RGB"}
    assert [p.suffix for p in pairs.left] == [".webp", ".png", ".png", ".jpg"]


def test_resolve_prefers_argument_then_env_then_data_folder_then_demo(tmp_path, monkeypatch, isolated_project, caplog):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    with caplog.at_level(logging.INFO, logger="ttl_utils"):
        demo = resolve_pairs()
    assert demo.layout == "demo" and len(demo) == 200
    assert "Dataset: demo" in caplog.text and "python -m ttl_utils download" in caplog.text

    installed = write_official(isolated_project / "data" / "ttl", n=3)
    assert resolve_pairs().root == installed.resolve()

    env = write_official(tmp_path / "env", n=4)
    monkeypatch.setenv("TTL_DATA", str(env))
    assert len(resolve_pairs()) == 4

    explicit = write_official(tmp_path / "explicit", n=5)
    assert len(resolve_pairs(explicit)) == 5


def test_write_pairs_round_trips_through_load_pairs(tmp_path):
    demo = make_demo_pairs(3, 32, seed=1)
    pairs = load_pairs(write_pairs(demo, tmp_path / "out"), validate=True)
    assert pairs.ids == demo.ids
    assert np.array_equal(np.asarray(pairs.right_image(2)), demo.right[2])


@pytest.mark.slow
@pytest.mark.skipif(not TTL_DEV.is_dir(), reason="../shared/ttl-dev is not here")
def test_real_ttl_dev_loads_in_both_layouts(tmp_path):
    pairs = load_pairs(TTL_DEV, validate=True)
    assert len(pairs) == 1000 and pairs.layout == "official"
    assert pairs.left_image(0).size == (200, 245)
    # the same pairs, brought as a pairs-CSV folder with other names for the right images
    root = tmp_path / "csvcopy"
    (root / "left").mkdir(parents=True)
    (root / "right").mkdir()
    rows = []
    for i in range(0, 1000, 50):
        shutil.copy(pairs.left[i], root / "left" / pairs.left[i].name)
        shutil.copy(pairs.right[i], root / "right" / f"match_of_{pairs.ids[i]}.jpg")
        rows.append(f"{pairs.ids[i]},match_of_{pairs.ids[i]}")
    (root / "pairs.csv").write_text("left,right\n" + "\n".join(rows) + "\n")
    copy = load_pairs(root, validate=True)
    assert copy.layout == "pairs-csv" and len(copy) == 20
    assert copy.ids == tuple(pairs.ids[i] for i in range(0, 1000, 50))
    assert np.array_equal(np.asarray(copy.right_image(3)), np.asarray(pairs.right_image(150)))
