"""The linear VAE: its closed-form gradient against finite differences, and Lucas et al.'s collapse rule."""

import numpy as np
import pytest

from vae_teach import linear_vae
from vae_teach.numpy_vae.gradcheck import relative_error


def test_closed_form_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((5, 5))
    S = B @ B.T / 5 + 0.1 * np.eye(5)
    params = {"W_enc": 0.3 * rng.standard_normal((5, 3)), "W_dec": 0.3 * rng.standard_normal((3, 5)),
              "log_s2": 0.3 * rng.standard_normal(3)}
    _, grads = linear_vae.loss_and_grads(params, S, 0.7, kl_weight=1.7)
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            old = value[i]
            value[i] = old + 1e-6
            up, _ = linear_vae.loss_and_grads(params, S, 0.7, 1.7)
            value[i] = old - 1e-6
            down, _ = linear_vae.loss_and_grads(params, S, 0.7, 1.7)
            value[i] = old
            numeric[i] = (up - down) / 2e-6
        assert relative_error(numeric, grads[name]) < 1e-6, f"gradient of {name}"


@pytest.mark.parametrize("sigma2, beta", [(1.0, 1.0), (2.0, 1.0), (1.0, 2.5)])
def test_dimensions_collapse_exactly_where_lambda_is_below_beta_sigma2(sigma2, beta):
    eigenvalues = np.array([4.0, 2.6, 1.6, 0.7])
    S = np.diag(eigenvalues)
    fit = linear_vae.train(S, sigma2, 4, kl_weight=beta, steps=3000, lr=0.05, seed=1)
    active = linear_vae.predicted_active(eigenvalues, sigma2, beta)
    assert np.array_equal(np.sort(fit.kl)[::-1] > 0.01, active), f"KL per dimension {fit.kl}"
    # PPCA's optimum (beta = 1): KL_i = 1/2 log(lambda_i / sigma^2) for the active dimensions
    if beta == 1.0:
        expected = 0.5 * np.log(np.maximum(eigenvalues / sigma2, 1.0))
        assert np.allclose(np.sort(fit.kl)[::-1], expected, atol=5e-3), f"{fit.kl} vs {expected}"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="square"):
        linear_vae.train(np.ones((2, 3)), 1.0, 2)
    with pytest.raises(ValueError, match="sigma2"):
        linear_vae.train(np.eye(2), -1.0, 2)
