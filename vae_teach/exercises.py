"""Checks for the lessons' exercises, with feedback aimed at the usual mistakes.

Each ``check_*`` takes the student's function, calls it on fixed inputs and
compares the result with the reference answer. It then

- prints "✓ ... correct" and returns True when the answer matches;
- prints "... not implemented yet" and returns False when the function still
  raises ``NotImplementedError`` (the student version of a notebook runs top
  to bottom that way);
- raises ``ExerciseMistake`` (an AssertionError) naming the mistake when the
  answer matches a typical wrong one (wrong sign, wrong reduction, variance
  used for the standard deviation, ...), or saying how far off it is.

Exercises live in lessons 01 (linear_forward, reconstruction_bce,
interpolate), 02 (gaussian_kl, reparameterize, gaussian_entropy) and 03
(linear_backward, dlogvar, adam_update).
"""

from __future__ import annotations

import copy

import numpy as np

from vae_teach import elbo
from vae_teach.numpy_vae import optim

NOT_IMPLEMENTED = "not implemented yet"


class ExerciseMistake(AssertionError):
    """The answer is wrong; the message says how."""


def _attempt(fn, *args):
    """Call the student's function; (result, True), or (None, False) for an unfinished stub."""
    try:
        return fn(*args), True
    except NotImplementedError:
        print(f"{getattr(fn, '__name__', 'your function')}: {NOT_IMPLEMENTED} (replace "
              "`raise NotImplementedError()` with your code, then run this cell again)")
        return None, False


def _close(a, b, rtol=1e-6, atol=1e-9) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _judge(name, got, expected, mistakes=(), shape_hint="") -> bool:
    """Compare ``got`` with ``expected``; on a mismatch, name the first matching mistake."""
    got = np.asarray(got, dtype=float) if got is not None else None
    if got is None:
        raise ExerciseMistake(f"{name} returned None: did you forget the `return`?")
    expected = np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        raise ExerciseMistake(f"{name}: wrong shape {got.shape}, expected {expected.shape}. {shape_hint}".strip())
    if not np.all(np.isfinite(got)):
        raise ExerciseMistake(f"{name}: the result has NaN or inf entries; where inputs are large, "
                              "rewrite the formula so no exp overflows and no log sees 0.")
    if _close(got, expected):
        print(f"✓ {name}: correct")
        return True
    for candidate, message in mistakes:
        if _close(got, candidate):
            raise ExerciseMistake(f"{name}: {message}")
    err = float(np.max(np.abs(got - expected)))
    raise ExerciseMistake(f"{name}: not the expected values (largest difference {err:.3g}). "
                          "Check the formula term by term against the lesson.")


def _rng():
    return np.random.default_rng(2024)


# --------------------------------------------------------------- lesson 01
def check_linear_forward(linear_forward) -> bool:
    """``linear_forward(x, W, b) -> out``: x (N, D_in), W (D_in, D_out), b (D_out,) -> (N, D_out)."""
    rng = _rng()
    x, W, b = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    got, done = _attempt(linear_forward, x.copy(), W.copy(), b.copy())
    if not done:
        return False
    if isinstance(got, tuple):
        got = got[0]  # a (out, cache) pair is fine
    return _judge("linear_forward", got, x @ W + b, [
        (x @ W, "the bias b is missing: out = x @ W + b."),
        (x @ W - b, "the bias is subtracted: out = x @ W + b."),
    ], shape_hint="W is stored as (in, out), so the product is x @ W, not W @ x.")


def check_reconstruction_bce(reconstruction_bce) -> bool:
    """``reconstruction_bce(X, logits) -> (N,)``: binary cross-entropy between X and sigmoid(logits),
    summed over pixels, one value per example, computed stably from the logits."""
    rng = _rng()
    X = rng.uniform(size=(4, 6))
    logits = rng.normal(scale=3, size=(4, 6))
    logits[0, :2] = [60.0, -60.0]  # sigmoid rounds to 1 and 0 here: log(sigmoid) would give -inf
    expected = -elbo.bernoulli_log_likelihood(X, logits)
    got, done = _attempt(reconstruction_bce, X.copy(), logits.copy())
    if not done:
        return False
    return _judge("reconstruction_bce", got, expected, [
        (-expected, "wrong sign: the cross-entropy is the *negative* log-likelihood, so it is >= 0."),
        (expected / X.shape[1], "you averaged over pixels: sum them (one image's loss is a sum over its pixels)."),
    ], shape_hint="Return one value per example: sum over the pixel axis (axis=1) only.")


def check_interpolation(interpolate) -> bool:
    """``interpolate(z0, z1, n) -> (n, L)``: n points evenly spaced from z0 to z1, both included."""
    z0, z1, n = np.array([-1.0, 2.0, 0.5]), np.array([3.0, 0.0, 0.5]), 5
    t = np.linspace(0, 1, n)[:, None]
    got, done = _attempt(interpolate, z0.copy(), z1.copy(), n)
    if not done:
        return False
    t_open = np.linspace(0, 1, n, endpoint=False)[:, None]
    return _judge("interpolate", got, (1 - t) * z0 + t * z1, [
        ((1 - t_open) * z0 + t_open * z1, "z1 is missing at the end: include both end points."),
        (t * z0 + (1 - t) * z1, "the order is reversed: start at z0 and end at z1."),
    ], shape_hint="Return an (n, L) array, one row per point.")


# --------------------------------------------------------------- lesson 02
def check_gaussian_kl(gaussian_kl) -> bool:
    """``gaussian_kl(mu, logvar) -> (N,)``: KL(N(mu, exp(logvar)) || N(0, I)) per example, in nats."""
    rng = _rng()
    mu, logvar = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    expected = elbo.gaussian_kl(mu, logvar)
    got, done = _attempt(gaussian_kl, mu.copy(), logvar.copy())
    if not done:
        return False
    as_logsigma = 0.5 * np.sum(np.exp(2 * logvar) + mu**2 - 1 - 2 * logvar, axis=1)
    return _judge("gaussian_kl", got, expected, [
        (-expected, "wrong sign: a KL divergence is >= 0; it is the ELBO that subtracts it."),
        (2 * expected, "the factor 1/2 is missing."),
        (expected / mu.shape[1], "you averaged over latent dimensions: sum them."),
        (as_logsigma, "you treated logvar as log sigma: sigma^2 = exp(logvar), not exp(2 logvar)."),
    ], shape_hint="Return one KL per example: sum over the latent axis (axis=1) only.")


def check_reparameterize(reparameterize) -> bool:
    """``reparameterize(mu, logvar, eps) -> Z``: z = mu + sigma * eps, sigma = exp(logvar / 2)."""
    rng = _rng()
    mu, logvar, eps = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got, done = _attempt(reparameterize, mu.copy(), logvar.copy(), eps.copy())
    if not done:
        return False
    return _judge("reparameterize", got, elbo.reparameterize(mu, logvar, eps), [
        (mu + np.exp(logvar) * eps, "exp(logvar) is the variance, not the standard deviation: use "
                                    "sigma = exp(0.5 * logvar) (the bug in numpy-ml's VAE)."),
        (mu + logvar * eps, "logvar is a log: sigma = exp(0.5 * logvar)."),
        (mu + np.exp(0.5 * logvar), "eps is missing: the noise must enter as sigma * eps."),
    ])


def check_gaussian_entropy(gaussian_entropy) -> bool:
    """``gaussian_entropy(logvar) -> (N,)``: entropy of N(mu, diag(exp(logvar))) in nats,
    1/2 sum_l (log(2 pi e) + logvar_l); it does not depend on mu."""
    logvar = _rng().normal(size=(4, 3))
    expected = 0.5 * np.sum(np.log(2 * np.pi * np.e) + logvar, axis=1)
    got, done = _attempt(gaussian_entropy, logvar.copy())
    if not done:
        return False
    return _judge("gaussian_entropy", got, expected, [
        (-expected, "wrong sign: for these variances the entropy is positive."),
        (0.5 * np.sum(logvar, axis=1), "the constant is missing: each dimension adds 1/2 log(2 pi e)."),
        (0.5 * np.sum(np.log(2 * np.pi) + logvar, axis=1),
         "the 1/2 per dimension (the e in log(2 pi e)) is missing: E[(z-mu)^2 / sigma^2] = 1."),
        (np.sum(np.log(2 * np.pi * np.e) + logvar, axis=1), "the factor 1/2 is missing."),
    ], shape_hint="Return one entropy per example: sum over the latent axis only.")


# --------------------------------------------------------------- lesson 03
def check_linear_backward(linear_backward) -> bool:
    """``linear_backward(dout, cache) -> (dx, dW, db)`` for out = x @ W + b, cache = (x, W):
    dout (N, D_out) -> dx (N, D_in), dW (D_in, D_out), db (D_out,)."""
    rng = _rng()
    x, W, dout = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    got, done = _attempt(linear_backward, dout.copy(), (x.copy(), W.copy()))
    if not done:
        return False
    if not (isinstance(got, tuple) and len(got) == 3):
        raise ExerciseMistake("linear_backward must return three arrays: (dx, dW, db).")
    dx, dW, db = got
    ok = _judge("dx", dx, dout @ W.T, shape_hint="dx has x's shape: dout @ W.T.")
    ok &= _judge("dW", dW, x.T @ dout, [], shape_hint="dW has W's shape (in, out): x.T @ dout.")
    ok &= _judge("db", db, dout.sum(axis=0), [
        (dout.mean(axis=0), "db sums dout over the batch (every example adds b), it does not average."),
    ], shape_hint="db has b's shape: sum dout over the batch axis.")
    return bool(ok)


def check_dlogvar(dlogvar) -> bool:
    """``dlogvar(logvar, eps, dZ) -> (N, L)``: the gradient of the per-example loss
    loss = g(z) + KL(q || p), z = mu + exp(logvar / 2) * eps, with respect to logvar,
    given dZ = dg/dz. Through the reparameterisation: dZ * eps * sigma / 2; through the
    KL: (sigma^2 - 1) / 2."""
    rng = _rng()
    logvar, eps, dZ = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    sigma = np.exp(0.5 * logvar)
    through_z, through_kl = dZ * eps * 0.5 * sigma, 0.5 * (sigma**2 - 1)
    got, done = _attempt(dlogvar, logvar.copy(), eps.copy(), dZ.copy())
    if not done:
        return False
    return _judge("dlogvar", got, through_z + through_kl, [
        (through_z, "the KL term's gradient, (sigma^2 - 1) / 2, is missing."),
        (through_kl, "the path through z is missing: dZ * eps * sigma / 2."),
        (dZ * eps * sigma + through_kl, "d sigma / d logvar is sigma / 2, not sigma (logvar is log sigma^2)."),
        (through_z - through_kl, "the KL's sign is flipped: the loss adds the KL."),
    ])


def check_adam_update(adam_update) -> bool:
    """``adam_update(w, dw, config) -> config``: one Adam step, changing w in place, keeping
    m, v and the step count t in config (hyperparameters lr, beta1, beta2, eps; defaults as
    ``vae_teach.numpy_vae.optim.adam``)."""
    rng = _rng()
    w0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(3)]
    hyper = {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    w_ref, config_ref = w0.copy(), copy.deepcopy(hyper)
    for g in grads:
        config_ref = optim.adam(w_ref, g, config_ref)
    w, config = w0.copy(), copy.deepcopy(hyper)
    for g in grads:
        returned, done = _attempt(adam_update, w, g.copy(), config)
        if not done:
            return False
        if returned is None:
            raise ExerciseMistake("adam_update must return config (with m, v and t in it).")
        config = returned
    if np.array_equal(w, w0):
        raise ExerciseMistake("w did not change: update it in place (w -= ...), do not rebind the name.")
    no_correction = w0.copy()
    m, v = np.zeros_like(w0), np.zeros_like(w0)
    for g in grads:
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        no_correction -= 0.1 * m / (np.sqrt(v) + 1e-8)
    return _judge("adam_update", w, w_ref, [
        (no_correction, "the bias correction is missing: divide m by (1 - beta1^t) and v by (1 - beta2^t)."),
    ])
