"""Sample-quality scores on cases with known answers, and the feature classifier they use."""

import numpy as np
import pytest

from vae_teach import sample_quality as sq
from vae_teach.classifier import Classifier, train_classifier
from vae_teach.numpy_vae.gradcheck import numerical_gradient, relative_error


def test_frechet_distance_of_gaussians_has_its_closed_form():
    # diagonal covariances commute: the distance is |d mu|^2 + sum (s1 - s2)^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 2.0, 1.5])
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert sq.frechet_distance_of_gaussians(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(exact)


def test_frechet_distance_of_samples():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20000, 4))
    assert sq.frechet_distance(A, A) == pytest.approx(0.0, abs=1e-8), "identical sets score zero"
    shift = np.array([0.5, -0.5, 0.0, 1.0])                 # a shifted copy: |shift|^2 = 1.5 exactly
    assert sq.frechet_distance(A, A + shift) == pytest.approx(1.5, rel=1e-6)
    B = rng.standard_normal((20000, 4)) * 2.0 + shift          # independent draw: 1.5 + 4 * (2 - 1)^2 = 5.5
    assert sq.frechet_distance(A, B) == pytest.approx(5.5, abs=0.15)


def test_kernel_distance_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    same = sq.kernel_distance(A, B, seed=0)
    assert abs(same.mean) < 4 * same.standard_error + 1e-3, same
    shifted = sq.kernel_distance(A, B + 0.5, seed=0)
    assert shifted.mean > 20 * shifted.standard_error and shifted.mean > 10 * abs(same.mean)


def test_precision_and_recall_of_identical_disjoint_and_half_covered_sets():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((600, 2))
    assert sq.precision_recall(real, real) == sq.PrecisionRecall(1.0, 1.0, 3)
    far = sq.precision_recall(real, real + 100.0)
    assert (far.precision, far.recall) == (0.0, 0.0)
    half = real[real[:, 0] > 0]                                # realistic samples, half the variety
    pr = sq.precision_recall(real, half + 0.01)
    assert pr.precision > 0.95 and 0.4 < pr.recall < 0.65, pr


@pytest.mark.parametrize("call, match", [
    (lambda: sq.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4))), "same width"),
    (lambda: sq.frechet_distance(np.zeros(5), np.zeros((5, 4))), r"F_real must be a 2-D array"),
    (lambda: sq.kernel_distance(np.full((5, 2), np.nan), np.zeros((5, 2))), "NaN or infinite"),
    (lambda: sq.precision_recall(np.zeros((5, 2)), np.zeros((5, 2)), k=5), "k must be at least 1"),
])
def test_bad_input_says_what_to_do(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_classifier_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    model = Classifier(6, n_classes=3, hidden_dims=(5, 4), seed=0)
    # float64, and biases away from 0: with zero biases an image whose first layer is all zero puts the
    # next layer exactly at ReLU's kink, where a centred difference is one-sided
    model.params = {k: v.astype(np.float64) + (0.1 * rng.standard_normal(v.shape) if k.endswith("_b") else 0)
                    for k, v in model.params.items()}
    X, y = rng.random((7, 6)), rng.integers(0, 3, 7)
    _, grads = model.loss_and_grads(X, y)
    for name, w in model.params.items():
        numeric = numerical_gradient(lambda: model.loss_and_grads(X, y)[0], w)
        assert relative_error(numeric, grads[name]) < 1e-6, name


def test_classifier_learns_the_digits():
    from vae_teach.data import load_dataset

    data = load_dataset("mnist-5k")
    clf = train_classifier(data.X_train, data.y_train, epochs=15, seed=0)
    # seeds 0-2: 0.946-0.949 on the 1,000 test digits
    assert clf.accuracy(data.X_test, data.y_test) > 0.93
    assert clf.features(data.X_test[:10]).shape == (10, 128)
    with pytest.raises(ValueError, match=r"X must be \(N, 784\)"):
        clf.features(data.X_test[:10, :100])
