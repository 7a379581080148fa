"""The epoch loop every backend shares, and the history it returns.

A backend supplies ``step(X_batch) -> loss`` (one optimiser step on a
minibatch, loss = -ELBO in nats per image); ``fit`` does the rest: seeded
minibatches, optional binarisation, a progress bar, the test ELBO after each
epoch, and a clear stop when the loss stops being a number.

Divergence: a step whose loss or gradient is NaN or infinite must not change
the model, and returns a non-finite number (``guarded_loss`` folds the
gradient's squared norm, one reduction, into the loss); ``fit`` then stops
with ``TrainingDivergedError``, which names the epoch, the step and the last
finite loss. The model keeps the parameters it had before that step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from tqdm.auto import tqdm

from vae_teach import checks
from vae_teach.data import binarize_dynamic, binarize_static, binarize_threshold, dequantize, minibatches
from vae_teach.files import read_json, write_text_atomically
from vae_teach.schedules import as_schedule

BINARIZATIONS = (None, "threshold", "static", "dynamic", "dequantize")


class TrainingDivergedError(FloatingPointError, RuntimeError):
    """The loss or a gradient became NaN or infinite: training stopped, the model kept the
    parameters it had before that step.

    Attributes: epoch, step (counted from 1 over the whole run), last_finite_loss
    (the loss of the step before, nats per image; None if no step had one), lr.
    """

    def __init__(self, message: str, *, epoch: int, step: int, last_finite_loss: float | None,
                 lr: float | None):
        super().__init__(message)
        self.epoch, self.step, self.last_finite_loss, self.lr = epoch, step, last_finite_loss, lr


def guarded_loss(loss: float, grad_sq: float) -> float:
    """``loss``, or NaN if the gradient's squared norm ``grad_sq`` is NaN or infinite.

    A step calls it after the backward pass and applies its update only if the
    result is finite: one scalar to test, one reduction over the gradients.
    """
    return loss if math.isfinite(grad_sq) else math.nan


def check_finite(loss: float, step: int, epoch: int, lr: float | None,
                 last_finite_loss: float | None = None) -> None:
    """Raise ``TrainingDivergedError`` if ``loss`` is NaN or infinite, naming epoch, step, learning
    rate and the last finite loss, and suggesting a remedy."""
    if math.isfinite(loss):
        return
    rate = "" if lr is None else f" with learning rate {lr:g}"
    last = ("no step had a finite loss yet" if last_finite_loss is None
            else f"the last finite loss was {last_finite_loss:.6g} nats per image (step {step - 1})")
    lower = "Lower the learning rate" + ("" if lr is None else f" (try {lr / 10:g})")
    raise TrainingDivergedError(
        f"training diverged: the loss or its gradient became {loss} at step {step} (epoch {epoch}){rate}; "
        f"{last}. The model keeps its parameters from before step {step}. {lower}, or check logvar's "
        f"range (exp(logvar) overflows beyond about 88 in float32: clip logvar, or start its head's bias "
        f"lower), and that the data are scaled to [0, 1].",
        epoch=epoch, step=step, last_finite_loss=last_finite_loss, lr=lr)


@dataclass
class History:
    """What a training run measured. ELBOs in nats per image (higher is better).

    step_loss: the loss (-ELBO) of every minibatch, in order;
    train_elbo, test_elbo, seconds, examples_per_second: one entry per epoch.
    """

    step_loss: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    train_elbo: list[float] = field(default_factory=list)
    test_elbo: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    examples_per_second: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> None:
        """Write the history as JSON (written whole to a temporary file, then renamed)."""
        write_text_atomically(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> History:
        """Read a history saved by ``save``; ValueError naming the file if it is damaged."""
        return cls(**read_json(path, "history", required=tuple(f.name for f in fields(cls))))


def fit(
    step: Callable[[np.ndarray], float],
    X_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    evaluate: Callable[[], float] | None = None,
    binarize: str | None = None,
    progress: bool = True,
    desc: str = "training",
    kl_weight=None,
) -> History:
    """Run ``epochs`` passes of ``step`` over seeded minibatches of ``X_train``.

    Inputs: step: (B, D) -> loss (float, nats per image); X_train: (N, D) in
    [0, 1]; lr: only for the error message; evaluate: () -> mean test ELBO,
    called after each epoch; binarize: how the pixels are seen: None (as
    they are), "threshold" (x > 0.5), "static" (one stochastic 0/1 draw,
    x ~ Bernoulli(intensity), made once from ``seed`` and kept: the
    literature's static binarisation; until lesson 07's revision "static"
    meant "threshold"), "dynamic" (a new 0/1 draw every epoch) or "dequantize" (uniform noise within each 8-bit level, resampled
    every epoch: lesson 07); progress: show a tqdm bar; kl_weight: None
    (``step`` is called as ``step(X_batch)``), or beta, a float or a schedule
    of ``vae_teach.schedules`` (a callable of the optimiser step t = 0, 1, ...),
    and then ``step(X_batch, beta_t)`` (the collapse lesson, 09).
    Returns: a ``History``. Raises ``TrainingDivergedError`` when a step returns NaN or
    inf (see the module docstring), ValueError or TypeError for bad arguments.
    """
    checks.choice(binarize, "binarize", BINARIZATIONS)
    checks.training_args(epochs=epochs, batch_size=batch_size, seed_value=seed, lr=lr)
    X_train = checks.matrix(X_train, "X_train")
    rng = np.random.default_rng(seed)
    X_static = {"threshold": binarize_threshold, "static": lambda X: binarize_static(X, rng)}.get(
        binarize, lambda X: X)(X_train)
    history = History()
    n_batches = math.ceil(len(X_train) / batch_size)
    schedule = None if kl_weight is None else as_schedule(kl_weight, epochs * n_batches)
    bar = tqdm(total=epochs * n_batches, desc=desc, disable=not progress, leave=False)
    global_step, last_finite = 0, None
    try:
        for epoch in range(1, epochs + 1):
            if binarize == "dynamic":
                X_epoch = binarize_dynamic(X_train, rng)
            elif binarize == "dequantize":
                X_epoch = dequantize(X_train, rng)
            else:
                X_epoch = X_static
            start = time.perf_counter()
            epoch_losses, epoch_sizes = [], []
            for X_batch in minibatches(X_epoch, batch_size, rng):
                loss = float(step(X_batch) if schedule is None else step(X_batch, float(schedule(global_step))))
                global_step += 1
                check_finite(loss, global_step, epoch, lr, last_finite)
                last_finite = loss
                history.step_loss.append(loss)
                epoch_losses.append(loss)
                epoch_sizes.append(len(X_batch))
                bar.update(1)
            seconds = time.perf_counter() - start
            history.epoch.append(epoch)
            history.train_elbo.append(-float(np.average(epoch_losses, weights=epoch_sizes)))
            history.seconds.append(seconds)
            history.examples_per_second.append(len(X_train) / seconds)
            if evaluate is not None:
                history.test_elbo.append(float(evaluate()))
            bar.set_postfix(train_elbo=f"{history.train_elbo[-1]:.1f}")
    finally:
        bar.close()
    return history
