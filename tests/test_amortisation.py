"""Lesson 08's amortisation gap: per-example optimised q against the encoder's q."""

import numpy as np
import pytest

from vae_teach.amortisation import (
    GapSplit,
    gap_terms,
    optimise_local_posteriors,
    split_gap,
)
from vae_teach.data import load_dataset
from vae_teach.evaluate import elbo_of_q
from vae_teach.interface import VAEConfig
from vae_teach.linear_gaussian import LinearGaussian
from vae_teach.numpy_vae import NumpyVAE, train


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("mnist-5k", binarize="threshold")
    model = NumpyVAE(VAEConfig(784, (64,), 4), seed=0)
    train(model, data.X_train[:800], epochs=4, batch_size=50, lr=3e-3, progress=False)
    return model, data.X_test[:40]


def test_optimised_q_beats_the_encoder_and_stays_below_log_px(trained):
    model, X = trained
    # gap_terms' defaults: q* from the encoder, run until converged, log p(x) sampled from a mixture
    # of q*, a widened q* and the encoder's q (not from q* alone, which hides what q* misses).
    local, (log_px, elbo_optimal, encoder) = gap_terms(model, X, k=2000, seed=0)
    assert local.mu.shape == local.logvar.shape == (40, 4) and local.elbo.shape == (40,)
    assert local.converged and local.steps < 3000 and local.steps % local.check_every == 0
    assert len(local.checks) == local.steps // local.check_every + 1
    assert local.checks[-1] > local.checks[0] + 3            # from the encoder's q: measured +8 nats
    np.testing.assert_array_equal(elbo_optimal, local.elbo)
    np.testing.assert_allclose(encoder, elbo_of_q(model, X, *model.encode(X), n_samples=100, seed=1))
    assert np.mean(log_px >= local.elbo) > 0.9               # a bound on log p(x) per example, up to noise
    gaps = split_gap(log_px, local.elbo, encoder)
    assert gaps.amortisation_gap > 3.0, gaps                # measured 8.0 nats for this small encoder
    assert 0.0 < gaps.approximation_gap < 3.0, gaps         # measured 0.5
    assert gaps.inference_gap == pytest.approx(gaps.approximation_gap + gaps.amortisation_gap)
    # q* as its own proposal (the same q*: same seed, same steps) can only see less of the posterior
    _, (self_px, same_elbo, _) = gap_terms(model, X, k=2000, seed=0, proposal="q*")
    np.testing.assert_array_equal(same_elbo, elbo_optimal)
    assert np.mean(log_px - self_px) > 0


def test_the_convergence_check_stops_on_a_plateau_and_beats_a_fixed_budget(trained):
    model, X = trained
    converged = optimise_local_posteriors(model, X, steps=3000, init="encoder", seed=2, tol=0.05)
    assert converged.converged and converged.steps < 3000
    gains = np.diff(converged.checks)
    assert gains[-1] < 0.05 and np.sum(gains < 0.05) == 3   # two rate cuts, then the stop
    fixed = optimise_local_posteriors(model, X, steps=400, init="prior", seed=2)
    assert fixed.converged is None and fixed.checks == []
    assert converged.elbo.mean() > fixed.elbo.mean()
    with pytest.raises(ValueError, match="tol > 0"):
        optimise_local_posteriors(model, X, tol=0.0)


def test_from_the_prior_and_from_the_encoder_reach_the_same_optimum(trained):
    model, X = trained
    from_prior = optimise_local_posteriors(model, X, steps=400, lr=0.05, init="prior", seed=2)
    from_encoder = optimise_local_posteriors(model, X, steps=400, lr=0.05, init="encoder", seed=2)
    assert abs(from_prior.elbo.mean() - from_encoder.elbo.mean()) < 0.5
    # The same mode for most examples (measured: 88% within 0.2; a few find another mode).
    assert np.median(np.abs(from_prior.mu - from_encoder.mu)) < 0.2


def test_zero_steps_from_the_encoder_scores_the_encoder(trained):
    model, X = trained
    local = optimise_local_posteriors(model, X, steps=0, init="encoder", eval_samples=50, seed=3)
    mu, logvar = model.encode(X)
    np.testing.assert_allclose(local.mu, mu, rtol=1e-6)
    np.testing.assert_allclose(local.elbo, elbo_of_q(model, X, mu, logvar, n_samples=50, seed=4), rtol=1e-6)


def test_bad_inputs_are_refused_with_a_remedy(trained):
    model, X = trained
    with pytest.raises(TypeError, match="use a NumpyVAE"):
        optimise_local_posteriors(LinearGaussian.random(5, 2).as_vae(), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="init must be 'prior' or 'encoder'"):
        optimise_local_posteriors(model, X, init="zeros")
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        optimise_local_posteriors(model, X, n_samples=0)
    with pytest.raises(ValueError, match="proposal must be 'mixture' or 'q\\*'"):
        gap_terms(model, X, proposal="encoder")
    with pytest.raises(ValueError, match="same N"):
        split_gap(np.zeros(3), np.zeros(3), np.zeros(4))


def test_gap_split_arithmetic():
    gaps = GapSplit(log_px=-100.0, elbo_optimal=-101.5, elbo_encoder=-105.0)
    assert (gaps.approximation_gap, gaps.amortisation_gap, gaps.inference_gap) == (1.5, 3.5, 5.0)
    assert split_gap(np.array([-1.0, -3.0]), np.array([-2.0, -4.0]), np.array([-5.0, -5.0])) == \
        GapSplit(-2.0, -3.0, -5.0)
