"""The KL weight beta over training: constant, linear warm-up, cyclical (lesson on collapse).

The loss is  -E_q log p(x|z) + beta_t * KL(q(z|x) || p(z)),  and beta_t follows a
schedule of the optimiser step t = 0, 1, ..., total_steps - 1:

- ``constant(beta)``: beta throughout (beta = 1 is the ELBO; beta < 1 or > 1 the
  beta-VAE of Higgins et al., 2017);
- ``linear_warmup(beta, warmup_steps)``: from 0 up to beta over the first
  ``warmup_steps`` steps, then beta (Bowman et al., 2016; Sønderby et al., 2016);
- ``cyclical(beta, total_steps, n_cycles, ratio=0.5)``: ``n_cycles`` cycles of equal
  length; in each, beta rises linearly from 0 to beta over the first ``ratio`` of
  the cycle and stays there for the rest (Fu et al., 2019).

A schedule is a callable ``step -> beta_t`` (a float); ``weights(schedule, n)``
lists the first n values, for plots and tests.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass


def _check_beta(beta) -> float:
    beta = float(beta)
    if not beta >= 0 or beta != beta or beta == float("inf"):
        raise ValueError(f"beta (the KL weight) must be a finite number >= 0, got {beta}: 1 is the ELBO, "
                         "values below 1 weaken the KL term, above 1 strengthen it.")
    return beta


def _check_steps(name: str, steps) -> int:
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"{name} must be a whole number of optimiser steps >= 1, got {steps!r}.")
    return int(steps)


@dataclass(frozen=True)
class Constant:
    """beta_t = beta."""

    beta: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "beta", _check_beta(self.beta))

    def __call__(self, step: int) -> float:
        return self.beta


@dataclass(frozen=True)
class LinearWarmup:
    """beta_t = beta * min(1, t / warmup_steps): 0 at the first step, beta from step warmup_steps on."""

    beta: float
    warmup_steps: int

    def __post_init__(self):
        object.__setattr__(self, "beta", _check_beta(self.beta))
        object.__setattr__(self, "warmup_steps", _check_steps("warmup_steps", self.warmup_steps))

    def __call__(self, step: int) -> float:
        return self.beta * min(1.0, step / self.warmup_steps)


@dataclass(frozen=True)
class Cyclical:
    """Fu et al.'s cyclical schedule: ``n_cycles`` ramps from 0 to beta, each held for the cycle's rest."""

    beta: float
    total_steps: int
    n_cycles: int
    ratio: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "beta", _check_beta(self.beta))
        total = _check_steps("total_steps", self.total_steps)
        cycles = _check_steps("n_cycles", self.n_cycles)
        if cycles > total:
            raise ValueError(f"n_cycles ({cycles}) cannot exceed total_steps ({total}): each cycle needs a step.")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio (the rising part of each cycle) must be in (0, 1], got {self.ratio}; "
                             "Fu et al. use 0.5.")

    def __call__(self, step: int) -> float:
        period = self.total_steps / self.n_cycles
        position = (step % period) / period                       # in [0, 1) within the cycle
        return self.beta * min(1.0, position / self.ratio)


def constant(beta: float = 1.0) -> Constant:
    """A constant KL weight."""
    return Constant(beta)


def linear_warmup(beta: float, warmup_steps: int, total_steps: int | None = None) -> LinearWarmup:
    """A linear warm-up from 0 to ``beta`` over ``warmup_steps`` steps.

    With ``total_steps``, a warm-up longer than the training is refused (the
    model would never be trained on the objective it is meant for).
    """
    if total_steps is not None and warmup_steps > total_steps:
        raise ValueError(f"the KL warm-up ({warmup_steps} steps) is longer than the training ({total_steps} "
                         "steps): shorten the warm-up or train longer, so that beta reaches its value.")
    return LinearWarmup(beta, warmup_steps)


def cyclical(beta: float, total_steps: int, n_cycles: int, ratio: float = 0.5) -> Cyclical:
    """Fu et al. (2019): ``n_cycles`` cycles over ``total_steps``, each rising for ``ratio`` of it."""
    return Cyclical(beta, total_steps, n_cycles, ratio)


def as_schedule(kl_weight, total_steps: int | None = None):
    """A float (a constant beta) or a schedule, as a schedule: the one form the training loops take.

    With ``total_steps`` (the training's optimiser steps), a linear warm-up
    longer than the training is refused, as ``linear_warmup`` does.
    """
    if callable(kl_weight):
        schedule = kl_weight
    elif isinstance(kl_weight, bool) or not isinstance(kl_weight, numbers.Real):
        raise TypeError(f"kl_weight must be a number (beta) or a schedule from vae_teach.schedules (a "
                        f"callable of the optimiser step), got {type(kl_weight).__name__}.")
    else:
        schedule = constant(kl_weight)
    if (total_steps is not None and isinstance(schedule, LinearWarmup)
            and schedule.warmup_steps > total_steps):
        linear_warmup(schedule.beta, schedule.warmup_steps, total_steps)      # raises, saying what to do
    return schedule


def is_elbo(schedule) -> bool:
    """True for the constant beta = 1 (the plain ELBO, which the IWAE objective requires)."""
    return isinstance(schedule, Constant) and schedule.beta == 1.0


def weights(schedule, n_steps: int) -> list[float]:
    """beta_t for t = 0 .. n_steps - 1."""
    return [schedule(t) for t in range(n_steps)]
