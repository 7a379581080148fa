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
    sum_sq = config.setdefault("sum_sq", np.zeros_like(w))
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
    b1, b2 = config["beta1"], config["beta2"]
    g = dw + config["l2"] * w if config["l2"] else dw
    m = config.setdefault("m", np.zeros_like(w))
    v = config.setdefault("v", np.zeros_like(w))
    t = config["t"] = config.get("t", 0) + 1
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    floor = config["moment_floor"]
    if floor:
        m[np.abs(m) < floor] = 0
        v[v < floor] = 0
    step_size = config["lr"] / (1 - b1**t)
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + config["eps"]
    w -= step_size * m / denom
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
