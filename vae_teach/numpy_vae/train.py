"""Training the NumPy VAE: minibatch noise, backward pass, optimiser step.

Defined in notebook 03.
"""

from __future__ import annotations

import numpy as np

from vae_teach.evaluate import dataset_elbo
from vae_teach.numpy_vae.model import OBJECTIVES, NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.training import History, fit


def train(
    model: NumpyVAE,
    X_train: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    optimizer: str = "adam",
    lr: float | None = None,
    l2: float = 0.0,
    n_samples: int = 1,
    objective: str = "elbo",
    kl_weight: float = 1.0,
    seed: int = 0,
    X_test: np.ndarray | None = None,
    binarize: str | None = None,
    progress: bool = True,
    **optimizer_options,
) -> History:
    """Train ``model`` in place and return its ``History``.

    Inputs: X_train: (N, D) in [0, 1]; optimizer: "sgd", "adagrad" or "adam";
    lr: learning rate (the rule's default if None); l2: weight decay;
    n_samples: K draws of z per example; objective: "elbo" or "iwae" (the
    IWAE_K bound with K = n_samples, lesson 08); kl_weight: beta in
    NLL + beta KL (1: the ELBO; lesson 07); X_test: (M, D), if given its
    ELBO is measured after every epoch, as given (binarise or dequantise it
    yourself, once, to match ``binarize``); binarize: see ``vae_teach.training.fit``;
    optimizer_options: e.g. moment_floor for Adam.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
    hyper = dict(l2=l2, **optimizer_options)
    if lr is not None:
        hyper["lr"] = lr
    opt = Optimizer(optimizer, **hyper)
    noise_rng = np.random.default_rng(seed + 1)
    latent_dim = model.latent_dim

    def step(X_batch: np.ndarray) -> float:
        eps = noise_rng.standard_normal((n_samples, len(X_batch), latent_dim), dtype=model.dtype)
        loss, grads = model.loss_and_grads(X_batch, eps, objective=objective, kl_weight=kl_weight)
        opt.step(model.params, grads)
        return loss

    evaluate = None if X_test is None else (lambda: float(np.mean(dataset_elbo(model, X_test))))
    return fit(step, X_train, epochs=epochs, batch_size=batch_size, lr=opt.lr, seed=seed,
               evaluate=evaluate, binarize=binarize, progress=progress, desc=f"numpy {optimizer}")
