"""A latent-variable model where everything is exact: the linear-Gaussian model (probabilistic PCA).

    z ~ N(0, I_L),    x | z ~ N(z @ W + b, s^2 I_D)

with ``W`` (L, D) stored as (in, out) like every layer of the package, so the
decoder's mean is ``X_mean = Z @ W + b``, and ``noise_var`` = s^2. Because
everything is Gaussian and linear:

- the evidence is Gaussian: p(x) = N(b, C) with C = W^T W + s^2 I_D (D, D);
- the posterior is Gaussian: p(z | x) = N(m(x), S) with precision
  Lambda = S^-1 = I_L + W W^T / s^2 (L, L), the same for every x, and mean
  m(x) = (x - b) @ W^T @ S / s^2;
- for a Gaussian q(z | x) = N(q_mu, q_cov), the ELBO is analytic:
  E_q[log p(x|z)] = -D/2 log(2 pi s^2) - (|x - b - q_mu W|^2 + tr(W W^T q_cov)) / (2 s^2),
  and KL(q || p(z)) is the Gaussian KL.

So the bound, the gap and the posterior can all be checked to round-off, which
is what notebook 02 does (and notebook 08 reuses). Shapes: ``X`` is (N, D);
``q_mu`` and ``q_logvar`` are (N, L); a full covariance ``q_cov`` is (L, L),
shared by all rows, or (N, L, L). All results are per example, in nats.

:class:`LinearGaussianVAE` wraps a model in the protocol of
``vae_teach.interface`` (encode/decode/log_likelihood/elbo/get_params), so
``vae_teach.evaluate`` works on a model whose log p(x) is known exactly.

Defined in notebook 02 (the ELBO, derived and checked).
"""

from __future__ import annotations

import numpy as np

from vae_teach import checks
from vae_teach.elbo import LOG_2PI, gaussian_kl, gaussian_log_likelihood
from vae_teach.interface import VAEConfig, check_params, draw_noise


def _q_cov(q_logvar, q_cov, n: int, L: int) -> np.ndarray:
    """The covariance of q as (N, L, L), from exactly one of a diagonal log-variance or a full matrix."""
    if (q_logvar is None) == (q_cov is None):
        raise ValueError("give exactly one of q_logvar (N, L), a diagonal q, or q_cov (L, L) or (N, L, L).")
    if q_logvar is not None:
        q_logvar = checks.finite(checks.numeric_array(q_logvar, "q_logvar", np.float64), "q_logvar")
        if q_logvar.shape != (n, L):
            raise ValueError(f"q_logvar must be (N, L) = ({n}, {L}), one log-variance per example and latent "
                             f"dimension, got {checks.describe(q_logvar)}; nothing is broadcast.")
        var = np.exp(q_logvar)
        cov = np.zeros((n, L, L))
        idx = np.arange(L)
        cov[:, idx, idx] = var
        return cov
    q_cov = checks.finite(checks.numeric_array(q_cov, "q_cov", np.float64), "q_cov")
    if q_cov.shape not in ((L, L), (n, L, L)):
        raise ValueError(f"q_cov must be ({L}, {L}) or ({n}, {L}, {L}), got {q_cov.shape}.")
    return np.broadcast_to(q_cov, (n, L, L))


def _logdet(A: np.ndarray) -> np.ndarray:
    """log det of symmetric positive-definite matrices (..., L, L) -> (...,), by Cholesky."""
    chol = np.linalg.cholesky(A)
    return 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def gaussian_entropy_full(cov: np.ndarray) -> np.ndarray:
    """Entropy of N(m, cov) in nats: 1/2 log det(2 pi e cov). cov: (..., L, L) -> (...,)."""
    cov = np.asarray(cov, dtype=np.float64)
    L = cov.shape[-1]
    return 0.5 * (L * (LOG_2PI + 1.0) + _logdet(cov))


def gaussian_kl_full(mu_q, cov_q, mu_p, cov_p) -> np.ndarray:
    """KL(N(mu_q, cov_q) || N(mu_p, cov_p)) for full covariances, in nats.

    KL = 1/2 [tr(P cov_q) + (mu_p - mu_q) P (mu_p - mu_q) - L + log det cov_p - log det cov_q],
    P = cov_p^-1. Inputs: means (..., L), covariances (..., L, L), broadcasting.
    Returns: (...,).
    """
    mu_q, mu_p = np.asarray(mu_q, np.float64), np.asarray(mu_p, np.float64)
    cov_q, cov_p = np.asarray(cov_q, np.float64), np.asarray(cov_p, np.float64)
    L = mu_q.shape[-1]
    P = np.linalg.inv(cov_p)
    d = mu_p - mu_q
    trace = np.einsum("...ij,...ji->...", P, cov_q)
    maha = np.einsum("...i,...ij,...j->...", d, P, d)
    return 0.5 * (trace + maha - L + _logdet(cov_p) - _logdet(cov_q))


class LinearGaussian:
    """z ~ N(0, I_L), x | z ~ N(z @ W + b, noise_var * I_D): log p(x) and p(z|x) in closed form.

    Parameters: W: (L, D) decoder weights, (in, out); b: (D,) decoder bias
    (the mean of x); noise_var: s^2 > 0, the variance of every pixel's noise.
    Everything is computed in float64.
    """

    def __init__(self, W, b, noise_var: float):
        self.W = np.array(checks.finite(checks.numeric_array(W, "W"), "W"), dtype=np.float64, ndmin=2)
        self.b = np.array(checks.finite(checks.numeric_array(b, "b"), "b"), dtype=np.float64)
        if self.W.ndim != 2 or self.b.ndim != 1 or self.W.shape[1] != self.b.shape[0]:
            raise ValueError(f"W must be (L, D) and b (D,), got W {self.W.shape} and b {self.b.shape}.")
        self.noise_var = checks.positive(noise_var, "noise_var")

    # ----- construction ---------------------------------------------------
    @classmethod
    def random(cls, input_dim: int, latent_dim: int, noise_var: float = 0.25, seed: int = 0) -> LinearGaussian:
        """A model with W and b drawn from N(0, 1), seeded. Its posterior covariance is not diagonal."""
        checks.count(input_dim, "input_dim")
        checks.count(latent_dim, "latent_dim")
        rng = np.random.default_rng(checks.seed(seed))
        return cls(rng.standard_normal((latent_dim, input_dim)), rng.standard_normal(input_dim), noise_var)

    @classmethod
    def fit_ppca(cls, X, latent_dim: int) -> LinearGaussian:
        """The maximum-likelihood model for data X (N, D), in closed form (Tipping & Bishop 1999).

        b = the mean of X; with the covariance's eigenvalues lam_1 >= ... >= lam_D
        and eigenvectors U, noise_var = the mean of the D - L discarded
        eigenvalues and W = diag(sqrt(lam_l - noise_var)) U_L^T (the rotation
        fixed to the identity), so W W^T is diagonal and so is the posterior
        covariance. Needs lam_L > noise_var.
        """
        X = checks.matrix(X, "X", dtype=np.float64)
        N, D = X.shape
        if N < 2:
            raise ValueError(f"fit_ppca needs at least 2 rows of X to estimate a covariance, got {X.shape}.")
        if not 0 < latent_dim < D:
            raise ValueError(f"latent_dim must be in 1..{D - 1}, got {latent_dim}.")
        b = X.mean(axis=0)
        cov = np.cov(X, rowvar=False, bias=True)              # (D, D), the ML estimate
        lam, U = np.linalg.eigh(cov)
        lam, U = lam[::-1], U[:, ::-1]                          # decreasing
        noise_var = float(lam[latent_dim:].mean())
        if not lam[latent_dim - 1] > noise_var > 0:
            raise ValueError("fit_ppca: the data's covariance has too few large eigenvalues for "
                             f"latent_dim={latent_dim}; use a smaller latent_dim.")
        scale = np.sqrt(lam[:latent_dim] - noise_var)         # (L,)
        U_L = U[:, :latent_dim]
        U_L = U_L * np.sign(U_L[np.argmax(np.abs(U_L), axis=0), np.arange(latent_dim)])  # fix signs
        return cls(scale[:, None] * U_L.T, b, noise_var)

    # ----- sizes and the generative model -------------------------------
    @property
    def latent_dim(self) -> int:
        return self.W.shape[0]

    @property
    def input_dim(self) -> int:
        return self.W.shape[1]

    def sample(self, n: int, rng: np.random.Generator, return_latents: bool = False):
        """Draw n points from the model: Z ~ N(0, I), X = Z @ W + b + s * noise.

        Returns: X (n, D), or (X, Z) with Z (n, L) when ``return_latents``.
        """
        Z = rng.standard_normal((int(n), self.latent_dim))
        X = self.decode(Z) + np.sqrt(self.noise_var) * rng.standard_normal((int(n), self.input_dim))
        return (X, Z) if return_latents else X

    def decode(self, Z) -> np.ndarray:
        """The likelihood's mean: Z (..., L) -> X_mean (..., D) = Z @ W + b."""
        return self._latents(Z) @ self.W + self.b

    # ----- input checks (vae_teach.checks) ----------------------------
    def _data(self, X, name: str = "X") -> np.ndarray:
        """X (N, D) of this model's D, finite, any real (a Gaussian's data), float64."""
        return checks.matrix(X, name, self.input_dim, "pixels (the model's D)", np.float64)

    def _latents(self, Z, name: str = "Z") -> np.ndarray:
        """Z (..., L), finite, float64."""
        Z = checks.finite(checks.numeric_array(Z, name, np.float64), name)
        if Z.ndim < 1 or Z.shape[-1] != self.latent_dim:
            raise ValueError(f"{name} must be (..., L) with L = {self.latent_dim} (the model's latent_dim), "
                             f"got {checks.describe(Z)}.")
        return Z

    def _data_and_latents(self, X, Z) -> tuple[np.ndarray, np.ndarray]:
        """X (N, D) and Z (..., N, L), one row of Z per row of X; or one image X (1, D) scored
        against every code (the gradient estimators' use); or codes Z (..., 1, L) shared by every
        image (lesson 02's grid over z). Nothing else is broadcast."""
        X, Z = self._data(X), self._latents(Z)
        if Z.ndim < 2 or (Z.shape[-2] != len(X) and len(X) != 1 and Z.shape[-2] != 1):
            raise ValueError(f"Z must be (..., N, L) with N = {len(X)} as X (one code per image), got "
                             f"{checks.describe(Z)}; X has shape {X.shape}.")
        return X, Z

    def log_likelihood(self, X, Z) -> np.ndarray:
        """log p(x | z) = log N(x; z W + b, s^2 I): X (N, D), Z (..., N, L) -> (..., N) nats."""
        X, Z = self._data_and_latents(X, Z)
        return gaussian_log_likelihood(X, self.decode(Z), np.log(self.noise_var))

    def log_likelihood_grad(self, X, Z) -> np.ndarray:
        """d log p(x | z) / dz = (x - z W - b) W^T / s^2: X (N, D), Z (..., N, L) -> (..., N, L)."""
        X, Z = self._data_and_latents(X, Z)
        return (X - self.decode(Z)) @ self.W.T / self.noise_var

    def log_joint(self, X, Z) -> np.ndarray:
        """log p(x, z) = log p(x | z) + log N(z; 0, I): X (N, D), Z (..., N, L) -> (..., N)."""
        return self.log_likelihood(X, Z) + gaussian_log_likelihood(self._latents(Z), 0.0, 0.0)

    # ----- exact inference --------------------------------------------------
    def marginal_cov(self) -> np.ndarray:
        """C = W^T W + s^2 I_D, the covariance of p(x) = N(b, C): (D, D)."""
        return self.W.T @ self.W + self.noise_var * np.eye(self.input_dim)

    def posterior_precision(self) -> np.ndarray:
        """Lambda = I_L + W W^T / s^2, the inverse of the posterior covariance: (L, L)."""
        return np.eye(self.latent_dim) + self.W @ self.W.T / self.noise_var

    def log_marginal(self, X) -> np.ndarray:
        """Exact log p(x) = log N(x; b, W^T W + s^2 I), by Woodbury: X (N, D) -> (N,) nats.

        Only L x L matrices are factorised: log det C = D log s^2 + log det Lambda, and
        r C^-1 r = (|r|^2 - |chol(Lambda)^-1 W r / s^2|^2 s^2) / s^2 with r = x - b.
        """
        R = self._data(X) - self.b                             # (N, D)
        s2, D = self.noise_var, self.input_dim
        chol = np.linalg.cholesky(self.posterior_precision())  # (L, L)
        proj = np.linalg.solve(chol, (R @ self.W.T).T / s2).T  # (N, L)
        maha = np.sum(R * R, axis=1) / s2 - np.sum(proj * proj, axis=1)
        logdet = D * np.log(s2) + 2.0 * np.sum(np.log(np.diag(chol)))
        return -0.5 * (D * LOG_2PI + logdet + maha)

    def posterior(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The exact posterior p(z | x) = N(mean, cov): X (N, D) -> mean (N, L), cov (L, L).

        cov = Lambda^-1 is the same for every x; mean = (x - b) W^T cov / s^2.
        """
        cov = np.linalg.inv(self.posterior_precision())
        cov = 0.5 * (cov + cov.T)
        mean = (self._data(X) - self.b) @ self.W.T @ cov / self.noise_var
        return mean, cov

    def mean_field_posterior(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The best diagonal Gaussian q (smallest KL(q || p(z|x))): X (N, D) -> mu, logvar (N, L).

        Its mean is the posterior mean; its variances are 1 / Lambda_ll, the inverse of the
        precision's diagonal (never larger than the posterior's marginal variances S_ll).
        Equal to the posterior when W W^T is diagonal (as after ``fit_ppca``).
        """
        mean, _ = self.posterior(X)
        logvar = -np.log(np.diag(self.posterior_precision()))
        return mean, np.broadcast_to(logvar, mean.shape).copy()

    # ----- the ELBO in closed form -----------------------------------------
    def expected_log_likelihood(self, X, q_mu, q_logvar=None, q_cov=None) -> np.ndarray:
        """E_q[log p(x | z)] for q = N(q_mu, cov), exactly: (N,) nats.

        = -D/2 log(2 pi s^2) - (|x - b - q_mu W|^2 + tr(W W^T cov)) / (2 s^2).
        Give the covariance as q_logvar (N, L) (diagonal) or q_cov ((L, L) or (N, L, L)).
        """
        X = self._data(X)
        q_mu = self._q_mu(q_mu, len(X))
        cov = _q_cov(q_logvar, q_cov, len(X), self.latent_dim)
        s2, D = self.noise_var, self.input_dim
        resid = X - self.decode(q_mu)                         # (N, D)
        spread = np.einsum("ij,nji->n", self.W @ self.W.T, cov)   # tr(W W^T cov), (N,)
        return -0.5 * D * (LOG_2PI + np.log(s2)) - (np.sum(resid * resid, axis=1) + spread) / (2 * s2)

    def expected_log_likelihood_grad(self, X, q_mu, q_logvar) -> tuple[np.ndarray, np.ndarray]:
        """The exact gradient of E_q[log p(x | z)] for a diagonal q, w.r.t. (q_mu, q_logvar).

        d/dmu = (x - b - mu W) W^T / s^2; d/dlogvar_l = -(W W^T)_ll exp(logvar_l) / (2 s^2).
        Inputs: X (N, D), q_mu and q_logvar (N, L). Returns: two (N, L) arrays.
        """
        X = self._data(X)
        q_mu, q_logvar = checks.gaussian_params(q_mu, q_logvar, len(X), self.latent_dim, ("q_mu", "q_logvar"),
                                                np.float64)
        g_mu = self.log_likelihood_grad(X, q_mu)
        g_logvar = -np.diag(self.W @ self.W.T) * np.exp(q_logvar) / (2 * self.noise_var)
        return g_mu, np.broadcast_to(g_logvar, q_mu.shape).copy()

    def kl_to_prior(self, q_mu, q_logvar=None, q_cov=None) -> np.ndarray:
        """KL(q || p(z)) = 1/2 (tr cov + |q_mu|^2 - L - log det cov): (N,) nats."""
        q_mu = self._q_mu(q_mu)
        if q_logvar is not None and q_cov is None:
            return gaussian_kl(*checks.gaussian_params(q_mu, q_logvar, len(q_mu), self.latent_dim,
                                                       ("q_mu", "q_logvar")))
        cov = _q_cov(q_logvar, q_cov, len(q_mu), self.latent_dim)
        return 0.5 * (np.trace(cov, axis1=1, axis2=2) + np.sum(q_mu * q_mu, axis=1)
                      - self.latent_dim - _logdet(cov))

    def elbo(self, X, q_mu, q_logvar=None, q_cov=None) -> np.ndarray:
        """The ELBO E_q[log p(x | z)] - KL(q || p(z)) for a Gaussian q, in closed form: (N,) nats.

        Inputs: X (N, D); q_mu (N, L); exactly one of q_logvar (N, L) or q_cov ((L, L) or (N, L, L)).
        """
        return (self.expected_log_likelihood(X, q_mu, q_logvar, q_cov)
                - self.kl_to_prior(q_mu, q_logvar, q_cov))

    def kl_to_posterior(self, X, q_mu, q_cov=None, q_logvar=None) -> np.ndarray:
        """KL(q || p(z | x)), the gap log p(x) - ELBO, computed from its own formula: (N,) nats.

        Inputs: X (N, D); q_mu (N, L); q_cov ((L, L) or (N, L, L)) or q_logvar (N, L).
        """
        X = self._data(X)
        q_mu = self._q_mu(q_mu, len(X))
        cov = _q_cov(q_logvar, q_cov, len(q_mu), self.latent_dim)
        mean, post_cov = self.posterior(X)
        return gaussian_kl_full(q_mu, cov, mean, post_cov)

    def _q_mu(self, q_mu, n: int | None = None) -> np.ndarray:
        """q's means, (N, L) with N = n (the rows of X) if given, finite, float64."""
        q_mu = checks.latents(q_mu, "q_mu", self.latent_dim, np.float64)
        if n is not None and len(q_mu) != n:
            raise ValueError(f"q_mu must have one row per row of X, N = {n}, got {checks.describe(q_mu)}.")
        return q_mu

    def as_vae(self) -> LinearGaussianVAE:
        """This model, with its best amortised diagonal encoder, behind the protocol."""
        return LinearGaussianVAE(self)


class LinearGaussianVAE:
    """A :class:`LinearGaussian` behind the protocol of ``vae_teach.interface``.

    The encoder is linear, ``mu = X @ mu_W + mu_b`` and ``logvar = X @ logvar_W + logvar_b``,
    and starts at the best one: the mean-field posterior of the model
    (:meth:`LinearGaussian.mean_field_posterior`: ``logvar_W`` = 0). The decoder is
    ``out_W`` (L, D) = W and ``out_b`` = b: the shared parameter names of a
    ``VAEConfig`` with no hidden layer. The noise variance is fixed (not a parameter).
    ``log_likelihood`` and ``decode`` are Gaussian (``decode`` returns the mean
    z W + b, not probabilities). ``elbo`` is a Monte Carlo estimate with the
    protocol's noise; ``exact_elbo`` is the closed form.
    """

    backend = "linear-gaussian"

    def __init__(self, model: LinearGaussian):
        self.model = model
        # A Gaussian likelihood: its data may be any real numbers (not only pixels in [0, 1]).
        self.config = VAEConfig(input_dim=model.input_dim, hidden_dims=(), latent_dim=model.latent_dim,
                                likelihood="gaussian", output_logvar=float(np.log(model.noise_var)))
        self.params = self.optimal_encoder_params(model)
        self.params.update(out_W=model.W.copy(), out_b=model.b.copy())

    @staticmethod
    def optimal_encoder_params(model: LinearGaussian) -> dict[str, np.ndarray]:
        """mu_W (D, L), mu_b (L,), logvar_W (D, L), logvar_b (L,) of the mean-field posterior."""
        _, cov = model.posterior(np.zeros((1, model.input_dim)))
        mu_W = model.W.T @ cov / model.noise_var                # (D, L)
        return {"mu_W": mu_W, "mu_b": -model.b @ mu_W,
                "logvar_W": np.zeros_like(mu_W),
                "logvar_b": -np.log(np.diag(model.posterior_precision()))}

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, X) -> tuple[np.ndarray, np.ndarray]:
        """X (N, D) -> mu, logvar (N, L), (N, L)."""
        X = self.model._data(X)
        p = self.params
        return X @ p["mu_W"] + p["mu_b"], X @ p["logvar_W"] + p["logvar_b"]

    def decode(self, Z) -> np.ndarray:
        """Z (N, L) -> X_mean (N, D) = Z @ out_W + out_b, the Gaussian likelihood's mean."""
        return self.model.decode(checks.latents(Z, "Z", self.latent_dim))

    def log_likelihood(self, X, Z) -> np.ndarray:
        """log p(x | z), Gaussian: (N, D), (N, L) -> (N,) nats."""
        Z = checks.latents(Z, "Z", self.latent_dim)
        return self.model.log_likelihood(X, Z)

    def elbo(self, X, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Monte Carlo ELBO with K = n_samples draws from ``draw_noise(seed, ...)``, analytic KL: (N,)."""
        mu, logvar = self.encode(X)
        eps = draw_noise(checks.seed(seed), checks.count(n_samples, "n_samples"), len(mu),
                         self.latent_dim)                                       # (K, N, L)
        Z = mu + np.exp(0.5 * logvar) * eps
        return self.model.log_likelihood(X, Z).mean(axis=0) - gaussian_kl(mu, logvar)

    def exact_elbo(self, X) -> np.ndarray:
        """The same ELBO in closed form (the limit of ``elbo`` as n_samples grows): (N,)."""
        mu, logvar = self.encode(X)
        return self.model.elbo(X, mu, q_logvar=logvar)

    def get_params(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Load encoder and decoder weights; the decoder's replace the model's W and b."""
        check_params(self.config, params)
        params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
        self.params = params
        self.model = LinearGaussian(params["out_W"], params["out_b"], self.model.noise_var)
