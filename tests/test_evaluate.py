"""Evaluation on any protocol model, checked on a model whose log p(x) is exact:
the linear-Gaussian model of lesson 02 (probabilistic PCA) behind the protocol."""

import numpy as np
import pytest

from vae_teach.elbo import iwae_bound
from vae_teach.evaluate import (
    bits_per_dim,
    dataset_elbo,
    elbo_of_q,
    importance_log_weights,
    importance_sampled_log_likelihood,
)
from vae_teach.linear_gaussian import LinearGaussian


@pytest.fixture
def model_and_data():
    truth = LinearGaussian.random(input_dim=5, latent_dim=2, noise_var=0.25, seed=0)
    model = truth.as_vae()
    params = model.get_params()
    params["mu_b"] = params["mu_b"] + 0.3  # a deliberately imperfect encoder
    model.set_params(params)
    X = truth.sample(40, np.random.default_rng(1))
    return model, X


def test_importance_sampling_approaches_the_exact_log_likelihood(model_and_data):
    model, X = model_and_data
    exact = model.model.log_marginal(X)
    estimate = importance_sampled_log_likelihood(model, X, k=5000, batch_size=16, samples_per_chunk=700)
    assert estimate.k == 5000 and estimate.per_example.shape == (40,)
    # Monte Carlo noise per example: the deliberately shifted encoder gives heavy-tailed weights
    # (measured: worst of 40 is 0.26 off; the mean, below, is far tighter).
    np.testing.assert_allclose(estimate.per_example, exact, atol=0.4)
    assert abs(estimate.mean - exact.mean()) < 0.02, (estimate.mean, exact.mean())
    assert estimate.standard_error == pytest.approx(exact.std(ddof=1) / np.sqrt(40), rel=0.05)


def test_elbo_below_iwae_k_below_iwae_larger_k_below_log_px(model_and_data):
    model, X = model_and_data
    exact = model.model.log_marginal(X).mean()
    bound = dataset_elbo(model, X, n_samples=2000).mean()
    iwae = [importance_sampled_log_likelihood(model, X, k=k, seed=s).mean
            for k in (1, 10, 100) for s in range(1)]
    assert bound < iwae[1] < iwae[2] < exact, (bound, iwae, exact)


def test_results_do_not_depend_on_batching(model_and_data):
    model, X = model_and_data
    # Each example's noise is its own stream: batching and chunking change memory, not the answer.
    a = importance_sampled_log_likelihood(model, X, k=50, batch_size=40, samples_per_chunk=50)
    b = importance_sampled_log_likelihood(model, X, k=50, batch_size=7, samples_per_chunk=7)
    np.testing.assert_allclose(a.per_example, b.per_example, rtol=1e-12)
    np.testing.assert_array_equal(dataset_elbo(model, X, batch_size=7), dataset_elbo(model, X, batch_size=7))
    with pytest.raises(ValueError, match="must be >= 1"):
        importance_sampled_log_likelihood(model, X, k=0)


def test_standard_error_is_that_of_the_mean_over_examples(model_and_data):
    model, X = model_and_data
    estimate = importance_sampled_log_likelihood(model, X, k=20)
    assert estimate.standard_error == pytest.approx(estimate.per_example.std(ddof=1) / np.sqrt(len(X)), rel=1e-12)
    assert estimate.mean == pytest.approx(estimate.per_example.mean(), rel=1e-14)


def test_the_exact_posterior_as_proposal_gives_log_px_with_one_sample(rng=np.random.default_rng(5)):
    # PPCA's posterior is diagonal in its own basis, so a diagonal Gaussian q can be exact:
    # then every importance weight equals p(x), and one sample gives log p(x) to round-off.
    truth = LinearGaussian.random(input_dim=6, latent_dim=2, noise_var=0.3, seed=2)
    X = truth.sample(500, rng)
    model = LinearGaussian.fit_ppca(X, latent_dim=2)
    mu, cov = model.posterior(X[:20])
    assert np.allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-12)
    logvar = np.broadcast_to(np.log(np.diag(cov)), mu.shape)
    exact = model.log_marginal(X[:20])
    one = importance_sampled_log_likelihood(model.as_vae(), X[:20], k=1, proposal=(mu, logvar))
    np.testing.assert_allclose(one.per_example, exact, rtol=1e-10)
    # The ELBO at the exact posterior is log p(x) too, in expectation (its Monte Carlo term varies).
    closed_form = model.elbo(X[:20], mu, logvar)
    np.testing.assert_allclose(closed_form, exact, rtol=1e-10)
    np.testing.assert_allclose(elbo_of_q(model.as_vae(), X[:20], mu, logvar, n_samples=20_000), exact, atol=0.05)
    with pytest.raises(ValueError, match=r"proposal must be \(mu, logvar\)"):
        importance_sampled_log_likelihood(model.as_vae(), X[:20], k=1, proposal=(mu[:5], logvar[:5]))


def test_elbo_of_q_at_the_encoders_q_is_the_models_elbo(model_and_data):
    model, X = model_and_data
    mu, logvar = model.encode(X)
    np.testing.assert_allclose(elbo_of_q(model, X, mu, logvar, n_samples=30, seed=4),
                               model.elbo(X, n_samples=30, seed=4), rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        elbo_of_q(model, X, mu[:, :1], logvar, n_samples=3)


def test_bits_per_dim():
    D = 784
    assert bits_per_dim(-D * np.log(2), D) == pytest.approx(1.0)
    assert bits_per_dim(-D * np.log(2), D, levels=256) == pytest.approx(9.0)   # + log2(256) for 8-bit data
    assert bits_per_dim(0.0, D, levels=256) == pytest.approx(8.0)              # a uniform density on [0, 1]^D
    np.testing.assert_allclose(bits_per_dim(np.array([-D * np.log(2), -2 * D * np.log(2)]), D), [1.0, 2.0])
    with pytest.raises(ValueError, match="levels must be >= 2"):
        bits_per_dim(-1.0, D, levels=1)


def test_log_weight_matrix_holds_the_estimators_samples(model_and_data):
    model, X = model_and_data
    log_w = importance_log_weights(model, X, k=60, batch_size=16, samples_per_chunk=25)
    assert log_w.shape == (60, 40)
    estimate = importance_sampled_log_likelihood(model, X, k=60)
    np.testing.assert_allclose(iwae_bound(log_w), estimate.per_example, rtol=1e-12)
    # The first m samples are the ones k = m draws: IWAE_m for every m from one matrix.
    np.testing.assert_allclose(iwae_bound(log_w[:7]), importance_sampled_log_likelihood(model, X, k=7).per_example,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="must be >= 1"):
        importance_log_weights(model, X, k=10, batch_size=0)


def test_prior_to_aggregate_log_ratio_against_a_direct_sum():
    from scipy.stats import multivariate_normal

    from vae_teach.evaluate import prior_to_aggregate_log_ratio

    rng = np.random.default_rng(0)
    mu, logvar, Z = rng.normal(size=(7, 2)), rng.normal(scale=0.5, size=(7, 2)), rng.normal(size=(300, 2)) * 2
    q = np.mean([multivariate_normal(m, np.diag(np.exp(lv))).pdf(Z) for m, lv in zip(mu, logvar)], axis=0)
    p = multivariate_normal(np.zeros(2), np.eye(2)).pdf(Z)
    np.testing.assert_allclose(prior_to_aggregate_log_ratio(mu, logvar, Z, chunk=64), np.log(q / p), rtol=1e-10)
    # posteriors equal to the prior fill it exactly: ratio 1 everywhere
    np.testing.assert_allclose(prior_to_aggregate_log_ratio(np.zeros((3, 2)), np.zeros((3, 2)), Z), 0, atol=1e-12)


def test_a_mixture_proposal_weights_by_the_mixture_density(rng=np.random.default_rng(6)):
    # With the exact posterior q1 as one of two equal components, p(x, z) = p(x) q1(z), so every
    # weight p(x, z) / (q1(z)/2 + q2(z)/2) lies in (0, 2 p(x)], and their mean is p(x) (unbiased).
    truth = LinearGaussian.random(input_dim=6, latent_dim=2, noise_var=0.3, seed=2)
    X = truth.sample(500, rng)
    model = LinearGaussian.fit_ppca(X, latent_dim=2)
    mu, cov = model.posterior(X[:20])
    logvar = np.broadcast_to(np.log(np.diag(cov)), mu.shape)
    exact = model.log_marginal(X[:20])
    wide = (mu + 1.0, logvar + 2 * np.log(3.0))                      # off-centre and three times wider
    log_w = importance_log_weights(model.as_vae(), X[:20], k=4000, seed=1, proposal=[(mu, logvar), wide])
    assert log_w.shape == (4000, 20)
    assert np.all(log_w <= exact + np.log(2) + 1e-9)
    np.testing.assert_allclose(np.exp(log_w - exact).mean(axis=0), 1.0, atol=0.05)
    # A mixture of one component twice is that component: the same draws, the same weights.
    single = importance_sampled_log_likelihood(model.as_vae(), X[:20], k=50, seed=3, proposal=wide)
    twice = importance_sampled_log_likelihood(model.as_vae(), X[:20], k=50, seed=3, proposal=[wide, wide])
    np.testing.assert_allclose(twice.per_example, single.per_example, rtol=1e-12)
    with pytest.raises(ValueError, match="list of such pairs"):
        importance_sampled_log_likelihood(model.as_vae(), X[:20], k=2, proposal=[(mu, logvar), (mu[:5], logvar[:5])])
    with pytest.raises(ValueError, match="non-empty list"):
        importance_sampled_log_likelihood(model.as_vae(), X[:20], k=2, proposal=[])
