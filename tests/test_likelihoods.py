"""Lesson 07's likelihoods in vae_teach.elbo: normalised where they claim to be, stable where
the textbook formula is not, and their gradients checked against centred differences."""

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import softmax as scipy_softmax

from vae_teach import elbo
from vae_teach.interface import LIKELIHOODS

# Logits across the range, including both sides of the series/direct switch at |a| = 1e-2,
# the singular point a = 0 (lambda = 1/2) and values where e^|a| overflows float64.
LOGITS = [-800.0, -40.0, -3.0, -0.3, -0.0101, -0.0099, -1e-7, 0.0, 1e-9, 0.004, 0.0100001, 0.7, 9.0, 800.0]


def _unnormalised_integral(a):
    lam = 1 / (1 + np.exp(-a))
    value, _ = integrate.quad(lambda x: lam**x * (1 - lam) ** (1 - x), 0, 1, epsabs=1e-13, epsrel=1e-12)
    return value


@pytest.mark.parametrize("a", [-12.0, -3.0, -0.3, -1e-3, 0.0, 1e-6, 0.02, 2.0, 8.0])  # quad loses digits beyond
def test_log_normalizer_is_minus_log_of_the_bernoulli_formula_integral(a):
    # The Bernoulli formula on x in [0, 1] integrates to 1 / C(lambda): not 1.
    integral = _unnormalised_integral(a)
    assert integral < 1.0
    assert elbo.continuous_bernoulli_log_normalizer(np.array(a)) == pytest.approx(-np.log(integral), rel=1e-10)


@pytest.mark.parametrize("a", [-4.0, 0.0, 1e-4, 3.0])
def test_continuous_bernoulli_density_integrates_to_one(a):
    value, _ = integrate.quad(
        lambda x: np.exp(elbo.continuous_bernoulli_log_likelihood(np.array([[x]]), np.array([[a]]))[0]), 0, 1)
    assert value == pytest.approx(1.0, abs=1e-10)


def test_log_normalizer_is_finite_smooth_and_at_least_log_2_everywhere():
    a = np.array(LOGITS)
    log_c = elbo.continuous_bernoulli_log_normalizer(a)
    assert np.all(np.isfinite(log_c)) and np.all(log_c >= np.log(2) - 1e-15)
    assert log_c[LOGITS.index(0.0)] == np.log(2)                 # C(1/2) = 2 exactly, no 0/0
    # log C(a) = log(a / tanh(a / 2)): check against that closed form where it is well conditioned.
    safe = np.abs(a) > 0.5
    np.testing.assert_allclose(log_c[safe], np.log(np.abs(a[safe])) - np.log(np.abs(np.tanh(a[safe] / 2))),
                               rtol=1e-14)
    # No jump where the series hands over to the direct formula.
    edge = np.array([np.nextafter(1e-2, 0), 1e-2])
    assert abs(np.diff(elbo.continuous_bernoulli_log_normalizer(edge))[0]) < 1e-15


def test_the_naive_formula_fails_at_one_half_and_the_package_does_not():
    lam = np.float32(0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        naive = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    assert np.isnan(naive)
    a32 = np.array([0.0, 1e-4, -1e-3, 0.5], dtype=np.float32)
    out = elbo.continuous_bernoulli_log_normalizer(a32)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


def test_log_normalizer_gradient_matches_centred_differences():
    a = np.array([-40.0, -3.0, -0.3, -0.0101, -0.0099, -1e-5, 0.0, 0.004, 0.0101, 0.7, 9.0])
    h = 1e-6
    numeric = (elbo.continuous_bernoulli_log_normalizer(a + h) - elbo.continuous_bernoulli_log_normalizer(a - h)) / (2 * h)
    np.testing.assert_allclose(elbo.continuous_bernoulli_log_normalizer_grad(a), numeric, atol=2e-9)
    assert elbo.continuous_bernoulli_log_normalizer_grad(np.array([800.0, -800.0])) == pytest.approx([1 / 800, -1 / 800])


@pytest.mark.parametrize("a", [-20.0, -2.0, -1e-3, 0.0, 5e-3, 0.4, 6.0])
def test_continuous_bernoulli_mean_is_the_integral_of_x_times_the_density(a):
    mean, _ = integrate.quad(
        lambda x: x * np.exp(elbo.continuous_bernoulli_log_likelihood(np.array([[x]]), np.array([[a]]))[0]), 0, 1)
    assert elbo.continuous_bernoulli_mean(np.array(a)) == pytest.approx(mean, abs=1e-10)
    lam = 1 / (1 + np.exp(-a))
    if abs(a) > 0.1:  # the shape parameter is not the mean: the mean lies nearer 1/2
        assert abs(elbo.continuous_bernoulli_mean(np.array(a)) - 0.5) < abs(lam - 0.5)


@pytest.mark.parametrize("a", [-60.0, -2.5, 0.0, 1e-8, 0.8, 700.0])
def test_continuous_bernoulli_samples_follow_its_cdf(a):
    u = np.random.default_rng(0).random(20_000)
    x = elbo.continuous_bernoulli_sample(np.full_like(u, a), u)
    assert np.all((x >= 0) & (x <= 1))

    def cdf(t):
        t = np.atleast_1d(t)
        return np.array([integrate.quad(
            lambda s: np.exp(elbo.continuous_bernoulli_log_likelihood(np.array([[s]]), np.array([[a]]))[0]),
            0, ti)[0] for ti in t])

    grid = np.linspace(0.05, 0.95, 7)
    empirical = np.array([np.mean(x <= g) for g in grid])
    np.testing.assert_allclose(empirical, cdf(grid), atol=0.015)   # ~4 standard errors at n = 20,000


def test_gaussian_likelihoods_use_the_sigmoid_mean_and_match_scipy():
    rng = np.random.default_rng(1)
    X, a = rng.random((3, 5)), rng.normal(size=(2, 3, 5))
    logvar = rng.normal(size=5)
    mean = 1 / (1 + np.exp(-a))
    expected = stats.norm.logpdf(X, mean, np.exp(0.5 * logvar)).sum(-1)
    np.testing.assert_allclose(elbo.log_likelihood(X, a, "gaussian-learned", logvar), expected, rtol=1e-12)
    expected_fixed = stats.norm.logpdf(X, mean, np.exp(0.5 * -2.0)).sum(-1)
    np.testing.assert_allclose(elbo.log_likelihood(X, a, "gaussian", -2.0), expected_fixed, rtol=1e-12)
    np.testing.assert_allclose(elbo.likelihood_mean(a, "gaussian"), mean, rtol=1e-14)


def test_log_likelihood_dispatch_covers_every_likelihood_and_refuses_others():
    rng = np.random.default_rng(2)
    X, a = rng.random((4, 6)), rng.normal(size=(4, 6))
    for name in LIKELIHOODS:
        assert elbo.log_likelihood(X, a, name).shape == (4,)
        assert elbo.likelihood_mean(a, name).shape == (4, 6)
    np.testing.assert_array_equal(elbo.log_likelihood(X, a), elbo.bernoulli_log_likelihood(X, a))
    np.testing.assert_allclose(elbo.log_likelihood(X, a, "continuous-bernoulli") - elbo.log_likelihood(X, a),
                               elbo.continuous_bernoulli_log_normalizer(a).sum(-1), rtol=1e-14)
    with pytest.raises(ValueError, match="unknown likelihood 'laplace'"):
        elbo.log_likelihood(X, a, "laplace")
    with pytest.raises(ValueError, match="unknown likelihood"):
        elbo.likelihood_mean(a, "poisson")


def test_elbo_estimate_takes_the_likelihood():
    rng = np.random.default_rng(3)
    X, mu, logvar, eps = rng.random((3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(5, 3, 2))
    W = rng.normal(size=(2, 4))
    Z = mu + np.exp(0.5 * logvar) * eps
    expected = elbo.log_likelihood(X, Z @ W, "gaussian", -1.0).mean(0) - elbo.gaussian_kl(mu, logvar)
    np.testing.assert_allclose(elbo.elbo_estimate(X, mu, logvar, eps, lambda z: z @ W, "gaussian", -1.0),
                               expected, rtol=1e-13)


def test_softmax_is_normalised_and_matches_scipy_even_for_huge_log_weights():
    a = np.random.default_rng(4).normal(size=(6, 3)) * 400 - 2000
    w = elbo.softmax(a, axis=0)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-14)
    np.testing.assert_allclose(w, scipy_softmax(a, axis=0), rtol=1e-12, atol=1e-300)
