"""Attributing a similarity score to the pixels of both images."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from ttl_utils.explain.faithfulness import (
    deletion_insertion,
    faithfulness,
    infidelity_score,
    randomised_copy,
    rank_correlation,
    sensitivity_score,
)
from ttl_utils.explain.saliency import (
    METHODS,
    attribute,
    explain_pair,
    gradcam,
    has_decomposition,
    joint_similarity,
    make_baseline,
    point_to_point,
    similarity_decomposition,
    similarity_given,
    strongest_point,
    to_image,
)
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing
from ttl_utils.present.pictures import overlay, plot_pair_maps

PRE = Preprocessing(resize=48, crop=48)


def smooth_resnet18(seed: int = 0):
    """A random ResNet-18 embedder with softplus instead of ReLU: smooth, so IG must add up."""
    torch.manual_seed(seed)
    embedder = build_embedder("resnet18", None)
    for parent in list(embedder.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=4))
    return embedder.eval()


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    x_a = torch.randn(1, 3, 48, 48, generator=g)
    x_b = x_a.flip(-1) + 0.5 * torch.randn(1, 3, 48, 48, generator=g)
    return x_a, x_b


@pytest.mark.parametrize("baseline", ["grey", "blur"])
def test_integrated_gradients_add_up_to_the_change_in_similarity(pair, baseline):
    model = smooth_resnet18()
    x_a, x_b = pair
    with torch.no_grad():
        e_b = model(x_b)
        f = similarity_given(model)
        expected = f(x_a, e_b) - f(make_baseline(x_a, baseline, PRE), e_b)
    attribution, delta = attribute(model, x_a, e_b, "integrated_gradients", PRE, baseline=baseline, ig_steps=64)
    assert abs(delta) < 1e-2
    assert float(attribution.sum()) == pytest.approx(float(expected), abs=1e-2)


def test_a_black_baseline_with_a_zero_embedding_is_flagged(pair, caplog):
    torch.manual_seed(0)
    model = build_embedder("resnet18", None)  # no biases before pooling: black in, zero vector out
    raw = Preprocessing(resize=48, crop=48, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x_a, x_b = pair
    with torch.no_grad():
        e_b = model(x_b)
        assert model(make_baseline(x_a, "black", raw)).norm() == 0
    with caplog.at_level(logging.WARNING):
        _, delta = attribute(model, x_a, e_b, "integrated_gradients", raw, baseline="black", ig_steps=16)
    assert "near-zero embedding" in caplog.text
    assert abs(delta) > 0.3  # the attributions do not add up to s(A) - s(black)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_deterministic_map_of_the_image_size(pair, method):
    model = smooth_resnet18()
    x_a, x_b = pair
    with torch.no_grad():
        e_b = model(x_b)
    first, _ = attribute(model, x_a, e_b, method, PRE, samples=4, ig_steps=8)
    torch.rand(5)  # the caller's random state does not matter
    again, _ = attribute(model, x_a, e_b, method, PRE, samples=4, ig_steps=8)
    assert first.shape == (48, 48) and torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert first.abs().sum() > 0


def test_gradcam_must_explain_one_image_at_a_time(pair):
    from captum.attr import LayerAttribution, LayerGradCam

    model = smooth_resnet18()
    x_a, x_b = pair
    with torch.no_grad():
        e_a, e_b = model(x_a), model(x_b)
    module = model.backbone.stage_output_module("layer4")
    joint = LayerGradCam(joint_similarity(model), module).attribute((x_a, x_b), relu_attributions=True)
    joint = LayerAttribution.interpolate(joint, (48, 48), "bilinear")[0, 0]
    # the hook kept only the second run of the backbone: the "joint" map is B's map
    assert torch.allclose(joint, gradcam(model, x_b, e_a), atol=1e-6)
    assert not torch.allclose(joint, gradcam(model, x_a, e_b), atol=1e-3)


def test_explain_pair_covers_both_images(pair):
    model = smooth_resnet18()
    maps = explain_pair(model, *pair, PRE, methods=("saliency", "integrated_gradients"), ig_steps=8)
    assert set(maps) == {"saliency", "integrated_gradients"}
    ig = maps["integrated_gradients"]
    assert ig.map_a.shape == ig.map_b.shape == (48, 48) and ig.delta_a is not None and ig.delta_b is not None
    assert maps["saliency"].delta_a is None


def test_decomposition_maps_sum_to_the_similarity(pair):
    model = build_embedder("efficientnet_lite0")
    x_a, x_b = (torch.nn.functional.interpolate(x, size=96) for x in pair)
    map_a, map_b, s = similarity_decomposition(model, x_a, x_b)
    with torch.no_grad():
        cosine = float((model(x_a) * model(x_b)).sum())
    assert s == pytest.approx(cosine, abs=1e-5)
    assert float(map_a.sum()) == pytest.approx(cosine, abs=1e-5)
    assert float(map_b.sum()) == pytest.approx(cosine, abs=1e-5)
    assert map_a.shape == (3, 3)
    # the point-to-point maps of every location of A add up to the similarity too
    total = sum(float(point_to_point(model, x_a, x_b, (16 + 32 * r, 16 + 32 * c)).sum())
                for r in range(3) for c in range(3))
    assert total == pytest.approx(cosine, abs=1e-5)


def test_decomposition_refuses_a_head_or_several_layers(pair):
    with pytest.raises(ValueError, match="one pooled layer and no head"):
        similarity_decomposition(build_embedder("resnet18", None, layers=("layer3", "layer4")), *pair)


def test_has_decomposition_only_for_one_pooled_layer_without_a_head():
    assert has_decomposition(build_embedder("resnet18", None))
    assert not has_decomposition(build_embedder("resnet18", None, layers=("layer3", "layer4")))
    assert not has_decomposition(build_embedder("resnet18", None, head={"kind": "linear", "out_dim": 8}))


def test_strongest_point_is_the_centre_of_the_largest_cell_in_pixels():
    cells = torch.zeros(3, 4)
    cells[2, 1] = 5.0
    assert strongest_point(cells, 96) == (80, 36)  # cell rows are 32 px, columns 24 px
    assert strongest_point(torch.eye(2) * torch.tensor([1.0, 2.0]), 64) == (48, 48)


def test_deletion_and_insertion_curves_start_and_end_where_they_must(pair):
    model = smooth_resnet18()
    x_a, x_b = pair
    with torch.no_grad():
        e_b = model(x_b)
        s = float(similarity_given(model)(x_a, e_b))
    saliency_map = torch.rand(48, 48, generator=torch.Generator().manual_seed(0))
    result = deletion_insertion(model, x_a, e_b, saliency_map, PRE, steps=8)
    assert len(result["deletion"]) == len(result["insertion"]) == 9
    assert result["deletion"][0] == pytest.approx(s, abs=1e-5)
    assert result["insertion"][-1] == pytest.approx(s, abs=1e-5)
    assert 0 <= abs(result["deletion_auc"]) <= 1 and 0 <= abs(result["insertion_auc"]) <= 1


def test_faithfulness_metrics_return_numbers(pair):
    model = smooth_resnet18()
    x_a, x_b = pair
    with torch.no_grad():
        e_b = model(x_b)
    saliency_map, _ = attribute(model, x_a, e_b, "saliency", PRE)
    infidelity = infidelity_score(model, x_a, e_b, saliency_map)
    sensitivity = sensitivity_score(model, x_a, e_b, "saliency", PRE, n_perturb=2)
    assert infidelity >= 0 and sensitivity > 0
    torch.rand(3)  # whatever the caller's random state, the perturbations are drawn with the seed
    assert infidelity_score(model, x_a, e_b, saliency_map) == infidelity
    assert sensitivity_score(model, x_a, e_b, "saliency", PRE, n_perturb=2) == sensitivity
    assert sensitivity_score(model, x_a, e_b, "saliency", PRE, n_perturb=2, seed=1) != sensitivity


def test_randomised_copy_changes_only_the_top_stage():
    model = smooth_resnet18()
    randomised = randomised_copy(model)
    before, after = model.state_dict(), randomised.state_dict()
    assert torch.equal(before["backbone.net.layer3.0.conv1.weight"], after["backbone.net.layer3.0.conv1.weight"])
    assert not torch.equal(before["backbone.net.layer4.0.conv1.weight"], after["backbone.net.layer4.0.conv1.weight"])


def test_rank_correlation():
    values = torch.arange(12.0).view(3, 4)
    assert rank_correlation(values, values * 2 + 1) == pytest.approx(1.0)
    assert rank_correlation(values, -values) == pytest.approx(-1.0)


def test_plot_pair_maps_draws_a_row_per_method():
    import matplotlib
    matplotlib.use("Agg")
    image = np.zeros((48, 48, 3))
    fig = plot_pair_maps(image, image, {"saliency": (torch.rand(48, 48), torch.rand(48, 48)),
                                          "integrated_gradients": (torch.randn(48, 48), torch.randn(48, 48))})
    assert len(fig.axes) == 8  # 2 rows x (image + 2 methods), and a colour bar for each kind of map
    assert fig.axes[1].get_title() == "saliency\n(magnitude)" and fig.axes[2].get_title() == "integrated gradients\n(signed)"
    assert [fig.axes[k].get_xlabel() for k in (6, 7)] == ["signed maps: effect on the similarity",
                                                          "magnitude maps: how much it matters"]
    assert [t.get_text() for t in fig.axes[6].get_xticklabels()] == ["lowers", "0", "raises"]
    assert to_image(PRE(__import__("PIL").Image.new("RGB", (48, 48), (255, 0, 0)))[None], PRE)[0, 0, 0] == pytest.approx(1.0)


def test_faithfulness_table_rows(pair):
    model = smooth_resnet18()
    rows = faithfulness(model, *pair, PRE, methods=("saliency", "gradcam"), sensitivity=False)
    assert [row["method"] for row in rows] == ["saliency", "gradcam"]
    for row in rows:
        assert -1 <= row["randomisation_correlation"] <= 1 and row["infidelity"] >= 0
        assert len(row["deletion"]) == 17 and row["sensitivity"] is None


def test_overlay_says_when_a_magnitude_map_is_empty_and_draws_the_image_alone_for_none():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.zeros((8, 8, 3))
    fig, axes = plt.subplots(1, 3)
    overlay(axes[0], image, torch.zeros(8, 8), signed=False)  # Grad-CAM with nothing that raises the similarity
    overlay(axes[1], image, None, signed=False)
    overlay(axes[2], image, torch.rand(8, 8), signed=False)
    assert [t.get_text() for t in axes[0].texts] == ["nothing here\nraises the similarity"]
    assert [len(ax.images) for ax in axes] == [1, 1, 2] and not axes[2].texts
    plt.close(fig)


def test_smooth_map_pools_speckle_into_regions_and_keeps_their_signs():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ttl_utils.present.pictures import photo_row, smooth_map

    rng = np.random.default_rng(0)
    blobs = np.zeros((64, 64))
    blobs[8:24, 8:24], blobs[40:56, 40:56] = 1.0, -1.0  # a region that raises the similarity, one that lowers it
    speckled = blobs + rng.normal(scale=3.0, size=blobs.shape)  # pixel noise three times the regions' size
    smoothed = smooth_map(torch.as_tensor(speckled), 4.0)
    assert smoothed.shape == (64, 64) and smoothed.sum() == pytest.approx(speckled.sum(), rel=1e-6)
    assert smoothed[16, 16] > 0 > smoothed[48, 48]
    assert np.abs(smoothed - blobs).mean() < 0.5 * np.abs(speckled - blobs).mean()
    assert np.array_equal(smooth_map(speckled, 0), speckled)
    with pytest.raises(ValueError, match="sigma must be 0 or more, got -1"):
        smooth_map(speckled, -1)
    fig = photo_row([np.zeros((64, 64, 3))] * 2, maps=[speckled, None], smooth=4.0)
    drawn = fig.axes[0].images[1].get_array()
    assert np.allclose(drawn, smoothed) and len(fig.axes[1].images) == 1
    plt.close(fig)
