"""The MLP VAE from scratch: forward pass, hand-written backward pass, protocol.

Encoder: X -> [linear -> activation] * H -> (mu, logvar) heads.
Decoder: Z -> [linear -> activation] * H (reversed sizes) -> logits.
Loss: Bernoulli NLL summed over pixels + KL, averaged over samples of z and
over the batch; loss = -ELBO in nats per image.

Defined in notebook 03.
"""

from __future__ import annotations

import numpy as np

from vae_teach.elbo import bernoulli_log_likelihood, sigmoid
from vae_teach.interface import VAEConfig, check_params, draw_noise, init_params
from vae_teach.numpy_vae.layers import (
    ACTIVATION_LAYERS,
    gaussian_kl_backward,
    gaussian_kl_forward,
    linear_backward,
    linear_forward,
    reparameterize_backward,
    reparameterize_forward,
    sigmoid_bce_backward,
    sigmoid_bce_forward,
)


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
        params = {name: np.asarray(value) for name, value in params.items()}
        check_params(self.config, params)
        self.params = {name: value.astype(self.dtype, copy=True) for name, value in params.items()}

    def encode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X: (N, D) -> mu, logvar: (N, L), (N, L)."""
        mu, logvar, _ = self._encode_forward(self._as_array(X))
        return mu, logvar

    def decode_logits(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> logits: (N, D), the decoder's output before the sigmoid."""
        logits, _ = self._decode_forward(self._as_array(Z))
        return logits

    def decode(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> X_mean: (N, D), the Bernoulli means sigmoid(logits)."""
        return sigmoid(self.decode_logits(Z)).astype(self.dtype, copy=False)

    def log_likelihood(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """log p(x | z): (N, D), (N, L) -> (N,) nats, from logits."""
        return bernoulli_log_likelihood(self._as_array(X), self.decode_logits(Z))

    def elbo(self, X: np.ndarray, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Per-example ELBO in nats, with K = n_samples draws of z: (N,)."""
        eps = draw_noise(seed, n_samples, len(X), self.latent_dim)
        return self.elbo_with_noise(X, eps)

    # ----- forward and backward ---------------------------------------
    def elbo_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example ELBO for given noise: X (N, D), eps (K, N, L) -> (N,)."""
        nll, kl, _ = self._forward(self._as_array(X), self._noise(eps, len(X)))
        return -(nll.mean(axis=0) + kl)

    def loss_and_grads(self, X: np.ndarray, eps: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """loss = -mean_n ELBO_n (nats per image) and its gradient for every parameter.

        Inputs: X: (N, D); eps: (K, N, L) or (N, L).
        Returns: loss (float), grads (dict, names and shapes as ``params``).
        """
        X = self._as_array(X)
        eps = self._noise(eps, len(X))
        K, N = eps.shape[:2]
        nll, kl, caches = self._forward(X, eps)
        loss = float(nll.mean() + kl.mean())

        enc_cache, reparam_cache, dec_cache, bce_cache, kl_cache = caches
        grads: dict[str, np.ndarray] = {}
        # d loss / d nll_kn = 1 / (K N); d loss / d kl_n = 1 / N.
        dlogits = sigmoid_bce_backward(np.full(K * N, 1.0 / (K * N), dtype=self.dtype), bce_cache)
        dZ = self._decode_backward(dlogits, dec_cache, grads).reshape(K, N, -1)
        dmu_rep, dlogvar_rep = reparameterize_backward(dZ, reparam_cache)
        dmu_kl, dlogvar_kl = gaussian_kl_backward(np.full(N, 1.0 / N, dtype=self.dtype), kl_cache)
        dmu = dmu_rep.sum(axis=0) + dmu_kl                    # (N, L): summed over samples
        dlogvar = dlogvar_rep.sum(axis=0) + dlogvar_kl
        self._encode_backward(dmu, dlogvar, enc_cache, grads)
        return loss, grads

    def _forward(self, X, eps):
        """Returns nll (K, N), kl (N,), caches."""
        K, N, L = eps.shape
        mu, logvar, enc_cache = self._encode_forward(X)
        Z, reparam_cache = reparameterize_forward(mu, logvar, eps)     # (K, N, L)
        logits, dec_cache = self._decode_forward(Z.reshape(K * N, L))
        # Each of the K samples of z is compared with the same X; with K = 1 use X
        # itself, without the copy that broadcast + reshape make.
        X_rep = X if K == 1 else np.broadcast_to(X, (K, N, X.shape[1])).reshape(K * N, -1)
        nll, bce_cache = sigmoid_bce_forward(logits, X_rep)
        kl, kl_cache = gaussian_kl_forward(mu, logvar)
        return nll.reshape(K, N), kl, (enc_cache, reparam_cache, dec_cache, bce_cache, kl_cache)

    def _hidden_forward(self, prefix, h):
        """The hidden layers ``{prefix}{i}``: [linear -> activation] * H. Returns h, caches."""
        p, caches = self.params, []
        for i in range(self._n_hidden):
            a, lin_cache = linear_forward(h, p[f"{prefix}{i}_W"], p[f"{prefix}{i}_b"])
            h, act_cache = self._act_forward(a)
            caches.append((lin_cache, act_cache))
        return h, caches

    def _hidden_backward(self, prefix, dh, caches, grads, input_grad=True):
        """Backward through ``_hidden_forward``; fills grads, returns the input's gradient
        (None with input_grad=False: the encoder's input is the data)."""
        for i in reversed(range(self._n_hidden)):
            lin_cache, act_cache = caches[i]
            da = self._act_backward(dh, act_cache)
            dh, grads[f"{prefix}{i}_W"], grads[f"{prefix}{i}_b"] = linear_backward(
                da, lin_cache, input_grad=input_grad or i > 0)
        return dh

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
        dh, grads["out_W"], grads["out_b"] = linear_backward(dlogits, out_cache)
        return self._hidden_backward("dec", dh, caches, grads)   # (K N, L)

    # ----- input checks -------------------------------------------------
    def _as_array(self, A) -> np.ndarray:
        A = np.asarray(A, dtype=self.dtype)
        if A.ndim != 2:
            raise ValueError(f"expected a 2-D array (N, features), got shape {A.shape}.")
        return A

    def _noise(self, eps, n) -> np.ndarray:
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.ndim == 2:
            eps = eps[None]
        if eps.ndim != 3 or eps.shape[1:] != (n, self.latent_dim):
            raise ValueError(
                f"eps must have shape (K, N, L) = (K, {n}, {self.latent_dim}), got {eps.shape}."
            )
        return eps
