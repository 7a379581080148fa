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
interpolate), 02 (gaussian_kl, gaussian_entropy, ppca_posterior), 02b
(reparameterize, score_function_estimate, leave_one_out_baseline), 03
(linear_backward, dlogvar, adam_update), 04 (pytensor_log_likelihood,
pytensor_kl_logsigma, pytensor_adam_updates: symbolic, need PyTensor), 05
(torch_reparameterize, torch_loss, torch_checkpoint: need PyTorch), 06
(factor_correlation, active_units, aggregate_posterior_density), 07
(continuous_bernoulli_log_normalizer, bits_per_dim, optimal_gaussian_logvar), 08
(iwae_bound, k_sample_elbo, effective_sample_size) and 09 (collapsed_kl,
free_bits_term, collapse_beta).
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


def check_ppca_posterior(ppca_posterior) -> bool:
    """``ppca_posterior(X, W, b, noise_var) -> (mean, cov)``: the exact posterior of the
    linear-Gaussian model x | z ~ N(z W + b, s^2 I), z ~ N(0, I), with W stored (L, D):
    cov = (I_L + W W^T / s^2)^-1, (L, L), the same for every x; mean = (x - b) W^T cov / s^2, (N, L)."""
    rng = _rng()
    W, b, s2 = rng.normal(size=(3, 6)), rng.normal(size=6), 0.7
    X = rng.normal(size=(4, 6))
    precision = np.eye(3) + W @ W.T / s2
    cov = np.linalg.inv(precision)
    got, done = _attempt(ppca_posterior, X.copy(), W.copy(), b.copy(), s2)
    if not done:
        return False
    if not (isinstance(got, tuple) and len(got) == 2):
        raise ExerciseMistake("ppca_posterior must return two arrays: (mean, cov).")
    hint = "W is stored (L, D), as (in, out): the posterior's matrices are L x L, W @ W.T, not W.T @ W."
    ok = _judge("cov", got[1], cov, [
        (precision, "that is the precision Lambda = I + W W^T / s^2; the covariance is its inverse."),
        (np.linalg.inv(W @ W.T / s2), "the prior's precision I is missing: Lambda = I + W W^T / s^2."),
        (np.linalg.inv(np.eye(3) + W @ W.T), "divide W W^T by the noise variance s^2."),
    ], shape_hint=hint)
    mean = (X - b) @ W.T @ cov / s2
    ok &= _judge("mean", got[0], mean, [
        (X @ W.T @ cov / s2, "subtract the bias first: the mean is (x - b) W^T cov / s^2."),
        ((X - b) @ W.T @ cov, "divide by the noise variance s^2: the mean is (x - b) W^T cov / s^2."),
        ((X - b) @ W.T / s2, "the covariance is missing: the mean is (x - b) W^T cov / s^2."),
    ], shape_hint=hint)
    return bool(ok)


def check_score_function_estimate(score_function_estimate) -> bool:
    """``score_function_estimate(F, eps, logvar) -> (grad_mu, grad_logvar)``: the REINFORCE
    estimate of the gradient of E_q[f(z)] from K samples z_k = mu + sigma * eps_k:
    1/K sum_k f(z_k) * eps_k / sigma and 1/K sum_k f(z_k) * (eps_k^2 - 1) / 2.
    F (K, N) holds f(z_k); eps (K, N, L); logvar (N, L). Each output is (N, L)."""
    rng = _rng()
    F, eps, logvar = rng.normal(size=(5, 2)) + 3.0, rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3))
    sigma, Fk = np.exp(0.5 * logvar), F[..., None]
    g_mu, g_logvar = (Fk * eps / sigma).mean(0), (Fk * 0.5 * (eps**2 - 1)).mean(0)
    got, done = _attempt(score_function_estimate, F.copy(), eps.copy(), logvar.copy())
    if not done:
        return False
    if not (isinstance(got, tuple) and len(got) == 2):
        raise ExerciseMistake("score_function_estimate must return two arrays: (grad_mu, grad_logvar).")
    hint = "Average over the sample axis (axis 0) only: one gradient per example and latent dimension."
    ok = _judge("grad_mu", got[0], g_mu, [
        ((Fk * eps * sigma).mean(0), "d log q / d mu = (z - mu) / sigma^2 = eps / sigma: divide by sigma."),
        ((Fk * eps).mean(0), "d log q / d mu = eps / sigma: the 1 / sigma is missing."),
        ((Fk * eps / sigma).sum(0), "you summed over the K samples: average them."),
    ], shape_hint=hint)
    ok &= _judge("grad_logvar", got[1], g_logvar, [
        ((Fk * 0.5 * eps**2).mean(0), "the score is (eps^2 - 1) / 2: the -1 is missing (it makes its mean zero)."),
        ((Fk * (eps**2 - 1)).mean(0), "the factor 1/2 is missing: logvar is log sigma^2, d log q / d logvar "
                                       "= (eps^2 - 1) / 2."),
    ], shape_hint=hint)
    return bool(ok)


def check_leave_one_out_baseline(leave_one_out) -> bool:
    """``leave_one_out(F) -> F_centred``: F (K, ...) values f(z_k) -> f(z_k) minus the mean of f over
    the other K - 1 samples, same shape. That baseline does not depend on z_k, so the score-function
    estimate stays unbiased."""
    F = _rng().normal(size=(6, 3)) + 2.0
    K = F.shape[0]
    expected = F - (F.sum(axis=0) - F) / (K - 1)
    got, done = _attempt(leave_one_out, F.copy())
    if not done:
        return False
    return _judge("leave_one_out", got, expected, [
        (F - F.mean(axis=0), "your baseline includes f(z_k) itself, so it depends on z_k and biases the "
                             "estimate (by a factor (K - 1) / K): leave sample k out."),
        (F - (F.sum(axis=0) - F) / K, "divide the others' sum by K - 1, their number, not by K."),
        ((F.sum(axis=0) - F) / (K - 1) - F, "wrong sign: f(z_k) minus the others' mean."),
    ], shape_hint="Return an array of F's shape: one centred value per sample.")


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


# --------------------------------------------------------------- lesson 03b
def check_inverse_cdf_values(inverse_cdf_values) -> bool:
    """``inverse_cdf_values(n) -> (n,)``: z_i = Φ⁻¹((i + 1/2) / n), i = 0..n-1, increasing."""
    from scipy.stats import norm

    n = 7
    got, done = _attempt(inverse_cdf_values, n)
    if not done:
        return False
    return _judge("inverse_cdf_values", got, norm.ppf((np.arange(n) + 0.5) / n), [
        (norm.ppf(np.linspace(0, 1, n + 2)[1:-1]), "the cell centres are (i + 1/2) / n, not i / (n + 1)."),
        (norm.cdf((np.arange(n) + 0.5) / n), "Φ⁻¹ is the inverse CDF, scipy.stats.norm.ppf, not norm.cdf."),
        (norm.pdf((np.arange(n) + 0.5) / n), "Φ⁻¹ is the inverse CDF, scipy.stats.norm.ppf, not the density."),
        (np.linspace(-3, 3, n), "this is the linear grid: pass (i + 1/2) / n through norm.ppf."),
    ], shape_hint="Return the n values of one axis: (n,).")


def check_cell_prior_mass(cell_prior_mass) -> bool:
    """``cell_prior_mass(borders) -> (n, n)``: the N(0, I) mass of each cell of a square grid whose
    cells on each axis lie between consecutive entries of ``borders`` (n + 1,), ±inf allowed."""
    from scipy.stats import norm

    borders = np.array([-np.inf, -1.0, 0.2, 1.5, np.inf])
    got, done = _attempt(cell_prior_mass, borders.copy())
    if not done:
        return False
    mass_1d = np.diff(norm.cdf(borders))
    return _judge("cell_prior_mass", got, np.outer(mass_1d, mass_1d), [
        (np.add.outer(mass_1d, mass_1d), "the 2-D mass is a *product* of the two 1-D masses (the prior factorises)."),
        (np.outer(np.diff(norm.pdf(borders)), np.diff(norm.pdf(borders))),
         "a mass is a difference of the CDF, norm.cdf, not of the density."),
        (np.outer(mass_1d, mass_1d) / np.outer(mass_1d, mass_1d).sum() * 2, "do not renormalise."),
    ], shape_hint="Return an (n, n) array for n + 1 borders.")


def check_nearest_code_other_digit(nearest_code_other_digit) -> bool:
    """``nearest_code_other_digit(codes, y) -> float``: the fraction of points whose nearest
    *other* point (Euclidean, in code space) has another label. codes (N, F), y (N,)."""
    codes = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [1.0, 1.2], [5.0, 5.0], [1.05, 0.95]])
    y = np.array([3, 3, 1, 7, 7, 1])
    got, done = _attempt(nearest_code_other_digit, codes.copy(), y.copy())
    if not done:
        return False
    return _judge("nearest_code_other_digit", got, 1 / 6, [
        (0.0, "every point is its own nearest neighbour at distance 0: exclude it (np.fill_diagonal(D, np.inf))."),
        (5 / 6, "count the points whose nearest neighbour has *another* label, not the same label."),
        (1.0, "return a fraction of the points, not a count."),
    ], shape_hint="Return one number, a fraction in [0, 1].")


# --------------------------------------------------------------- lesson 04
def _pytensor():
    """(pytensor, pytensor.tensor, a mode that evaluates a graph as written).

    vae_teach.pytensor_vae is imported first, so that PyTensor compiles into the
    directory it chose (see that module). The mode runs each operation's Python
    implementation with no rewrites: nothing is compiled, and PyTensor's own
    stabilisations cannot rescue an unstable formula.
    """
    from vae_teach import pytensor_vae  # noqa: F401, I001  (before pytensor: it picks the compile directory)
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    return pytensor, pt, Mode(linker="py", optimizer=None)


def _evaluate_symbolic(name, out, inputs, values):
    """Evaluate the student's symbolic ``out`` for ``values`` of the symbolic ``inputs``."""
    pytensor, _, mode = _pytensor()
    if out is None:
        raise ExerciseMistake(f"{name} returned None: did you forget the `return`?")
    if not isinstance(out, pytensor.graph.basic.Variable):
        raise ExerciseMistake(
            f"{name} returned a {type(out).__name__}, not a symbolic PyTensor expression: build it from "
            "pt.* operations on the symbolic inputs (pt.softplus, pt.exp, .sum(axis=1), ...); NumPy "
            "functions cannot compute with symbols.")
    try:
        function = pytensor.function(inputs, out, mode=mode, on_unused_input="ignore")
    except pytensor.graph.fg.MissingInputError as error:
        raise ExerciseMistake(f"{name} uses a symbolic input it was not given ({error}); build the "
                              "expression from the arguments only.") from error
    with np.errstate(all="ignore"):
        return function(*values)


def check_pytensor_log_likelihood(log_likelihood) -> bool:
    """``log_likelihood(X, logits)``: symbolic X (N, D) and logits a (N, D), float64 ->
    symbolic (N,): the Bernoulli log p(x | z) = sum_d x_d a_d - softplus(a_d), finite for
    any logit. Checked without PyTensor's rewrites, at logits up to +-800."""
    _, pt, _ = _pytensor()
    rng = _rng()
    X_value, a_value = rng.uniform(size=(4, 6)), rng.normal(scale=3, size=(4, 6))
    a_value[0, :4] = [60.0, -60.0, 800.0, -800.0]  # sigmoid rounds to 1 and 0; exp(800) overflows
    X, logits = pt.matrix("X", dtype="float64"), pt.matrix("logits", dtype="float64")
    out, done = _attempt(log_likelihood, X, logits)
    if not done:
        return False
    got = np.asarray(_evaluate_symbolic("log_likelihood", out, [X, logits], [X_value, a_value]))
    if got.shape == (4,) and not np.all(np.isfinite(got)):
        raise ExerciseMistake(
            "log_likelihood: NaN or inf for the image whose logits are +-60 and +-800: log(sigmoid(a)) "
            "takes the log of a probability rounded to 0, and log1p(exp(a)) overflows. Write it with "
            "pt.softplus: log sigmoid(a) = -softplus(-a), log(1 - sigmoid(a)) = -softplus(a). (A compiled "
            "function would have PyTensor rewrite log(sigmoid(a)) for you; do not count on it.)")
    expected = elbo.bernoulli_log_likelihood(X_value, a_value)
    return _judge("log_likelihood", got, expected, [
        (-expected, "wrong sign: this is the log-likelihood (<= 0), not the cross-entropy."),
        (expected / X_value.shape[1], "you averaged over pixels: sum them, one log p(x|z) per image."),
    ], shape_hint="Return one value per image: sum over the pixel axis (axis=1) only.")


def check_pytensor_kl_logsigma(kl_logsigma) -> bool:
    """``kl_logsigma(mu, logsigma)``: symbolic mu, logsigma (N, L), float64 -> symbolic (N,):
    KL(N(mu, sigma^2) || N(0, I)) per example for an encoder head that outputs log sigma,
    1/2 sum_l (sigma_l^2 + mu_l^2 - 1 - 2 log sigma_l), sigma = exp(logsigma)."""
    _, pt, _ = _pytensor()
    rng = _rng()
    mu_value, s_value = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    mu, logsigma = pt.matrix("mu", dtype="float64"), pt.matrix("logsigma", dtype="float64")
    out, done = _attempt(kl_logsigma, mu, logsigma)
    if not done:
        return False
    got = _evaluate_symbolic("kl_logsigma", out, [mu, logsigma], [mu_value, s_value])
    expected = elbo.gaussian_kl(mu_value, 2 * s_value)
    return _judge("kl_logsigma", got, expected, [
        (elbo.gaussian_kl(mu_value, s_value), "you used the log-variance formula: here the head outputs "
                                              "log sigma, so sigma^2 = exp(2 logsigma) and log sigma^2 = 2 logsigma."),
        (0.5 * np.sum(np.exp(2 * s_value) + mu_value**2 - 1 - s_value, axis=1),
         "log sigma^2 is 2 logsigma: the last term is -2 logsigma, to match exp(2 logsigma)."),
        (-expected, "wrong sign: a KL divergence is >= 0; it is the ELBO that subtracts it."),
        (2 * expected, "the factor 1/2 is missing."),
        (expected / mu_value.shape[1], "you averaged over latent dimensions: sum them."),
    ], shape_hint="Return one KL per example: sum over the latent axis (axis=1) only.")


def check_pytensor_adam_updates(adam_updates) -> bool:
    """``adam_updates(w, dw, lr, beta1, beta2, eps) -> [(shared variable, new value), ...]``:
    one Adam step for the shared variable w given its symbolic gradient dw, as PyTensor
    ``updates`` pairs, with the state (m, v, step count t) in shared variables the function
    creates. Compiled once and run for three steps, w must follow
    ``vae_teach.numpy_vae.optim.adam`` (torch.optim's formulas)."""
    pytensor, pt, mode = _pytensor()
    rng = _rng()
    w0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(3)]
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w = pytensor.shared(w0.copy(), name="w")
    dw = pt.matrix("dw", dtype="float64")
    pairs, done = _attempt(adam_updates, w, dw, lr, b1, b2, eps)
    if not done:
        return False
    if pairs is None:
        raise ExerciseMistake("adam_updates returned None: return the list of (shared variable, new value) pairs.")
    pairs = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    if not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
        raise ExerciseMistake("adam_updates must return (shared variable, new value) pairs, e.g. [(m, new_m), ...].")
    targets = [p[0] for p in pairs]
    if not any(target is w for target in targets):
        raise ExerciseMistake("adam_updates: w is not among the updated variables: include the pair (w, its new value).")
    if len(pairs) == 1:
        raise ExerciseMistake("adam_updates: only w is updated: m, v and the step count t must be shared variables with "
                              "their own (variable, new value) pairs, or they keep their first values.")
    try:
        step = pytensor.function([dw], [], updates=pairs, mode=mode)
    except TypeError as error:
        raise ExerciseMistake(f"PyTensor refused the updates: {error}. Each new value must have its "
                              "variable's type (dtype and number of dimensions).") from error
    with np.errstate(all="ignore"):
        for g in grads:
            step(g)
    got = w.get_value()
    if not np.all(np.isfinite(got)):
        raise ExerciseMistake("adam_updates: w became NaN or inf: in the right-hand sides t is still the old step count "
                              "(0 at the first step, so 1 - beta1**t = 0); correct with t + 1, the new one.")

    def reference(correct=True, old_moments=False, t_fixed=False):
        w_ref, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        for t, g in enumerate(grads, start=1):
            m_new, v_new = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            m_use, v_use = (m, v) if old_moments else (m_new, v_new)
            t_use = 1 if t_fixed else t
            if correct:
                w_ref = w_ref - lr * (m_use / (1 - b1**t_use)) / (np.sqrt(v_use / (1 - b2**t_use)) + eps)
            else:
                w_ref = w_ref - lr * m_use / (np.sqrt(v_use) + eps)
            m, v = m_new, v_new
        return w_ref

    w_torch, config = w0.copy(), {"lr": lr, "beta1": b1, "beta2": b2, "eps": eps}
    for g in grads:
        config = optim.adam(w_torch, g, config)
    return _judge("adam_updates", got, w_torch, [
        (reference(old_moments=True), "w's update uses m and v from before this step: every right-hand side "
                                      "in `updates` sees the old values, so compute new_m and new_v once and "
                                      "use them both in (m, new_m) and in w's update."),
        (reference(t_fixed=True), "the step count t is never updated, so the bias correction stays at t = 1: "
                                  "add (t, t + 1) to the updates."),
        (reference(correct=False), "the bias correction is missing: divide m by (1 - beta1^t) and v by "
                                   "(1 - beta2^t), with t the new step count."),
    ])


# --------------------------------------------------------------- lesson 05
def _torch():
    import torch

    return torch


def check_torch_reparameterize(reparameterize) -> bool:
    """``reparameterize(mu, logvar, eps) -> z``: torch tensors (N, L) -> (N, L), z = mu + sigma * eps
    with sigma = exp(0.5 * logvar), differentiable in mu and logvar (autograd must reach them)."""
    torch = _torch()
    rng = _rng()
    values = [torch.from_numpy(rng.normal(size=(4, 3))) for _ in range(3)]
    mu, logvar = (v.clone().requires_grad_(True) for v in values[:2])
    got, done = _attempt(reparameterize, mu, logvar, values[2].clone())
    if not done:
        return False
    if got is not None and not torch.is_tensor(got):
        raise ExerciseMistake("reparameterize returned a NumPy array, not a tensor: compute with torch "
                              "operations (torch.exp, *, +) so that autograd can follow them.")
    if got is not None and not got.requires_grad:
        raise ExerciseMistake("reparameterize: the result does not depend on mu and logvar for autograd "
                              "(.detach(), .numpy() or torch.no_grad() cut the graph): z must stay a "
                              "differentiable function of the encoder's outputs, that is the whole trick.")
    mu_, logvar_, eps_ = (v.numpy() for v in values)
    return _judge("reparameterize", None if got is None else got.detach().numpy(),
                  elbo.reparameterize(mu_, logvar_, eps_), [
        (mu_ + np.exp(logvar_) * eps_, "exp(logvar) is the variance, not the standard deviation: "
                                       "sigma = torch.exp(0.5 * logvar)."),
        (mu_ + logvar_ * eps_, "logvar is a log: sigma = torch.exp(0.5 * logvar)."),
    ])


def check_torch_loss(loss_function) -> bool:
    """``loss_function(logits, x, mu, logvar) -> loss``: torch tensors (N, D), (N, D), (N, L), (N, L) ->
    a scalar tensor, -ELBO in nats per image: the Bernoulli NLL from logits summed over pixels plus the
    Gaussian KL summed over latent dimensions, averaged over the batch."""
    torch = _torch()
    rng = _rng()
    a, X = rng.normal(scale=2, size=(5, 6)), rng.uniform(size=(5, 6))
    mu, logvar = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    got, done = _attempt(loss_function, *(torch.from_numpy(v) for v in (a, X, mu, logvar)))
    if not done:
        return False
    if torch.is_tensor(got):
        got = got.detach().numpy()
    nll = -elbo.bernoulli_log_likelihood(X, a)          # (N,)
    kl = elbo.gaussian_kl(mu, logvar)                    # (N,)
    return _judge("loss_function", got, np.mean(nll + kl), [
        (np.mean(nll) / X.shape[1] + np.mean(kl),
         "the NLL is averaged over pixels (F.binary_cross_entropy's default reduction='mean'): sum it "
         "over the pixels of each image (reduction='sum', then divide by the batch size), as the ELBO is."),
        (np.mean(nll) / X.shape[1] + np.mean(kl) / mu.shape[1],
         "both terms are averaged over their dimensions: sum over pixels and latent dimensions, average "
         "over the batch only."),
        (np.sum(nll + kl), "the loss is summed over the batch: divide by the batch size, so that it reads "
                           "in nats per image and the learning rate does not depend on the batch size."),
        (np.mean(nll - kl), "the KL enters -ELBO with a plus sign: loss = NLL + KL."),
        (nll + kl, "return the batch mean, a scalar, not one loss per image."),
    ], shape_hint="Return a scalar (0-d tensor).")


def check_torch_checkpoint(make_checkpoint) -> bool:
    """``make_checkpoint(module) -> dict`` for a ``vae_teach.torch_vae.TorchVAE``: at least "config"
    (``module.config.to_dict()``, plain types) and "state_dict" (``module.state_dict()``), such that
    ``torch.load(..., weights_only=True)`` reads it back and a new module rebuilt from it has the same weights."""
    import io

    torch = _torch()
    from vae_teach.interface import VAEConfig
    from vae_teach.torch_vae import TorchVAE

    module = TorchVAE(VAEConfig(input_dim=6, hidden_dims=(5,), latent_dim=2), seed=3, device="cpu")
    got, done = _attempt(make_checkpoint, module)
    if not done:
        return False
    if got is None:
        raise ExerciseMistake("make_checkpoint returned None: did you forget the `return`?")
    if isinstance(got, torch.nn.Module) or not isinstance(got, dict):
        raise ExerciseMistake(f"make_checkpoint returned a {type(got).__name__}, not a dict: save the pieces "
                              "({'config': ..., 'state_dict': ...}), not the module object, which only "
                              "unpickling arbitrary code could restore.")
    missing = {"config", "state_dict"} - set(got)
    if missing:
        raise ExerciseMistake(f"make_checkpoint: the dict lacks {sorted(missing)}; a model is rebuilt from "
                              "its config (the architecture) and then filled with its state_dict (the weights).")
    buffer = io.BytesIO()
    torch.save(got, buffer)
    buffer.seek(0)
    try:
        payload = torch.load(buffer, weights_only=True)
    except Exception as error:
        raise ExerciseMistake("make_checkpoint: torch.load(weights_only=True) refuses the dict "
                              f"({type(error).__name__}): it holds an object other than tensors and plain "
                              "Python types, such as the VAEConfig or the module. Store "
                              "module.config.to_dict() and module.state_dict().") from error
    if not isinstance(payload["config"], dict):
        raise ExerciseMistake("make_checkpoint: 'config' should be module.config.to_dict(), a plain dict.")
    rebuilt = TorchVAE(VAEConfig.from_dict(payload["config"]), seed=0, device="cpu")
    try:
        rebuilt.load_state_dict(payload["state_dict"])
    except Exception as error:
        raise ExerciseMistake("make_checkpoint: the 'state_dict' entry does not load into a rebuilt module "
                              f"({type(error).__name__}); store module.state_dict() itself.") from error
    want, have = module.get_params(), rebuilt.get_params()
    if not all(np.array_equal(want[name], have[name]) for name in want):
        raise ExerciseMistake("make_checkpoint: the rebuilt module's weights differ from the saved ones.")
    print("✓ make_checkpoint: correct")
    return True


# --------------------------------------------------------------- lesson 06
def check_factor_correlation(factor_correlation) -> bool:
    """``factor_correlation(mu, factors) -> (L, F)``: Pearson's correlation of each latent
    dimension mu[:, l] with each true factor factors[:, f], over the N examples."""
    rng = _rng()
    factors = rng.uniform(-1, 1, size=(40, 2)) + np.array([3.0, -1.0])         # (N, F), off-centre
    mu = np.c_[2.0 * factors[:, 1] + rng.normal(scale=0.5, size=40) + 5.0,
               rng.normal(size=40), -0.3 * factors[:, 0] + rng.normal(scale=0.1, size=40)]  # (N, L)
    got, done = _attempt(factor_correlation, mu.copy(), factors.copy())
    if not done:
        return False
    n = len(mu)
    a, b = mu - mu.mean(0), factors - factors.mean(0)
    cov = a.T @ b / n                                                            # (L, F)
    expected = cov / np.outer(a.std(0), b.std(0))
    raw = mu.T @ factors / np.outer(np.linalg.norm(mu, axis=0), np.linalg.norm(factors, axis=0))
    return _judge("factor_correlation", got, expected, [
        (raw, ("subtract each column's mean first: the correlation is the cosine of the *centred* "
               "columns, mu - mu.mean(axis=0) and factors - factors.mean(axis=0).")),
        (cov, "that is the covariance: divide it by both standard deviations, std(mu_l) * std(factor_f)."),
        (cov * n / (n - 1) / np.outer(a.std(0), b.std(0)),
         ("the covariance and the standard deviations use different normalisations (1/(N-1) against "
          "1/N): use the same in both, and they cancel.")),
    ], shape_hint="One row per latent dimension, one column per factor: (L, F). np.corrcoef(mu.T, factors.T) "
                  "is the (L + F, L + F) matrix of all pairs; its top-right block [:L, L:] is the table.")


def check_active_units(active_units) -> bool:
    """``active_units(mu, threshold) -> int``: how many latent dimensions have posterior
    means that vary across the examples, Var_n[mu[n, l]] > threshold (Burda et al. 2016)."""
    rng = _rng()
    scales = np.array([1.0, 0.5, 0.05, 0.2, 0.001])                             # std of each dimension
    mu = rng.standard_normal((400, 5))
    mu = (mu - mu.mean(0)) / mu.std(0) * scales + 0.7                            # variances: scales**2
    answers = []
    for threshold in (0.01, 0.1):
        got, done = _attempt(active_units, mu.copy(), threshold)
        if not done:
            return False
        if np.ndim(got) != 0:
            raise ExerciseMistake(f"active_units returned an array of shape {np.shape(got)}: return the "
                                  "number of active dimensions, an int (e.g. int(np.sum(mask))).")
        answers.append(got)
    variance = mu.var(axis=0)
    count = lambda values, threshold: int(np.sum(values > threshold))
    return _judge("active_units", answers, [count(variance, 0.01), count(variance, 0.1)], [
        ([count(mu.std(0), 0.01), count(mu.std(0), 0.1)],
         "compare the *variance* of each dimension's means with the threshold, not the standard deviation."),
        ([count(variance, 0.01)] * 2, "use the threshold argument, not a fixed 0.01."),
        ([5 - count(variance, 0.01), 5 - count(variance, 0.1)],
         "you counted the inactive dimensions: count those whose variance is *above* the threshold."),
        ([count(mu.var(axis=1), 0.01), count(mu.var(axis=1), 0.1)],
         ("take the variance over the examples (axis=0), one per latent dimension, not across the "
          "latent dimensions of each example.")),
    ])


def check_aggregate_posterior_density(aggregate_posterior_density) -> bool:
    """``aggregate_posterior_density(Z, mu, logvar) -> (M,)``: q(z) = 1/N sum_n
    N(z; mu_n, diag(exp(logvar_n))) at each of the M rows of Z: Z (M, L), mu and logvar (N, L)."""
    rng = _rng()
    Z = rng.normal(size=(6, 2))
    mu, logvar = rng.normal(size=(4, 2)), rng.normal(scale=0.5, size=(4, 2)) - 0.5
    got, done = _attempt(aggregate_posterior_density, Z.copy(), mu.copy(), logvar.copy())
    if not done:
        return False

    def mixture(sigma, reduce=np.mean, normalised=True):
        d = (Z[:, None, :] - mu[None]) / sigma[None]                             # (M, N, L)
        each = np.exp(-0.5 * np.sum(d**2, axis=2))                               # (M, N)
        if normalised:
            each = each / np.prod(np.sqrt(2 * np.pi) * sigma, axis=1)[None]
        return reduce(each, axis=1)

    expected = mixture(np.exp(0.5 * logvar))
    return _judge("aggregate_posterior_density", got, expected, [
        (mixture(np.exp(logvar)), "exp(logvar) is the variance: the standard deviation is exp(logvar / 2)."),
        (mixture(np.exp(0.5 * logvar), reduce=np.sum),
         "average the N components (1/N sum_n), do not add them: q(z) must integrate to 1."),
        (mixture(np.exp(0.5 * logvar), normalised=False),
         "each Gaussian needs its normalising constant, 1 / prod_l (sqrt(2 pi) sigma_l)."),
        (np.log(expected), "return the density q(z), not its log."),
    ], shape_hint="One density per row of Z: (M,).")


# --------------------------------------------------------------- lesson 07
# (checks for lesson 07's exercises go here)
def check_continuous_bernoulli_log_normalizer(log_normalizer) -> bool:
    """``log_normalizer(logits) -> same shape``: log C(lambda) of the continuous Bernoulli,
    lambda = sigmoid(a), C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), C(1/2) = 2,
    elementwise, finite for every real a: at a = 0 (lambda = 1/2, a 0/0) and for large |a|
    (where lambda rounds to 0 or 1)."""
    reference = elbo.continuous_bernoulli_log_normalizer
    a_mid = np.array([[-5.0, -2.0, -0.7, 0.3], [0.9, 1.5, 4.0, 9.0]])
    a_zero = np.array([0.0, 1e-12, -1e-9, 1e-6, -1e-4, 5e-3, -2e-2])
    a_big = np.array([-700.0, -60.0, 40.0, 200.0, 750.0])
    with np.errstate(all="ignore"):                    # the check reports NaN and inf itself
        got, done = _attempt(log_normalizer, a_mid.copy())
        if not done:
            return False
        name = "continuous_bernoulli_log_normalizer"
        if got is None:
            raise ExerciseMistake(f"{name} returned None: did you forget the `return`?")
        got = np.asarray(got, dtype=float)
        expected = reference(a_mid)
        if got.shape != expected.shape:
            raise ExerciseMistake(f"{name}: wrong shape {got.shape}, expected {expected.shape}: work "
                                  "elementwise, one log C per logit, and sum over nothing.")
        if not _close(got, expected):
            lam = np.array([0.1, 0.3, 0.7, 0.9])
            try:
                as_lambda = np.asarray(log_normalizer(lam.copy()), dtype=float)
            except Exception:                          # noqa: BLE001 (any failure: not that mistake)
                as_lambda = None
            if as_lambda is not None and _close(as_lambda, reference(np.log(lam) - np.log1p(-lam))):
                raise ExerciseMistake(f"{name}: the argument is the logits a, not lambda: lambda = "
                                      "sigmoid(a). Better still, write C in terms of a directly: "
                                      "C = a / tanh(a / 2).")
            if not np.all(np.isfinite(got)) and np.all(np.isfinite(got[a_mid > 0])):
                raise ExerciseMistake(f"{name}: NaN for negative logits: log(a) and log(tanh(a / 2)) are "
                                      "logs of negative numbers there. Their ratio C = a / tanh(a / 2) is "
                                      "positive: take the log of the ratio, or use |a| (C is even in a).")
            _judge(name, got, expected, [
                (np.exp(expected), "that is C(lambda) itself: return its log, log C."),
                (-expected, "wrong sign: C(lambda) >= 2, so log C >= log 2 > 0."),
                (expected - np.log(2.0), "the factor 2 is missing: C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), "
                                         "so C(1/2) = 2."),
                (expected + np.log(2.0), "a factor 2 too many: with the logits, C = a / tanh(a / 2) "
                                         "(artanh(1 - 2 lambda) = -a / 2)."),
            ], shape_hint="")
        got_zero = np.asarray(log_normalizer(a_zero.copy()), dtype=float)
        expected_zero = reference(a_zero)
        if got_zero.shape != expected_zero.shape:
            raise ExerciseMistake(f"{name}: wrong shape {got_zero.shape} for a 1-D input of shape "
                                  f"{a_zero.shape}: work elementwise.")
        if not np.all(np.isfinite(got_zero)):
            where = ", ".join(f"{a:g}" for a in a_zero[~np.isfinite(got_zero)])
            raise ExerciseMistake(f"{name}: NaN or inf at a = {where}: at a = 0 (lambda = 1/2) the formula "
                                  "is 0/0, though C(1/2) = 2. Near 0 use the series log C = log 2 + a^2/12 "
                                  "- 7 a^4/1440 (np.where(np.abs(a) < 1e-2, series, formula), with a safe "
                                  "value fed to the formula there).")
        if not _close(got_zero, expected_zero, rtol=1e-6, atol=1e-9):
            worst = a_zero[np.argmax(np.abs(got_zero - expected_zero))]
            raise ExerciseMistake(f"{name}: inaccurate near a = 0 (worst at a = {worst:g}, off by "
                                  f"{np.max(np.abs(got_zero - expected_zero)):.2g}); the limit is log 2, and "
                                  "near 0 log C = log 2 + a^2/12 - 7 a^4/1440.")
        got_big = np.asarray(log_normalizer(a_big.copy()), dtype=float)
        expected_big = reference(a_big)
        if got_big.shape != expected_big.shape or not np.all(np.isfinite(got_big)):
            raise ExerciseMistake(f"{name}: NaN or inf for large |a| (a = {a_big.tolist()}): lambda = "
                                  "sigmoid(a) rounds to 0 or 1 there (sigmoid(40.0) == 1.0 in float64), and "
                                  "exp(a) overflows. Stay with the logits: C = a / tanh(a / 2) = "
                                  "|a| (1 + e^-|a|) / (1 - e^-|a|), whose exponentials never overflow.")
        if not _close(got_big, expected_big):
            raise ExerciseMistake(f"{name}: not the expected values for large |a| (largest difference "
                                  f"{np.max(np.abs(got_big - expected_big)):.3g}); for large |a|, "
                                  "log C -> log |a|.")
    print(f"✓ {name}: correct")
    return True


def check_bits_per_dim(bits_per_dim) -> bool:
    """``bits_per_dim(log_px, D, levels=None)``: a log-likelihood (or ELBO) in nats per image as
    bits per dimension, -log_px / (D log 2), plus log2(levels) when ``levels`` is given (a density
    on dequantised images scaled to [0, 1])."""
    log_px_binary = np.array([-85.0, -120.5, -207.0])          # Bernoulli models of binary images
    log_px_density = np.array([2600.0, -300.0, 150.0])        # densities on dequantised 8-bit images
    D1, D2, levels = 784, 560, 256
    got, done = _attempt(bits_per_dim, log_px_binary.copy(), D1)
    if not done:
        return False
    bits = -log_px_binary / (D1 * np.log(2))
    hint = "Return one number per entry of log_px, the same shape."
    _judge("bits_per_dim (no levels)", got, bits, [
        (-bits, "wrong sign: bits/dim = -log p / (D log 2), positive for a probability <= 1 (lower is better)."),
        (-log_px_binary / D1, "those are nats per dimension: divide by log 2 (about 0.693) to turn nats into bits."),
        (-log_px_binary / (D1 * np.log(10)), "wrong log base: bits are base 2, so divide by D log 2, not D log 10."),
        (-log_px_binary / np.log(2), "those are bits per image: divide by the number of dimensions D too."),
        (-log_px_binary * np.log(2) / D1, "multiply by 1 / log 2, not by log 2: 1 bit = log 2 nats."),
        (bits + 8.0, "with levels=None (binary images, a probability already) nothing is added."),
    ], shape_hint=hint)
    got, done = _attempt(bits_per_dim, log_px_density.copy(), D2, levels)
    if not done:
        return False
    bits = -log_px_density / (D2 * np.log(2))
    return _judge("bits_per_dim (levels=256)", got, bits + np.log2(levels), [
        (bits, "for a density on dequantised data add log2(levels) (8 bits for 256 levels): "
               "-log p(y) + D log 256 bounds -log P(k) of the 8-bit image."),
        (bits - np.log2(levels), "add log2(levels), do not subtract it: the density lives on [0, 1], one "
                                 "256th of the 8-bit range per level."),
        (-log_px_density / (784 * np.log(2)) + np.log2(levels), "use the argument D, not a fixed 784."),
        (-log_px_density / (D2 * np.log(levels)), "to go from [0, 1] to 256 levels add log2(levels) bits "
                                                   "per dimension; do not divide by log(levels)."),
        (bits + levels, "add log2(levels) = 8 bits for 256 levels, not the number of levels."),
        (bits + np.log(levels), "add log2(levels) (in bits), not log(levels) (in nats)."),
    ], shape_hint=hint)


def check_optimal_gaussian_logvar(optimal_gaussian_logvar) -> bool:
    """``optimal_gaussian_logvar(X, X_mean) -> (D,)``: the per-pixel log sigma^2 that maximises
    sum_n log N(x_nd; m_nd, sigma_d^2) for decoder means X_mean: log of the mean over the N
    images of (x_nd - m_nd)^2. X, X_mean: (N, D)."""
    rng = _rng()
    X = rng.uniform(size=(50, 6))
    scale = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.4])                            # (D,)
    X_mean = X + scale * rng.normal(size=X.shape) + 0.3 * scale                  # biased: residual mean != 0
    got, done = _attempt(optimal_gaussian_logvar, X.copy(), X_mean.copy())
    if not done:
        return False
    sq = (X - X_mean) ** 2
    mse = sq.mean(axis=0)                                                        # (D,)
    expected = np.log(mse)
    return _judge("optimal_gaussian_logvar", got, expected, [
        (0.5 * expected, "that is log sigma: the log-variance is log sigma^2 = log(mean squared error)."),
        (mse, "that is sigma^2 itself: return its log, log sigma^2."),
        (np.sqrt(mse), "that is sigma: return log sigma^2, the log of the mean squared error."),
        (np.log(np.var(X - X_mean, axis=0)),
         "np.var subtracts the residual's own mean: the optimum is the mean squared error E[(x - m)^2] "
         "around the decoder's mean m, not the variance of x - m."),
        (np.full(X.shape[1], np.log(sq.mean())),
         "you averaged over the pixels too: each pixel gets its own sigma^2, the mean over the images "
         "(axis=0) only."),
        (np.log(sq.sum(axis=0)), "average the squared errors over the N images, do not add them."),
    ], shape_hint="One log sigma^2 per pixel: average over the images (axis=0), giving shape (D,).")


# --------------------------------------------------------------- lesson 08
# (checks for lesson 08's exercises go here)


def check_iwae_bound(iwae_bound) -> bool:
    """``iwae_bound(log_w) -> (N,)``: the IWAE bound log (1/K) sum_k exp(log_w[n, k]) for
    log-weights (N, K), images first, computed without overflow or underflow (log-sum-exp)."""
    rng = _rng()
    shift = np.array([-110.0, -1000.0, 5.0, 1000.0])[:, None]                  # one row per image
    log_w = rng.normal(scale=3.0, size=(4, 6)) + shift                           # (N, K)
    with np.errstate(all="ignore"):
        got, done = _attempt(iwae_bound, log_w.copy())
    if not done:
        return False
    expected = elbo.logsumexp(log_w, axis=1) - np.log(log_w.shape[1])            # (N,)
    if got is not None and np.shape(got) == expected.shape and not np.all(np.isfinite(got)):
        raise ExerciseMistake("iwae_bound: the result has -inf, inf or NaN entries: exp(-1000) rounds to 0 and "
                              "exp(1000) to inf, even in float64. Subtract each row's largest log-weight before "
                              "exp and add it back after the log (log-sum-exp).")
    top = log_w.max(axis=1)
    return _judge("iwae_bound", got, expected, [
        (log_w.mean(axis=1), "that is the mean of the log-weights, the ELBO's estimate (the k = 1 bound): take "
                             "the log of the mean of the weights, not the mean of their logs."),
        (elbo.logsumexp(log_w, axis=1), "that is log sum_k w_k: the bound averages the K weights, so subtract log K."),
        (expected - top, "the largest log-weight is missing: after log(mean(exp(log_w - max))), add the max back."),
        (top - np.log(log_w.shape[1]), "only the largest weight was kept: average all K weights."),
    ], shape_hint="One bound per image: reduce over the K samples of each row (axis=1), giving (N,).")


def check_k_sample_elbo(k_sample_elbo) -> bool:
    """``k_sample_elbo(X, mu, logvar, eps, decode_logits) -> (N,)``: the K-sample ELBO
    1/K sum_k log p(x_n | z_nk) - KL(q(z|x_n) || p(z)), z_nk = mu_n + sigma_n eps_nk, images first:
    X (N, D) binary, mu and logvar (N, L), eps (N, K, L); decode_logits maps codes (M, L) to
    Bernoulli logits (M, D). The KL in closed form."""
    rng = _rng()
    N, K, L, D = 3, 4, 2, 7
    X = (rng.uniform(size=(N, D)) < 0.5).astype(float)
    mu, logvar = rng.normal(size=(N, L)), rng.normal(scale=0.5, size=(N, L))
    eps = rng.normal(size=(N, K, L))
    W, b = rng.normal(scale=2.0, size=(L, D)), rng.normal(size=D)
    calls = []

    def decode_logits(Z):
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[1] != L:
            raise ExerciseMistake(f"decode_logits takes a 2-D array of codes (M, L) = (M, {L}), got shape "
                                  f"{Z.shape}: flatten the (N, K, L) codes with Z.reshape(N * K, L), and fold "
                                  "the logits back to (N, K, D) after.")
        calls.append(len(Z))
        return Z @ W + b

    try:
        got, done = _attempt(k_sample_elbo, X.copy(), mu.copy(), logvar.copy(), eps.copy(), decode_logits)
    except ValueError as error:
        raise ExerciseMistake(f"k_sample_elbo: the shapes do not broadcast ({error}). mu and logvar are (N, L) "
                              "and eps is (N, K, L): give them a sample axis in the middle, mu[:, None, :].") from error
    if not done:
        return False

    def bound(Z, order="NK", kl_times=1.0, reduce=np.mean):
        flat = Z.reshape(N * K, L) @ W + b
        if order == "NK":
            logits = flat.reshape(N, K, D)
            log_px_z = np.sum(X[:, None, :] * logits - elbo.softplus(logits), axis=2)            # (N, K)
        else:                                                       # rows folded back in the wrong order
            logits = flat.reshape(K, N, D)
            log_px_z = np.sum(X[None] * logits - elbo.softplus(logits), axis=2).T
        return reduce(log_px_z, axis=1) - kl_times * elbo.gaussian_kl(mu, logvar)

    Z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps                   # (N, K, L)
    expected = bound(Z)
    kl = elbo.gaussian_kl(mu, logvar)
    p_bar = elbo.sigmoid((Z.reshape(N * K, L) @ W + b).reshape(N, K, D)).mean(axis=1)          # (N, D)
    plug_in = np.sum(X * np.log(p_bar) + (1 - X) * np.log1p(-p_bar), axis=1) - kl
    if len(calls) > 1 and got is not None and _close(got, expected):
        raise ExerciseMistake(f"k_sample_elbo: the values are right, but decode_logits was called {len(calls)} "
                              "times: decode all N * K codes in one call (one matrix product), no loop.")
    return _judge("k_sample_elbo", got, expected, [
        (plug_in, "that is the log-likelihood of the mean output, log p(x | mean_k sigmoid(a_k)), which is larger "
                  "(Jensen): average the K log-likelihoods log p(x | z_k) instead."),
        (bound(Z, reduce=np.sum), "you summed log p(x | z_k) over the K samples: average them (divide by K)."),
        (bound(Z, reduce=np.sum, kl_times=K), "you summed over the K samples with the KL inside the sum, so the "
                                              "ELBO is K times too large: average over the samples instead."),
        (bound(Z, kl_times=K), "the KL is counted K times: it is in closed form, subtract it once per image."),
        (bound(Z, kl_times=-1.0), "the KL's sign is flipped: the ELBO subtracts it."),
        (bound(Z, kl_times=0.0), "the KL term is missing: subtract KL(q(z|x) || p(z)) in closed form."),
        (bound(mu[:, None, :] + np.exp(logvar)[:, None, :] * eps),
         "exp(logvar) is the variance: the standard deviation is sigma = exp(0.5 * logvar)."),
        (bound(Z, order="KN"), "the logits were folded back in a different order than the codes were flattened: "
                               "Z.reshape(N * K, L) puts image n's samples in rows n*K ... n*K + K-1, so fold the "
                               "logits back with .reshape(N, K, D)."),
        (bound(np.broadcast_to(mu[:, None, :], Z.shape)), "the noise is missing: z_nk = mu_n + sigma_n * eps_nk."),
    ], shape_hint="One ELBO per image: average over the K samples (axis=1 of (N, K)), giving (N,).")


def check_effective_sample_size(effective_sample_size) -> bool:
    """``effective_sample_size(log_w) -> (N,)``: ESS_n = 1 / sum_k w~_nk^2 for log-weights (N, K),
    with w~_nk = w_nk / sum_j w_nj the normalised weights; unchanged when a row is shifted."""
    rng = _rng()
    log_w = rng.normal(scale=1.5, size=(4, 6))                                  # (N, K)
    shift = np.array([-1000.0, 0.0, 800.0, -300.0])[:, None]
    got, done = _attempt(effective_sample_size, log_w.copy())
    if not done:
        return False
    with np.errstate(all="ignore"):
        got_shifted, _ = _attempt(effective_sample_size, log_w + shift)
    w = np.exp(log_w)
    w_norm = w / w.sum(axis=1, keepdims=True)
    expected = 1.0 / np.sum(w_norm**2, axis=1)                                   # (N,)

    def matches(a):
        try:
            return a is not None and _close(a, expected)
        except (TypeError, ValueError):
            return False

    if matches(got) and not matches(got_shifted):
        raise ExerciseMistake("effective_sample_size: right for small log-weights, but wrong (or NaN, inf) when a "
                              "row is shifted by -1000 or +800 nats, as real log-weights are: exp underflows to 0 or "
                              "overflows to inf. Subtract each row's largest log-weight before exp; the normalised "
                              "weights do not change.")
    return _judge("effective_sample_size", got, expected, [
        (1.0 / np.sum(w**2, axis=1), "normalise the weights first, w~ = w / sum_k w, so that they sum to 1 for "
                                     "each image."),
        (1.0 / np.sum((log_w / log_w.sum(axis=1, keepdims=True)) ** 2, axis=1),
         "normalise the weights w = exp(log_w), not the log-weights: exponentiate first."),
        (expected / log_w.shape[1], "that is ESS / K, a fraction: return the count, 1 / sum_k w~^2."),
        (np.sum(w_norm**2, axis=1), "that is sum_k w~^2 itself: the ESS is its reciprocal."),
        (np.ones(len(log_w)), "the normalised weights sum to 1: square them before summing."),
    ], shape_hint="One ESS per image: reduce over the K samples of each row (axis=1), giving (N,).")


# --------------------------------------------------------------- lesson 09
def check_collapsed_kl(collapsed_kl) -> bool:
    """``collapsed_kl(eigenvalues, sigma2) -> (L,)``: each latent dimension's KL, nats, at the optimum
    of a linear VAE with a diagonal q: 1/2 log(lambda_i / sigma^2) where lambda_i > sigma^2, else 0
    (the dimension has collapsed)."""
    eigenvalues, sigma2 = np.array([5.0, 3.0, 2.0, 1.2, 0.4]), 1.5
    got, done = _attempt(collapsed_kl, eigenvalues.copy(), sigma2)
    if not done:
        return False
    ratio = eigenvalues / sigma2
    expected = 0.5 * np.log(np.maximum(ratio, 1.0))
    return _judge("collapsed_kl", got, expected, [
        (0.5 * np.log(ratio), "no dimension collapses in your answer: where lambda_i <= sigma^2 the best "
                              "decoder row is 0, the posterior is the prior, and the KL is 0 (clip at 0)."),
        (np.log(np.maximum(ratio, 1.0)), "twice the answer: a Gaussian KL has a factor 1/2."),
        (0.5 * np.maximum(eigenvalues - sigma2, 0.0), "that is ||w_i||^2 / 2 = (lambda_i - sigma^2) / 2, the "
                                                      "decoder row's squared length; the KL is 1/2 log(lambda_i / sigma^2)."),
        (0.5 * np.log(np.maximum(sigma2 / eigenvalues, 1.0)), "the ratio is upside down: lambda_i / sigma^2."),
    ], shape_hint="One KL per eigenvalue: (L,).")


def check_free_bits_term(free_bits_term) -> bool:
    """``free_bits_term(mu, logvar, lam) -> float``: the free-bits KL term of a minibatch,
    sum_l max(lam, mean_n KL(q(z_l | x_n) || N(0, 1))), nats per image."""
    from vae_teach.numpy_vae.layers import free_bits_kl_forward

    rng = _rng()
    mu, logvar = rng.normal(scale=[0.05, 1.0, 2.0], size=(6, 3)), rng.normal(scale=0.3, size=(6, 3)) - [0, 0.5, 1]
    lam = 0.4
    got, done = _attempt(free_bits_term, mu.copy(), logvar.copy(), lam)
    if not done:
        return False
    expected, _ = free_bits_kl_forward(mu, logvar, lam)
    kl_nl = 0.5 * (np.exp(logvar) + mu * mu - 1 - logvar)                          # (N, L)
    return _judge("free_bits_term", got, expected, [
        (np.mean(np.sum(np.maximum(kl_nl, lam), axis=1)), "the floor is applied per image: free bits hold each "
                                                          "dimension's KL averaged over the minibatch, so take the "
                                                          "mean over n first, then max(lam, .), then sum over l."),
        (float(kl_nl.mean(axis=0).sum()), "that is the plain KL: no dimension is held at lam."),
        (max(lam, float(np.mean(kl_nl.sum(axis=1)))), "the floor is applied to the total KL: Kingma et al. give "
                                                       "each latent dimension its own floor, sum_l max(lam, mean_n KL_nl)."),
        (np.sum(np.maximum(kl_nl.sum(axis=0), lam)), "summed over the minibatch: average over n (nats per image)."),
        (np.sum(np.minimum(kl_nl.mean(axis=0), lam)), "min instead of max: the term is at least lam per dimension."),
    ], shape_hint="One number for the minibatch.")


def check_collapse_beta(collapse_beta) -> bool:
    """``collapse_beta(S, sigma2) -> beta``: the KL weight above which every latent dimension of a linear
    VAE (``vae_teach.linear_vae``) trained on covariance S (P, P) with decoder variance sigma2 has
    collapsed, found by experiment. Accepted within 10% of the answer of the lesson's rule."""
    S = np.diag([3.0, 1.5, 0.6])
    sigma2 = 1.0
    got, done = _attempt(collapse_beta, S.copy(), sigma2)
    if not done:
        return False
    if got is None:
        raise ExerciseMistake("collapse_beta returned None: did you forget the `return`?")
    got = float(got)
    eigenvalues = np.linalg.eigvalsh(S)
    expected = eigenvalues.max() / sigma2
    if abs(got - expected) <= 0.1 * expected:
        print(f"✓ collapse_beta: correct (yours ≈ {got:.3g}; the rule: every dimension has collapsed above beta = {expected:g})")
        return True
    for wrong, message in ((eigenvalues.min() / sigma2, "that is where the first dimension collapses (the "
                                                        "smallest eigenvalue); the question asks when the last, "
                                                        "the largest eigenvalue's, does."),
                           (sigma2 / eigenvalues.max(), "upside down: the rule is lambda_i <= beta sigma^2.")):
        if abs(got - wrong) <= 0.1 * abs(wrong):
            raise ExerciseMistake(f"collapse_beta: {message}")
    raise ExerciseMistake(f"collapse_beta: {got:.3g} is not within 10% of where the last dimension collapses. "
                          "Scan beta on a grid fine enough (or bisect), train to convergence at each, and count "
                          "dimensions with a KL above 0.01 nats.")
