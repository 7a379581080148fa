"""A deterministic autoencoder, built from the NumPy VAE's layers: the model before the VAE.

Encoder g: X -> [linear -> activation] * H -> linear -> codes, (N, D) -> (N, F).
Decoder f: codes -> [linear -> activation] * H (reversed sizes) -> linear -> logits,
(N, F) -> (N, D); X_mean = sigmoid(logits).
Loss: the Bernoulli negative log-likelihood (binary cross-entropy from logits)
summed over the D pixels and averaged over the batch, in nats per image. No
noise, no prior, no KL: each image gets one code, the point g(x).

Every forward/backward step is a pair from ``vae_teach.numpy_vae.layers``;
the epoch loop is ``vae_teach.training.fit``; the optimiser is
``vae_teach.numpy_vae.optim.Optimizer``. Nothing here is new maths.

Parameter names follow the VAE's (``vae_teach.interface``) with the code
layer in place of the mu/logvar heads: ``enc0_W``, ``enc0_b``, ...,
``code_W``, ``code_b``, ``dec0_W``, ``dec0_b``, ..., ``out_W``, ``out_b``;
weights are (in, out), so a layer is ``X @ W + b``.

Defined in notebook 01.
"""

from __future__ import annotations

import numpy as np

from vae_teach.elbo import sigmoid
from vae_teach.interface import ACTIVATIONS
from vae_teach.numpy_vae.gradcheck import centred_difference, relative_error
from vae_teach.numpy_vae.layers import (
    ACTIVATION_LAYERS,
    linear_backward,
    linear_forward,
    mlp_backward,
    mlp_forward,
    sigmoid_bce_backward,
    sigmoid_bce_forward,
)
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.training import History, fit


def autoencoder_param_shapes(input_dim: int, hidden_dims: tuple[int, ...],
                             code_dim: int) -> dict[str, tuple[int, ...]]:
    """The ordered parameter names and shapes: encoder, code layer, decoder, output layer."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = input_dim
    for i, h in enumerate(hidden_dims):
        shapes[f"enc{i}_W"], shapes[f"enc{i}_b"] = (fan_in, h), (h,)
        fan_in = h
    shapes["code_W"], shapes["code_b"] = (fan_in, code_dim), (code_dim,)
    fan_in = code_dim
    for i, h in enumerate(reversed(hidden_dims)):
        shapes[f"dec{i}_W"], shapes[f"dec{i}_b"] = (fan_in, h), (h,)
        fan_in = h
    shapes["out_W"], shapes["out_b"] = (fan_in, input_dim), (input_dim,)
    return shapes


class Autoencoder:
    """A deterministic MLP autoencoder with hand-written gradients.

    Parameters: input_dim: D pixels; hidden_dims: encoder hidden sizes (the
    decoder uses them reversed); code_dim: F, the size of a code (F << D);
    activation: "relu" or "tanh"; seed: initial weights' seed (drawn as
    torch.nn.Linear draws them, U(-1/sqrt(fan_in), +1/sqrt(fan_in)), like the
    VAE's); dtype: np.float32 for speed, np.float64 for gradient checks.
    """

    def __init__(self, input_dim: int, hidden_dims=(256,), code_dim: int = 2,
                 activation: str = "relu", seed: int = 0, dtype=np.float32):
        hidden_dims = tuple(int(h) for h in hidden_dims)
        if input_dim <= 0 or code_dim <= 0 or any(h <= 0 for h in hidden_dims):
            raise ValueError(
                f"Autoencoder sizes must be positive, got input_dim={input_dim}, "
                f"hidden_dims={hidden_dims}, code_dim={code_dim}."
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        self.input_dim, self.hidden_dims, self.code_dim = int(input_dim), hidden_dims, int(code_dim)
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self._act_forward, self._act_backward = ACTIVATION_LAYERS[activation]
        shapes = autoencoder_param_shapes(self.input_dim, hidden_dims, self.code_dim)
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            bound = 1.0 / np.sqrt(shapes[name[:-1] + "W"][0])     # a bias shares its layer's fan-in
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)

    # ----- the model ------------------------------------------------------
    def encode(self, X: np.ndarray) -> np.ndarray:
        """g(X): (N, D) -> codes (N, F)."""
        codes, _ = self._encode_forward(self._as_array(X, self.input_dim, "X"))
        return codes

    def decode_logits(self, codes: np.ndarray) -> np.ndarray:
        """The decoder before its sigmoid: (N, F) -> logits (N, D)."""
        logits, _ = self._decode_forward(self._as_array(codes, self.code_dim, "codes"))
        return logits

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """f(codes): (N, F) -> X_mean (N, D), Bernoulli means sigmoid(logits) in (0, 1)."""
        return sigmoid(self.decode_logits(codes)).astype(self.dtype, copy=False)

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """f(g(X)): (N, D) -> X_mean (N, D)."""
        return self.decode(self.encode(X))

    def reconstruction_bce(self, X: np.ndarray) -> np.ndarray:
        """Per-image loss: BCE(X, sigmoid(logits of f(g(X)))) summed over pixels, (N, D) -> (N,) nats."""
        X = self._as_array(X, self.input_dim, "X")
        nll, _ = sigmoid_bce_forward(self.decode_logits(self.encode(X)), X)
        return nll

    def loss_and_grads(self, X: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """loss = mean_n BCE_n (nats per image) and its gradient for every parameter.

        Inputs: X: (N, D) in [0, 1].
        Returns: loss (float), grads (dict, names and shapes as ``params``).
        """
        X = self._as_array(X, self.input_dim, "X")
        N = len(X)
        codes, enc_cache = self._encode_forward(X)
        logits, dec_cache = self._decode_forward(codes)
        nll, bce_cache = sigmoid_bce_forward(logits, X)                # (N,)
        grads: dict[str, np.ndarray] = {}
        dlogits = sigmoid_bce_backward(np.full(N, 1.0 / N, dtype=self.dtype), bce_cache)
        dcodes = self._decode_backward(dlogits, dec_cache, grads)      # (N, F)
        self._encode_backward(dcodes, enc_cache, grads)
        return float(nll.mean()), grads

    def get_params(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by name."""
        return {name: value.copy() for name, value in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Load weights of the same names and shapes, cast to this model's dtype."""
        expected = {name: value.shape for name, value in self.params.items()}
        got = {name: np.shape(value) for name, value in params.items()}
        if got != expected:
            raise ValueError(f"parameters do not fit this autoencoder: expected {expected}, got {got}.")
        self.params = {name: np.asarray(value).astype(self.dtype, copy=True)
                       for name, value in params.items()}

    # ----- forward and backward, layer by layer ---------------------------
    def _hidden_forward(self, prefix, h):
        """[linear -> activation] over the layers ``{prefix}{i}``. Returns h, caches."""
        return mlp_forward(h, self.params, prefix, len(self.hidden_dims), self._act_forward)

    def _hidden_backward(self, prefix, dh, caches, grads, input_grad=True):
        """Backward through ``_hidden_forward``; fills grads, returns the input's gradient
        (None with input_grad=False: the encoder's input is the data, which needs none)."""
        return mlp_backward(dh, caches, prefix, self._act_backward, grads, input_grad)

    def _encode_forward(self, X):
        h, caches = self._hidden_forward("enc", X)
        codes, code_cache = linear_forward(h, self.params["code_W"], self.params["code_b"])
        return codes, (caches, code_cache)

    def _encode_backward(self, dcodes, cache, grads):
        """Fills the encoder's grads; no gradient for X itself (it is data)."""
        caches, code_cache = cache
        dh, grads["code_W"], grads["code_b"] = linear_backward(dcodes, code_cache, input_grad=bool(caches))
        if caches:
            self._hidden_backward("enc", dh, caches, grads, input_grad=False)

    def _decode_forward(self, codes):
        h, caches = self._hidden_forward("dec", codes)
        logits, out_cache = linear_forward(h, self.params["out_W"], self.params["out_b"])
        return logits, (caches, out_cache)

    def _decode_backward(self, dlogits, cache, grads):
        caches, out_cache = cache
        dh, grads["out_W"], grads["out_b"] = linear_backward(dlogits, out_cache)
        return self._hidden_backward("dec", dh, caches, grads)

    def _as_array(self, A, width, what) -> np.ndarray:
        A = np.asarray(A, dtype=self.dtype)
        if A.ndim != 2 or A.shape[1] != width:
            raise ValueError(f"{what} must have shape (N, {width}), got {A.shape}.")
        return A


def gradient_errors(model: Autoencoder, X: np.ndarray, h: float = 1e-5,
                    max_entries: int | None = None, seed: int = 0) -> dict[str, float]:
    """The relative error of every analytic gradient of ``model``'s loss against centred differences.

    The autoencoder's counterpart of ``numpy_vae.gradcheck.check_model_gradients``
    (which needs a VAE's noise), built from the same ``centred_difference`` and
    ``relative_error``. ``model`` must be float64; ``max_entries`` checks a
    seeded random subset of each parameter's entries (all by default).
    Returns: {parameter name: relative error}; correct gradients give ~1e-8.
    """
    if model.dtype != np.float64:
        raise TypeError(f"gradient checks need a float64 model (got {model.dtype}): build it with "
                        "dtype=np.float64.")
    X = np.asarray(X, dtype=np.float64)
    _, grads = model.loss_and_grads(X)

    def loss() -> float:
        return float(np.mean(model.reconstruction_bce(X)))

    rng = np.random.default_rng(seed)
    errors = {}
    for name, w in model.params.items():
        flat = np.arange(w.size)
        if max_entries is not None and w.size > max_entries:
            flat = rng.choice(w.size, size=max_entries, replace=False)
        entries = [np.unravel_index(k, w.shape) for k in flat]
        numeric = [centred_difference(loss, w, i, h) for i in entries]
        errors[name] = relative_error(numeric, [grads[name][i] for i in entries])
    return errors


def train(
    model: Autoencoder,
    X_train: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    X_test: np.ndarray | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with Adam on the reconstruction loss; return its ``History``.

    Inputs: X_train: (N, D) in [0, 1]; X_test: (M, D), if given its loss is
    measured after every epoch. The shared loop ``vae_teach.training.fit``
    records minus the loss under its ELBO names: ``history.train_elbo`` and
    ``history.test_elbo`` hold -BCE in nats per image (an autoencoder has no
    KL term, so this is the negated reconstruction loss, not an ELBO), and
    ``history.step_loss`` the minibatch BCE.
    """
    opt = Optimizer("adam", lr=lr)

    def step(X_batch: np.ndarray) -> float:
        loss, grads = model.loss_and_grads(X_batch)
        opt.step(model.params, grads)
        return loss

    evaluate = None if X_test is None else (lambda: -float(np.mean(model.reconstruction_bce(X_test))))
    return fit(step, X_train, epochs=epochs, batch_size=batch_size, lr=opt.lr, seed=seed,
               evaluate=evaluate, progress=progress, desc="autoencoder adam")
