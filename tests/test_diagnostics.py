"""Diagnostics where the answer is known: a linear-Gaussian encoder's I(x; z) in closed form,
a dimension switched off, and the rate-distortion split of the ELBO."""

import numpy as np
import pytest

from vae_teach import diagnostics
from vae_teach.evaluate import dataset_elbo
from vae_teach.interface import VAEConfig
from vae_teach.numpy_vae import NumpyVAE


class LinearGaussianEncoder:
    """q(z|x) = N(x A, diag(exp(logvar))): enough of the protocol for the encoder-only diagnostics."""

    def __init__(self, A, logvar):
        self.A, self.logvar = np.asarray(A, float), np.asarray(logvar, float)
        self.latent_dim = self.A.shape[1]

    def encode(self, X):
        mu = np.asarray(X) @ self.A
        return mu, np.broadcast_to(self.logvar, mu.shape).copy()


def closed_form_mutual_information(A, logvar):
    """x ~ N(0, I): q(z) = N(0, A^T A + S), so I(x; z) = 1/2 (log det(A^T A + S) - log det S)."""
    S = np.diag(np.exp(logvar))
    return 0.5 * (np.linalg.slogdet(A.T @ A + S)[1] - np.linalg.slogdet(S)[1])


def test_mutual_information_matches_the_closed_form_of_a_linear_gaussian_encoder():
    rng = np.random.default_rng(0)
    A = np.array([[1.0, 0.2], [0.0, 0.5], [0.3, 0.0]])        # (D=3, L=2)
    logvar = np.log([0.5, 0.8])
    X = rng.standard_normal((4000, 3))
    result = diagnostics.mutual_information(LinearGaussianEncoder(A, logvar), X, n_samples=2, seed=1)
    exact = closed_form_mutual_information(A, logvar)            # 0.721 nats; seeds 0-3 estimate 0.720-0.731
    assert abs(result.mutual_information - exact) < 0.05, (result.mutual_information, exact)
    # the rate splits into I(x; z) and the aggregate posterior's KL from the prior, up to Monte Carlo error
    assert abs(result.mutual_information + result.aggregate_kl - result.rate) < 0.05
    assert result.mutual_information < result.log_n


def test_an_encoder_that_ignores_x_carries_no_information_and_no_active_unit():
    X = np.random.default_rng(2).standard_normal((500, 3))
    constant = LinearGaussianEncoder(np.zeros((3, 2)), np.log([0.5, 2.0]))
    result = diagnostics.mutual_information(constant, X, seed=3)
    assert abs(result.mutual_information) < 1e-12          # q(z|x) = q(z) for every x
    assert diagnostics.active_units(constant, X).count == 0
    # all of its rate is the aggregate KL: KL(N(0, 0.5) || N(0, 1)) + KL(N(0, 2) || N(0, 1)) per image
    exact_rate = 0.5 * sum(v - 1 - np.log(v) for v in (0.5, 2.0))
    assert diagnostics.kl_per_dimension(constant, X).sum() == pytest.approx(exact_rate)


def test_active_units_count_the_dimensions_whose_mean_moves_with_x():
    X = np.random.default_rng(4).standard_normal((1000, 3))
    A = np.array([[1.0, 0.0, 0.05], [0.0, 0.0, 0.0], [0.0, 0.3, 0.0]])   # z2: var 0.09; z3: var 0.0025
    units = diagnostics.active_units(LinearGaussianEncoder(A, np.zeros(3)), X)
    assert units.count == 2 and units.variances[2] < 0.01 < units.variances[1]
    with pytest.raises(ValueError, match="threshold must be positive"):
        diagnostics.active_units(LinearGaussianEncoder(A, np.zeros(3)), X, threshold=0)


@pytest.fixture(scope="module")
def small_vae():
    from vae_teach.data import load_dataset
    from vae_teach.numpy_vae import train

    data = load_dataset("mnist-5k")
    model = NumpyVAE(VAEConfig(input_dim=784, hidden_dims=(64,), latent_dim=5), seed=0, dtype=np.float64)
    train(model, data.X_train[:1000], epochs=3, batch_size=100, lr=3e-3, seed=0, progress=False)
    return model, data.X_test[:200].astype(np.float64)


def test_distortion_plus_rate_is_minus_the_elbo(small_vae):
    model, X = small_vae
    rd = diagnostics.rate_distortion(model, X, n_samples=200, seed=0)
    elbo = dataset_elbo(model, X, n_samples=200, seed=5)
    assert rd.rate == pytest.approx(diagnostics.kl_per_dimension(model, X).sum())
    # both estimate the same expectation with independent noise: 200 samples leave ~0.1 nats of error
    assert abs(rd.elbo - elbo.mean()) < 0.5, (rd.elbo, elbo.mean())
    assert rd.distortion > 0 and rd.rate > 0


def test_the_rate_splits_into_information_and_aggregate_kl_on_a_trained_vae(small_vae):
    model, X = small_vae
    result = diagnostics.mutual_information(model, X, n_samples=20, seed=0)
    assert 0 < result.mutual_information <= result.log_n + 1e-9
    assert abs(result.mutual_information + result.aggregate_kl - result.rate) < 4 * result.standard_error + 0.1


@pytest.mark.parametrize("call", [
    lambda m, X: diagnostics.mutual_information(m, X, n_samples=0),
    lambda m, X: diagnostics.rate_distortion(m, X, n_samples=0),
])
def test_bad_sample_counts_say_what_to_pass(call):
    model = LinearGaussianEncoder(np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        call(model, np.zeros((4, 2)))


def test_a_one_dimensional_X_is_refused():
    with pytest.raises(ValueError, match=r"X must be a 2-D array"):
        diagnostics.kl_per_dimension(LinearGaussianEncoder(np.eye(2), np.zeros(2)), np.zeros(2))
