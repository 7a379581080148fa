"""Layers of the from-scratch VAE, as pure forward/backward pairs.

Each ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes
the upstream gradient ``dout`` (same shape as ``out``) and the cache, and
returns the gradients of the forward's inputs, in order. Nothing is stored on
objects, so every pair can be checked alone with ``gradcheck``.

Defined in notebook 03, where each backward pass is derived by hand; the
Gaussian and continuous Bernoulli likelihoods in notebook 07.
"""

from __future__ import annotations

import numpy as np

from vae_teach.elbo import (
    continuous_bernoulli_log_normalizer,
    continuous_bernoulli_log_normalizer_grad,
)


def linear_forward(x, W, b):
    """out = x @ W + b.

    Inputs: x: (N, D_in); W: (D_in, D_out); b: (D_out,).
    Returns: out: (N, D_out), cache.
    """
    out = x @ W
    out += b              # in place: x @ W + b would make a second (N, D_out) array
    return out, (x, W)


def linear_backward(dout, cache, input_grad=True, weight_grads=True):
    """Inputs: dout: (N, D_out). Returns: dx (N, D_in), dW (D_in, D_out), db (D_out,).

    input_grad=False skips dx (returns None for it): the first layer's input is
    the data, which needs no gradient, and dx costs as much as dW.
    weight_grads=False skips dW and db (None): lesson 08 differentiates with
    respect to z only, the weights held fixed.
    """
    x, W = cache
    dx = dout @ W.T if input_grad else None
    if not weight_grads:
        return dx, None, None
    return dx, x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    """out = max(x, 0), elementwise. Returns: out (same shape as x), cache."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """The gradient passes where the output was positive."""
    out = cache
    return dout * (out > 0)


def tanh_forward(x):
    """out = tanh(x), elementwise. Returns: out, cache."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """d tanh(x)/dx = 1 - tanh(x)^2."""
    out = cache
    return dout * (1 - out * out)


ACTIVATION_LAYERS = {
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
}


def mlp_forward(h, params, prefix, n_layers, activation_forward):
    """[linear -> activation] * n_layers, with the weights ``{prefix}{i}_W``, ``{prefix}{i}_b`` of params.

    Inputs: h: (N, D_in). Returns: h: (N, D_out), caches (one per layer).
    The hidden layers of the VAE's encoder and decoder, and of lesson 01's autoencoder.
    """
    caches = []
    for i in range(n_layers):
        a, lin_cache = linear_forward(h, params[f"{prefix}{i}_W"], params[f"{prefix}{i}_b"])
        h, act_cache = activation_forward(a)
        caches.append((lin_cache, act_cache))
    return h, caches


def mlp_backward(dh, caches, prefix, activation_backward, grads, input_grad=True):
    """Backward through ``mlp_forward``: fills ``grads[f"{prefix}{i}_W"]`` and ``_b``, returns dh_in.

    grads=None computes no weight gradients (lesson 08 differentiates with respect to z
    only); input_grad=False returns None instead of dh_in (the encoder's input is data).
    """
    for i in reversed(range(len(caches))):
        lin_cache, act_cache = caches[i]
        da = activation_backward(dh, act_cache)
        dh, dW, db = linear_backward(da, lin_cache, input_grad=input_grad or i > 0,
                                     weight_grads=grads is not None)
        if grads is not None:
            grads[f"{prefix}{i}_W"], grads[f"{prefix}{i}_b"] = dW, db
    return dh


def sigmoid_bce_forward(logits, X):
    """Bernoulli negative log-likelihood from logits, summed over pixels.

    nll_n = sum_d softplus(a_nd) - x_nd * a_nd, which is the binary
    cross-entropy between X and sigmoid(a), computed without log(0).

    Inputs: logits: (N, D); X: (N, D) in [0, 1].
    Returns: nll: (N,) nats, cache.
    """
    e = np.exp(-np.abs(logits))                           # in (0, 1]: never overflows
    terms = np.maximum(logits, 0)                         # (N, D), built up in place:
    terms -= X * logits
    terms += np.log1p(e)                                  # max(a, 0) - x a + log(1 + e^-|a|)
    return terms.sum(axis=1), (logits, X, e)


def sigmoid_bce_backward(dout, cache):
    """Inputs: dout: (N,). Returns: dlogits (N, D) = dout * (sigmoid(a) - x).

    Only the logits get a gradient; the data X is not a parameter.
    """
    logits, X, e = cache
    # sigmoid(a), stably, from the forward pass's e = exp(-|a|): 1 / (1 + e) where
    # a >= 0 and e / (1 + e) where a < 0; exp(min(a, 0)) is exactly 1 or e. (The
    # same as np.where(a >= 0, 1 / (1 + e), e / (1 + e)), which is several times slower.)
    dlogits = np.exp(np.minimum(logits, 0))
    dlogits /= 1 + e
    dlogits -= X
    dlogits *= dout[:, None]
    return dlogits


def reparameterize_forward(mu, logvar, eps):
    """z = mu + exp(0.5 * logvar) * eps: the reparameterisation step.

    Inputs: mu, logvar: (N, L); eps: (N, L) standard normal, drawn outside so
    that the step is a deterministic function of (mu, logvar).
    Returns: z: (N, L), cache.
    """
    sigma = np.exp(0.5 * logvar)
    return mu + sigma * eps, (sigma, eps)


def reparameterize_backward(dz, cache):
    """Returns: dmu = dz; dlogvar = dz * eps * sigma / 2 (since dsigma/dlogvar = sigma/2)."""
    sigma, eps = cache
    return dz, dz * eps * (0.5 * sigma)


def gaussian_kl_forward(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, I)) per example, in closed form.

    kl_n = 1/2 sum_l (exp(logvar) + mu^2 - 1 - logvar).
    Inputs: mu, logvar: (N, L). Returns: kl: (N,) nats, cache.
    """
    var = np.exp(logvar)
    kl = 0.5 * np.sum(var + mu * mu - 1 - logvar, axis=1)
    return kl, (mu, var)


def gaussian_kl_backward(dout, cache):
    """Inputs: dout: (N,). Returns: dmu = dout * mu; dlogvar = dout * (sigma^2 - 1) / 2."""
    mu, var = cache
    d = dout[:, None]
    return d * mu, d * (0.5 * (var - 1))


def free_bits_kl_forward(mu, logvar, free_bits):
    """Kingma et al. (2016)'s free bits: the KL term sum_l max(lambda, mean_n KL_nl) of a minibatch.

    Each latent dimension's KL, averaged over the minibatch, counts at least
    ``free_bits`` (lambda, nats): below that the term is flat, so the
    optimiser gains nothing by pushing that dimension's KL further down.
    Inputs: mu, logvar: (N, L); free_bits: lambda >= 0. Returns: the term
    (a float, nats per image), cache.
    """
    var = np.exp(logvar)
    kl_per_dim = 0.5 * np.mean(var + mu * mu - 1 - logvar, axis=0)          # (L,)
    return float(np.sum(np.maximum(kl_per_dim, free_bits))), (mu, var, kl_per_dim > free_bits)


def free_bits_kl_backward(dout, cache):
    """Inputs: dout (float). Returns dmu, dlogvar (N, L): the KL's gradient / N where the dimension's
    mean KL is above lambda, 0 where it is held at lambda."""
    mu, var, above = cache
    d = (dout / len(mu)) * above.astype(mu.dtype)                             # (L,)
    return d * mu, d * (0.5 * (var - 1))


def sigmoid_gaussian_nll_forward(logits, X, logvar):
    """Gaussian negative log-likelihood with mean sigmoid(a), summed over pixels.

    nll_n = 1/2 sum_d (log 2 pi + logvar_d + (x_nd - m_nd)^2 exp(-logvar_d)),
    m = sigmoid(logits). Defined in notebook 07.

    Inputs: logits: (N, D); X: (N, D); logvar: scalar (fixed variance) or (D,)
    (one learned log sigma^2 per pixel). Returns: nll: (N,) nats, cache.
    """
    e = np.exp(-np.abs(logits))
    mean = np.exp(np.minimum(logits, 0)) / (1 + e)        # sigmoid(a), stably (see sigmoid_bce_backward)
    inv_var = np.exp(-np.asarray(logvar, dtype=logits.dtype))
    residual = X - mean
    sq = residual * residual
    nll = 0.5 * (np.sum(sq * inv_var, axis=1) + np.sum(np.broadcast_to(logvar, X.shape[1:]))
                 + X.shape[1] * np.log(2 * np.pi))
    return nll.astype(logits.dtype, copy=False), (mean, residual, sq, inv_var)


def sigmoid_gaussian_nll_backward(dout, cache):
    """Inputs: dout: (N,). Returns: dlogits (N, D), dlogvar (D,).

    d nll / d m = -(x - m) / sigma^2 and dm/da = m (1 - m), so
    dlogits = -dout (x - m) m (1 - m) / sigma^2;
    d nll / d logvar_d = 1/2 (1 - (x - m)^2 / sigma^2), summed over the batch
    (the caller sums it to a scalar if the variance is one fixed number).
    """
    mean, residual, sq, inv_var = cache
    d = dout[:, None]
    dlogits = -d * residual * inv_var * mean * (1 - mean)
    dlogvar = np.sum(d * 0.5 * (1 - sq * inv_var), axis=0)
    return dlogits, dlogvar


def continuous_bernoulli_nll_forward(logits, X):
    """Continuous Bernoulli negative log-likelihood from logits, summed over pixels.

    nll_n = sum_d softplus(a) - x a - log C(a): the Bernoulli cross-entropy
    minus the log normaliser (``vae_teach.elbo.continuous_bernoulli_log_normalizer``).
    Defined in notebook 07. Inputs: logits, X: (N, D). Returns: nll (N,), cache.
    """
    bce, bce_cache = sigmoid_bce_forward(logits, X)
    return bce - continuous_bernoulli_log_normalizer(logits).sum(axis=1), bce_cache


def continuous_bernoulli_nll_backward(dout, cache):
    """Inputs: dout: (N,). Returns: dlogits (N, D) = dout (sigmoid(a) - x - (1/a - 1/sinh a))."""
    logits = cache[0]
    return sigmoid_bce_backward(dout, cache) - dout[:, None] * continuous_bernoulli_log_normalizer_grad(logits)
