"""Plots for any protocol model: image grids, loss curves, latent scatter, 2-D manifold.

Every function talks to a model only through ``vae_teach.interface``
(``latent_dim``, ``encode``, ``decode``), takes NumPy arrays, returns the
matplotlib ``Figure`` it drew on, and never calls ``plt.show()``. Where an
``ax`` is accepted, the plot goes there (and its figure is returned);
otherwise a new figure is made with ``plt.subplots``.

In Jupyter, end such a call with ``;`` or assign it (``fig = ...``): a figure
returned as a cell's value is shown once by the inline backend and once more
as the value.

Images are rows of ``X``, (N, D) with pixels in [0, 1] and
D = H * W for ``image_shape = (H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.ticker import MaxNLocator

GRIDS = ("inverse_cdf", "linear")
LOSS_CURVES_PER = ("epoch", "step")
_HISTORY_FIELDS = ("step_loss", "epoch", "train_elbo", "test_elbo")


# ----- tiling -----------------------------------------------------------
def _as_images(images, image_shape, what="images") -> np.ndarray:
    """(N, D) or (N, H, W) -> (N, H, W), with a clear error when D != H * W."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2 or min(image_shape) <= 0:
        raise ValueError(f"image_shape must be (height, width) with positive sizes, got {image_shape}.")
    images = np.asarray(images, dtype=np.float64)
    H, W = image_shape
    if images.ndim == 3 and images.shape[1:] == image_shape:
        return images
    if images.ndim != 2:
        raise ValueError(
            f"{what} must be (N, D) with one flattened image per row, or (N, {H}, {W}); "
            f"got shape {images.shape}."
        )
    if images.shape[1] != H * W:
        raise ValueError(
            f"{what} have D = {images.shape[1]} pixels each, but image_shape {image_shape} "
            f"holds {H * W}. Pass the (height, width) the images were flattened from."
        )
    return images.reshape(len(images), H, W)


def tile_images(images, image_shape, n_cols=10, pad=1, pad_value=1.0) -> np.ndarray:
    """Tile images into one 2-D array, row by row (defined for notebook 01's image grids).

    Inputs: images: (N, D) or (N, H, W); image_shape: (H, W); n_cols: images
    per row (at most N are used, so a short list makes one short row);
    pad: pixels of ``pad_value`` between neighbouring images (none around
    the border).
    Returns: (R * (H + pad) - pad, C * (W + pad) - pad) with C = min(n_cols, N)
    and R = ceil(N / C). Image k has its top-left corner at
    ((k // C) * (H + pad), (k % C) * (W + pad)); cells after the last image
    of a partial last row hold ``pad_value``.
    """
    images = _as_images(images, image_shape)
    N, H, W = images.shape
    if N == 0:
        raise ValueError("tile_images needs at least one image, got none.")
    if int(n_cols) < 1 or int(pad) < 0:
        raise ValueError(f"n_cols must be >= 1 and pad >= 0, got n_cols={n_cols}, pad={pad}.")
    C = min(int(n_cols), N)
    R = -(-N // C)                                            # ceil(N / C)
    pad = int(pad)
    tiled = np.full((R * (H + pad) - pad, C * (W + pad) - pad), pad_value, dtype=np.float64)
    for k, image in enumerate(images):
        top, left = (k // C) * (H + pad), (k % C) * (W + pad)
        tiled[top:top + H, left:left + W] = image
    return tiled


def _new_axes(tiled_shape=None, figsize=None):
    """A new figure and axes, sized to a tiled image if one is given."""
    if figsize is None and tiled_shape is not None:
        h, w = tiled_shape
        inches_per_pixel = min(0.02, 10.0 / w, 10.0 / h)       # ~0.56 in per 28-pixel image
        figsize = (max(2.0, w * inches_per_pixel), max(1.0, h * inches_per_pixel) + 0.4)
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _show_tiled(ax, tiled, cmap):
    ax.imshow(tiled, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def image_grid(images, image_shape, n_cols=10, ax=None, title=None, cmap="gray"):
    """Show images (N, D) with pixels in [0, 1] as one tiled image, ``n_cols`` a row.

    Pixel values map to the colormap on the fixed range [0, 1] (0 black,
    1 white with "gray"), so grids are comparable. Returns the Figure.
    """
    tiled = tile_images(images, image_shape, n_cols=n_cols)
    if ax is None:
        fig, ax = _new_axes(tiled.shape)
    _show_tiled(ax, tiled, cmap)
    if title is not None:
        ax.set_title(title)
    return ax.figure


# ----- model outputs as images ------------------------------------------
def _check_decoded(X_mean, n, image_shape):
    X_mean = np.asarray(X_mean)
    D = int(np.prod(image_shape))
    if X_mean.shape != (n, D):
        raise ValueError(
            f"model.decode returned shape {X_mean.shape}, expected ({n}, {D}) for "
            f"image_shape {tuple(image_shape)}. Is image_shape the one the model was trained on?"
        )
    return X_mean


def reconstructions(model, X, image_shape, n=10, ax=None, cmap="gray"):
    """Inputs (top row) and their reconstructions (bottom row).

    The reconstruction of x is ``model.decode(mu)`` with ``mu, logvar =
    model.encode(x)``: the decoder's mean at the posterior mean, so it is
    deterministic (no sampled z). Inputs: X: (N, D) in [0, 1]; the first
    min(n, N) rows are shown. Returns the Figure.
    """
    X = _as_images(X, image_shape, what="X").reshape(len(X), -1)[:int(n)]
    n = len(X)
    if n == 0:
        raise ValueError("reconstructions needs at least one image in X, got none.")
    mu, _ = model.encode(X)                                   # (n, L)
    X_mean = _check_decoded(model.decode(mu), n, image_shape)  # (n, D)
    pad = 1
    tiled = tile_images(np.concatenate([X, X_mean]), image_shape, n_cols=n, pad=pad)
    if ax is None:
        fig, ax = _new_axes(tiled.shape)
    _show_tiled(ax, tiled, cmap)
    H = image_shape[0]
    ax.set_yticks([(H - 1) / 2, H + pad + (H - 1) / 2], ["input x", "decode(μ(x))"])
    ax.tick_params(axis="y", length=0)
    ax.set_title("reconstructions at the posterior mean μ(x)")
    return ax.figure


def prior_samples(model, image_shape, n=100, seed=0, n_cols=10, ax=None, cmap="gray"):
    """Decode n latent points Z ~ N(0, I), (n, L), drawn with ``np.random.default_rng(seed)``.

    Shows the decoder's means (Bernoulli probabilities), not binary samples
    from them. The same seed gives the same Z, so the same images. Returns
    the Figure.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    Z = np.random.default_rng(seed).standard_normal((n, int(model.latent_dim)))  # (n, L)
    X_mean = _check_decoded(model.decode(Z), n, image_shape)  # (n, D)
    fig = image_grid(X_mean, image_shape, n_cols=n_cols, ax=ax, cmap=cmap,
                     title="decoder means at z ~ N(0, I)")
    return fig


# ----- training curves ----------------------------------------------------
def _history_field(history, name, run):
    """A History's field as a float array, from an object with attributes or a dict."""
    if isinstance(history, Mapping):
        if name not in history:
            raise ValueError(f"history {run!r} has no {name!r} key; a history needs {_HISTORY_FIELDS}.")
        value = history[name]
    else:
        if not hasattr(history, name):
            raise ValueError(
                f"history {run!r} ({type(history).__name__}) has no attribute {name!r}; "
                f"a history needs {_HISTORY_FIELDS}."
            )
        value = getattr(history, name)
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _is_history(obj) -> bool:
    if isinstance(obj, Mapping):
        return "step_loss" in obj and "train_elbo" in obj
    return hasattr(obj, "step_loss") and hasattr(obj, "train_elbo")


def moving_average(x, window):
    """The mean of each ``window`` consecutive values: (T,) -> (T - window + 1,).

    Entry t is the mean of x[t : t + window]; ``window`` is capped at T.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    window = int(window)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    if len(x) == 0:
        return x
    window = min(window, len(x))
    cumsum = np.concatenate([[0.0], np.cumsum(x)])
    return (cumsum[window:] - cumsum[:-window]) / window


def loss_curves(histories, ax=None, per="epoch", window=50):
    """ELBO curves (nats per image, higher is better) of one or more training runs.

    Inputs: histories: {run name: History}, where a History is any object
    (or dict) with ``step_loss``, ``epoch``, ``train_elbo``, ``test_elbo``;
    a single History is drawn as one run named "run".
    per="epoch": for each run the train ELBO per epoch (solid; the mean over
    that epoch's minibatches, taken while the weights moved) and the test
    ELBO (dashed, same colour) where the run recorded one.
    per="step": for each run the minibatch ELBO, ``-step_loss``, smoothed by
    a moving average over the last ``window`` minibatches, against the step.
    Returns the Figure.
    """
    if per not in LOSS_CURVES_PER:
        raise ValueError(f"per must be one of {LOSS_CURVES_PER}, got {per!r}.")
    if _is_history(histories):
        histories = {"run": histories}
    if not isinstance(histories, Mapping) or len(histories) == 0:
        raise ValueError("histories must be a non-empty dict {run name: History}.")
    if ax is None:
        fig, ax = _new_axes(figsize=(6.0, 4.0))
    for i, (run, history) in enumerate(histories.items()):
        color = f"C{i % 10}"
        if per == "epoch":
            epoch = _history_field(history, "epoch", run)
            train = _history_field(history, "train_elbo", run)
            test = _history_field(history, "test_elbo", run)
            if len(epoch) == 0 or len(train) != len(epoch) or len(test) not in (0, len(epoch)):
                raise ValueError(
                    f"history {run!r} has {len(epoch)} epochs, {len(train)} train ELBOs and "
                    f"{len(test)} test ELBOs; expected one train ELBO per epoch (at least one), "
                    "and one test ELBO per epoch or none."
                )
            ax.plot(epoch, train, color=color, linestyle="-", marker=".", label=f"{run}: train")
            if len(test):
                ax.plot(epoch, test, color=color, linestyle="--", marker=".", label=f"{run}: test")
        else:
            step_elbo = -_history_field(history, "step_loss", run)
            if len(step_elbo) == 0:
                raise ValueError(f"history {run!r} recorded no steps (step_loss is empty).")
            smoothed = moving_average(step_elbo, window)
            w = len(step_elbo) - len(smoothed) + 1
            steps = np.arange(w, len(step_elbo) + 1)          # 1-based step that ends each window
            ax.plot(steps, smoothed, color=color, label=f"{run}: minibatch ELBO, mean of last {w} steps")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch" if per == "epoch" else "step (minibatch)")
    ax.set_ylabel("ELBO (nats per image)")
    ax.set_title("train (solid) and test (dashed) ELBO per epoch" if per == "epoch"
                 else f"minibatch ELBO, moving average over {int(window)} steps")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax.figure


# ----- the latent space ---------------------------------------------------
def _check_dims(model, dims, what):
    L = int(model.latent_dim)
    if L < 2:
        raise ValueError(
            f"{what} needs latent_dim >= 2 to draw a 2-D plane, but the model has latent_dim = {L}. "
            "Train with latent_dim=2, or for L = 1 plot a histogram of the posterior means."
        )
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < L for d in dims):
        raise ValueError(
            f"dims must be two different latent indices in 0..{L - 1} (0-based), got {dims}."
        )
    return L, dims


def _latent_label(d) -> str:
    return f"$z_{{{d + 1}}}$"                                 # 0-based index, 1-based name


def latent_scatter(model, X, y=None, ax=None, dims=(0, 1), max_points=5000, seed=0):
    """The posterior means mu(x) of the images X, on the plane of two latent dimensions.

    Inputs: X: (N, D); y: (N,) labels (e.g. digits) or None; dims: the two
    latent dimensions to show, 0-based indices (the axes are named 1-based,
    dims=(0, 1) gives "z_1", "z_2"); max_points: at most this many images,
    a seeded random subset kept in their original order.
    Each point is ``model.encode(x)[0][dims]``; with labels the points are
    coloured by a discrete colormap (tab10, tab20 beyond 10 classes) with a
    colorbar naming each label. Needs latent_dim >= 2. Returns the Figure.
    """
    L, dims = _check_dims(model, dims, "latent_scatter")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be (N, D), got shape {X.shape}.")
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(X):
            raise ValueError(f"y has {len(y)} labels but X has {len(X)} rows.")
    idx = np.arange(len(X))
    if len(X) > int(max_points):
        idx = np.sort(np.random.default_rng(seed).choice(len(X), int(max_points), replace=False))
    mu, _ = model.encode(X[idx])                               # (n, L)
    mu = np.asarray(mu)
    points = mu[:, list(dims)]                                 # (n, 2)
    if ax is None:
        fig, ax = _new_axes(figsize=(6.0, 5.0))
    if y is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
    else:
        classes, codes = np.unique(y[idx], return_inverse=True)
        K = len(classes)
        if K <= 20:
            colors = plt.get_cmap("tab10" if K <= 10 else "tab20").colors[:K]
            cmap, norm_ = ListedColormap(colors), BoundaryNorm(np.arange(K + 1) - 0.5, K)
            sc = ax.scatter(points[:, 0], points[:, 1], c=codes, cmap=cmap, norm=norm_, s=4, alpha=0.6)
            cbar = ax.figure.colorbar(sc, ax=ax, ticks=np.arange(K))
            cbar.set_ticklabels([str(c) for c in classes])
        else:                                                  # many labels: a continuous scale
            sc = ax.scatter(points[:, 0], points[:, 1], c=y[idx], cmap="viridis", s=4, alpha=0.6)
            cbar = ax.figure.colorbar(sc, ax=ax)
        cbar.set_label("label")
        cbar.solids.set_alpha(1.0)
    ax.set_xlabel(_latent_label(dims[0]))
    ax.set_ylabel(_latent_label(dims[1]))
    ax.set_title(f"posterior means of {len(idx)} images")
    ax.grid(True, alpha=0.3)
    return ax.figure


def _grid_values(n, grid, span) -> np.ndarray:
    """The n coordinates, increasing, that a square latent grid uses on each axis: (n,)."""
    n = int(n)
    if n < 2:
        raise ValueError(f"a latent grid needs n >= 2 points a side, got {n}.")
    if grid == "inverse_cdf":
        from scipy.stats import norm   # here, not at import: scipy.stats takes a second to import

        return norm.ppf((np.arange(n) + 0.5) / n)
    if grid == "linear":
        if not span > 0:
            raise ValueError(f"span must be > 0, got {span}.")
        return np.linspace(-span, span, n)
    raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}.")


def latent_grid(n=20, grid="inverse_cdf", span=3.0) -> np.ndarray:
    """An n x n grid of 2-D latent points, (n * n, 2), in image-tiling order.

    grid="inverse_cdf": each axis takes the values norm.ppf((i + 0.5) / n),
    i = 0..n-1: the prior N(0, 1) puts mass 1/n between neighbouring cell
    borders norm.ppf(i / n), so every cell holds the same prior mass 1/n^2
    (Kingma & Welling 2014, Fig. 4). ``span`` is not used.
    grid="linear": each axis takes n evenly spaced values in [-span, span],
    so the outer cells hold little prior mass.
    Order: point r * n + c (row r, column c) has z_1 = values[c], increasing
    left to right, and z_2 = values[n - 1 - r], decreasing top to bottom, so
    ``tile_images(decode(points), shape, n_cols=n)`` draws z_2 up.
    """
    values = _grid_values(n, grid, span)                      # (n,)
    z1, z2 = np.meshgrid(values, values[::-1])                # (n, n): rows top (high z_2) down
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def manifold_2d(model, image_shape, n=20, grid="inverse_cdf", span=3.0, ax=None,
                dims=(0, 1), n_ticks=5, cmap="gray"):
    """Decode an n x n grid of latent points and tile the images (Kingma & Welling 2014, Fig. 4b).

    The points come from :func:`latent_grid` (z_1 left to right, z_2 bottom
    to top); the axes' ticks show the z values of a few columns and rows.
    For latent_dim == 2 this is the whole latent space. For latent_dim > 2
    the grid lies on the plane of ``dims`` (0-based) and every other latent
    dimension is fixed at 0, the prior's mean: one slice, not the whole
    space. latent_dim 1 is refused. Returns the Figure.
    """
    L, dims = _check_dims(model, dims, "manifold_2d")
    plane = latent_grid(n, grid, span)                         # (n * n, 2)
    Z = np.zeros((len(plane), L))                              # (n * n, L)
    Z[:, list(dims)] = plane
    X_mean = _check_decoded(model.decode(Z), len(Z), image_shape)  # (n * n, D)
    pad = 1
    tiled = tile_images(X_mean, image_shape, n_cols=n, pad=pad)
    if ax is None:
        fig, ax = _new_axes(tiled.shape)
        fig.set_size_inches(fig.get_size_inches() + np.array([0.8, 0.6]))  # room for the labels
    _show_tiled(ax, tiled, cmap)
    H, W = image_shape
    values = _grid_values(n, grid, span)
    ticks = np.unique(np.linspace(0, n - 1, max(2, int(n_ticks))).round().astype(int))
    ax.set_xticks(ticks * (W + pad) + (W - 1) / 2, [f"{values[c]:.2f}" for c in ticks])
    ax.set_yticks(ticks * (H + pad) + (H - 1) / 2, [f"{values[n - 1 - r]:.2f}" for r in ticks])
    ax.set_xlabel(_latent_label(dims[0]))
    ax.set_ylabel(_latent_label(dims[1]))
    how = ("z = Φ⁻¹(p), equal prior mass per cell" if grid == "inverse_cdf"
           else f"z evenly spaced in [-{span:g}, {span:g}]")
    rest = "" if L == 2 else f", other {L - 2} latent dims at 0"
    ax.set_title(f"decoder means on a {n} x {n} latent grid ({how}{rest})")
    return ax.figure
