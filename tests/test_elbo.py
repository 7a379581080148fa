"""The reference maths in vae_teach.elbo, checked against scipy.stats and Monte Carlo."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp as scipy_logsumexp

from vae_teach import elbo


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_gaussian_kl_matches_scipy_entropy_and_cross_entropy(rng):
    mu = rng.normal(size=(5, 3))
    logvar = rng.normal(size=(5, 3))
    sigma = np.exp(0.5 * logvar)
    # KL(q || p) = -H(q) - E_q[log p], each term closed form in scipy.
    entropy = stats.norm(mu, sigma).entropy().sum(axis=1)
    cross_entropy = (0.5 * np.log(2 * np.pi) + 0.5 * (sigma**2 + mu**2)).sum(axis=1)
    np.testing.assert_allclose(elbo.gaussian_kl(mu, logvar), cross_entropy - entropy, rtol=1e-12)


def test_gaussian_kl_matches_monte_carlo(rng):
    mu, logvar = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.4]])
    Z = elbo.reparameterize(mu, logvar, rng.standard_normal((400_000, 1, 2)))
    log_q = stats.norm(mu, np.exp(0.5 * logvar)).logpdf(Z).sum(-1)
    log_p = stats.norm(0, 1).logpdf(Z).sum(-1)
    mc = (log_q - log_p).mean()
    se = (log_q - log_p).std() / np.sqrt(len(Z))
    assert abs(mc - elbo.gaussian_kl(mu, logvar)[0]) < 4 * se, "closed-form KL is off the Monte Carlo value"


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert elbo.gaussian_kl(np.zeros((1, 4)), np.zeros((1, 4)))[0] == 0.0
    assert elbo.gaussian_kl(np.full((1, 4), 0.1), np.zeros((1, 4)))[0] > 0


def test_bernoulli_log_likelihood_matches_scipy_on_binary_pixels(rng):
    logits = rng.normal(scale=3, size=(4, 6))
    X = (rng.uniform(size=(4, 6)) < 0.5).astype(float)
    expected = stats.bernoulli(elbo.sigmoid(logits)).logpmf(X).sum(axis=1)
    np.testing.assert_allclose(elbo.bernoulli_log_likelihood(X, logits), expected, rtol=1e-12)


def test_bernoulli_log_likelihood_is_finite_where_probabilities_round_to_0_or_1():
    logits = np.array([[800.0, -800.0, 40.0]])
    X = np.array([[0.0, 1.0, 0.0]])
    value = elbo.bernoulli_log_likelihood(X, logits)
    np.testing.assert_allclose(value, [-800.0 - 800.0 - 40.0], rtol=1e-12)


def test_gaussian_log_likelihood_matches_scipy(rng):
    X, mean = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    logvar = rng.normal(size=(3, 5))
    expected = stats.norm(mean, np.exp(0.5 * logvar)).logpdf(X).sum(axis=1)
    np.testing.assert_allclose(elbo.gaussian_log_likelihood(X, mean, logvar), expected, rtol=1e-12)
    np.testing.assert_allclose(elbo.standard_normal_log_density(X), stats.norm.logpdf(X).sum(1), rtol=1e-12)


def test_reparameterize_uses_the_standard_deviation_not_the_variance(rng):
    mu, logvar = np.array([[1.0, -2.0]]), np.log(np.array([[4.0, 0.25]]))  # sigma = 2, 0.5
    Z = elbo.reparameterize(mu, logvar, rng.standard_normal((200_000, 1, 2)))
    np.testing.assert_allclose(Z.mean(axis=0), mu, atol=0.02)
    np.testing.assert_allclose(Z.std(axis=0), [[2.0, 0.5]], rtol=0.01)


def test_elbo_estimate_equals_mean_log_likelihood_minus_kl(rng):
    X = (rng.uniform(size=(3, 4)) < 0.5).astype(float)
    mu, logvar = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    W = rng.normal(size=(2, 4))
    eps = rng.standard_normal((5, 3, 2))
    value = elbo.elbo_estimate(X, mu, logvar, eps, lambda Z: Z @ W)
    Z = mu + np.exp(0.5 * logvar) * eps
    by_hand = np.mean([stats.bernoulli(elbo.sigmoid(Z[k] @ W)).logpmf(X).sum(1) for k in range(5)], axis=0)
    np.testing.assert_allclose(value, by_hand - elbo.gaussian_kl(mu, logvar), rtol=1e-12)


def test_logsumexp_matches_scipy_and_survives_huge_values(rng):
    a = rng.normal(scale=50, size=(7, 3))
    np.testing.assert_allclose(elbo.logsumexp(a, axis=0), scipy_logsumexp(a, axis=0), rtol=1e-12)
    np.testing.assert_allclose(elbo.logsumexp(np.array([1000.0, 1000.0])), 1000 + np.log(2), rtol=1e-15)
    assert elbo.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


def test_iwae_bound_on_a_conjugate_model_approaches_log_px_and_is_monotone(rng):
    """z ~ N(0, 1), x | z ~ N(z, 1): log p(x) = log N(x; 0, 2) exactly."""
    x = np.array([1.3, -0.4])
    mu, logvar = np.array([[0.2], [0.1]]), np.array([[0.3], [0.3]])  # a deliberately poor q

    def bound(k, seed):
        eps = np.random.default_rng(seed).standard_normal((k, 2, 1))
        Z = elbo.reparameterize(mu, logvar, eps)
        log_px_z = stats.norm(Z[..., 0], 1).logpdf(x)
        return elbo.iwae_bound(elbo.log_importance_weights(log_px_z, Z, mu, logvar))

    exact = stats.norm(0, np.sqrt(2)).logpdf(x)
    averaged = {k: np.mean([bound(k, s) for s in range(200)], axis=0) for k in (1, 10, 100)}
    assert np.all(averaged[1] < averaged[10]) and np.all(averaged[10] < averaged[100]), averaged
    assert np.all(averaged[100] <= exact + 1e-3), (averaged[100], exact)
    np.testing.assert_allclose(averaged[100], exact, atol=5e-3)


def test_iwae_bound_with_one_sample_is_the_log_weight(rng):
    log_w = rng.normal(size=(1, 4))
    np.testing.assert_allclose(elbo.iwae_bound(log_w), log_w[0])
