"""Training the NumPy VAE: minibatch noise, backward pass, optimiser step.

Defined in notebook 03.
"""

from __future__ import annotations

import math

import numpy as np

from vae_teach import checks
from vae_teach.evaluate import dataset_elbo
from vae_teach.numpy_vae.model import OBJECTIVES, NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.schedules import as_schedule, is_elbo
from vae_teach.training import History, fit, guarded_loss


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
    kl_weight=1.0,
    free_bits: float = 0.0,
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
    NLL + beta KL (1: the ELBO; lesson 07), a float or a schedule of
    ``vae_teach.schedules`` (a callable of the optimiser step: warm-up,
    cyclical; lesson 09); free_bits: lambda, nats per latent dimension
    (``NumpyVAE.loss_and_grads``; 0: none); X_test: (M, D), if given its
    ELBO is measured after every epoch, as given (binarise or dequantise it
    yourself, once, to match ``binarize``); binarize: see ``vae_teach.training.fit``;
    optimizer_options: e.g. moment_floor for Adam.

    The data are checked once, here; each step checks only its loss and the
    gradient's squared norm (one reduction), and applies no update unless both
    are finite: on divergence ``TrainingDivergedError`` (naming epoch, step and
    last finite loss) leaves the model with the parameters before that step.
    """
    if not isinstance(model, NumpyVAE):
        raise TypeError(f"model must be a NumpyVAE, got {type(model).__name__}; use the train "
                        f"function of its own backend (backends.trainer(model.backend)).")
    checks.choice(objective, "objective", OBJECTIVES)
    checks.training_args(epochs=epochs, batch_size=batch_size, n_samples=n_samples, seed_value=seed,
                         lr=lr, l2=l2)
    schedule = as_schedule(kl_weight)
    free_bits = checks.nonnegative(free_bits, "free_bits")
    if objective == "iwae" and not (is_elbo(schedule) and free_bits == 0):
        raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                         "separate KL term.")
    config = model.config
    X_train = checks.images(X_train, "X_train", config.input_dim, config.likelihood, model.dtype)
    if X_test is not None:
        X_test = checks.images(X_test, "X_test", config.input_dim, config.likelihood)
    hyper = dict(l2=l2, **optimizer_options)
    if lr is not None:
        hyper["lr"] = lr
    opt = Optimizer(optimizer, **hyper)
    noise_rng = np.random.default_rng(seed + 1)
    latent_dim = model.latent_dim

    def step(X_batch: np.ndarray, beta: float) -> float:
        eps = noise_rng.standard_normal((n_samples, len(X_batch), latent_dim), dtype=model.dtype)
        loss, grads = model._loss_and_grads(X_batch, eps, objective, beta, free_bits)   # checked above, once
        loss = guarded_loss(loss, sum(float(np.vdot(g.ravel(), g.ravel())) for g in grads.values()))
        if math.isfinite(loss):          # a non-finite step changes nothing: fit stops on it
            opt.step(model.params, grads)
        return loss

    evaluate = None if X_test is None else (lambda: float(np.mean(dataset_elbo(model, X_test))))
    return fit(step, X_train, epochs=epochs, batch_size=batch_size, lr=opt.lr, seed=seed,
               evaluate=evaluate, binarize=binarize, progress=progress, desc=f"numpy {optimizer}",
               kl_weight=schedule)
