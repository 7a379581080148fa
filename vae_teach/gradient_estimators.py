"""Two Monte Carlo estimators of the gradient of E_q[f(z)], q = N(mu, diag(exp(logvar))).

Both return unbiased estimates of (d/dmu, d/dlogvar) E_q[f(z)] from K samples:

- the reparameterisation (pathwise) estimator: z = mu + sigma * eps, eps ~ N(0, I),
  so d/dmu E[f] = E[f'(z)] and d/dlogvar E[f] = E[f'(z) * eps * sigma / 2];
  it needs the gradient f' of f;
- the score-function (REINFORCE) estimator: d E[f] = E[f(z) * d log q(z)], with
  d log q / dmu = eps / sigma and d log q / dlogvar = (eps^2 - 1) / 2;
  it needs only values of f.

Shapes: mu and logvar are (..., L), e.g. (N, L) or (L,); the K samples carry a
leading axis, Z is (K, ..., L). ``f`` maps Z to (K, ...) values; ``f_grad``
maps Z to (K, ..., L) gradients. With the same ``rng`` state both estimators
draw the same eps (common random numbers). Each returns
``(grad_mu, grad_logvar)``, each with mu's shape.

To get R independent estimates in one call, pass ``mu`` and ``logvar``
broadcast to (R, ..., L): see :func:`repeated_estimates`.

Defined in notebook 02b (the reparameterisation trick, measured).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BASELINES = (None, "leave-one-out")


def _draw(mu, logvar, n_samples: int, rng: np.random.Generator):
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {mu.shape} and {logvar.shape}.")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    eps = rng.standard_normal((int(n_samples),) + mu.shape)   # (K, ..., L)
    sigma = np.exp(0.5 * logvar)                               # a standard deviation
    return eps, sigma, mu + sigma * eps


def reparameterization_gradient(f_grad: Callable[[np.ndarray], np.ndarray], mu, logvar,
                                n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pathwise estimate of the gradient of E_q[f(z)] w.r.t. (mu, logvar), from K samples.

    z_k = mu + sigma * eps_k; grad_mu = 1/K sum_k f'(z_k);
    grad_logvar = 1/K sum_k f'(z_k) * eps_k * sigma / 2 (since dz/dlogvar = eps sigma / 2).

    Inputs: f_grad: Z (K, ..., L) -> df/dz (K, ..., L); mu, logvar: (..., L);
    n_samples: K; rng: a numpy Generator. Returns: grad_mu, grad_logvar, each (..., L).
    """
    eps, sigma, Z = _draw(mu, logvar, n_samples, rng)
    G = np.asarray(f_grad(Z), np.float64)                       # (K, ..., L)
    if G.shape != Z.shape:
        raise ValueError(f"f_grad must return the shape of Z, {Z.shape}, got {G.shape}.")
    return G.mean(axis=0), 0.5 * sigma * (G * eps).mean(axis=0)


def score_function_gradient(f: Callable[[np.ndarray], np.ndarray], mu, logvar, n_samples: int,
                            rng: np.random.Generator, baseline=None) -> tuple[np.ndarray, np.ndarray]:
    """Score-function (REINFORCE) estimate of the gradient of E_q[f(z)] w.r.t. (mu, logvar).

    grad = 1/K sum_k (f(z_k) - c_k) * d log q(z_k) / d(mu, logvar), with
    d log q / dmu = eps / sigma and d log q / dlogvar = (eps^2 - 1) / 2. The score has mean
    zero, so any c_k that does not depend on z_k keeps the estimate unbiased:
    baseline=None uses c_k = 0 (plain REINFORCE); baseline="leave-one-out" uses the mean of
    f over the other K - 1 samples (needs K >= 2).

    Inputs: f: Z (K, ..., L) -> (K, ...); mu, logvar: (..., L); n_samples: K;
    rng: a numpy Generator. Returns: grad_mu, grad_logvar, each (..., L).
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}.")
    eps, sigma, Z = _draw(mu, logvar, n_samples, rng)
    F = np.asarray(f(Z), np.float64)                            # (K, ...)
    if F.shape != Z.shape[:-1]:
        raise ValueError(f"f must return one value per sample, shape {Z.shape[:-1]}, got {F.shape}.")
    K = Z.shape[0]
    if baseline == "leave-one-out":
        if K < 2:
            raise ValueError("the leave-one-out baseline needs n_samples >= 2.")
        F = F - (F.sum(axis=0) - F) / (K - 1)
    F = F[..., None]                                            # (K, ..., 1)
    return (F * eps / sigma).mean(axis=0), (F * 0.5 * (eps * eps - 1.0)).mean(axis=0)


def repeated_estimates(estimator: Callable, fn: Callable, mu, logvar, n_samples: int, n_repeats: int,
                       rng: np.random.Generator, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """R independent estimates at once: mu, logvar (L,) -> grad_mu, grad_logvar, each (R, L).

    Broadcasts mu and logvar to (R, L) and calls
    ``estimator(fn, mu, logvar, n_samples, rng, **kwargs)``; ``fn`` (f or f_grad) must accept
    Z of shape (K, R, L).
    """
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    shape = (int(n_repeats),) + mu.shape
    return estimator(fn, np.broadcast_to(mu, shape), np.broadcast_to(logvar, shape), n_samples, rng, **kwargs)


def total_variance(grad_mu: np.ndarray, grad_logvar: np.ndarray) -> float:
    """The trace of the estimates' covariance: the sum over entries of the variance across repeats.

    Inputs: grad_mu, grad_logvar: (R, ...) for R repeated estimates. Returns: a float.
    """
    return float(np.var(grad_mu, axis=0, ddof=1).sum() + np.var(grad_logvar, axis=0, ddof=1).sum())
