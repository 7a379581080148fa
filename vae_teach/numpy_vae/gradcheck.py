"""Centred-difference gradient checking, in float64.

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h),  error O(h^2).

Compare with ``relative_error``; in float64 a correct backward pass gives
about 1e-8 or less, a wrong one about 1e-2 or more. Defined in notebook 03.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-30) -> float:
    """The relative error of two arrays in the max norm: max|a - b| / max(max|a|, max|b|).

    Measured against the array's scale rather than entry by entry: an entry
    whose true gradient is ~1e-9 carries a finite-difference error (~1e-10
    from round-off in f(x +- h)) that says nothing about the backward pass.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), floor)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """The gradient of a scalar ``f()`` with respect to the array ``x``, changed in place.

    ``f`` takes no argument: it reads ``x`` through a closure, so that ``x``
    can be any parameter of a model. ``x`` must be float64; it is restored.
    Returns: an array of x's shape.
    """
    _require_float64(x)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        grad[i] = centred_difference(f, x, i, h)
    return grad


def centred_difference(f: Callable[[], float], x: np.ndarray, i: tuple, h: float = 1e-5) -> float:
    """(f(x + h e_i) - f(x - h e_i)) / 2h for one entry ``i`` of ``x``, restored afterwards."""
    old = x[i]
    x[i] = old + h
    f_plus = f()
    x[i] = old - h
    f_minus = f()
    x[i] = old
    return (f_plus - f_minus) / (2 * h)


def numerical_gradient_of_array(
    f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """The gradient of sum(f() * dout) with respect to ``x``: checks a layer's
    backward pass for an upstream gradient ``dout`` of f's output shape."""
    return numerical_gradient(lambda: float(np.sum(f() * dout)), x, h)


def check_model_gradients(model, X: np.ndarray, eps: np.ndarray, h: float = 1e-5,
                          max_entries: int | None = None, seed: int = 0,
                          objective: str = "elbo") -> dict[str, float]:
    """The relative error of every analytic parameter gradient of ``model``.

    ``model`` must be a float64 ``NumpyVAE``; ``max_entries`` checks a random
    subset of each parameter's entries (all by default); ``objective``: "elbo"
    or "iwae" (lesson 08), the loss ``loss_and_grads`` differentiates.
    Returns: {parameter name: relative error}.
    """
    _, grads = model.loss_and_grads(X, eps, objective=objective)
    bound = model.elbo_with_noise if objective == "elbo" else model.iwae_with_noise

    def loss() -> float:
        return float(-np.mean(bound(X, eps)))

    rng = np.random.default_rng(seed)
    errors = {}
    for name, w in model.params.items():
        _require_float64(w)
        flat = np.arange(w.size)
        if max_entries is not None and w.size > max_entries:
            flat = rng.choice(w.size, size=max_entries, replace=False)
        entries = [np.unravel_index(k, w.shape) for k in flat]
        numeric = [centred_difference(loss, w, i, h) for i in entries]
        analytic = [grads[name][i] for i in entries]
        errors[name] = relative_error(numeric, analytic)
    return errors


def _require_float64(x: np.ndarray) -> None:
    if np.asarray(x).dtype != np.float64:
        raise TypeError(
            f"gradient checks need float64 (got {np.asarray(x).dtype}): in float32, "
            "round-off in f(x +- h) swamps the difference. Build the model with dtype=np.float64."
        )


def layer_errors(forward: Callable, backward: Callable, inputs: list[np.ndarray], names: list[str],
                 seed: int = 0) -> dict[str, float]:
    """The relative error of each input's gradient from ``backward`` against centred differences.

    ``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> grads``
    (one array or a tuple, in the order of ``inputs``) are a layer's pair, as
    in ``layers.py``. ``inputs``: float64 arrays; the first ``len(names)`` are
    checked, for one random upstream gradient ``dout`` (drawn with ``seed``).
    Returns: {name: relative error}. Defined in notebook 03.
    """
    out, cache = forward(*inputs)
    dout = np.random.default_rng(seed).standard_normal(np.shape(out))   # a random upstream gradient
    analytic = backward(dout, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    return {name: relative_error(numerical_gradient_of_array(lambda: forward(*inputs)[0], inputs[i], dout),
                                 analytic[i])
            for i, name in enumerate(names)}
