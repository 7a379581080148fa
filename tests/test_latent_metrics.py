"""The proximity metrics of lessons 01 and 03b on codes whose answer is known."""

import numpy as np
import pytest

from vae_teach.latent_metrics import empty_points, proximity_metrics


@pytest.fixture
def clusters():
    """Three well-separated classes in 'pixels' (6-D) and 2-D codes."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    centres = rng.normal(scale=10, size=(3, 6))
    X = centres[y] + rng.normal(size=(90, 6))
    return X, y


def test_codes_that_keep_the_pixels_order_score_perfectly(clusters):
    X, y = clusters
    m = proximity_metrics(X, X[:, :2], y)       # codes: two of the six pixel coordinates
    assert m.pixel_nn_other_digit == 0.0
    same = proximity_metrics(X, X, y)           # codes = the images themselves
    assert same.rank_correlation == pytest.approx(1.0)
    assert same.nn_far == 0.0 and same.code_nn_other_digit == same.pixel_nn_other_digit == 0.0
    assert m.rank_correlation > 0.5


def test_shuffled_codes_lose_the_order_and_the_classes(clusters):
    X, y = clusters
    codes = np.random.default_rng(1).permutation(X)[:, :2]   # codes unrelated to their images
    m = proximity_metrics(X, codes, y)
    assert abs(m.rank_correlation) < 0.2
    assert m.code_nn_other_digit > 0.4 and m.nn_far > 0.2
    with pytest.raises(ValueError, match="same length"):
        proximity_metrics(X, codes[:-1], y)


def test_empty_points_find_the_hole_in_a_ring():
    angle = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    codes = np.stack([np.cos(angle), np.sin(angle)], axis=1)       # a ring: empty in the middle
    Z, in_gaps, gap = empty_points(codes, n_points=3)
    assert Z.shape == (3, 2) and in_gaps.shape == (3,) and np.all(np.diff(in_gaps) <= 0)
    assert np.linalg.norm(Z[0]) < 0.05, "the emptiest point of a ring is its centre"
    assert in_gaps[0] > 0.95 / gap > 50
    with pytest.raises(ValueError, match="2-D"):
        empty_points(np.zeros((10, 3)))
