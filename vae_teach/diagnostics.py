"""Diagnostics of a trained VAE, for any backend: rate, distortion, active units, I(x; z).

Everything here talks to the model through the protocol (``encode``,
``log_likelihood``) on NumPy arrays, so it works for the NumPy, PyTensor and
PyTorch backends alike. All figures are in nats per image.

- ``rate_distortion``: R = E_x KL(q(z|x) || p(z)) (analytic) and
  D = -E_x E_q(z|x) log p(x|z) (Monte Carlo); at beta = 1, D + R = -ELBO
  (Alemi et al., 2018).
- ``kl_per_dimension``: the rate split over latent dimensions.
- ``active_units``: dimension i is active when Cov_x(E_q[z_i]) > 0.01
  (Burda et al., 2016): the encoder's mean moves with the input.
- ``mutual_information``: I(x; z) under the aggregate posterior
  q(z) = 1/N sum_n q(z|x_n), and KL(q(z) || p(z)); their sum is the rate,
  E_x KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z)) (Hoffman & Johnson, 2016).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach import checks
from vae_teach.elbo import gaussian_kl, logsumexp, reparameterize, standard_normal_log_density
from vae_teach.interface import VAEModel

ACTIVE_UNIT_THRESHOLD = 0.01
_LOG_2PI = float(np.log(2 * np.pi))


def _encode_all(model: VAEModel, X: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's (mu, logvar) for every row of X (N, D), in float64: (N, L), (N, L)."""
    X = checks.matrix(X, "X")
    parts = [model.encode(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]
    mu = np.concatenate([p[0] for p in parts]).astype(np.float64)
    logvar = np.concatenate([p[1] for p in parts]).astype(np.float64)
    return mu, logvar


def kl_per_dimension(model: VAEModel, X: np.ndarray) -> np.ndarray:
    """Mean over images of KL(q(z_i|x) || N(0, 1)) for each latent dimension i: (L,), nats."""
    mu, logvar = _encode_all(model, X)
    return 0.5 * np.mean(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=0)


@dataclass(frozen=True)
class ActiveUnits:
    """count: active dimensions; variances: Cov_x(E_q[z_i]) for each i, (L,); threshold used."""

    count: int
    variances: np.ndarray
    threshold: float


def active_units(model: VAEModel, X: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> ActiveUnits:
    """Burda et al.'s active units: latent dimensions whose posterior mean varies over X (N, D)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive (Burda et al. use 0.01), got {threshold}.")
    mu, _ = _encode_all(model, X)
    variances = mu.var(axis=0)
    return ActiveUnits(int(np.sum(variances > threshold)), variances, float(threshold))


@dataclass(frozen=True)
class RateDistortion:
    """rate: E_x KL(q(z|x) || p(z)); distortion: -E_x E_q log p(x|z); both nats per image.

    rate_per_image, distortion_per_image: (N,); n_samples: samples of z per image.
    """

    rate: float
    distortion: float
    rate_per_image: np.ndarray
    distortion_per_image: np.ndarray
    n_samples: int

    @property
    def elbo(self) -> float:
        """-(D + R): the ELBO (beta = 1) these two make up."""
        return -(self.distortion + self.rate)


def rate_distortion(model: VAEModel, X: np.ndarray, n_samples: int = 1, seed: int = 0,
                    batch_size: int = 500) -> RateDistortion:
    """Rate (analytic KL) and distortion (Monte Carlo, ``n_samples`` z per image) of X (N, D).

    Batch b draws its noise from ``default_rng((seed, b))``.
    """
    checks.count(n_samples, "n_samples")
    X = np.asarray(X)
    mu, logvar = _encode_all(model, X)
    rates = gaussian_kl(mu, logvar)                                   # (N,)
    distortions = np.empty(len(X))
    for b, i in enumerate(range(0, len(X), batch_size)):
        rng = np.random.default_rng((seed, b))
        m, lv = mu[i:i + batch_size], logvar[i:i + batch_size]
        eps = rng.standard_normal((n_samples,) + m.shape)             # (K, B, L)
        Z = reparameterize(m, lv, eps)                                # (K, B, L)
        Xb = np.broadcast_to(X[i:i + batch_size], (n_samples,) + X[i:i + batch_size].shape)
        log_px = model.log_likelihood(Xb.reshape(-1, X.shape[1]), Z.reshape(-1, m.shape[1]))
        distortions[i:i + batch_size] = -np.asarray(log_px, dtype=np.float64).reshape(n_samples, -1).mean(axis=0)
    return RateDistortion(float(rates.mean()), float(distortions.mean()), rates, distortions, n_samples)


@dataclass(frozen=True)
class MutualInformation:
    """I(x; z) and KL(q(z) || p(z)) under the aggregate posterior of N images, nats.

    mutual_information + aggregate_kl estimates the rate (mean analytic KL),
    ``rate``; the two differ only by Monte Carlo error. ``standard_error`` is
    that of the mutual information over the N x n_samples draws. The estimate
    is at most log N (the aggregate posterior of N images cannot tell more
    than N of them apart): ``log_n``.
    """

    mutual_information: float
    aggregate_kl: float
    rate: float
    standard_error: float
    log_n: float


def mutual_information(model: VAEModel, X: np.ndarray, n_samples: int = 1, seed: int = 0,
                       chunk: int = 256) -> MutualInformation:
    """I(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)], q(z) = 1/N sum_n q(z|x_n), for X (N, D).

    Draws ``n_samples`` z from each q(z|x_n) and evaluates log q(z) exactly as a
    log-mean-exp over all N posteriors (O(N^2 L) work, in chunks of ``chunk``
    samples). Also KL(q(z) || p(z)) = E_q(z)[log q(z) - log p(z)] from the same
    samples. The N images are both the data and the mixture, as in Hoffman &
    Johnson (2016); with few images the estimate saturates at log N.
    """
    checks.count(n_samples, "n_samples")
    mu, logvar = _encode_all(model, X)                                # (N, L)
    N, L = mu.shape
    rng = np.random.default_rng(seed)
    Z = reparameterize(mu, logvar, rng.standard_normal((n_samples, N, L))).reshape(-1, L)   # (K N, L)
    owner = np.tile(np.arange(N), n_samples)                          # which q(z|x_n) drew each z
    inv_var = np.exp(-logvar)                                         # (N, L)
    log_norm = -0.5 * (L * _LOG_2PI + logvar.sum(axis=1))             # (N,)
    log_q_own = np.empty(len(Z))
    log_q_agg = np.empty(len(Z))
    for start in range(0, len(Z), chunk):
        z = Z[start:start + chunk]                                    # (C, L)
        diff = z[:, None, :] - mu[None, :, :]                         # (C, N, L)
        log_q_all = log_norm[None, :] - 0.5 * np.einsum("cnl,cnl,nl->cn", diff, diff, inv_var)   # (C, N)
        rows = np.arange(len(z))
        log_q_own[start:start + chunk] = log_q_all[rows, owner[start:start + chunk]]
        log_q_agg[start:start + chunk] = logsumexp(log_q_all, axis=1) - np.log(N)
    log_p = standard_normal_log_density(Z)                            # (K N,)
    mi_terms = log_q_own - log_q_agg
    return MutualInformation(
        mutual_information=float(mi_terms.mean()),
        aggregate_kl=float(np.mean(log_q_agg - log_p)),
        rate=float(gaussian_kl(mu, logvar).mean()),
        standard_error=float(mi_terms.std(ddof=1) / np.sqrt(len(mi_terms))) if len(mi_terms) > 1 else float("nan"),
        log_n=float(np.log(N)),
    )
