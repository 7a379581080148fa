"""Evaluation for any protocol model: test ELBO, importance-sampled log p(x), units.

Works with every backend through ``vae_teach.interface`` only, in batches so
that memory stays bounded however large the test set or the sample count.
The importance-sampled estimate and its standard error are lesson 08's; the
units (nats per image, bits per dimension) lesson 07's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach import checks
from vae_teach.elbo import (gaussian_kl, gaussian_log_likelihood, log_importance_weights,
                            standard_normal_log_density)
from vae_teach.interface import VAEModel, draw_noise

LOG_2 = float(np.log(2.0))


def bits_per_dim(log_likelihood_nats, input_dim: int, levels: int | None = None):
    """A log-likelihood in nats per image as bits per dimension (lower is better).

    bits/dim = -log p(x) / (D log 2). For a continuous density fitted to
    dequantised ``levels``-level images scaled to [0, 1] (``levels=256`` for
    8-bit pixels), add log2(levels): -log p(y) + D log(levels) bounds the
    discrete images' -log P(k) (lesson 07), which is what papers report.

    Parameters: log_likelihood_nats: a float or array (nats per image);
    input_dim: D. Returns: the same shape, bits per dimension.
    """
    checks.count(input_dim, "input_dim")
    nats = checks.numeric_array(log_likelihood_nats, "log_likelihood_nats", np.float64)
    if np.isnan(nats).any():
        raise ValueError("log_likelihood_nats has NaN entries: check the model and the data are finite.")
    bits = -nats / (input_dim * LOG_2)
    if levels is not None:
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
            raise ValueError(f"levels must be >= 2 (256 for 8-bit images), got {levels}.")
        bits = bits + np.log2(levels)
    return bits if bits.ndim else float(bits)


def dataset_elbo(model: VAEModel, X: np.ndarray, n_samples: int = 1, seed: int = 0,
              batch_size: int = 1000) -> np.ndarray:
    """Per-example ELBO of ``X`` (N, D), in nats: (N,). Batch b uses noise seed ``seed + b``."""
    X = checks.model_images(model, X)
    checks.count(n_samples, "n_samples")
    checks.seed(seed)
    checks.count(batch_size, "batch_size")
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
                                      batch_size: int = 100, samples_per_chunk: int = 100,
                                      proposal: tuple | list[tuple] | None = None) -> LogLikelihoodEstimate:
    """log p(x) ~ log 1/k sum_j p(x|z_j) p(z_j) / q(z_j|x), z_j ~ q(z|x) (the IWAE_k bound).

    The estimate is a lower bound in expectation that tightens as k grows.
    Samples are drawn ``samples_per_chunk`` at a time and combined by a running
    log-sum-exp, so memory is O(batch_size * samples_per_chunk * D). Example
    i's noise comes from its own stream (seeded by ``seed`` and i), so the
    result does not depend on batch_size or samples_per_chunk.

    Inputs: X: (N, D); proposal: q's (mu, logvar), each (N, L), instead of
    the encoder's (e.g. per-example optimised q, lesson 08); or a list of such
    pairs, an equal mixture: sample j comes from component j mod C (as many
    from each) and is weighted by the mixture's density (the "balance
    heuristic"), which keeps the estimate of p(x) unbiased and its weights
    bounded wherever any one component covers the posterior.
    Returns: ``LogLikelihoodEstimate``.
    """
    estimates = []
    for chunks in _log_weight_chunks(model, X, k, seed, batch_size, samples_per_chunk, proposal):
        running = None
        for log_w in chunks:                                                     # (k_c, n)
            top = np.logaddexp.reduce(log_w, axis=0)
            running = top if running is None else np.logaddexp(running, top)
        estimates.append(running - np.log(k))
    per_example = np.concatenate(estimates)
    se = float(per_example.std(ddof=1) / np.sqrt(len(per_example))) if len(per_example) > 1 else float("nan")
    return LogLikelihoodEstimate(per_example, float(per_example.mean()), se, k)


def importance_log_weights(model: VAEModel, X: np.ndarray, k: int = 1000, seed: int = 0,
                           batch_size: int = 100, samples_per_chunk: int = 100,
                           proposal: tuple | list[tuple] | None = None) -> np.ndarray:
    """Every log importance weight, log w = log p(x|z_j) + log p(z_j) - log q(z_j|x): (k, N).

    The same samples as :func:`importance_sampled_log_likelihood` with the same
    arguments, kept instead of summed: IWAE_m for every m <= k from one draw,
    effective sample sizes, weight histograms (lesson 08). Memory: k * N floats.
    """
    return np.concatenate([np.concatenate(list(chunks), axis=0)
                           for chunks in _log_weight_chunks(model, X, k, seed, batch_size,
                                                            samples_per_chunk, proposal)], axis=1)


def _log_weight_chunks(model, X, k, seed, batch_size, samples_per_chunk, proposal):
    """For each batch of examples, an iterator over its log-weights, (k_c, n) a chunk.

    Example i (its index in X) draws its eps from np.random.default_rng((seed, i)),
    chunk after chunk, so its samples do not depend on the batching.
    """
    X = checks.model_images(model, X)
    for value, name in ((k, "k"), (batch_size, "batch_size"), (samples_per_chunk, "samples_per_chunk")):
        checks.count(value, name)
    checks.seed(seed)
    L = model.latent_dim
    mixture = None                                                  # (C, N, L) means and log-variances
    if proposal is not None:
        pairs = list(proposal) if isinstance(proposal, list) else [proposal]
        if not pairs or any(not isinstance(pair, (tuple, list)) or len(pair) != 2 for pair in pairs):
            raise ValueError(f"proposal must be (mu, logvar), each of shape (N, L) = ({len(X)}, {L}), or a "
                             f"non-empty list of (mu, logvar) pairs; got {type(proposal).__name__}.")
        try:
            pairs = [checks.gaussian_params(*pair, len(X), L, dtype=np.float64) for pair in pairs]
        except ValueError as error:
            raise ValueError(f"proposal must be (mu, logvar), each of shape (N, L) = ({len(X)}, {L}), or a list "
                             f"of such pairs: {error}") from None
        mixture = [np.stack([pair[i] for pair in pairs]) for i in (0, 1)]

    def chunks(start):
        X_b = X[start:start + batch_size]
        n = len(X_b)
        if mixture is None:
            mus, logvars = (np.asarray(a, dtype=np.float64)[None] for a in model.encode(X_b))   # (1, n, L)
        else:
            mus, logvars = (a[:, start:start + n] for a in mixture)                              # (C, n, L)
        C = len(mus)
        streams = [np.random.default_rng((seed, start + i)) for i in range(n)]
        for k_start in range(0, k, samples_per_chunk):
            k_c = min(samples_per_chunk, k - k_start)
            eps = np.stack([r.standard_normal((k_c, L)) for r in streams], axis=1)  # (k_c, n, L)
            component = (k_start + np.arange(k_c)) % C                              # (k_c,)
            Z = mus[component] + np.exp(0.5 * logvars[component]) * eps             # (k_c, n, L)
            X_rep = np.broadcast_to(X_b, (k_c,) + X_b.shape).reshape(k_c * n, -1)
            log_px = np.asarray(model.log_likelihood(X_rep, Z.reshape(k_c * n, L)), np.float64)
            if C == 1:
                yield log_importance_weights(log_px.reshape(k_c, n), Z, mus[0], logvars[0])   # (k_c, n)
            else:                                           # log q_mix(z) = logsumexp_c log q_c(z) - log C
                log_q = np.stack([gaussian_log_likelihood(Z, mu, logvar) for mu, logvar in zip(mus, logvars)])
                yield (log_px.reshape(k_c, n) + standard_normal_log_density(Z)
                       - (np.logaddexp.reduce(log_q, axis=0) - np.log(C)))                    # (k_c, n)

    for start in range(0, len(X), batch_size):
        yield chunks(start)


def elbo_of_q(model: VAEModel, X: np.ndarray, mu: np.ndarray, logvar: np.ndarray,
              n_samples: int = 100, seed: int = 0) -> np.ndarray:
    """The ELBO of each x_n under a given q(z|x_n) = N(mu_n, exp(logvar_n)), not the encoder's.

    ELBO_n = 1/K sum_k log p(x_n | z_nk) - KL(q_n || p(z)), z_nk = mu_n + sigma_n eps_nk.
    For any protocol model (it uses only ``log_likelihood``): lesson 08 scores
    per-example optimised posteriors with it.
    Inputs: X: (N, D); mu, logvar: (N, L). Returns: (N,) nats.
    """
    X = checks.model_images(model, X)
    mu, logvar = checks.gaussian_params(mu, logvar, len(X), model.latent_dim, dtype=np.float64)
    eps = draw_noise(seed, n_samples, len(X), model.latent_dim)                 # (K, N, L)
    Z = mu + np.exp(0.5 * logvar) * eps
    X_rep = np.broadcast_to(X, (n_samples,) + X.shape).reshape(n_samples * len(X), -1)
    log_px = np.asarray(model.log_likelihood(X_rep, Z.reshape(-1, model.latent_dim)), np.float64)
    return log_px.reshape(n_samples, len(X)).mean(axis=0) - gaussian_kl(mu, logvar)


def prior_to_aggregate_log_ratio(mu: np.ndarray, logvar: np.ndarray, Z: np.ndarray,
                                 chunk: int = 256) -> np.ndarray:
    """log q(z) - log p(z) at each point of Z, q(z) = 1/N sum_n N(z; mu_n, exp(logvar_n)) the
    aggregate posterior of N encoded images, p(z) = N(0, I) the prior.

    Where it is below log(1/10), the prior puts mass that no image's posterior
    covers: a *hole* (lesson 06), where the decoder was hardly trained.
    Inputs: mu, logvar: (N, L) from ``model.encode``; Z: (M, L). Returns: (M,), nats.
    """
    mu, logvar, Z = (np.asarray(a, dtype=np.float64) for a in (mu, logvar, Z))
    out = []
    for start in range(0, len(Z), chunk):
        z = Z[start:start + chunk, None, :]                                          # (m, 1, L)
        log_q_n = -0.5 * (np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar)).sum(axis=2)  # (m, N)
        top = log_q_n.max(axis=1)
        log_q = top + np.log(np.exp(log_q_n - top[:, None]).mean(axis=1))          # (m,)
        log_p = -0.5 * (np.log(2 * np.pi) + z[:, 0, :] ** 2).sum(axis=1)
        out.append(log_q - log_p)
    return np.concatenate(out) if out else np.zeros(0)
