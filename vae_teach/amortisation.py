"""The amortisation gap: the encoder's q(z|x) against a q optimised for each x alone.

A VAE's encoder *amortises* inference: one network maps every x to its
q(z|x). Classical variational inference instead optimises a separate
q_n = N(mu_n, diag(exp(logvar_n))) for each data point, the decoder held
fixed. Cremer, Li & Duvenaud (2018) split the gap between log p(x) and the
encoder's ELBO in two:

    log p(x) - ELBO[q_encoder] = (log p(x) - ELBO[q*])  +  (ELBO[q*] - ELBO[q_encoder])
                                  approximation gap        amortisation gap

where q* is the best Gaussian for x: the approximation gap is the price of
the Gaussian family, the amortisation gap the price of sharing one encoder.

Defined in notebook 08. The optimisation needs gradients with respect to mu
and logvar through the decoder: ``NumpyVAE.latent_elbo_and_grads``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vae_teach import checks
from vae_teach.evaluate import elbo_of_q, importance_sampled_log_likelihood
from vae_teach.numpy_vae.optim import Optimizer


@dataclass
class LocalPosteriors:
    """Per-example optimised Gaussians q*_n and how the optimisation went.

    mu, logvar: (N, L); elbo: (N,) nats, each q*_n's ELBO with ``eval_samples``
    fresh samples of z; trace: the mean ELBO (nats per image, on the
    optimisation's own noisy samples) every ``trace_every`` steps; steps: how
    many Adam steps were taken; checks: the mean ELBO on fixed evaluation
    noise at step 0 and every ``check_every`` steps (with ``tol`` only);
    converged: whether the last check gained less than ``tol`` (None without).
    """

    mu: np.ndarray
    logvar: np.ndarray
    elbo: np.ndarray
    steps: int
    trace: list[float] = field(default_factory=list)
    trace_every: int = 1
    checks: list[float] = field(default_factory=list)
    check_every: int = 100
    converged: bool | None = None


def optimise_local_posteriors(model, X: np.ndarray, steps: int = 500, lr: float = 0.05,
                              n_samples: int = 4, init: str = "prior", seed: int = 0,
                              eval_samples: int = 100, trace_every: int = 10, tol: float | None = None,
                              check_every: int = 100, decays: int = 2, decay: float = 0.2) -> LocalPosteriors:
    """Fit q_n = N(mu_n, exp(logvar_n)) to each x_n by Adam on its ELBO, decoder fixed.

    Each step draws ``n_samples`` fresh eps per example (reparameterisation) and
    ascends sum_n ELBO_n; the points do not interact (Adam's scaling is per
    coordinate), so this is N separate optimisations run side by side.

    Inputs: model: a ``NumpyVAE`` (it needs ``latent_elbo_and_grads``); X: (N, D);
    init: "prior" (mu = 0, logvar = 0: from scratch, as classical VI) or
    "encoder" (start at the encoder's q). Convergence check: with ``tol``
    (nats per image), every ``check_every`` steps the mean ELBO of all q_n is
    measured on fixed evaluation noise (``eval_samples`` draws, seed + 1, the
    same draws each time, so the change is not buried in sampling noise). A
    period that gains less than ``tol`` multiplies the learning rate by
    ``decay`` (Adam with a constant rate and noisy gradients stalls in a ball
    around the optimum, lesson 08 measures how far), up to ``decays`` times; the
    next such period ends the fit. ``steps`` is then the most it may take.
    Returns: ``LocalPosteriors``.
    """
    if not hasattr(model, "latent_elbo_and_grads"):
        raise TypeError(
            f"optimise_local_posteriors needs gradients with respect to q's mean and variance "
            f"through the decoder, which {type(model).__name__} does not offer; use a NumpyVAE "
            f"(load the weights with set_params(other_model.get_params()))."
        )
    checks.count(steps, "steps", minimum=0)
    for value, name in ((n_samples, "n_samples"), (eval_samples, "eval_samples"), (trace_every, "trace_every")):
        checks.count(value, name)
    checks.positive(lr, "lr")
    checks.seed(seed)
    X = checks.model_images(model, X, dtype=model.dtype)
    checks.count(check_every, "check_every")
    if tol is not None and not (tol > 0 and decays >= 0 and 0 < decay < 1):
        raise ValueError(f"need tol > 0 nats per image (or None), decays >= 0 and 0 < decay < 1, got "
                         f"{tol}, {decays}, {decay}.")
    N, L = len(X), model.latent_dim
    if init == "prior":
        q = {"mu": np.zeros((N, L), model.dtype), "logvar": np.zeros((N, L), model.dtype)}
    elif init == "encoder":
        mu, logvar = model.encode(X)
        q = {"mu": mu.astype(model.dtype), "logvar": logvar.astype(model.dtype)}
    else:
        raise ValueError(f"init must be 'prior' or 'encoder', got {init!r}.")
    opt = Optimizer("adam", lr=lr)
    rng = np.random.default_rng(seed)
    trace, check_values, converged = [], [], None

    def check():
        return float(elbo_of_q(model, X, q["mu"], q["logvar"], n_samples=eval_samples, seed=seed + 1).mean())

    if tol is not None:
        check_values.append(check())
        converged = False
    taken, decays_left = 0, decays
    for step in range(steps):
        if converged:
            break
        eps = rng.standard_normal((n_samples, N, L)).astype(model.dtype)
        elbo, dmu, dlogvar = model.latent_elbo_and_grads(X, q["mu"], q["logvar"], eps)
        if step % trace_every == 0:
            trace.append(float(elbo.mean()))
        if not (np.isfinite(elbo).all() and np.isfinite(dlogvar).all() and np.isfinite(dmu).all()):
            raise FloatingPointError(f"q's ELBO or its gradient became non-finite at step {step + 1} with "
                                     f"lr={lr} (q kept its values from before that step); lower the "
                                     f"learning rate, or check logvar's range.")
        opt.step(q, {"mu": -dmu, "logvar": -dlogvar})             # Adam descends -ELBO
        if not np.all(np.isfinite(q["logvar"])):
            raise FloatingPointError(f"q's log-variance became non-finite at step {step + 1} with "
                                     f"lr={lr}; lower the learning rate.")
        taken = step + 1
        if tol is not None and taken % check_every == 0:
            check_values.append(check())
            if check_values[-1] - check_values[-2] < tol:
                if decays_left == 0:
                    converged = True
                else:
                    decays_left -= 1
                    for config in opt.configs.values():
                        config["lr"] *= decay
    final = elbo_of_q(model, X, q["mu"], q["logvar"], n_samples=eval_samples, seed=seed + 1)
    return LocalPosteriors(q["mu"].astype(np.float64), q["logvar"].astype(np.float64), final,
                           taken, trace, trace_every, check_values, check_every, converged)


@dataclass(frozen=True)
class GapSplit:
    """The split of log p(x) - ELBO[encoder], means over examples in nats per image.

    log_px: the (importance-sampled) log-likelihood; elbo_optimal: ELBO[q*];
    elbo_encoder: ELBO[q_encoder]; the gaps follow from these three.
    """

    log_px: float
    elbo_optimal: float
    elbo_encoder: float

    @property
    def approximation_gap(self) -> float:
        """log p(x) - ELBO[q*]: what the Gaussian family costs."""
        return self.log_px - self.elbo_optimal

    @property
    def amortisation_gap(self) -> float:
        """ELBO[q*] - ELBO[q_encoder]: what sharing one encoder across x costs."""
        return self.elbo_optimal - self.elbo_encoder

    @property
    def inference_gap(self) -> float:
        """log p(x) - ELBO[q_encoder]: the two together."""
        return self.log_px - self.elbo_encoder


def gap_terms(model, X: np.ndarray, steps: int = 3000, lr: float = 0.05, n_samples: int = 4,
              k: int = 500, seed: int = 0, eval_samples: int = 100, init: str = "encoder",
              tol: float | None = 0.025, check_every: int = 50, decays: int = 2, proposal: str = "mixture"
              ) -> tuple[LocalPosteriors, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The three per-example numbers of the split, for ``split_gap``: log p(x), ELBO[q*], ELBO[q_enc].

    q* comes from ``optimise_local_posteriors`` (seed), by default started at
    the encoder's q and run until it converges (``tol``, ``check_every``, ``decays``; ``steps``
    at most). log p(x) is importance-sampled with k samples (seed + 2) from
    ``proposal``: "mixture", an equal mixture of q*, q* with its standard
    deviations widened 1.5 times and the encoder's q, so that the estimate does
    not only look where q* looks (the approximation gap is what q* misses); or
    "q*", q* alone, which hides part of that gap (lesson 08 measures how much).
    ELBO[q_enc] uses ``eval_samples`` draws (seed + 1). Inputs: X: (N, D).
    Returns: the ``LocalPosteriors`` and the three (N,) arrays, in nats.
    """
    if proposal not in ("mixture", "q*"):
        raise ValueError(f"proposal must be 'mixture' or 'q*', got {proposal!r}.")
    local = optimise_local_posteriors(model, X, steps=steps, lr=lr, n_samples=n_samples, init=init,
                                      seed=seed, eval_samples=eval_samples, tol=tol, check_every=check_every,
                                      decays=decays)
    encoder = tuple(np.asarray(a, dtype=np.float64) for a in model.encode(X))
    optimal = (local.mu, local.logvar)
    q = optimal if proposal == "q*" else [optimal, (local.mu, local.logvar + 2 * np.log(1.5)), encoder]
    log_px = importance_sampled_log_likelihood(model, X, k=k, seed=seed + 2, proposal=q).per_example
    elbo_encoder = elbo_of_q(model, X, *encoder, n_samples=eval_samples, seed=seed + 1)
    return local, (log_px, local.elbo, elbo_encoder)


def split_gap(log_px: np.ndarray, elbo_optimal: np.ndarray, elbo_encoder: np.ndarray) -> GapSplit:
    """Average per-example (N,) log p(x), ELBO[q*] and ELBO[q_encoder] into a ``GapSplit``."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (log_px, elbo_optimal, elbo_encoder)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"expected three (N,) arrays of the same N, got shapes {[a.shape for a in arrays]}.")
    if arrays[0].size == 0 or any(np.isnan(a).any() for a in arrays):
        raise ValueError("split_gap needs at least one example and no NaN in log_px, elbo_optimal, elbo_encoder.")
    return GapSplit(*(float(a.mean()) for a in arrays))
