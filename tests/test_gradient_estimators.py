"""The reparameterisation and score-function gradient estimators: unbiased against exact
gradients, with variance that falls as 1/K, on objectives whose gradient is known."""

import numpy as np
import pytest

from vae_teach.gradient_estimators import (
    repeated_estimates,
    reparameterization_gradient,
    score_function_gradient,
    total_variance,
)
from vae_teach.linear_gaussian import LinearGaussian

L = 3


@pytest.fixture
def quadratic():
    """f(z) = -1/2 (z - a) A (z - a) + c, with E_q[f] = -1/2 [(mu - a) A (mu - a) + tr(A diag(sigma^2))] + c."""
    rng = np.random.default_rng(0)
    B = rng.normal(size=(L, L))
    A, a, c = B @ B.T + np.eye(L), rng.normal(size=L), 2.0
    mu, logvar = rng.normal(size=L), rng.normal(size=L) * 0.5

    def f(Z):
        d = Z - a
        return -0.5 * np.einsum("...i,ij,...j->...", d, A, d) + c

    def f_grad(Z):
        return -(Z - a) @ A

    exact = (-(mu - a) @ A, -0.5 * np.diag(A) * np.exp(logvar))
    return f, f_grad, mu, logvar, exact


def assert_unbiased(g_mu, g_logvar, exact, what):
    for g, e, name in ((g_mu, exact[0], "mu"), (g_logvar, exact[1], "logvar")):
        se = g.std(axis=0, ddof=1) / np.sqrt(len(g))
        assert np.all(np.abs(g.mean(axis=0) - e) < 5 * se + 1e-12), f"{what}: biased d/d{name}"


def test_both_estimators_are_unbiased_on_a_quadratic(quadratic):
    f, f_grad, mu, logvar, exact = quadratic
    rng = np.random.default_rng(1)
    assert_unbiased(*repeated_estimates(reparameterization_gradient, f_grad, mu, logvar, 4, 20_000, rng),
                    exact, "reparameterisation")
    assert_unbiased(*repeated_estimates(score_function_gradient, f, mu, logvar, 4, 20_000, rng),
                    exact, "score function")
    assert_unbiased(*repeated_estimates(score_function_gradient, f, mu, logvar, 4, 20_000, rng,
                                        baseline="leave-one-out"), exact, "score function with baseline")


def test_both_estimators_are_unbiased_on_the_linear_gaussian_expected_log_likelihood():
    model = LinearGaussian.random(5, L, noise_var=0.5, seed=3)
    rng = np.random.default_rng(4)
    X = model.sample(1, rng)                                   # (1, D)
    mu, logvar = rng.normal(size=(1, L)), rng.normal(size=(1, L)) - 1
    exact = tuple(g[0] for g in model.expected_log_likelihood_grad(X, mu, logvar))

    def f(Z):
        return model.log_likelihood(X, Z)

    def f_grad(Z):
        return model.log_likelihood_grad(X, Z)

    assert_unbiased(*repeated_estimates(reparameterization_gradient, f_grad, mu[0], logvar[0], 2, 20_000, rng),
                    exact, "reparameterisation")
    assert_unbiased(*repeated_estimates(score_function_gradient, f, mu[0], logvar[0], 2, 20_000, rng),
                    exact, "score function")


@pytest.mark.parametrize("which", ["reparameterization", "score"])
def test_variance_falls_as_one_over_k(quadratic, which):
    f, f_grad, mu, logvar, _ = quadratic
    estimator, fn = ((reparameterization_gradient, f_grad) if which == "reparameterization"
                     else (score_function_gradient, f))
    rng = np.random.default_rng(5)
    var = {K: total_variance(*repeated_estimates(estimator, fn, mu, logvar, K, 20_000, rng)) for K in (1, 4, 16)}
    assert 3.5 < var[1] / var[4] < 4.5, var
    assert 14 < var[1] / var[16] < 18, var


def test_reparameterization_has_lower_variance_here(quadratic):
    f, f_grad, mu, logvar, _ = quadratic
    rng = np.random.default_rng(6)
    rep = total_variance(*repeated_estimates(reparameterization_gradient, f_grad, mu, logvar, 8, 5000, rng))
    sf = total_variance(*repeated_estimates(score_function_gradient, f, mu, logvar, 8, 5000, rng))
    assert sf > 5 * rep


def test_same_rng_state_gives_the_same_noise():
    """Both draw eps first: with f(z) = z_0, the reparameterisation d/dmu is exactly e_0 (zero variance)."""
    mu, logvar = np.zeros((2, L)), np.zeros((2, L))
    g_mu, _ = reparameterization_gradient(lambda Z: np.broadcast_to([1.0, 0, 0], Z.shape), mu, logvar, 5,
                                          np.random.default_rng(0))
    np.testing.assert_array_equal(g_mu, np.broadcast_to([1.0, 0, 0], (2, L)))
    eps = np.random.default_rng(7).standard_normal((5, 2, L))
    g_mu, _ = score_function_gradient(lambda Z: Z[..., 0], mu, logvar, 5, np.random.default_rng(7))
    np.testing.assert_allclose(g_mu, (eps[..., :1] * eps).mean(0), rtol=1e-14)


def test_shapes_and_errors():
    rng = np.random.default_rng(0)
    mu, logvar = np.zeros((4, L)), np.zeros((4, L))
    g = reparameterization_gradient(lambda Z: -Z, mu, logvar, 3, rng)
    assert g[0].shape == g[1].shape == (4, L)
    g = score_function_gradient(lambda Z: -(Z ** 2).sum(-1), mu, logvar, 3, rng)
    assert g[0].shape == g[1].shape == (4, L)
    with pytest.raises(ValueError, match="same shape"):
        reparameterization_gradient(lambda Z: Z, mu, logvar[:, :2], 3, rng)
    with pytest.raises(ValueError, match="n_samples"):
        score_function_gradient(lambda Z: Z.sum(-1), mu, logvar, 0, rng)
    with pytest.raises(ValueError, match="shape of Z"):
        reparameterization_gradient(lambda Z: Z.sum(-1), mu, logvar, 3, rng)
    with pytest.raises(ValueError, match="one value per sample"):
        score_function_gradient(lambda Z: Z, mu, logvar, 3, rng)
    with pytest.raises(ValueError, match="baseline"):
        score_function_gradient(lambda Z: Z.sum(-1), mu, logvar, 3, rng, baseline="mean")
    with pytest.raises(ValueError, match="n_samples >= 2"):
        score_function_gradient(lambda Z: Z.sum(-1), mu, logvar, 1, rng, baseline="leave-one-out")
