"""The epoch loop every backend shares, and the history it returns.

A backend supplies ``step(X_batch) -> loss`` (one optimiser step on a
minibatch, loss = -ELBO in nats per image); ``fit`` does the rest: seeded
minibatches, optional binarisation, a progress bar, the test ELBO after each
epoch, and a clear stop when the loss stops being a number.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vae_teach.data import binarize_dynamic, binarize_static, binarize_threshold, dequantize, minibatches

BINARIZATIONS = (None, "threshold", "static", "dynamic", "dequantize")


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the learning rate."""


def check_finite(loss: float, step: int, epoch: int, lr: float) -> None:
    """Raise ``TrainingDivergedError`` if ``loss`` is NaN or infinite, naming step and learning rate."""
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"the loss became {loss} at step {step} (epoch {epoch}) with learning rate {lr:g}. "
            f"Lower the learning rate (try {lr / 10:g}), or check the data is scaled to [0, 1]."
        )


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
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path) -> History:
        return cls(**json.loads(Path(path).read_text()))


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
) -> History:
    """Run ``epochs`` passes of ``step`` over seeded minibatches of ``X_train``.

    Inputs: step: (B, D) -> loss (float, nats per image); X_train: (N, D) in
    [0, 1]; lr: only for the error message; evaluate: () -> mean test ELBO,
    called after each epoch; binarize: how the pixels are seen: None (as
    they are), "threshold" (x > 0.5), "static" (one stochastic 0/1 draw,
    x ~ Bernoulli(intensity), made once from ``seed`` and kept: the
    literature's static binarisation; until lesson 07's revision "static"
    meant "threshold"), "dynamic" (a new 0/1 draw every epoch) or "dequantize" (uniform noise within each 8-bit level, resampled
    every epoch: lesson 07); progress: show a tqdm bar.
    Returns: a ``History``. Raises ``TrainingDivergedError`` on NaN/inf.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}.")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"binarize must be one of {BINARIZATIONS}, got {binarize!r}.")
    rng = np.random.default_rng(seed)
    X_static = {"threshold": binarize_threshold, "static": lambda X: binarize_static(X, rng)}.get(
        binarize, lambda X: X)(X_train)
    history = History()
    n_batches = math.ceil(len(X_train) / batch_size)
    bar = tqdm(total=epochs * n_batches, desc=desc, disable=not progress, leave=False)
    global_step = 0
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
                loss = float(step(X_batch))
                global_step += 1
                check_finite(loss, global_step, epoch, lr)
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
