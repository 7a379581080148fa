"""The linear-Gaussian model (probabilistic PCA): exact log p(x), posterior and ELBO, checked
against scipy.stats.multivariate_normal, Gaussian conditioning, finite differences and Monte Carlo."""

import numpy as np
import pytest
from scipy import stats

from vae_teach import elbo
from vae_teach.evaluate import dataset_elbo, importance_sampled_log_likelihood
from vae_teach.interface import VAEModel, param_shapes
from vae_teach.linear_gaussian import (
    LinearGaussian,
    LinearGaussianVAE,
    gaussian_entropy_full,
    gaussian_kl_full,
)

D, L = 6, 3


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def model():
    return LinearGaussian.random(D, L, noise_var=0.3, seed=1)


def random_spd(rng, n, L):
    A = rng.normal(size=(n, L, L))
    return A @ np.swapaxes(A, 1, 2) / L + 0.1 * np.eye(L)


def test_log_marginal_matches_scipy(model, rng):
    X = model.sample(20, rng)
    expected = stats.multivariate_normal(model.b, model.W.T @ model.W + 0.3 * np.eye(D)).logpdf(X)
    np.testing.assert_allclose(model.log_marginal(X), expected, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(model.marginal_cov(), model.W.T @ model.W + 0.3 * np.eye(D), rtol=1e-14)


def test_posterior_matches_gaussian_conditioning(model, rng):
    X = model.sample(7, rng)
    C = model.marginal_cov()
    # joint of (z, x): cov(z, x) = W, so E[z|x] = (x - b) C^-1 W^T and Cov[z|x] = I - W C^-1 W^T
    mean_ref = (X - model.b) @ np.linalg.solve(C, model.W.T)
    cov_ref = np.eye(L) - model.W @ np.linalg.solve(C, model.W.T)
    mean, cov = model.posterior(X)
    assert mean.shape == (7, L) and cov.shape == (L, L)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-10, atol=1e-12)


def test_bayes_rule_holds_pointwise(model, rng):
    X = model.sample(4, rng)
    Z = rng.normal(size=(5, 4, L))
    mean, cov = model.posterior(X)
    log_post = np.stack([stats.multivariate_normal(mean[n], cov).logpdf(Z[:, n]) for n in range(4)], axis=1)
    np.testing.assert_allclose(model.log_joint(X, Z) - model.log_marginal(X), log_post, rtol=1e-10, atol=1e-10)


def test_log_likelihood_matches_scipy_and_broadcasts_over_samples(model, rng):
    X = model.sample(3, rng)
    Z = rng.normal(size=(4, 3, L))
    got = model.log_likelihood(X, Z)
    assert got.shape == (4, 3)
    ref = stats.norm(Z @ model.W + model.b, np.sqrt(0.3)).logpdf(X).sum(-1)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_elbo_is_below_log_marginal_and_the_gap_is_the_kl_to_the_posterior(model, rng):
    X = model.sample(50, rng)
    q_mu = model.posterior(X)[0] + rng.normal(size=(50, L))
    q_cov = random_spd(rng, 50, L)
    bound = model.elbo(X, q_mu, q_cov=q_cov)
    log_px = model.log_marginal(X)
    assert np.all(bound < log_px)
    np.testing.assert_allclose(log_px - bound, model.kl_to_posterior(X, q_mu, q_cov), rtol=1e-9, atol=1e-10)
    q_logvar = rng.normal(size=(50, L))
    np.testing.assert_allclose(log_px - model.elbo(X, q_mu, q_logvar=q_logvar),
                               model.kl_to_posterior(X, q_mu, q_logvar=q_logvar), rtol=1e-9, atol=1e-10)


def test_elbo_equals_log_marginal_at_the_true_posterior(model, rng):
    X = model.sample(10, rng)
    mean, cov = model.posterior(X)
    np.testing.assert_allclose(model.elbo(X, mean, q_cov=cov), model.log_marginal(X), rtol=0, atol=1e-10)
    assert np.all(np.abs(model.kl_to_posterior(X, mean, cov)) < 1e-10)


def test_elbo_matches_monte_carlo(model, rng):
    X = model.sample(2, rng)
    q_mu, q_logvar = rng.normal(size=(2, L)), rng.normal(size=(2, L)) - 1
    Z = elbo.reparameterize(q_mu, q_logvar, rng.standard_normal((200_000, 2, L)))
    log_w = model.log_joint(X, Z) - elbo.gaussian_log_likelihood(Z, q_mu, q_logvar)   # (K, 2)
    se = log_w.std(axis=0) / np.sqrt(len(Z))
    assert np.all(np.abs(log_w.mean(axis=0) - model.elbo(X, q_mu, q_logvar=q_logvar)) < 4 * se)
    ell = model.log_likelihood(X, Z)
    se = ell.std(axis=0) / np.sqrt(len(Z))
    assert np.all(np.abs(ell.mean(0) - model.expected_log_likelihood(X, q_mu, q_logvar=q_logvar)) < 4 * se)


def test_full_and_diagonal_covariances_agree(model, rng):
    X = model.sample(5, rng)
    q_mu, q_logvar = rng.normal(size=(5, L)), rng.normal(size=(5, L))
    cov = np.stack([np.diag(np.exp(v)) for v in q_logvar])
    np.testing.assert_allclose(model.elbo(X, q_mu, q_logvar=q_logvar), model.elbo(X, q_mu, q_cov=cov), rtol=1e-12)
    np.testing.assert_allclose(model.kl_to_prior(q_mu, q_cov=cov), elbo.gaussian_kl(q_mu, q_logvar), rtol=1e-12)
    np.testing.assert_allclose(gaussian_kl_full(q_mu, cov, np.zeros(L), np.eye(L)),
                               elbo.gaussian_kl(q_mu, q_logvar), rtol=1e-12)
    np.testing.assert_allclose(gaussian_entropy_full(cov),
                               [stats.multivariate_normal(np.zeros(L), c).entropy() for c in cov], rtol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        model.elbo(X, q_mu)
    with pytest.raises(ValueError, match="exactly one"):
        model.elbo(X, q_mu, q_logvar=q_logvar, q_cov=cov)
    with pytest.raises(ValueError, match="q_cov must be"):
        model.elbo(X, q_mu, q_cov=np.eye(L + 1))


def test_gaussian_kl_full_matches_monte_carlo(rng):
    mu_q, mu_p = rng.normal(size=2), rng.normal(size=2)
    cov_q, cov_p = random_spd(rng, 2, 2)
    Z = rng.multivariate_normal(mu_q, cov_q, size=400_000)
    diff = stats.multivariate_normal(mu_q, cov_q).logpdf(Z) - stats.multivariate_normal(mu_p, cov_p).logpdf(Z)
    assert abs(diff.mean() - gaussian_kl_full(mu_q, cov_q, mu_p, cov_p)) < 4 * diff.std() / np.sqrt(len(Z))


def test_gradients_match_finite_differences(model, rng):
    X = model.sample(3, rng)
    q_mu, q_logvar = rng.normal(size=(3, L)), rng.normal(size=(3, L))
    g_mu, g_logvar = model.expected_log_likelihood_grad(X, q_mu, q_logvar)
    h = 1e-6
    for name, arg, g in (("mu", q_mu, g_mu), ("logvar", q_logvar, g_logvar)):
        num = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            plus, minus = arg.copy(), arg.copy()
            plus[idx] += h
            minus[idx] -= h
            f = (lambda a: model.expected_log_likelihood(X, a, q_logvar).sum()) if name == "mu" else \
                (lambda a: model.expected_log_likelihood(X, q_mu, a).sum())
            num[idx] = (f(plus) - f(minus)) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6, err_msg=name)
    Z = rng.normal(size=(3, L))
    num = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        plus, minus = Z.copy(), Z.copy()
        plus[idx] += h
        minus[idx] -= h
        num[idx] = (model.log_likelihood(X, plus).sum() - model.log_likelihood(X, minus).sum()) / (2 * h)
    np.testing.assert_allclose(model.log_likelihood_grad(X, Z), num, rtol=1e-6, atol=1e-6)


def test_mean_field_posterior_is_the_best_diagonal_q(model, rng):
    X = model.sample(4, rng)
    mu, logvar = model.mean_field_posterior(X)
    best = model.elbo(X, mu, q_logvar=logvar)
    _, cov = model.posterior(X)
    assert np.all(np.exp(logvar[0]) <= np.diag(cov) + 1e-12), "mean-field variances exceed the marginals"
    for _ in range(20):
        worse = model.elbo(X, mu + 0.05 * rng.normal(size=mu.shape), q_logvar=logvar + 0.05 * rng.normal(size=mu.shape))
        assert np.all(worse < best)
    assert np.all(best < model.log_marginal(X)), "a random W has a non-diagonal posterior: mean field has a gap"


def test_sample_has_the_marginal_covariance(model, rng):
    X, Z = model.sample(200_000, rng, return_latents=True)
    assert X.shape == (200_000, D) and Z.shape == (200_000, L)
    np.testing.assert_allclose(np.cov(X, rowvar=False), model.marginal_cov(), atol=0.1)
    np.testing.assert_allclose(X.mean(0), model.b, atol=0.03)


def test_fit_ppca_recovers_the_model_and_has_a_diagonal_posterior(model, rng):
    X = model.sample(100_000, rng)
    fit = LinearGaussian.fit_ppca(X, L)
    assert abs(fit.noise_var - 0.3) < 0.01
    np.testing.assert_allclose(fit.marginal_cov(), model.marginal_cov(), atol=0.1)
    WWt = fit.W @ fit.W.T
    np.testing.assert_allclose(WWt, np.diag(np.diag(WWt)), atol=1e-9)
    # the maximum-likelihood fit beats the data-generating model on its own data, slightly
    assert fit.log_marginal(X).mean() >= model.log_marginal(X).mean()
    with pytest.raises(ValueError, match="latent_dim"):
        LinearGaussian.fit_ppca(X, D)


def test_constructor_checks_shapes():
    with pytest.raises(ValueError, match="W must be"):
        LinearGaussian(np.zeros((2, 3)), np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="noise_var"):
        LinearGaussian(np.zeros((2, 3)), np.zeros(3), 0.0)


def test_adapter_meets_the_protocol_and_evaluate_is_exact(rng):
    ppca = LinearGaussian.fit_ppca(LinearGaussian.random(D, L, seed=2).sample(5000, rng), L)
    vae = ppca.as_vae()
    assert isinstance(vae, VAEModel)
    X = ppca.sample(30, rng)
    mu, logvar = vae.encode(X)
    post_mean, post_cov = ppca.posterior(X)
    np.testing.assert_allclose(mu, post_mean, atol=1e-10)
    np.testing.assert_allclose(np.exp(logvar), np.broadcast_to(np.diag(post_cov), mu.shape), rtol=1e-10)
    np.testing.assert_allclose(vae.exact_elbo(X), ppca.log_marginal(X), atol=1e-9)
    # the posterior is exact, so every importance weight is p(x): the estimate is exact for any k
    est = importance_sampled_log_likelihood(vae, X, k=7, samples_per_chunk=3)
    np.testing.assert_allclose(est.per_example, ppca.log_marginal(X), atol=1e-9)
    mc = dataset_elbo(vae, X, n_samples=20_000, batch_size=10)
    np.testing.assert_allclose(mc, vae.exact_elbo(X), atol=0.05)


def test_adapter_on_a_model_with_a_correlated_posterior(model, rng):
    vae = model.as_vae()
    X = model.sample(40, rng)
    log_px = model.log_marginal(X)
    assert np.all(vae.exact_elbo(X) < log_px - 1e-6)
    est = importance_sampled_log_likelihood(vae, X, k=2000)
    assert abs(est.mean - log_px.mean()) < 0.01, "IWAE with k=2000 should reach log p(x)"
    assert vae.elbo(X, n_samples=3, seed=5).shape == (40,)
    np.testing.assert_array_equal(vae.elbo(X, n_samples=3, seed=5), vae.elbo(X, n_samples=3, seed=5))


def test_adapter_params_round_trip(model):
    vae = LinearGaussianVAE(model)
    params = vae.get_params()
    assert {k: v.shape for k, v in params.items()} == param_shapes(vae.config)
    params["out_b"] = params["out_b"] + 1.0
    vae.set_params(params)
    np.testing.assert_allclose(vae.model.b, model.b + 1.0)
    np.testing.assert_allclose(vae.decode(np.zeros((1, L)))[0], model.b + 1.0)
    with pytest.raises(ValueError, match="missing"):
        vae.set_params({"out_W": params["out_W"]})
