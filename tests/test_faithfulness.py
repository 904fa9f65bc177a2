"""What notebook 03 shows of the saliency maps: example pairs, pitfalls, the faithfulness summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import sample_picture

from ttl_utils.data.pairs import PairSet
from ttl_utils.explain.faithfulness import (
    FAITHFULNESS_COLUMNS,
    baseline_table,
    baseline_verdict,
    faithfulness_sample,
    faithfulness_summary,
    faithfulness_verdict,
    joint_gradcam_check,
)
from ttl_utils.explain.saliency import BASELINES, example_pairs, face_and_generic_maps, similarity_given
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing

PRE = Preprocessing(resize=48, crop=48)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_embedder("resnet18", None)


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    x_a = torch.randn(1, 3, 48, 48, generator=g)
    return x_a, x_a.flip(-1) + 0.5 * torch.randn(1, 3, 48, 48, generator=g)


def test_example_pairs_picks_the_closest_partners_and_a_median_non_partner():
    left = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [2.0, 1.0]]))
    right = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, -1.0], [1.0, 0.0], [1.0, 3.0]]))
    # partners' similarities: 0, 0.995, 0, 0.707, 0.707; left 1 to the right images: 1, 0.995, -0.707, 0, 0.949
    assert example_pairs(left, right) == (1, 4)
    with pytest.raises(ValueError, match=r"differ in shape: \(5, 2\) and \(4, 2\)"):
        example_pairs(left, right[:4])


@pytest.mark.slow
def test_face_and_generic_maps_finds_the_first_pair_of_each_kind(model):
    noise = list(np.random.default_rng(0).integers(0, 256, size=(5, 48, 48, 3), dtype=np.uint8))
    face = np.asarray(sample_picture("astronaut").resize((200, 200)))
    pairs = PairSet("with a face", "demo", ("p0", "p1", "p2"), [noise[0], face, noise[1]], noise[2:], fingerprint="x")
    shown = face_and_generic_maps(model, pairs, PRE, methods=("saliency", "gradcam"))
    assert {kind: found.index for kind, found in shown.items()} == {"face pair": 1, "generic pair": 0}
    generic = shown["generic pair"]
    assert list(generic.maps) == ["saliency", "gradcam", "decomposition"]
    assert generic.image_a.shape == (48, 48, 3) and generic.maps["gradcam"][1].shape == (48, 48)
    assert generic.maps["decomposition"][0].shape == (2, 2)  # resnet18's last stage: stride 32
    assert face_and_generic_maps(model, pairs, PRE, first=1, methods=("saliency",))["face pair"] is None


def test_baseline_table_has_a_row_a_baseline_and_deltas_that_add_up(model, pair):
    x_a, x_b = pair
    table = baseline_table(model, x_a, x_b, PRE, ig_steps=4)
    assert list(table.index) == list(BASELINES)
    assert list(table.columns) == ["s(A)", "s(baseline)", "sum of attributions", "delta", "pooled norm vs A"]
    assert (table["pooled norm vs A"] >= 0).all() and table.loc["black", "pooled norm vs A"] != pytest.approx(1.0)
    with torch.no_grad():
        s = float(similarity_given(model)(x_a, model(x_b)))
    assert table["s(A)"].tolist() == pytest.approx([s] * 3)
    # Captum's delta: the sum of the attributions minus the change in similarity it should explain
    gap = table["sum of attributions"] - (table["s(A)"] - table["s(baseline)"])
    assert table.delta.tolist() == pytest.approx(gap.tolist(), abs=1e-4)


def test_joint_gradcam_is_the_second_image_s_map(model, pair):
    assert joint_gradcam_check(model, *pair) == (True, False)


def test_faithfulness_sample_draws_distinct_pairs_and_at_most_all():
    sample = faithfulness_sample(10, 4)
    assert len(sample) == 4 and len(set(sample.tolist())) == 4 and sample.max() < 10
    assert np.array_equal(sample, faithfulness_sample(10, 4))
    assert sorted(faithfulness_sample(3, 5).tolist()) == [0, 1, 2]


def _faithfulness_rows() -> pd.DataFrame:
    rows = []
    for pair_id, shift in (("p0", 0.0), ("p1", 0.2)):
        for method, deletion, insertion, correlation, delta in (("saliency", 0.4, 0.3, 0.8, None),
                                                                ("integrated_gradients", 0.2, 0.5, 0.1, 0.05)):
            rows.append({"pair": pair_id, "method": method, "seconds": 1.0, "ig_delta": None if delta is None else
                         (-delta if shift else 3 * delta), "deletion_auc": deletion + shift,
                         "insertion_auc": insertion + shift, "deletion": [1.0, 0.0], "insertion": [0.0, 1.0],
                         "infidelity": 0.01, "sensitivity": None, "randomisation_correlation": correlation})
    return pd.DataFrame(rows)


def test_faithfulness_summary_and_verdict():
    table = _faithfulness_rows()
    summary = faithfulness_summary(table)
    assert list(summary.index) == ["saliency", "integrated_gradients"]
    assert list(summary.columns) == FAITHFULNESS_COLUMNS
    assert summary.loc["integrated_gradients", "deletion_auc"] == pytest.approx(0.3)
    assert faithfulness_verdict(table) == [
        "Lowest deletion AUC: integrated_gradients (0.300); highest insertion AUC: integrated_gradients (0.600)",
        "Maps that change when the top stage is re-initialised (Spearman < 0.5): integrated_gradients",
        "IG convergence |delta| over the sample: median 0.100, max 0.150",
    ]


def test_baseline_verdict_names_the_largest_and_smallest_delta_and_the_features_nearest_zero():
    import pandas as pd

    table = pd.DataFrame({"delta": [-0.02, 0.001, 0.05], "pooled norm vs A": [0.9, 0.7, 0.1]},
                         index=["blur", "grey", "black"])
    assert baseline_verdict(table) == ("Largest |delta|: black (+0.0500); smallest: grey (+0.0010). "
                                          "Features nearest zero: black (0.10 of A's length).")
