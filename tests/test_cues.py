"""What a model matches on (notebook 03): cues taken away, margins, and the findings printed from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ttl_utils.data.demo import make_demo_pairs
from ttl_utils.evaluate.embeddings import cue_embeddings
from ttl_utils.explain.cues import cue_findings, cue_table, margins
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import CUES, CuePreprocessing, Preprocessing, remove_cue


@pytest.fixture(scope="module")
def image():
    return make_demo_pairs(1, 40, seed=2).left_image(0)


def test_each_cue_keeps_the_size_and_takes_away_what_it_says(image):
    for cue in CUES:
        out = remove_cue(image, cue)
        assert out.size == image.size and out.mode == "RGB"
    grey = np.asarray(remove_cue(image, "greyscale")).astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    original = np.asarray(image).astype(float)
    blurred = np.asarray(remove_cue(image, "blurred")).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(original, axis=1)).mean()
    edges = np.asarray(remove_cue(image, "edges"))
    assert (edges[..., 0] == edges[..., 2]).all() and np.median(edges) > 200  # dark outlines on white
    assert remove_cue(image, "original") is image
    with pytest.raises(ValueError, match="Unknown cue 'sepia'"):
        remove_cue(image, "sepia")


def test_cue_preprocessing_is_the_model_s_preprocessing_of_the_changed_image(image):
    pre = Preprocessing(resize=36, crop=32)
    cued = CuePreprocessing(resize=36, crop=32, cue="greyscale")
    assert torch.equal(cued.pixels(image), pre.pixels(remove_cue(image, "greyscale")))
    assert torch.equal(cued.normalise(cued.pixels(image)), cued(image))


def test_margins_are_the_partner_s_cosine_minus_the_mean_of_the_others():
    left = torch.eye(3)
    right = F.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    sims = left @ right.T
    expected = [sims[i, i] - (sims[i].sum() - sims[i, i]) / 2 for i in range(3)]
    assert margins(left, right) == pytest.approx(torch.stack(expected).numpy())
    with pytest.raises(ValueError, match="at least 2 pairs"):
        margins(left[:1], right[:1])


def _table():
    g = torch.Generator().manual_seed(0)
    left = F.normalize(torch.randn(40, 16, generator=g), dim=1)
    right = F.normalize(left + 0.3 * torch.randn(40, 16, generator=g), dim=1)
    noisy = F.normalize(left + 3.0 * torch.randn(40, 16, generator=g), dim=1)
    embeddings = {"original": (left, right), "greyscale": (left, right), "blurred": (left, noisy)}
    return cue_table(embeddings, {"all": np.arange(40), "first half": np.arange(20)}, n_bootstrap=200)


def test_cue_table_measures_the_margin_lost_with_an_interval():
    table = _table()
    assert list(table.index) == [(s, c) for c in ("original", "greyscale", "blurred") for s in ("all", "first half")]
    assert list(table.columns) == ["pairs", "R@1", "margin", "margin lost", "low", "high"]
    assert table.loc[("all", "original"), "margin lost"] == pytest.approx(0.0)
    assert table.loc[("all", "greyscale"), "margin lost"] == pytest.approx(0.0)  # nothing changed
    blurred = table.loc[("all", "blurred")]
    assert 0.5 < blurred["margin lost"] and blurred.low < blurred["margin lost"] < blurred.high
    assert table.loc[("all", "original"), "R@1"] > blurred["R@1"]
    assert table.loc[("first half", "blurred"), "pairs"] == 20
    with pytest.raises(ValueError, match="'original'"):
        cue_table({"greyscale": (torch.eye(2), torch.eye(2))}, {"all": np.arange(2)})


def test_cue_findings_name_the_cue_that_matters_only_when_its_interval_clears_zero():
    lines = cue_findings(_table())
    assert len(lines) == 2 and lines[0].startswith("all (40 pairs): share of the partner's margin lost: greyscale +0 [")
    assert lines[0].endswith("It leans most on fine detail and texture (what 'blurred' takes away).")
    flat = pd.DataFrame([{"subset": "few", "cue": "greyscale", "pairs": 5, "R@1": 0.2, "margin": 0.1,
                          "margin lost": 0.1, "low": -0.2, "high": 0.4}]).set_index(["subset", "cue"])
    assert cue_findings(flat) == ["few (5 pairs): share of the partner's margin lost: greyscale +10 [-20, +40]%. "
                                  "No removal clearly shrinks the margin on this many pairs."]


@pytest.mark.slow
def test_cue_embeddings_embed_every_pair_once_a_cue_as_unit_vectors():
    pairs = make_demo_pairs(4, 40, seed=1)
    model = build_embedder("resnet18", None)
    out = cue_embeddings(model, Preprocessing(resize=36, crop=32), pairs, cues=("original", "edges"))
    assert list(out) == ["original", "edges"]
    for left, right in out.values():
        assert left.shape == right.shape == (4, 512)
        assert torch.allclose(left.norm(dim=1), torch.ones(4), atol=1e-5)
    assert not torch.allclose(out["original"][0], out["edges"][0])
    with pytest.raises(ValueError, match="Unknown cue"):
        cue_embeddings(model, Preprocessing(resize=36, crop=32), pairs, cues=("colour",))


def test_cue_headline_orders_the_costs_and_names_the_cue_only_when_it_clearly_matters():
    from ttl_utils.explain.cues import cue_headline

    table = _table()
    line = cue_headline(table, "all")
    assert line.startswith("Over 40 test pairs, the partner's margin falls by: taking away fine detail and texture ")
    assert line.index("fine detail") < line.index("taking away colour")
    assert line.endswith("; the network leans most on fine detail and texture.")
    flat = pd.DataFrame([{"subset": "few", "cue": "edges", "pairs": 5, "R@1": 0.2, "margin": 0.1,
                          "margin lost": 0.1, "low": -0.2, "high": 0.4}]).set_index(["subset", "cue"])
    assert cue_headline(flat, "few") == ("Over 5 test pairs, the partner's margin falls by: keeping only the outlines "
                                         "10% [-20%, 40%]; no single cue clearly matters on this many pairs.")
