"""Evaluation on any protocol model, checked on a model whose log p(x) is exact.

The model: z ~ N(0, I_L), x | z ~ N(A z + b, s^2 I_D) (probabilistic PCA), so
p(x) = N(b, A A^T + s^2 I) and the posterior p(z|x) is Gaussian and known.
"""

import numpy as np
import pytest
from scipy import stats

from vae_teach import elbo
from vae_teach.evaluate import dataset_elbo, importance_sampled_log_likelihood
from vae_teach.interface import draw_noise


class LinearGaussianModel:
    """Meets the protocol; its encoder is the exact posterior, shifted by ``encoder_error``."""

    def __init__(self, D=5, L=2, s=0.5, encoder_error=0.0, seed=0):
        rng = np.random.default_rng(seed)
        self.A, self.b, self.s = rng.normal(size=(D, L)), rng.normal(size=D), s
        self.latent_dim, self.encoder_error = L, encoder_error
        precision = np.eye(L) + self.A.T @ self.A / s**2
        self.post_cov = np.linalg.inv(precision)

    def exact_log_px(self, X):
        cov = self.A @ self.A.T + self.s**2 * np.eye(len(self.b))
        return stats.multivariate_normal(self.b, cov).logpdf(X)

    def encode(self, X):
        # a diagonal q: the exact mean, and the exact marginal variances only if the posterior is diagonal
        mu = (X - self.b) @ self.A @ self.post_cov.T / self.s**2 + self.encoder_error
        logvar = np.broadcast_to(np.log(np.diag(self.post_cov)), mu.shape)
        return mu, logvar

    def decode(self, Z):
        return Z @ self.A.T + self.b

    def log_likelihood(self, X, Z):
        return elbo.gaussian_log_likelihood(X, self.decode(Z), 2 * np.log(self.s))

    def elbo(self, X, n_samples=1, seed=0):
        mu, logvar = self.encode(X)
        Z = elbo.reparameterize(mu, logvar, draw_noise(seed, n_samples, len(X), self.latent_dim))
        log_px = np.stack([self.log_likelihood(X, z) for z in Z])
        return log_px.mean(0) - elbo.gaussian_kl(mu, logvar)


@pytest.fixture
def model_and_data():
    model = LinearGaussianModel(encoder_error=0.3)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2)) @ model.A.T + model.b + model.s * rng.normal(size=(40, 5))
    return model, X


def test_importance_sampling_approaches_the_exact_log_likelihood(model_and_data):
    model, X = model_and_data
    exact = model.exact_log_px(X)
    estimate = importance_sampled_log_likelihood(model, X, k=5000, batch_size=16, samples_per_chunk=700)
    assert estimate.k == 5000 and estimate.per_example.shape == (40,)
    np.testing.assert_allclose(estimate.per_example, exact, atol=0.1)  # Monte Carlo noise per example
    assert abs(estimate.mean - exact.mean()) < 0.02, (estimate.mean, exact.mean())
    assert estimate.standard_error == pytest.approx(exact.std(ddof=1) / np.sqrt(40), rel=0.05)


def test_elbo_below_iwae_k_below_iwae_larger_k_below_log_px(model_and_data):
    model, X = model_and_data
    exact = model.exact_log_px(X).mean()
    bound = dataset_elbo(model, X, n_samples=2000).mean()
    iwae = [importance_sampled_log_likelihood(model, X, k=k, seed=s).mean
            for k in (1, 10, 100) for s in range(1)]
    assert bound < iwae[1] < iwae[2] < exact, (bound, iwae, exact)


def test_results_do_not_depend_on_batching(model_and_data):
    model, X = model_and_data
    a = importance_sampled_log_likelihood(model, X, k=50, batch_size=40, samples_per_chunk=50)
    b = importance_sampled_log_likelihood(model, X, k=50, batch_size=40, samples_per_chunk=7)
    # Different chunking draws different noise; both are estimates of the same bound.
    np.testing.assert_allclose(a.mean, b.mean, atol=0.05)
    np.testing.assert_array_equal(dataset_elbo(model, X, batch_size=7), dataset_elbo(model, X, batch_size=7))
    with pytest.raises(ValueError, match="must be >= 1"):
        importance_sampled_log_likelihood(model, X, k=0)
