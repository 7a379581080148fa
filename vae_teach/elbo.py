"""Reference NumPy maths of the VAE: every formula the lessons derive, once.

Conventions (see README's vocabulary): ``X`` is (N, D) with pixels in [0, 1],
``mu`` and ``logvar`` (= log sigma^2) are (N, L), samples of z carry a leading
sample axis, (K, N, L). Every function returns values *per example*, summed
over pixels and latent dimensions, in nats; averaging over the batch is the
caller's choice, made explicitly.

Defined in notebooks 02 and 02b (the ELBO, the Gaussian KL, reparameterisation),
notebook 07 (the likelihoods: Gaussian, continuous Bernoulli) and notebook 08
(K samples, the IWAE bound), and used by every backend's tests as the trusted
reference.
"""

from __future__ import annotations

import numpy as np

from vae_teach import checks
from vae_teach.interface import LIKELIHOODS

LOG_2PI = float(np.log(2.0 * np.pi))


def _float_array(a) -> np.ndarray:
    """``a`` as an array of its own float dtype (float32 stays float32); anything else, float64.

    (Not np.result_type(a, np.float32): under NumPy 2 that makes a Python float float32.)
    """
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), in closed form.

    KL = 1/2 * sum_l (sigma_l^2 + mu_l^2 - 1 - log sigma_l^2).

    Parameters: mu, logvar: (..., L), the same shape. Returns: (...,) nats, always >= 0.
    """
    mu, logvar = checks.gaussian_params(mu, logvar)
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
    X, logits = _data_and_logits(X, logits, "bernoulli")
    return np.sum(X * logits - softplus(logits), axis=-1)


def _data_and_logits(X, logits, likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    """X (..., D) in the likelihood's range and logits (..., D), both finite.

    The pixel axis must match: one logit per pixel. The leading axes broadcast as NumPy's do: logits
    (K, N, D) against X (N, D) (K samples of z per image), samples of X (S, N, D) against logits
    (N, D), or one row of logits (D,) for every image. Logits (N, 1) against X (N, D) are refused.
    """
    X = checks.pixel_range(checks.finite(checks.numeric_array(X, "X"), "X", "pixels"), "X", likelihood)
    logits = checks.finite(checks.numeric_array(logits, "logits"), "logits")
    if X.ndim < 1 or logits.ndim < 1 or logits.shape[-1] != X.shape[-1]:
        raise ValueError(f"logits must have one entry per pixel, shape (..., D) with D = "
                         f"{X.shape[-1] if X.ndim else '?'} as X, got {checks.describe(logits)} (X has "
                         f"{checks.describe(X)}): pass the decoder's logits for every pixel.")
    try:
        np.broadcast_shapes(X.shape, logits.shape)
    except ValueError:
        raise ValueError(f"logits of shape {logits.shape} do not line up with X of shape {X.shape}: their "
                         f"leading axes must broadcast, e.g. logits (K, N, D) for X (N, D).") from None
    return X, logits


def gaussian_log_likelihood(X: np.ndarray, mean: np.ndarray, logvar) -> np.ndarray:
    """log N(x; mean, diag(exp(logvar))), summed over the last axis.

    Parameters: X: (..., D); mean: scalar or (..., D); logvar: scalar or (..., D);
    leading axes broadcast, the last (D) must match. Any real X: a Gaussian is a
    density on every real number. Returns: (...,) nats.
    """
    X = checks.finite(checks.numeric_array(X, "X"), "X")
    if X.ndim < 1:
        raise ValueError(f"X must be (..., D), got {checks.describe(X)}.")
    for name, A in (("mean", mean), ("logvar", logvar)):
        A = checks.finite(checks.numeric_array(A, name), name)
        if A.ndim and A.shape[-1] != X.shape[-1]:
            raise ValueError(f"{name} must be a scalar or (..., D) with D = {X.shape[-1]} as X, got "
                             f"{checks.describe(A)}.")
    logvar = np.asarray(logvar, dtype=np.result_type(_float_array(X), _float_array(mean)))
    sq = (X - mean) ** 2
    per_dim = -0.5 * (LOG_2PI + logvar + sq * np.exp(-logvar))
    return np.sum(np.broadcast_to(per_dim, np.broadcast(X, mean, logvar).shape), axis=-1)


def continuous_bernoulli_log_normalizer(logits: np.ndarray) -> np.ndarray:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(a), elementwise.

    CB(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x) on x in [0, 1], with
    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) and C(1/2) = 2
    (Loaiza-Ganem & Cunningham, 2019). In logits, 1 - 2 lambda = -tanh(a / 2)
    and artanh(1 - 2 lambda) = -a / 2, so C = a / tanh(a / 2): no 0/0 to divide
    except at a = 0 itself. Computed as log|a| - log(1 - e^-|a|) + log(1 + e^-|a|)
    (expm1 keeps 1 - e^-|a| exact for small |a|), and for |a| < 1e-2 by the
    series log 2 + a^2/12 - 7 a^4/1440, whose next term (31 a^6/90720) is below
    4e-16 there.

    Parameters: logits: any shape. Returns: the same shape, nats, >= log 2.
    """
    a = _float_array(logits)
    abs_a = np.abs(a)
    small = abs_a < 1e-2
    safe = np.where(small, 1.0, abs_a)                     # keeps log and expm1 away from 0
    direct = np.log(safe) - np.log(-np.expm1(-safe)) + np.log1p(np.exp(-safe))
    a2 = a * a
    series = np.log(2.0) + a2 / 12.0 - 7.0 * a2 * a2 / 1440.0
    return np.where(small, series, direct).astype(a.dtype, copy=False)


def continuous_bernoulli_log_normalizer_grad(logits: np.ndarray) -> np.ndarray:
    """d log C / d a = 1/a - 1/sinh(a), elementwise; a/6 - 7a^3/360 near 0. Same shape."""
    a = _float_array(logits)
    small = np.abs(a) < 1e-2
    safe = np.where(small, 1.0, a)
    with np.errstate(over="ignore"):                      # sinh(|a| > 710) = inf: 1/inf = 0, exact
        direct = 1.0 / safe - 1.0 / np.sinh(safe)
    series = a / 6.0 - 7.0 * (a * a * a) / 360.0       # a * a * a: ** is ~200x slower in float32
    return np.where(small, series, direct).astype(a.dtype, copy=False)


def continuous_bernoulli_log_likelihood(X: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log CB(x | sigmoid(a)), summed over the last axis: the Bernoulli formula plus log C.

    log p = sum_d x_d a_d - softplus(a_d) + log C(a_d), a normalised density
    on [0, 1]^D (unlike the Bernoulli formula on grey pixels, whose integral
    over [0, 1] is 1 / C(lambda) < 1).

    Parameters: X: (N, D) in [0, 1]; logits: (..., N, D). Returns: (..., N) nats.
    """
    X, logits = _data_and_logits(X, logits, "continuous-bernoulli")
    return np.sum(X * logits - softplus(logits) + continuous_bernoulli_log_normalizer(logits), axis=-1)


def continuous_bernoulli_mean(logits: np.ndarray) -> np.ndarray:
    """E[x] under CB(sigmoid(a)) = 1 / (1 - e^-a) - 1/a (1/2 + a/12 - a^3/720 near 0).

    Not sigmoid(a): the shape parameter lambda is not the mean, which lies
    closer to 1/2. Parameters: logits: any shape. Returns: the same shape, in (0, 1).
    """
    a = _float_array(logits)
    small = np.abs(a) < 1e-2
    safe = np.where(small, 1.0, a)
    with np.errstate(over="ignore"):                      # expm1(-a) = inf for a < -710: 0 - 1/a
        direct = -1.0 / np.expm1(-safe) - 1.0 / safe
    series = 0.5 + a / 12.0 - (a * a * a) / 720.0
    return np.where(small, series, direct).astype(a.dtype, copy=False)


def continuous_bernoulli_sample(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Samples of CB(sigmoid(a)) by inverting its CDF at uniform ``u``.

    x = log(1 + u (e^a - 1)) / a, written as 1 + log(u + (1 - u) e^-a) / a for
    a > 0 so that e^a never overflows; x = u near a = 0, where CB is uniform.
    Parameters: logits, u: the same shape, u in (0, 1). Returns: that shape, in [0, 1].
    """
    a = _float_array(logits)
    u = np.asarray(u, dtype=a.dtype)
    small = np.abs(a) < 1e-6
    safe = np.where(small, 1.0, a)
    with np.errstate(over="ignore", divide="ignore"):
        positive = 1.0 + np.log(u + (1.0 - u) * np.exp(-np.maximum(safe, 0))) / safe
        negative = np.log1p(u * np.expm1(np.minimum(safe, 0))) / safe
    x = np.where(safe > 0, positive, negative)
    return np.clip(np.where(small, u, x), 0.0, 1.0)


def log_likelihood(X: np.ndarray, logits: np.ndarray, likelihood: str = "bernoulli",
                   logvar=0.0) -> np.ndarray:
    """log p(x | z) of every decoder likelihood, from the decoder's logits a.

    "bernoulli": sum x a - softplus(a); "gaussian" and "gaussian-learned":
    log N(x; sigmoid(a), exp(logvar)) (logvar: scalar or (D,)); "continuous-
    bernoulli": the Bernoulli formula plus log C(a). Defined in notebook 07.

    Parameters: X: (N, D), in [0, 1] for the Bernoulli likelihoods, any real for the
    Gaussian; logits: (..., N, D). Returns: (..., N) nats.
    """
    checks.choice(likelihood, "likelihood", LIKELIHOODS)
    X, logits = _data_and_logits(X, logits, likelihood)
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(X, logits)
    if likelihood in ("gaussian", "gaussian-learned"):
        return gaussian_log_likelihood(X, sigmoid(logits), logvar)
    if likelihood == "continuous-bernoulli":
        return continuous_bernoulli_log_likelihood(X, logits)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}.")


def likelihood_mean(logits: np.ndarray, likelihood: str = "bernoulli") -> np.ndarray:
    """E[x | z] from the logits: sigmoid(a), except the continuous Bernoulli's own mean."""
    checks.choice(likelihood, "likelihood", LIKELIHOODS)
    if likelihood == "continuous-bernoulli":
        return continuous_bernoulli_mean(logits)
    if likelihood in LIKELIHOODS:
        return sigmoid(logits)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}.")


def standard_normal_log_density(Z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I): (..., L) -> (...,) nats. The prior p(z)."""
    Z = checks.finite(checks.numeric_array(Z, "Z"), "Z")
    return gaussian_log_likelihood(Z, 0.0, 0.0)


def reparameterize(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mu + sigma * eps with sigma = exp(0.5 * logvar) (a standard deviation).

    Parameters: mu, logvar: (N, L); eps: (N, L) or (K, N, L) standard normal.
    Returns: Z with eps's shape.
    """
    mu, logvar = checks.gaussian_params(mu, logvar)
    eps = checks.finite(checks.numeric_array(eps, "eps"), "eps")
    if eps.shape[-mu.ndim:] != mu.shape or eps.ndim not in (mu.ndim, mu.ndim + 1):
        raise ValueError(f"eps must be (N, L) or (K, N, L) ending in mu's shape {mu.shape}, got "
                         f"{checks.describe(eps)}.")
    return mu + np.exp(0.5 * logvar) * eps


def elbo_estimate(X, mu, logvar, eps, decode_logits, likelihood: str = "bernoulli",
                  output_logvar=0.0) -> np.ndarray:
    """The ELBO with K Monte Carlo samples and the analytic KL, per example.

    ELBO(x) = 1/K sum_k log p(x | z_k) - KL(q(z|x) || p(z)), z_k = mu + sigma eps_k.

    Parameters: X: (N, D); mu, logvar: (N, L); eps: (K, N, L);
    decode_logits: callable (M, L) -> (M, D) logits; likelihood, output_logvar:
    as for :func:`log_likelihood`. Returns: (N,) nats.
    """
    checks.choice(likelihood, "likelihood", LIKELIHOODS)
    X = checks.images(X, "X", likelihood=likelihood)
    mu, logvar = checks.gaussian_params(mu, logvar, len(X), np.shape(mu)[-1] if np.ndim(mu) == 2 else None)
    eps = checks.noise(eps, *mu.shape)
    K, N, L = eps.shape
    Z = reparameterize(mu, logvar, eps)                      # (K, N, L)
    logits = decode_logits(Z.reshape(K * N, L)).reshape(K, N, -1)
    log_px = log_likelihood(X, logits, likelihood, output_logvar)   # (K, N)
    return log_px.mean(axis=0) - gaussian_kl(mu, logvar)


def log_importance_weights(log_px_given_z, Z, mu, logvar) -> np.ndarray:
    """log w = log p(x|z) + log p(z) - log q(z|x), per sample.

    Parameters: log_px_given_z: (K, N); Z: (K, N, L); mu, logvar: (N, L).
    Returns: (K, N) nats.
    """
    mu, logvar = checks.gaussian_params(mu, logvar)
    if mu.ndim != 2:
        raise ValueError(f"mu and logvar must be (N, L), got {checks.describe(mu)}.")
    Z = checks.noise(Z, *mu.shape, name="Z")
    log_px_given_z = checks.finite(checks.numeric_array(log_px_given_z, "log_px_given_z"), "log_px_given_z")
    if log_px_given_z.shape != Z.shape[:2]:
        raise ValueError(f"log_px_given_z must be (K, N) = {Z.shape[:2]}, one per sample of Z, got "
                         f"{checks.describe(log_px_given_z)}.")
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


def log_mean_exp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """log mean exp(a) along ``axis``, by :func:`logsumexp`: the IWAE bound's formula, unchecked."""
    a = np.asarray(a)
    return logsumexp(a, axis=axis) - np.log(a.shape[axis])


def softmax(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """exp(a) / sum exp(a) along ``axis``: the normalised importance weights w~ of lesson 08."""
    a = np.asarray(a)
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def iwae_bound(log_weights: np.ndarray) -> np.ndarray:
    """The importance-weighted bound, log 1/K sum_k w_k, with log-sum-exp.

    Parameters: log_weights: (K, N). Returns: (N,) nats. K = 1 gives the ELBO
    (with a Monte Carlo KL); the bound rises towards log p(x) as K grows.
    """
    return log_mean_exp(checks.log_weights(log_weights), axis=0)
