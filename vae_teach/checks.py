"""The input checks every public entry point shares.

Each check takes the argument and its name, returns it as the array or
number the caller computes with, and otherwise raises an error whose message
names the argument, says what it got (shape, dtype, value), what was
expected, and what to do: ``ValueError`` for a bad value or shape,
``TypeError`` for a wrong type. They run once per call at the public entry
point (once per ``train`` on the whole dataset, never once per minibatch);
internal calls skip them.

Which pixels each likelihood accepts (lesson 07): the Bernoulli and the
continuous Bernoulli are distributions on [0, 1] (``UNIT_INTERVAL_LIKELIHOODS``);
a Gaussian is a density on every real number, so it takes any finite x.
"""

from __future__ import annotations

import numbers

import numpy as np

UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous-bernoulli")
NUMERIC_KINDS = "biuf"   # bool, signed and unsigned integers, floats


def describe(A) -> str:
    """'shape (3, 5) and dtype float32', for messages."""
    A = np.asarray(A)
    return f"shape {A.shape} and dtype {A.dtype}"


def numeric_array(A, name: str, dtype=None) -> np.ndarray:
    """``A`` as a NumPy array of numbers (cast to ``dtype`` if given); TypeError for anything else."""
    if A is None:
        raise TypeError(f"{name} must be an array of numbers, got None.")
    try:
        raw = np.asarray(A)
    except (TypeError, ValueError) as error:   # ragged nested lists
        raise TypeError(f"{name} must be a rectangular array of numbers; np.asarray failed ({error}).") from None
    if raw.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype} "
                        f"(shape {raw.shape}); convert it with np.asarray({name}, dtype=np.float32).")
    return raw if dtype is None else raw.astype(dtype, copy=False)


def finite(A: np.ndarray, name: str, what: str = "values") -> np.ndarray:
    """Raise a ValueError naming the first NaN or infinite entry of ``A``; return ``A``."""
    if A.size and A.dtype.kind == "f":
        total = np.sum(A)          # one pass: NaN and +-inf both make the sum non-finite
        if not np.isfinite(total):
            bad = ~np.isfinite(A)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"{name} has {int(bad.sum())} NaN or infinite {what} (the first, {A[first]}, at index "
                    f"{first}; {name} has {describe(A)}): remove or fill them "
                    f"(np.nan_to_num, or drop those rows) before passing {name}."
                )
    return A


def pixel_range(X: np.ndarray, name: str = "X", likelihood: str | None = "bernoulli",
                user: str | None = None) -> np.ndarray:
    """Raise unless ``X``'s values lie where the ``likelihood`` is defined: [0, 1] or any real.

    likelihood None: [0, 1] for a reason given by ``user`` (e.g. "binarize_static").
    """
    if (likelihood is not None and likelihood not in UNIT_INTERVAL_LIKELIHOODS) or not X.size:
        return X
    who = user or f"the {likelihood} likelihood"
    lo, hi = X.min(), X.max()
    if hi > 1:
        raise ValueError(
            f"{name} has pixels up to {hi:g} ({describe(X)}), but {who} needs pixel intensities in "
            f"[0, 1]: divide 0..255 images by 255 (X / 255.0), or use data.load_dataset, which scales them."
        )
    if lo < 0:
        raise ValueError(
            f"{name} has pixels down to {lo:g} ({describe(X)}), but {who} needs pixel intensities in "
            f"[0, 1]: rescale them into [0, 1]"
            + (", or use a Gaussian likelihood (defined on every real number) for real-valued data."
               if likelihood else ".")
        )
    return X


def unit_interval(X, name: str = "X", user: str = "this function") -> np.ndarray:
    """An array of any shape whose values are finite and lie in [0, 1] (pixel intensities)."""
    return pixel_range(finite(numeric_array(X, name), name, "pixels"), name, None, user)


def matrix(A, name: str, width: int | None = None, width_name: str = "columns", dtype=None,
           allow_empty: bool = False) -> np.ndarray:
    """``A`` as a numeric 2-D array (N, width), N >= 1, every entry finite."""
    A = numeric_array(A, name, dtype)
    if A.ndim != 2:
        hint = f" (one row? use {name}[None, :] or {name}.reshape(1, -1))" if A.ndim == 1 else \
            f" (images? flatten them with {name}.reshape(len({name}), -1))" if A.ndim > 2 else ""
        expected = f"(N, {width})" if width is not None else "(N, features)"
        raise ValueError(f"{name} must be a 2-D array {expected}, got {describe(A)}{hint}.")
    if width is not None and A.shape[1] != width:
        raise ValueError(f"{name} must have {width} {width_name}, got {describe(A)}: "
                         f"pass an array of shape (N, {width}), or build the model for width "
                         f"{A.shape[1]}.")
    if not allow_empty and A.shape[0] == 0:
        raise ValueError(f"{name} has no rows ({describe(A)}): pass at least one example.")
    return finite(A, name)


def images(X, name: str = "X", width: int | None = None, likelihood: str = "bernoulli", dtype=None,
           allow_empty: bool = False) -> np.ndarray:
    """Images (N, D): 2-D, D = ``width``, finite, in [0, 1] if the likelihood needs it."""
    X = matrix(X, name, width, "pixels (the model's input_dim)", dtype, allow_empty)
    return pixel_range(X, name, likelihood)  # the Gaussian likelihoods take any real x


def model_images(model, X, name: str = "X", dtype=None) -> np.ndarray:
    """Images for a protocol ``model``: (N, model.config.input_dim), in its likelihood's range."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"model must meet the protocol of vae_teach.interface (with a config), got "
                        f"{type(model).__name__}.")
    return images(X, name, config.input_dim, config.likelihood, dtype)


def latents(Z, name: str = "Z", width: int | None = None, dtype=None) -> np.ndarray:
    """Latent codes (N, L): 2-D, L = ``width`` (the model's latent_dim), finite."""
    return matrix(Z, name, width, "latent dimensions (the model's latent_dim)", dtype)


def same_rows(**arrays) -> None:
    """Raise unless every array given by name has the same number of rows."""
    rows = {name: len(a) for name, a in arrays.items()}
    if len(set(rows.values())) > 1:
        shapes = ", ".join(f"{name} {np.shape(a)}" for name, a in arrays.items())
        raise ValueError(f"{' and '.join(rows)} must have one row per example, the same number of rows; "
                         f"got shapes {shapes}. Pass matching rows (nothing is broadcast).")


def noise(eps, n: int, latent_dim: int, dtype=None, name: str = "eps") -> np.ndarray:
    """Standard normal noise as (K, N, L) (an (N, L) array is K = 1), finite."""
    eps = numeric_array(eps, name, dtype)
    if eps.ndim == 2:
        eps = eps[None]
    if eps.ndim != 3 or eps.shape[1:] != (n, latent_dim) or eps.shape[0] < 1:
        raise ValueError(f"{name} must have shape (K, N, L) = (K, {n}, {latent_dim}) with K >= 1, got "
                         f"{describe(eps)}: draw it with interface.draw_noise(seed, K, N, L).")
    return finite(eps, name)


def gaussian_params(mu, logvar, n: int | None = None, latent_dim: int | None = None,
                    names: tuple[str, str] = ("mu", "logvar"), dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """A diagonal Gaussian's (mu, logvar), both (N, L) (or (..., L)), the same shape, finite."""
    mu = finite(numeric_array(mu, names[0], dtype), names[0])
    logvar = finite(numeric_array(logvar, names[1], dtype), names[1])
    if mu.ndim < 1:
        raise ValueError(f"{names[0]} must be (N, L), got {describe(mu)}.")
    expected = mu.shape if n is None else (n, latent_dim)
    for name, A in zip(names, (mu, logvar)):
        if A.shape != expected:
            raise ValueError(f"{name} must have shape (N, L) = {expected}, the same as "
                             f"{names[0] if name == names[1] else 'the examples and latent_dim'}, "
                             f"got {describe(A)}; nothing is broadcast (np.broadcast_to makes it explicit).")
    return mu, logvar


def log_weights(log_w, name: str = "log_weights") -> np.ndarray:
    """Log importance weights (K, N): no NaN and no +inf (-inf, a zero weight, is allowed)."""
    log_w = numeric_array(log_w, name)
    if log_w.ndim != 2:
        raise ValueError(f"{name} must be (K, N), K samples of each of N examples, got {describe(log_w)}"
                         + (f"; for one example with K samples use {name}[:, None]" if log_w.ndim == 1 else "")
                         + ".")
    if log_w.shape[0] < 1 or log_w.shape[1] < 1:
        raise ValueError(f"{name} needs K >= 1 samples of N >= 1 examples, got {describe(log_w)}.")
    if log_w.dtype.kind == "f" and (np.isnan(log_w).any() or np.isposinf(log_w).any()):
        raise ValueError(f"{name} has NaN or +inf entries ({describe(log_w)}): a log weight is "
                         f"log p(x|z) + log p(z) - log q(z|x); check the model and its inputs are finite.")
    return log_w


def count(value, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (a sample count, batch size, epoch count): TypeError for non-integers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            raise TypeError(f"{name} must be an integer, got the float {value!r}; pass {int(value)}.")
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (an integer), got {value}.")
    return int(value)


def seed(value, name: str = "seed") -> int:
    """A random seed: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0 (the random seed), got {value!r} "
                        f"({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0 (NumPy's generators refuse negative seeds), "
                         f"got {value}; use abs({name}).")
    return int(value)


def positive(value, name: str) -> float:
    """A finite number > 0 (a learning rate, a variance)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number > 0, got {value!r} ({type(value).__name__}).")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}"
                         + ("; a learning rate is a step size: try 1e-3" if name == "lr" else "") + ".")
    return float(value)


def nonnegative(value, name: str) -> float:
    """A finite number >= 0 (a weight decay, a KL weight)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {value!r} ({type(value).__name__}).")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def choice(value, name: str, options) -> None:
    """Raise unless ``value`` is one of ``options``, listing them."""
    if value not in tuple(options):
        raise ValueError(f"unknown {name} {value!r}: {name} must be one of {tuple(options)}, got {value!r}.")


def training_args(*, epochs, batch_size, n_samples=1, seed_value=0, lr=None, l2=0.0) -> None:
    """The arguments every backend's ``train`` shares, checked once per call."""
    count(epochs, "epochs", minimum=0)
    count(batch_size, "batch_size")
    count(n_samples, "n_samples")
    seed(seed_value)
    if lr is not None:
        positive(lr, "lr")
    nonnegative(l2, "l2")
