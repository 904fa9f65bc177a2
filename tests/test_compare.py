"""`compare`: several models ranked on the same pairs, the table, the verdicts, the figures, the CLI."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ttl_utils.cli import main  # noqa: E402
from ttl_utils.config import get_profile  # noqa: E402
from ttl_utils.digests import model_fingerprint  # noqa: E402
from ttl_utils.evaluate.metrics import DIRECTIONS, Ranked, cmc_band, disagreements  # noqa: E402
from ttl_utils.evaluate.ranking import rank_pairs
from ttl_utils.evaluate.report import comparison_table, format_comparison, unique_names, verdicts
from ttl_utils.models.checkpoints import load_model, save_checkpoint  # noqa: E402
from ttl_utils.models.embedder import build_embedder  # noqa: E402
from ttl_utils.models.preprocessing import Preprocessing  # noqa: E402
from ttl_utils.present.plots import comparison_figures, rank_frequency_plot  # noqa: E402


def embeddings(n: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left embeddings and right ones that are the left plus `noise` (small: easy to match)."""
    g = torch.Generator().manual_seed(seed)
    left = F.normalize(torch.randn(n, 16, generator=g), dim=1)
    return left, F.normalize(left + noise * torch.randn(n, 16, generator=g), dim=1)


def test_a_model_compared_with_itself_gains_nothing():
    ranked = [rank_pairs("A", *embeddings(60, 0.8)), rank_pairs("A again", *embeddings(60, 0.8))]
    table = comparison_table(ranked, n_bootstrap=100)
    assert list(table.index.get_level_values("direction").unique()) == list(DIRECTIONS)
    assert table.loc[("left -> right", "A again"), "R@1 gain"] == "+0.000 [+0.000, +0.000]"
    assert table.loc[("right -> left", "A again"), "MRR gain"] == "+0.000 [+0.000, +0.000]"
    assert table.loc[("left -> right", "A"), "R@1 gain"] == ""  # the reference has no gain over itself
    assert verdicts(ranked, n_bootstrap=100) == ["A again vs A: no clear difference (R@1 +0.000 [+0.000, +0.000])"]


def test_a_better_model_is_found_better_whichever_comes_first():
    good, bad = rank_pairs("good", *embeddings(80, 0.3)), rank_pairs("bad", *embeddings(80, 3.0, seed=1))
    assert verdicts([bad, good], n_bootstrap=200)[0].startswith("good finds the partner first more often than bad: +")
    line = verdicts([good, bad], n_bootstrap=200)[0]
    assert line.startswith("good finds the partner first more often than bad: +")
    gain = comparison_table([bad, good], n_bootstrap=200).loc[("left -> right", "good"), "R@1 gain"]
    assert float(gain.split()[0]) > 0.3
    text = format_comparison(comparison_table([bad, good], n_bootstrap=50), ["x"], "title")
    assert text.startswith("title") and "right -> left, paired gain over bad:" in text and "- x" in text


def test_the_table_has_every_metric_with_its_interval():
    table = comparison_table([rank_pairs("A", *embeddings(30, 1.0))], n_bootstrap=50)
    assert list(table.columns) == ["N", "R@1", "R@5", "R@10", "R@25", "median rank", "MRR", "top-2 of 20"]
    assert table.loc[("left -> right", "A"), "N"] == "30"
    value, low, high = (float(x.strip("[],")) for x in table.loc[("left -> right", "A"), "R@5"].split())
    assert low <= value <= high


def test_a_pair_scorer_without_the_way_back_joins_the_table():
    model = rank_pairs("embedding", *embeddings(30, 1.0))
    scorer = Ranked("scorer", {"left -> right": np.arange(1, 31), "right -> left": None},
                      {"left -> right": None, "right -> left": None})
    table = comparison_table([model, scorer], n_bootstrap=50)
    assert ("right -> left", "scorer") not in table.index
    assert table.loc[("left -> right", "scorer"), "top-2 of 20"] == "n/a"
    with pytest.raises(ValueError, match="same pairs"):
        comparison_table([model, rank_pairs("fewer", *embeddings(20, 1.0))])


def test_disagreements_and_unique_names():
    a, b = np.array([1, 2, 30, 7, 3]), np.array([40, 3, 1, 2, 9])
    only_a, only_b = disagreements(a, b, k=5)
    assert only_a.tolist() == [0, 4] and only_b.tolist() == [2, 3]
    assert unique_names(["m", "n", "m", "m"]) == ["m", "n", "m (2)", "m (3)"]


def test_load_model_says_in_one_line_what_is_wrong(tmp_path):
    profile = get_profile("smoke")
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load_model(str(tmp_path / "missing.pt"), profile)
    with pytest.raises(ValueError, match="neither a checkpoint file nor a backbone"):
        load_model("alexnet", profile)
    embedder, preprocessing = load_model("efficientnet_lite0:none", profile)
    assert embedder.describe()["weights"] is None and preprocessing.crop == profile.image_size
    again, _ = load_model("efficientnet_lite0:none", profile)  # seeded: the same random weights, so cached
    assert model_fingerprint(again) == model_fingerprint(embedder)


def test_comparison_figures_count_ranks_and_band_the_curve():
    ranks = {"A": np.array([1, 1, 2, 30, 26]), "B": np.array([3, 1, 2, 2, 40])}
    hist, cmc = comparison_figures(ranks, n_items=40, about="test")
    heights = [p.get_height() for p in hist.axes[0].patches]
    assert len(heights) == 2 * 26  # ranks 1-25 and "26+", for each model
    assert heights[0] == 2 and heights[1] == 1 and heights[25] == 2  # A: ranks 1, 1, 2, then 26 and 30
    assert heights[26] == 1 and heights[27] == 2 and heights[51] == 1  # B: 1, 2, 2, 3, 40
    assert "5 queries among 40" in hist.axes[0].get_title()
    assert [t.get_text() for t in hist.axes[0].get_legend().get_texts()] == ["A: 2 at rank 1", "B: 1 at rank 1"]
    assert len(hist.axes[0].texts) == 0 and hist.axes[0].get_ylim()[1] >= 2  # nothing dwarfs ranks 1-25: no cut
    many_beyond = rank_frequency_plot({"A": np.array([1, 1, 1, 2, 2] + [30] * 50)})
    assert many_beyond.get_ylim() == (0, 1.3 * 3) and [t.get_text() for t in many_beyond.texts] == ["50"]
    assert [t.get_text() for t in many_beyond.get_legend().get_texts()] == ["A: 3 at rank 1, 50 beyond 25"]
    curve, low, high = cmc_band(ranks["A"], 40, n=100)
    assert curve.shape == (40,) and curve[0] == 0.4 and curve[-1] == 1.0
    assert np.all(low <= curve + 1e-12) and np.all(curve <= high + 1e-12)


@pytest.mark.slow
def test_cli_compare_twice_second_run_from_the_cache(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_embedder("efficientnet_lite0", None),
                                 Preprocessing(resize=32, crop=32))
    out = tmp_path / "c.json"
    argv = ["compare", "--model", "efficientnet_lite0", str(checkpoint), "--names", "ImageNet", "random", "--workers", "0",
            "--figure", str(tmp_path / "fig" / "cmp"), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "demo-64px-seed0/test: 40 queries among 40 candidates" in printed
    assert "ImageNet finds the partner first more often than random" in printed or "random vs ImageNet" in printed
    result = json.loads(out.read_text())
    assert result["models"] == ["ImageNet", "random"] and result["n_queries"] == 40
    assert len(result["ranks"]["random"]["left -> right"]) == 40
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"cmp_rank_histogram.png", "cmp_cmc.png"}
    caplog.clear()
    with caplog.at_level("INFO", logger="ttl_utils"):
        assert main(argv[:-4]) == 0
    assert "All 2 models' embeddings came from the cache" in caplog.text
    assert main(["-q", "compare", "--model", "efficientnet_lite0", "--subset", "generic", "--workers", "0",
                 "--json", str(out)]) == 0
    generic = json.loads(out.read_text())
    assert generic["data"] == "demo-64px-seed0/test without faces" and generic["subset"] == "generic"
    assert 2 <= generic["n_queries"] <= 40


def test_cli_compare_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TTL_PROFILE", "smoke")
    assert main(["compare", "--model", "efficientnet_lite0", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model") and "no such checkpoint file" in err and err.count("\n") == 1  # before the data
    assert main(["compare", "--model", "alexnet"]) == 2
    assert "neither a checkpoint file nor a backbone" in capsys.readouterr().err
    assert main(["compare", "--model", "efficientnet_lite0", "--names", "a", "b"]) == 2
    assert "one name per model (1 models, 2 names)" in capsys.readouterr().err
    assert main(["compare", "efficientnet_lite0", "resnet18"]) == 2  # the old positional form
    assert "models are given with --model: compare --model efficientnet_lite0 resnet18" in capsys.readouterr().err
