"""A small seeded digit classifier: the judge of generated images and the feature network of the metrics.

An MLP, D -> 256 -> 128 -> classes, ReLU, softmax cross-entropy, trained with
Adam from the NumPy layers of ``vae_teach.numpy_vae`` (the same forward and
backward pairs as the VAE). ``features(X)`` returns the last hidden layer's
activations (N, 128): the space in which ``vae_teach.sample_quality`` compares
samples with test images, as FID compares them in an Inception network's.
It is trained on the dataset's own training images, so it knows nothing of the
VAEs it judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vae_teach.numpy_vae.layers import (linear_backward, linear_forward, mlp_backward, mlp_forward, relu_backward,
                                        relu_forward)
from vae_teach.numpy_vae.optim import Optimizer


def softmax_cross_entropy_forward(logits, y):
    """Mean cross-entropy of integer labels y (N,) under logits (N, C); returns (loss, cache)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean()), (log_p, y)


def softmax_cross_entropy_backward(cache):
    """d loss / d logits: (softmax - one_hot) / N, (N, C)."""
    log_p, y = cache
    d = np.exp(log_p)
    d[np.arange(len(y)), y] -= 1.0
    return d / len(y)


@dataclass
class Classifier:
    """An MLP classifier. ``params``: {"enc0_W", "enc0_b", "enc1_W", "enc1_b", "out_W", "out_b"}."""

    input_dim: int
    n_classes: int = 10
    hidden_dims: tuple[int, ...] = (256, 128)
    seed: int = 0
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        sizes = (self.input_dim,) + tuple(self.hidden_dims)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.params[f"enc{i}_W"] = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
            self.params[f"enc{i}_b"] = np.zeros(n_out, np.float32)
        self.params["out_W"] = (rng.standard_normal((sizes[-1], self.n_classes)) * np.sqrt(1.0 / sizes[-1])
                                ).astype(np.float32)
        self.params["out_b"] = np.zeros(self.n_classes, np.float32)

    def _forward(self, X):
        h, caches = mlp_forward(np.asarray(X, self.params["out_W"].dtype), self.params, "enc", len(self.hidden_dims),
                                relu_forward)
        logits, out_cache = linear_forward(h, self.params["out_W"], self.params["out_b"])
        return h, logits, caches, out_cache

    def features(self, X: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """The last hidden layer's activations: X (N, D) -> (N, hidden_dims[-1]), float64."""
        X = _check_images(X, self.input_dim)
        return np.concatenate([self._forward(X[i:i + batch_size])[0] for i in range(0, len(X), batch_size)]
                              ).astype(np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: X (N, D) -> (N, C)."""
        X = _check_images(X, self.input_dim)
        logits = self._forward(X)[1].astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each image: (N,) ints."""
        return self.predict_proba(X).argmax(axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of X (N, D) classified as its label y (N,)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def loss_and_grads(self, X, y):
        """Mean cross-entropy of (X (N, D), y (N,)) and its gradient for every parameter."""
        h, logits, caches, out_cache = self._forward(X)
        loss, ce_cache = softmax_cross_entropy_forward(logits, y)
        grads = {}
        dh, grads["out_W"], grads["out_b"] = linear_backward(softmax_cross_entropy_backward(ce_cache), out_cache)
        mlp_backward(dh, caches, "enc", relu_backward, grads, input_grad=False)
        return loss, grads


def _check_images(X, input_dim):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != input_dim:
        raise ValueError(f"X must be (N, {input_dim}) flattened images, got shape {X.shape}.")
    return X


def train_classifier(X: np.ndarray, y: np.ndarray, epochs: int = 15, batch_size: int = 100, lr: float = 1e-3,
                     seed: int = 0, n_classes: int | None = None) -> Classifier:
    """A seeded ``Classifier`` trained on X (N, D) with integer labels y (N,) by Adam."""
    X, y = np.asarray(X, np.float32), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, D) and y (N,) with the same N; got {X.shape} and {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("y must hold class labels 0, 1, ..., C-1 as integers.")
    model = Classifier(X.shape[1], n_classes or int(y.max()) + 1, seed=seed)
    opt = Optimizer("adam", lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), batch_size):
            batch = order[i:i + batch_size]
            _, grads = model.loss_and_grads(X[batch], y[batch])
            opt.step(model.params, grads)
    return model
