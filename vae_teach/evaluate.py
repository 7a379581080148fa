"""Evaluation for any protocol model: test ELBO and importance-sampled log p(x).

Works with every backend through ``vae_teach.interface`` only, in batches so
that memory stays bounded however large the test set or the sample count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach.elbo import log_importance_weights
from vae_teach.interface import VAEModel, draw_noise


def dataset_elbo(model: VAEModel, X: np.ndarray, n_samples: int = 1, seed: int = 0,
              batch_size: int = 1000) -> np.ndarray:
    """Per-example ELBO of ``X`` (N, D), in nats: (N,). Batch b uses noise seed ``seed + b``."""
    X = np.asarray(X)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    parts = [model.elbo(X[i:i + batch_size], n_samples=n_samples, seed=seed + b)
             for b, i in enumerate(range(0, len(X), batch_size))]
    return np.concatenate(parts).astype(np.float64)


@dataclass(frozen=True)
class LogLikelihoodEstimate:
    """An importance-sampled estimate of log p(x), in nats per image.

    per_example: (N,); mean: their mean; standard_error: of that mean, over
    examples; k: importance samples per example.
    """

    per_example: np.ndarray
    mean: float
    standard_error: float
    k: int


def importance_sampled_log_likelihood(model: VAEModel, X: np.ndarray, k: int = 1000, seed: int = 0,
                                      batch_size: int = 100, samples_per_chunk: int = 100
                                      ) -> LogLikelihoodEstimate:
    """log p(x) ~ log 1/k sum_j p(x|z_j) p(z_j) / q(z_j|x), z_j ~ q(z|x) (the IWAE_k bound).

    The estimate is a lower bound in expectation that tightens as k grows.
    Samples are drawn ``samples_per_chunk`` at a time and combined by a running
    log-sum-exp, so memory is O(batch_size * samples_per_chunk * D).
    Inputs: X: (N, D). Returns: ``LogLikelihoodEstimate``.
    """
    X = np.asarray(X)
    if k < 1 or batch_size < 1 or samples_per_chunk < 1:
        raise ValueError(f"k, batch_size and samples_per_chunk must be >= 1, got {k}, {batch_size}, "
                         f"{samples_per_chunk}.")
    L = model.latent_dim
    estimates = []
    for b, start in enumerate(range(0, len(X), batch_size)):
        X_b = X[start:start + batch_size]
        n = len(X_b)
        mu, logvar = (np.asarray(a, dtype=np.float64) for a in model.encode(X_b))
        running = np.full(n, -np.inf)
        for c, k_start in enumerate(range(0, k, samples_per_chunk)):
            k_c = min(samples_per_chunk, k - k_start)
            eps = draw_noise(seed + 7919 * b + c, k_c, n, L)                     # (k_c, n, L)
            Z = mu + np.exp(0.5 * logvar) * eps
            X_rep = np.broadcast_to(X_b, (k_c,) + X_b.shape).reshape(k_c * n, -1)
            log_px = np.asarray(model.log_likelihood(X_rep, Z.reshape(k_c * n, L)), np.float64)
            log_w = log_importance_weights(log_px.reshape(k_c, n), Z, mu, logvar)   # (k_c, n)
            running = np.logaddexp(running, np.logaddexp.reduce(log_w, axis=0))
        estimates.append(running - np.log(k))
    per_example = np.concatenate(estimates)
    se = float(per_example.std(ddof=1) / np.sqrt(len(per_example))) if len(per_example) > 1 else float("nan")
    return LogLikelihoodEstimate(per_example, float(per_example.mean()), se, k)
