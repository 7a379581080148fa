"""The MLP VAE from scratch: forward pass, hand-written backward pass, protocol.

Encoder: X -> [linear -> activation] * H -> (mu, logvar) heads.
Decoder: Z -> [linear -> activation] * H (reversed sizes) -> logits.
Loss: the likelihood's NLL summed over pixels (Bernoulli by default; Gaussian
and continuous Bernoulli from lesson 07) + KL, averaged over samples of z and
over the batch; loss = -ELBO in nats per image. Or, from lesson 08, the IWAE
bound's negative (``objective="iwae"``).

Defined in notebook 03; likelihoods in 07; the IWAE objective and the
gradients with respect to a free q(z|x) (for the amortisation gap) in 08.
"""

from __future__ import annotations

import numpy as np

from vae_teach import checks
from vae_teach.elbo import LOG_2PI, likelihood_mean, log_likelihood, log_mean_exp, softmax
from vae_teach.interface import VAEConfig, check_params, draw_noise, init_params
from vae_teach.numpy_vae.layers import (
    ACTIVATION_LAYERS,
    continuous_bernoulli_nll_backward,
    continuous_bernoulli_nll_forward,
    free_bits_kl_backward,
    free_bits_kl_forward,
    gaussian_kl_backward,
    gaussian_kl_forward,
    linear_backward,
    linear_forward,
    mlp_backward,
    mlp_forward,
    reparameterize_backward,
    reparameterize_forward,
    sigmoid_bce_backward,
    sigmoid_bce_forward,
    sigmoid_gaussian_nll_backward,
    sigmoid_gaussian_nll_forward,
)

OBJECTIVES = ("elbo", "iwae")


class NumpyVAE:
    """A VAE whose every gradient is written by hand.

    Parameters: config: the architecture (``VAEConfig``); seed: initial
    weights' seed; dtype: np.float32 for speed, np.float64 for checks.
    Meets the protocol in ``vae_teach.interface``.
    """

    backend = "numpy"

    def __init__(self, config: VAEConfig, seed: int = 0, dtype=np.float32):
        self.config = config
        self.dtype = np.dtype(dtype)
        self.params = init_params(config, seed=seed, dtype=self.dtype)
        self._act_forward, self._act_backward = ACTIVATION_LAYERS[config.activation]
        self._n_hidden = len(config.hidden_dims)

    # ----- the protocol -------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def get_params(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by its shared name."""
        return {name: value.copy() for name, value in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Load weights (from any backend), cast to this model's dtype."""
        check_params(self.config, params)
        params = {name: np.asarray(value) for name, value in params.items()}
        self.params = {name: value.astype(self.dtype, copy=True) for name, value in params.items()}

    def encode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X: (N, D) -> mu, logvar: (N, L), (N, L)."""
        mu, logvar, _ = self._encode_forward(self._images(X))
        return mu, logvar

    def decode_logits(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> logits: (N, D), the decoder's output before the sigmoid."""
        logits, _ = self._decode_forward(self._latents(Z))
        return logits

    def decode(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> X_mean: (N, D), the likelihood's mean (sigmoid(logits) but for
        the continuous Bernoulli, whose mean is ``continuous_bernoulli_mean``)."""
        return likelihood_mean(self.decode_logits(Z), self.config.likelihood).astype(self.dtype, copy=False)

    @property
    def output_logvar(self):
        """The Gaussian likelihood's log sigma^2: the learned (D,) vector, or the fixed scalar."""
        return self.params.get("out_logvar", self.dtype.type(self.config.output_logvar))

    def log_likelihood(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """log p(x | z): (N, D), (N, L) -> (N,) nats, from logits."""
        X, Z = self._images(X), self._latents(Z)
        checks.same_rows(X=X, Z=Z)
        return log_likelihood(X, self.decode_logits(Z), self.config.likelihood, self.output_logvar)

    def elbo(self, X: np.ndarray, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Per-example ELBO in nats, with K = n_samples draws of z: (N,)."""
        X = self._images(X)
        eps = draw_noise(checks.seed(seed), checks.count(n_samples, "n_samples"), len(X), self.latent_dim)
        return self.elbo_with_noise(X, eps)

    # ----- forward and backward ---------------------------------------
    def elbo_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example ELBO for given noise: X (N, D), eps (K, N, L) -> (N,)."""
        X = self._images(X)
        nll, kl, _, _ = self._forward(X, self._noise(eps, len(X)))
        return -(nll.mean(axis=0) + kl)

    def iwae_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example IWAE bound log 1/K sum_k w_k for given noise: X (N, D), eps (K, N, L) -> (N,).

        With K = 1 it is the ELBO with a one-sample Monte Carlo KL instead of the
        analytic one. Defined in notebook 08.
        """
        X = self._images(X)
        eps = self._noise(eps, len(X))
        nll, _, _, (Z, logvar) = self._forward(X, eps)
        return log_mean_exp(self._log_weights(nll, Z, logvar, eps), axis=0)

    def loss_and_grads(self, X: np.ndarray, eps: np.ndarray, objective: str = "elbo",
                       kl_weight: float = 1.0, free_bits: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
        """loss = -mean_n ELBO_n (nats per image) and its gradient for every parameter.

        The K-sample ELBO with the analytic KL. kl_weight = beta != 1 gives
        mean_n (NLL_n + beta KL_n) instead, no longer a bound (lesson 07: a
        per-pixel mean of the NLL is beta = D in disguise). free_bits = lambda > 0
        replaces the KL term by sum_l max(lambda, mean_n KL_nl) (Kingma et al.,
        2016; ``layers.free_bits_kl_forward``), also no longer a bound.
        objective="iwae" gives the IWAE bound's instead (lesson 08,
        ``_iwae_loss_and_grads``).

        Inputs: X: (N, D); eps: (K, N, L) or (N, L).
        Returns: loss (float), grads (dict, names and shapes as ``params``).
        """
        checks.choice(objective, "objective", OBJECTIVES)
        checks.nonnegative(kl_weight, "kl_weight")
        checks.nonnegative(free_bits, "free_bits")
        if objective == "iwae" and (kl_weight != 1.0 or free_bits != 0.0):
            raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                             "separate KL term.")
        X = self._images(X)
        return self._loss_and_grads(X, self._noise(eps, len(X)), objective, kl_weight, free_bits)

    def _loss_and_grads(self, X, eps, objective="elbo", kl_weight=1.0, free_bits=0.0):
        """``loss_and_grads`` without its input checks: X (N, D), eps (K, N, L) of the model's dtype.
        The training loop's step, whose data ``train`` checked once."""
        if objective == "iwae":
            return self._iwae_loss_and_grads(X, eps)
        K, N = eps.shape[:2]
        nll, kl, caches, (_, logvar) = self._forward(X, eps)
        enc_cache, reparam_cache, dec_cache, nll_cache, kl_cache = caches
        if free_bits > 0:
            kl_term, free_bits_cache = free_bits_kl_forward(kl_cache[0], logvar, free_bits)
        else:
            kl_term = kl.mean()
        loss = float(nll.mean() + kl_weight * kl_term)

        grads: dict[str, np.ndarray] = {}
        # d loss / d nll_kn = 1 / (K N); d loss / d kl_n = beta / N (1 for the ELBO).
        dnll = np.full((K, N), 1.0 / (K * N), dtype=self.dtype)
        dZ = self._decode_and_likelihood_backward(dnll, dec_cache, nll_cache, grads)   # (K, N, L)
        dmu_rep, dlogvar_rep = reparameterize_backward(dZ, reparam_cache)
        if free_bits > 0:
            dmu_kl, dlogvar_kl = free_bits_kl_backward(kl_weight, free_bits_cache)
        else:
            dmu_kl, dlogvar_kl = gaussian_kl_backward(np.full(N, kl_weight / N, dtype=self.dtype), kl_cache)
        dmu = dmu_rep.sum(axis=0) + dmu_kl                    # (N, L): summed over samples
        dlogvar = dlogvar_rep.sum(axis=0) + dlogvar_kl
        self._encode_backward(dmu, dlogvar, enc_cache, grads)
        return loss, grads

    def _iwae_loss_and_grads(self, X, eps):
        """loss = -mean_n IWAE_K(x_n) and its gradients (lesson 08).

        log w_kn = log p(x_n | z_kn) + log p(z_kn) - log q(z_kn | x_n), IWAE_K = log mean_k w_kn.
        d loss / d log w_kn = -w~_kn / N, with w~ the weights normalised over k (a
        softmax): each sample's gradient counts by its normalised weight.
        Inputs: X (N, D), eps (K, N, L), already checked.
        """
        N = eps.shape[1]
        nll, _, caches, (Z, logvar) = self._forward(X, eps)
        enc_cache, reparam_cache, dec_cache, nll_cache, _ = caches
        log_w = self._log_weights(nll, Z, logvar, eps)                      # (K, N)
        loss = float(-log_mean_exp(log_w, axis=0).mean())
        g = (softmax(log_w, axis=0) / N).astype(self.dtype)                  # (K, N) = -d loss / d log w
        grads: dict[str, np.ndarray] = {}
        # d(-log w)/d nll = 1, so nll's upstream is g. log p(z) = -|z|^2/2 + c gives d loss/dZ = g z.
        # log q(z|x) at z = mu + sigma eps is log N(eps; 0, I) - sum_l logvar_l / 2:
        # mu drops out, and d loss / d logvar_nl = -1/2 sum_k g_kn.
        dZ = self._decode_and_likelihood_backward(g, dec_cache, nll_cache, grads)
        dZ += g[:, :, None] * Z
        dmu_rep, dlogvar_rep = reparameterize_backward(dZ, reparam_cache)
        dmu = dmu_rep.sum(axis=0)
        dlogvar = dlogvar_rep.sum(axis=0) - 0.5 * g.sum(axis=0)[:, None]
        self._encode_backward(dmu, dlogvar, enc_cache, grads)
        return loss, grads

    def latent_elbo_and_grads(self, X: np.ndarray, mu: np.ndarray, logvar: np.ndarray,
                              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each example's ELBO under a free q(z|x_n) = N(mu_n, exp(logvar_n)), and its gradient.

        The encoder is not used: this is classical (non-amortised) variational
        inference with the decoder held fixed (lesson 08, the amortisation gap).
        Inputs: X: (N, D); mu, logvar: (N, L); eps: (K, N, L) or (N, L).
        Returns: elbo (N,) nats, d elbo_n / d mu_n (N, L), d elbo_n / d logvar_n (N, L).
        """
        X = self._images(X)
        eps = self._noise(eps, len(X))
        mu, logvar = checks.gaussian_params(mu, logvar, len(X), self.latent_dim, dtype=self.dtype)
        K, N, L = eps.shape
        Z, reparam_cache = reparameterize_forward(mu, logvar, eps)
        logits, dec_cache = self._decode_forward(Z.reshape(K * N, L))
        nll, nll_cache = self._nll_forward(logits, self._repeat(X, K))
        kl, kl_cache = gaussian_kl_forward(mu, logvar)
        elbo = -(nll.reshape(K, N).mean(axis=0) + kl)
        # Gradient of sum_n -ELBO_n: each example's own, since q_n touches only x_n.
        dnll = np.full((K, N), 1.0 / K, dtype=self.dtype)
        dZ = self._decode_and_likelihood_backward(dnll, dec_cache, nll_cache, None)
        dmu_rep, dlogvar_rep = reparameterize_backward(dZ, reparam_cache)
        dmu_kl, dlogvar_kl = gaussian_kl_backward(np.ones(N, dtype=self.dtype), kl_cache)
        return elbo, -(dmu_rep.sum(axis=0) + dmu_kl), -(dlogvar_rep.sum(axis=0) + dlogvar_kl)

    @staticmethod
    def _log_weights(nll, Z, logvar, eps):
        """log w = log p(x|z) + log p(z) - log q(z|x), (K, N), from nll (K, N), Z and eps
        (K, N, L), logvar (N, L). With z = mu + sigma eps, log q = sum_l -(log 2 pi + logvar_l + eps_l^2) / 2.
        """
        log_prior = -0.5 * np.sum(LOG_2PI + Z * Z, axis=-1)
        log_q = -0.5 * np.sum(LOG_2PI + logvar + eps * eps, axis=-1)
        return -nll + log_prior - log_q

    def _repeat(self, X, K):
        """X (N, D) once per sample of z: (K N, D). With K = 1, X itself, without a copy."""
        return X if K == 1 else np.broadcast_to(X, (K,) + X.shape).reshape(K * len(X), -1)

    def _nll_forward(self, logits, X):
        """The likelihood's negative log p(x | z) per row: (M, D), (M, D) -> (M,), cache."""
        likelihood = self.config.likelihood
        if likelihood == "bernoulli":
            return sigmoid_bce_forward(logits, X)
        if likelihood == "continuous-bernoulli":
            return continuous_bernoulli_nll_forward(logits, X)
        return sigmoid_gaussian_nll_forward(logits, X, self.output_logvar)

    def _decode_and_likelihood_backward(self, dnll, dec_cache, nll_cache, grads):
        """Backward from the per-sample NLLs' upstream gradient dnll (K, N) to Z: (K, N, L).

        Fills the decoder's gradients (and ``out_logvar``'s, if learned) into grads,
        or computes none with grads=None.
        """
        K, N = dnll.shape
        dnll = dnll.reshape(K * N)
        likelihood = self.config.likelihood
        if likelihood == "bernoulli":
            dlogits = sigmoid_bce_backward(dnll, nll_cache)
        elif likelihood == "continuous-bernoulli":
            dlogits = continuous_bernoulli_nll_backward(dnll, nll_cache)
        else:
            dlogits, dlogvar = sigmoid_gaussian_nll_backward(dnll, nll_cache)
            if likelihood == "gaussian-learned" and grads is not None:
                grads["out_logvar"] = dlogvar
        return self._decode_backward(dlogits, dec_cache, grads).reshape(K, N, -1)

    def _forward(self, X, eps):
        """Returns nll (K, N), kl (N,), caches, (Z (K, N, L), logvar (N, L))."""
        K, N, L = eps.shape
        mu, logvar, enc_cache = self._encode_forward(X)
        Z, reparam_cache = reparameterize_forward(mu, logvar, eps)     # (K, N, L)
        logits, dec_cache = self._decode_forward(Z.reshape(K * N, L))
        # Each of the K samples of z is compared with the same X.
        nll, nll_cache = self._nll_forward(logits, self._repeat(X, K))
        kl, kl_cache = gaussian_kl_forward(mu, logvar)
        caches = (enc_cache, reparam_cache, dec_cache, nll_cache, kl_cache)
        return nll.reshape(K, N), kl, caches, (Z, logvar)

    def _hidden_forward(self, prefix, h):
        """The hidden layers ``{prefix}{i}``: [linear -> activation] * H. Returns h, caches."""
        return mlp_forward(h, self.params, prefix, self._n_hidden, self._act_forward)

    def _hidden_backward(self, prefix, dh, caches, grads, input_grad=True):
        """Backward through ``_hidden_forward`` (``mlp_backward``): fills grads (none with
        grads=None), returns the input's gradient (None with input_grad=False)."""
        return mlp_backward(dh, caches, prefix, self._act_backward, grads, input_grad)

    def _encode_forward(self, X):
        p, scale = self.params, self.config.scale
        h, caches = self._hidden_forward("enc", X)
        mu, mu_cache = linear_forward(h, p["mu_W"], p["mu_b"])
        s, s_cache = linear_forward(h, p[f"{scale}_W"], p[f"{scale}_b"])
        logvar = 2 * s if scale == "logsigma" else s           # log sigma^2 = 2 log sigma
        return mu, logvar, (caches, mu_cache, s_cache)

    def _encode_backward(self, dmu, dlogvar, cache, grads):
        caches, mu_cache, s_cache = cache
        scale = self.config.scale
        ds = 2 * dlogvar if scale == "logsigma" else dlogvar
        dh_mu, grads["mu_W"], grads["mu_b"] = linear_backward(dmu, mu_cache)
        dh_s, grads[f"{scale}_W"], grads[f"{scale}_b"] = linear_backward(ds, s_cache)
        self._hidden_backward("enc", dh_mu + dh_s, caches, grads, input_grad=False)

    def _decode_forward(self, Z):
        h, caches = self._hidden_forward("dec", Z)
        logits, out_cache = linear_forward(h, self.params["out_W"], self.params["out_b"])
        return logits, (caches, out_cache)

    def _decode_backward(self, dlogits, cache, grads):
        caches, out_cache = cache
        dh, dW, db = linear_backward(dlogits, out_cache, weight_grads=grads is not None)
        if grads is not None:
            grads["out_W"], grads["out_b"] = dW, db
        return self._hidden_backward("dec", dh, caches, grads)   # (K N, L)

    # ----- input checks (vae_teach.checks) ----------------------------
    def _images(self, X) -> np.ndarray:
        """X (N, D) of this model's D, finite, in the likelihood's range, cast to the model's dtype."""
        return checks.images(X, "X", self.config.input_dim, self.config.likelihood, self.dtype)

    def _latents(self, Z) -> np.ndarray:
        return checks.latents(Z, "Z", self.latent_dim, self.dtype)

    def _noise(self, eps, n) -> np.ndarray:
        return checks.noise(eps, n, self.latent_dim, self.dtype)
