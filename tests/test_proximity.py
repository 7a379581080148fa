"""The proximity metrics of lesson 01 (and of the VAE's code space), on cases with known answers."""

import numpy as np
import pytest

from vae_teach import elbo, proximity


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def two_blobs(rng, n=50, centre=10.0, dim=2):
    """Two round clusters of n points, around 0 and around (centre, 0, ...), labelled 0 and 1."""
    A = rng.normal(size=(n, dim))
    B = rng.normal(size=(n, dim))
    B[:, 0] += centre
    return np.concatenate([A, B]), np.repeat([0, 1], n)


def test_rank_correlation_is_one_for_distance_preserving_codes_and_near_zero_for_random_ones(rng):
    X = rng.uniform(size=(60, 20))
    assert proximity.distance_rank_correlation(X, 3.0 * X + 1.0) == pytest.approx(1.0)
    Q, _ = np.linalg.qr(rng.normal(size=(20, 20)))                     # a rotation keeps every distance
    assert proximity.distance_rank_correlation(X, X @ Q) == pytest.approx(1.0)
    assert abs(proximity.distance_rank_correlation(X, rng.normal(size=(60, 2)))) < 0.15
    with pytest.raises(ValueError, match="same number of rows"):
        proximity.distance_rank_correlation(X, X[:10])


def test_nearest_neighbour_other_label(rng):
    points, labels = two_blobs(rng)
    assert proximity.nearest_neighbour_other_label(points, labels) == 0.0
    line = np.arange(10.0)[:, None]
    assert proximity.nearest_neighbour_other_label(line, np.arange(10) % 2) == 1.0  # neighbours alternate
    uneven = np.array([[0.0], [1.0], [1.5], [10.0], [11.0], [11.4]])
    assert proximity.nearest_neighbour_other_label(uneven, [0, 0, 1, 1, 1, 1]) == pytest.approx(2 / 6)  # 1 and 1.5


def test_pixel_neighbour_code_ratio_finds_the_neighbour_and_scales_by_the_median_pair():
    X = np.array([[0.0], [1.0], [10.0], [11.5]])
    codes = np.array([[0.0], [5.0], [1.0], [2.0]])
    ratio, pixel_nn = proximity.pixel_neighbour_code_ratio(X, codes)
    np.testing.assert_array_equal(pixel_nn, [1, 0, 3, 2])
    median_pair = np.median([5, 1, 2, 4, 3, 1])                       # all 6 code distances
    np.testing.assert_allclose(ratio, np.array([5, 5, 1, 1]) / median_pair)


def test_proximity_metrics_of_distance_preserving_codes(rng):
    X, labels = two_blobs(rng, dim=5)
    metrics = proximity.proximity_metrics(X, 2.0 * X, labels)
    assert set(metrics) == {"rank_correlation", "nearest_code_other_label", "pixel_neighbour_far_in_code"}
    assert metrics["rank_correlation"] == pytest.approx(1.0)
    assert metrics["nearest_code_other_label"] == 0.0 and metrics["pixel_neighbour_far_in_code"] == 0.0
    shuffled = proximity.proximity_metrics(X, rng.permutation(X), labels)  # codes no longer follow images
    assert shuffled["nearest_code_other_label"] > 0.3 and shuffled["pixel_neighbour_far_in_code"] > 0.2


def test_median_neighbour_gap_of_a_grid():
    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0)), axis=-1).reshape(-1, 2) * 0.5
    assert proximity.median_neighbour_gap(grid) == pytest.approx(0.5)


def test_between_clusters_finds_the_middle_of_the_gap(rng):
    codes, labels = two_blobs(rng, n=200, centre=12.0)
    Z, pairs, distance = proximity.between_clusters(codes, labels, n=1)
    assert Z.shape == (1, 2) and pairs.tolist() == [[0, 1]] and distance.shape == (1,)
    assert abs(Z[0, 0] - 6.0) < 1.0 and abs(Z[0, 1]) < 0.5, f"expected near (6, 0), got {Z[0]}"
    d_a = np.linalg.norm(codes[labels == 0] - Z[0], axis=1).min()
    d_b = np.linalg.norm(codes[labels == 1] - Z[0], axis=1).min()
    assert abs(d_a - d_b) < 0.2, "the point should be about equally far from both clusters"
    assert distance[0] == pytest.approx(min(d_a, d_b) / proximity.median_neighbour_gap(codes))
    assert distance[0] > 5, "the gap between the blobs is wide: many median gaps"


def test_between_clusters_orders_the_pairs_by_emptiness(rng):
    codes, labels = two_blobs(rng, n=100, centre=8.0)
    third = rng.normal(size=(100, 2)) + [0.0, 30.0]
    codes, labels = np.concatenate([codes, third]), np.concatenate([labels, np.full(100, 2)])
    Z, pairs, distance = proximity.between_clusters(codes, labels, n=3)
    assert np.all(np.diff(distance) <= 0)
    assert pairs[-1].tolist() == [0, 1], "the two close blobs have the narrowest gap"
    with pytest.raises(ValueError, match="two classes"):
        proximity.between_clusters(codes, np.zeros(len(codes)))


def test_decoder_entropy():
    D = 7
    assert proximity.decoder_entropy(np.zeros((2, D))) == pytest.approx(np.full(2, D * np.log(2)))
    assert np.all(proximity.decoder_entropy(np.full((1, D), 40.0)) < 1e-12)
    logits = np.random.default_rng(0).normal(scale=3, size=(4, D))
    expected = -elbo.bernoulli_log_likelihood(elbo.sigmoid(logits), logits)  # BCE of the mean against itself
    np.testing.assert_allclose(proximity.decoder_entropy(logits), expected, rtol=1e-10)


def test_knn_judge_votes_and_ignores_brightness(rng):
    prototypes = rng.uniform(size=(3, 30)) ** 4                           # three distinct "digits"
    X_ref = np.repeat(prototypes, 5, axis=0) + 0.01 * rng.normal(size=(15, 30))
    y_ref = np.repeat([4, 7, 9], 5)
    label, share = proximity.knn_judge(0.2 * prototypes, X_ref, y_ref, k=5)  # faint copies
    np.testing.assert_array_equal(label, [4, 7, 9])
    np.testing.assert_array_equal(share, [1.0, 1.0, 1.0])
    blend = 0.5 * (prototypes[0] + prototypes[1])
    _, share = proximity.knn_judge(blend, X_ref, y_ref, k=10)
    assert share[0] == pytest.approx(0.5), "an even blend of two classes splits the vote"
    with pytest.raises(ValueError, match="k must be"):
        proximity.knn_judge(prototypes, X_ref, y_ref, k=16)


def test_empty_points_find_the_hole_in_a_ring():
    from vae_teach.proximity import empty_points

    angle = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    codes = np.stack([np.cos(angle), np.sin(angle)], axis=1)       # a ring: empty in the middle
    Z, in_gaps, gap = empty_points(codes, n_points=3)
    assert Z.shape == (3, 2) and in_gaps.shape == (3,) and np.all(np.diff(in_gaps) <= 0)
    assert np.linalg.norm(Z[0]) < 0.05, "the emptiest point of a ring is its centre"
    assert in_gaps[0] > 0.95 / gap > 50
    with pytest.raises(ValueError, match="2-D"):
        empty_points(np.zeros((10, 3)))
