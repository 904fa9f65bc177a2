"""The procedural demo dataset: deterministic, two styles, and a meaningful benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttl_utils.data.demo import make_demo_pairs, render_demo_pair
from ttl_utils.evaluate.embeddings import embed
from ttl_utils.evaluate.metrics import recall_at_k
from ttl_utils.evaluate.ranking import rank_of_match
from ttl_utils.models.embedder import build_embedder
from ttl_utils.models.preprocessing import Preprocessing


def test_same_seed_same_pixels_and_prefix_stable():
    a = make_demo_pairs(5, 48, seed=7)
    b = make_demo_pairs(3, 48, seed=7)
    assert all(np.array_equal(a.left[i], b.left[i]) and np.array_equal(a.right[i], b.right[i]) for i in range(3))
    assert a.fingerprint == make_demo_pairs(5, 48, seed=7).fingerprint != b.fingerprint
    c = make_demo_pairs(5, 48, seed=8)
    assert not np.array_equal(a.left[0], c.left[0])


def test_images_are_rgb_uint8_of_the_asked_size():
    left, right = render_demo_pair(0, size=40)
    assert left.shape == right.shape == (40, 40, 3) and left.dtype == np.uint8


def test_two_styles_flat_cartoon_colours_and_a_busy_photo():
    pairs = make_demo_pairs(30, 64)

    def n_colours(image):
        return len(np.unique(image.reshape(-1, 3), axis=0))

    def modal_share(image):  # a flat background is one colour covering much of the image
        return np.unique(image.reshape(-1, 3), axis=0, return_counts=True)[1].max() / (64 * 64)

    assert np.median([n_colours(x) for x in pairs.left]) > 5 * np.median([n_colours(x) for x in pairs.right])
    assert np.median([modal_share(x) for x in pairs.right]) > 0.3
    assert np.median([modal_share(x) for x in pairs.left]) < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_pairs >= 1"):
        make_demo_pairs(0)


@pytest.mark.slow
def test_imagenet_features_find_partners_above_chance_but_far_from_always():
    pairs = make_demo_pairs(500, 128, seed=0)
    model = build_embedder("efficientnet_lite0")
    native = Preprocessing(resize=128, crop=128)
    left, right = (embed(model, side, native, num_workers=0) for side in (pairs.left, pairs.right))
    r1 = recall_at_k(rank_of_match(left, right), 1)
    assert 0.05 <= r1 <= 0.5, f"EfficientNet-Lite0 R@1 among 500 = {r1:.3f}"
    # and matching needs more than pixel equality: raw pixels do worse than the features
    pixels = [torch.from_numpy(np.stack(s)).float().flatten(1) for s in (pairs.left, pairs.right)]
    assert recall_at_k(rank_of_match(*pixels), 1) < r1
