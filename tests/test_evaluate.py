"""Evaluation on any protocol model, checked on a model whose log p(x) is exact:
the linear-Gaussian model of lesson 02 (probabilistic PCA) behind the protocol."""

import numpy as np
import pytest

from vae_teach.evaluate import dataset_elbo, importance_sampled_log_likelihood
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
    np.testing.assert_allclose(estimate.per_example, exact, atol=0.25)  # Monte Carlo noise per example
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
    a = importance_sampled_log_likelihood(model, X, k=50, batch_size=40, samples_per_chunk=50)
    b = importance_sampled_log_likelihood(model, X, k=50, batch_size=40, samples_per_chunk=7)
    # Different chunking draws different noise; both are estimates of the same bound.
    np.testing.assert_allclose(a.mean, b.mean, atol=0.05)
    np.testing.assert_array_equal(dataset_elbo(model, X, batch_size=7), dataset_elbo(model, X, batch_size=7))
    with pytest.raises(ValueError, match="must be >= 1"):
        importance_sampled_log_likelihood(model, X, k=0)
