"""Reference NumPy maths of the VAE: every formula the lessons derive, once.

Conventions (see README's vocabulary): ``X`` is (N, D) with pixels in [0, 1],
``mu`` and ``logvar`` (= log sigma^2) are (N, L), samples of z carry a leading
sample axis, (K, N, L). Every function returns values *per example*, summed
over pixels and latent dimensions, in nats; averaging over the batch is the
caller's choice, made explicitly.

Defined in notebook 02 (the ELBO, the Gaussian KL, reparameterisation) and
used by every backend's tests as the trusted reference.
"""

from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), in closed form.

    KL = 1/2 * sum_l (sigma_l^2 + mu_l^2 - 1 - log sigma_l^2).

    Parameters: mu, logvar: (..., L). Returns: (...,) nats, always >= 0.
    """
    mu = np.asarray(mu)
    logvar = np.asarray(logvar)
    return 0.5 * np.sum(np.exp(logvar) + mu * mu - 1.0 - logvar, axis=-1)


def softplus(a: np.ndarray) -> np.ndarray:
    """log(1 + exp(a)), without overflow for large |a|."""
    a = np.asarray(a)
    return np.maximum(a, 0.0) + np.log1p(np.exp(-np.abs(a)))


def sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-a)), without overflow for large |a|."""
    a = np.asarray(a)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def bernoulli_log_likelihood(X: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log p(x | z) for a Bernoulli decoder, computed stably from logits.

    log p = sum_d x_d * a_d - softplus(a_d), with a = logits, which equals
    sum_d x_d log sigmoid(a_d) + (1 - x_d) log(1 - sigmoid(a_d)) but never
    takes the log of a rounded-to-zero probability.

    Parameters: X: (N, D) in [0, 1]; logits: (..., N, D) (broadcasts over
    a leading sample axis). Returns: (..., N) nats.
    """
    return np.sum(X * logits - softplus(logits), axis=-1)


def gaussian_log_likelihood(X: np.ndarray, mean: np.ndarray, logvar) -> np.ndarray:
    """log N(x; mean, diag(exp(logvar))), summed over the last axis.

    Parameters: X: (..., D); mean: (..., D); logvar: scalar or (..., D).
    Returns: (...,) nats.
    """
    logvar = np.asarray(logvar, dtype=np.result_type(X, mean, np.float32))
    sq = (X - mean) ** 2
    per_dim = -0.5 * (LOG_2PI + logvar + sq * np.exp(-logvar))
    return np.sum(np.broadcast_to(per_dim, np.broadcast(X, mean, logvar).shape), axis=-1)


def standard_normal_log_density(Z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I): (..., L) -> (...,) nats. The prior p(z)."""
    return gaussian_log_likelihood(Z, 0.0, 0.0)


def reparameterize(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mu + sigma * eps with sigma = exp(0.5 * logvar) (a standard deviation).

    Parameters: mu, logvar: (N, L); eps: (N, L) or (K, N, L) standard normal.
    Returns: Z with eps's shape.
    """
    return mu + np.exp(0.5 * logvar) * eps


def elbo_estimate(X, mu, logvar, eps, decode_logits) -> np.ndarray:
    """The ELBO with K Monte Carlo samples and the analytic KL, per example.

    ELBO(x) = 1/K sum_k log p(x | z_k) - KL(q(z|x) || p(z)), z_k = mu + sigma eps_k.

    Parameters: X: (N, D); mu, logvar: (N, L); eps: (K, N, L);
    decode_logits: callable (M, L) -> (M, D) logits. Returns: (N,) nats.
    """
    eps = np.asarray(eps)
    if eps.ndim == 2:
        eps = eps[None]
    K, N, L = eps.shape
    Z = reparameterize(mu, logvar, eps)                      # (K, N, L)
    logits = decode_logits(Z.reshape(K * N, L)).reshape(K, N, -1)
    log_px = bernoulli_log_likelihood(X, logits)              # (K, N)
    return log_px.mean(axis=0) - gaussian_kl(mu, logvar)


def log_importance_weights(log_px_given_z, Z, mu, logvar) -> np.ndarray:
    """log w = log p(x|z) + log p(z) - log q(z|x), per sample.

    Parameters: log_px_given_z: (K, N); Z: (K, N, L); mu, logvar: (N, L).
    Returns: (K, N) nats.
    """
    log_prior = standard_normal_log_density(Z)
    log_q = gaussian_log_likelihood(Z, mu, logvar)
    return log_px_given_z + log_prior - log_q


def logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """log sum exp(a) along ``axis``, shifted by the max so nothing overflows."""
    a = np.asarray(a)
    a_max = np.max(a, axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0.0)
    with np.errstate(divide="ignore"):  # all weights zero: log 0 = -inf is the answer
        out = np.log(np.sum(np.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    return np.squeeze(out, axis=axis)


def iwae_bound(log_weights: np.ndarray) -> np.ndarray:
    """The importance-weighted bound, log 1/K sum_k w_k, with log-sum-exp.

    Parameters: log_weights: (K, N). Returns: (N,) nats. K = 1 gives the ELBO
    (with a Monte Carlo KL); the bound rises towards log p(x) as K grows.
    """
    log_weights = np.asarray(log_weights)
    return logsumexp(log_weights, axis=0) - np.log(log_weights.shape[0])
