"""First-order optimisers with one interface: ``update(w, dw, config) -> config``.

Each rule changes ``w`` in place (no new arrays for the parameters, which
matters for speed) and returns ``config``, the dict of hyperparameters that
also carries the rule's state (moments, step count) between calls. The
formulas follow ``torch.optim`` exactly, so the backends agree step by step:

- ``sgd``: w -= lr * (dw + l2 * w)            (L2 weight decay, as torch's weight_decay)
- ``adagrad``: G += g^2; w -= lr * g / (sqrt(G) + eps)
- ``adam``: m, v moving averages of g and g^2; w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

Defined in notebook 03.
"""

from __future__ import annotations

import math

import numpy as np


def sgd(w, dw, config=None):
    """Plain SGD with optional L2. config: lr (1e-2), l2 (0.0)."""
    config = {} if config is None else config
    config.setdefault("lr", 1e-2)
    config.setdefault("l2", 0.0)
    if config["l2"]:
        w -= config["lr"] * (dw + config["l2"] * w)
    else:
        w -= config["lr"] * dw
    return config


def adagrad(w, dw, config=None):
    """Adagrad. config: lr (1e-2), eps (1e-10), l2 (0.0); state: sum_sq."""
    config = {} if config is None else config
    config.setdefault("lr", 1e-2)
    config.setdefault("eps", 1e-10)
    config.setdefault("l2", 0.0)
    g = dw + config["l2"] * w if config["l2"] else dw
    if "sum_sq" not in config:
        config["sum_sq"] = np.zeros_like(w)
    sum_sq = config["sum_sq"]
    sum_sq += g * g
    w -= config["lr"] * g / (np.sqrt(sum_sq) + config["eps"])
    return config


def adam(w, dw, config=None):
    """Adam (Kingma & Ba, 2015). config: lr (1e-3), beta1 (0.9), beta2 (0.999),
    eps (1e-8), l2 (0.0), moment_floor (0.0); state: m, v, t.

    ``moment_floor`` > 0 sets to zero every moment whose magnitude falls below
    it, so that moments of always-zero gradients never decay into float32
    subnormal numbers, which x86 CPUs handle very slowly (notebook 05).
    0 leaves Adam exactly as published.
    """
    config = {} if config is None else config
    config.setdefault("lr", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("eps", 1e-8)
    config.setdefault("l2", 0.0)
    config.setdefault("moment_floor", 0.0)
    # Python floats take the arrays' dtype; a NumPy float64 scalar (np.sqrt(0.5),
    # say) would turn every float32 temporary below into float64.
    b1, b2, eps = float(config["beta1"]), float(config["beta2"]), float(config["eps"])
    g = dw + config["l2"] * w if config["l2"] else dw
    if "m" not in config:  # the state, allocated on the first step only
        config["m"], config["v"] = np.zeros_like(w), np.zeros_like(w)
    m, v = config["m"], config["v"]
    t = config["t"] = config.get("t", 0) + 1
    # Every line works in place, through one scratch array the size of w: written
    # as the formulas read (w -= step_size * m / denom), each step would create
    # four new arrays the size of w, which for these weights costs more than the
    # arithmetic itself.
    if "scratch" not in config:
        config["scratch"] = np.empty_like(w)
    tmp = config["scratch"]
    np.multiply(g, 1 - b1, out=tmp)
    m *= b1
    m += tmp                                        # m = b1 m + (1 - b1) g
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v *= b2
    v += tmp                                        # v = b2 v + (1 - b2) g^2
    floor = config["moment_floor"]
    if floor:
        if "mask" not in config:
            config["mask"] = np.empty(w.shape, dtype=bool)
        for moment in (m, v):
            # moment[|moment| < floor] = 0, but assigning through a mask is slow and
            # most steps have no new moment to zero: count those below first.
            n_zero = np.count_nonzero(np.equal(moment, 0, out=config["mask"]))
            below = np.less(np.abs(moment, out=tmp), floor, out=config["mask"])
            if np.count_nonzero(below) > n_zero:
                moment[below] = 0
    step_size = config["lr"] / (1 - b1**t)
    denom = np.sqrt(v, out=tmp)
    denom /= math.sqrt(1 - b2**t)
    denom += eps                                    # denom = sqrt(v / (1 - b2^t)) + eps
    update = np.divide(m, denom, out=tmp)
    update *= step_size
    w -= update                                     # w -= step_size * m / denom
    return config


UPDATE_RULES = {"sgd": sgd, "adagrad": adagrad, "adam": adam}
DEFAULT_LR = {"sgd": 1e-2, "adagrad": 1e-2, "adam": 1e-3}


class Optimizer:
    """Applies one update rule to every parameter of a dict, keeping a config each.

    ``Optimizer("adam", lr=1e-3).step(params, grads)`` updates ``params`` in place.
    """

    def __init__(self, rule: str = "adam", **hyperparameters):
        if rule not in UPDATE_RULES:
            raise ValueError(f"unknown optimiser {rule!r}; choose one of {sorted(UPDATE_RULES)}.")
        self.rule = rule
        self.update = UPDATE_RULES[rule]
        self.hyperparameters = hyperparameters
        self.configs: dict[str, dict] = {}

    @property
    def lr(self) -> float:
        """The learning rate in use (the rule's default unless given)."""
        return self.hyperparameters.get("lr", DEFAULT_LR[self.rule])

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, w in params.items():
            config = self.configs.setdefault(name, dict(self.hyperparameters))
            self.update(w, grads[name].astype(w.dtype, copy=False), config)
