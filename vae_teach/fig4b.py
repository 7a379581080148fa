"""Kingma & Welling (2014), Fig. 4b: the learned 2-D manifold of MNIST digits.

A VAE with a 2-D latent space and tanh MLPs of 500 hidden units (the paper's
MNIST architecture), trained with Adam and a cosine learning-rate decay, then
decoded on the paper's grid: z = Φ⁻¹(p) for 20 values of p evenly spaced from
0.05 to 0.95 on each axis, so that the points are spread by the prior's mass
(``plotting.latent_grid`` uses p = (i + 1/2) / 20 instead, 0.025 to 0.975,
which gives every cell exactly the same mass).

    vae-teach fig4b --out runs/fig4b                 # mnist-5k, 200 epochs: about 100 s of one core
    vae-teach fig4b --dataset mnist --out runs/fig4b_full

Defined in notebook 03b.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from vae_teach.interface import VAEConfig
from vae_teach.numpy_vae.model import NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.training import check_finite

N_GRID = 20
"""Points a side of the grid: 20 x 20, as in the paper."""


def fig4b_grid(n: int = N_GRID, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """The latent points of Fig. 4b: (n, n, 2), z = Φ⁻¹(p), p = linspace(low, high, n) on each axis.

    Image order: z_1 rises left to right along a row, z_2 falls from the top row down.
    """
    from scipy.stats import norm

    values = norm.ppf(np.linspace(low, high, n))              # (n,)
    z1, z2 = np.meshgrid(values, values[::-1])                # (n, n)
    return np.stack([z1, z2], axis=-1)


@dataclass
class Fig4bResult:
    """What ``fig4b`` returns.

    model: the trained ``NumpyVAE``; grid: (20, 20, 28, 28) decoder means in
    [0, 1], row 0 at the top (largest z_2); z: (20, 20, 2) the latent point of
    each image (``fig4b_grid``); examples_seen: training images passed through the model
    (epochs x N_train); train_elbo: per epoch, nats per image; seconds: wall time.
    """

    model: NumpyVAE
    grid: np.ndarray
    z: np.ndarray
    examples_seen: int
    train_elbo: list
    seconds: float


def fig4b(X_train: np.ndarray, image_shape=(28, 28), *, epochs: int = 200, batch_size: int = 100,
          lr: float = 2e-3, final_lr: float = 1e-4, hidden: int = 500, seed: int = 0) -> Fig4bResult:
    """Train the Fig. 4b model on ``X_train`` (N, D) in [0, 1] and decode the paper's grid.

    Adam with a learning rate that falls from ``lr`` to ``final_lr`` along a
    cosine over the run (a short run gains most from the last, small steps:
    the blurry average digits sharpen into distinct ones).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    X_train = np.asarray(X_train, dtype=np.float32)
    N, D = X_train.shape
    if D != int(np.prod(image_shape)):
        raise ValueError(f"images of {D} pixels do not have the shape {image_shape}.")
    model = NumpyVAE(VAEConfig(input_dim=D, hidden_dims=(hidden,), latent_dim=2, activation="tanh"), seed=seed)
    opt = Optimizer("adam", lr=lr)
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1)
    n_batches = math.ceil(N / batch_size)
    total_steps, step = epochs * n_batches, 0
    train_elbo = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses = []
        for b, idx in enumerate(np.array_split(rng.permutation(N), n_batches)):
            step_lr = final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * step / total_steps))
            opt.hyperparameters["lr"] = step_lr
            for config in opt.configs.values():
                config["lr"] = step_lr
            X_batch = X_train[idx]
            eps = noise_rng.standard_normal((1, len(idx), 2), dtype=model.dtype)
            loss, grads = model.loss_and_grads(X_batch, eps)
            opt.step(model.params, grads)
            step += 1
            check_finite(loss, step, epoch, step_lr)
            losses.append(loss)
        train_elbo.append(-float(np.mean(losses)))
    seconds = time.perf_counter() - start
    z = fig4b_grid()                                                       # (20, 20, 2)
    grid = model.decode(z.reshape(-1, 2)).reshape(N_GRID, N_GRID, *image_shape)   # (20, 20, 28, 28)
    return Fig4bResult(model=model, grid=np.clip(grid, 0.0, 1.0), z=z,
                       examples_seen=epochs * N, train_elbo=train_elbo, seconds=seconds)


def plot_fig4b(result: Fig4bResult, ax=None, title=None):
    """The 20 x 20 sheet of decoded digits, z_1 left to right, z_2 bottom to top. Returns the Figure."""
    from vae_teach import plotting

    n, _, H, W = result.grid.shape
    tiled = plotting.tile_images(result.grid.reshape(n * n, H * W), (H, W), n_cols=n, pad=1)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 7.5), layout="constrained")
    ax.imshow(tiled, cmap="gray", vmin=0.0, vmax=1.0)
    values = result.z[0, :, 0]                                             # z_1 of each column
    ticks = np.array([0, 5, 10, 14, 19])
    ax.set_xticks(ticks * (W + 1) + (W - 1) / 2, [f"{values[c]:.2f}" for c in ticks])
    ax.set_yticks(ticks * (H + 1) + (H - 1) / 2, [f"{result.z[r, 0, 1]:.2f}" for r in ticks])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or f"Fig. 4b: decoder means on the 20 x 20 grid z = Φ⁻¹(p), p from 0.05 to 0.95 "
                          f"({result.examples_seen:,} examples seen)", fontsize=9)
    return ax.figure
