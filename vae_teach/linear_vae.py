"""A linear VAE trained by gradient descent, where posterior collapse has an exact answer (lesson 09).

Decoder p(x | z) = N(z @ W_dec + mean, sigma^2 I); encoder q(z | x) = N((x - mean) @ W_enc,
diag(exp(log_s2))), a diagonal q whose variances do not depend on x (for a linear model
the best diagonal variances are the same for every x). Both expectations of the
beta-weighted loss, NLL + beta KL, are in closed form in the data's covariance S (P, P),
so one step costs a few (P, P) products, whatever the number of images.

Lucas et al. (2019): this is probabilistic PCA with a diagonal q, and at the optimum
latent dimension i collapses (its decoder row is 0, its KL is 0) exactly when the
data's eigenvalue lambda_i <= beta * sigma^2; otherwise ||W_dec[i]||^2 = lambda_i - beta sigma^2
(for beta = 1, Tipping & Bishop's PPCA solution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach import checks
from vae_teach.numpy_vae.optim import Optimizer

_LOG_2PI = float(np.log(2 * np.pi))


def loss_and_grads(params: dict[str, np.ndarray], S: np.ndarray, sigma2: float, kl_weight: float = 1.0
                   ) -> tuple[float, dict[str, np.ndarray]]:
    """E_x[NLL + beta KL] per image (nats) and its gradient, in closed form.

    params: W_enc (P, L), W_dec (L, P), log_s2 (L,); S: the data's covariance (P, P);
    sigma2: the decoder's fixed variance; kl_weight: beta.
    With A = I - W_enc W_dec (the residual x - x_hat = (x - mean) A for the mean code):
    E NLL = [tr(A^T S A) + sum_i s2_i ||W_dec[i]||^2] / (2 sigma^2) + P/2 log(2 pi sigma^2),
    E KL = 1/2 sum_i (s2_i + (W_enc^T S W_enc)_ii - 1 - log s2_i).
    """
    W_enc, W_dec, log_s2 = params["W_enc"], params["W_dec"], params["log_s2"]
    P = S.shape[0]
    s2 = np.exp(log_s2)                                                # (L,)
    A = np.eye(P) - W_enc @ W_dec                                      # (P, P)
    SA = S @ A
    row_sq = np.sum(W_dec * W_dec, axis=1)                             # (L,)
    SW = S @ W_enc                                                     # (P, L)
    code_var = np.sum(W_enc * SW, axis=0)                              # (L,) = diag(W_enc^T S W_enc)
    nll = (np.sum(A * SA) + np.sum(s2 * row_sq)) / (2 * sigma2) + 0.5 * P * (_LOG_2PI + np.log(sigma2))
    kl = 0.5 * np.sum(s2 + code_var - 1 - log_s2)
    grads = {
        "W_enc": -SA @ W_dec.T / sigma2 + kl_weight * SW,
        "W_dec": (-W_enc.T @ SA + s2[:, None] * W_dec) / sigma2,
        "log_s2": s2 * row_sq / (2 * sigma2) + 0.5 * kl_weight * (s2 - 1),
    }
    return float(nll + kl_weight * kl), grads


def kl_per_dimension(params: dict[str, np.ndarray], S: np.ndarray) -> np.ndarray:
    """E_x KL(q(z_i | x) || N(0, 1)) for each latent dimension: (L,) nats."""
    W_enc, log_s2 = params["W_enc"], params["log_s2"]
    code_var = np.sum(W_enc * (S @ W_enc), axis=0)
    return 0.5 * (np.exp(log_s2) + code_var - 1 - log_s2)


def predicted_active(eigenvalues: np.ndarray, sigma2: float, kl_weight: float = 1.0) -> np.ndarray:
    """Lucas et al.'s rule: which eigen-directions keep a latent dimension, lambda_i > beta sigma^2: bool."""
    return np.asarray(eigenvalues) > kl_weight * sigma2


@dataclass(frozen=True)
class LinearVAEFit:
    """params: the trained weights; kl: (L,) KL per dimension, nats; loss: the final loss per image."""

    params: dict
    kl: np.ndarray
    loss: float


def train(S: np.ndarray, sigma2: float, latent_dim: int, *, kl_weight: float = 1.0, steps: int = 3000,
          lr: float = 0.02, seed: int = 0, init_scale: float = 0.1) -> LinearVAEFit:
    """Adam on the closed-form loss from small random weights (seeded); returns the fit.

    S: (P, P) covariance of the data; latent_dim: L; steps: full-batch Adam steps.
    """
    S = checks.matrix(S, "S")
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square covariance matrix, got shape {S.shape}.")
    sigma2 = checks.positive(sigma2, "sigma2")
    kl_weight = checks.nonnegative(kl_weight, "kl_weight")
    checks.count(latent_dim, "latent_dim")
    checks.count(steps, "steps")
    rng = np.random.default_rng(seed)
    P = S.shape[0]
    params = {"W_enc": init_scale * rng.standard_normal((P, latent_dim)),
              "W_dec": init_scale * rng.standard_normal((latent_dim, P)),
              "log_s2": np.zeros(latent_dim)}
    opt = Optimizer("adam", lr=lr)
    for _ in range(steps):
        loss, grads = loss_and_grads(params, S, sigma2, kl_weight)
        opt.step(params, grads)
    loss, _ = loss_and_grads(params, S, sigma2, kl_weight)
    return LinearVAEFit(params, kl_per_dimension(params, S), loss)
