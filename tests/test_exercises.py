"""Every exercise check accepts the reference solution, rejects a typical mistake with a
targeted message, and reports an unfinished stub as "not implemented yet"."""

import numpy as np
import pytest

try:  # lesson 05's cases need PyTorch (an extra); the others run without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None

from scipy.spatial.distance import cdist
from scipy.stats import norm

from vae_teach import elbo, exercises
from vae_teach.numpy_vae import layers, optim


def _nearest_other(codes):
    """Each point's nearest other point (lesson 03b's reference)."""
    D = cdist(codes, codes)
    np.fill_diagonal(D, np.inf)
    return D.argmin(axis=1)


def stub(*args):
    raise NotImplementedError()


def _pt():
    """pytensor.tensor, imported after vae_teach.pytensor_vae has chosen PyTensor's compile directory."""
    from vae_teach import pytensor_vae  # noqa: F401, I001  (before pytensor: it picks the compile directory)
    import pytensor.tensor as pt

    return pt


def _adam_updates(w, dw, lr, b1, b2, eps, old_moments=False, old_t=False, correct=True):
    """Adam as PyTensor updates for one shared variable (the reference), or a typical mistake."""
    import pytensor

    pt = _pt()
    m = pytensor.shared(np.zeros_like(w.get_value()), name="m")
    v = pytensor.shared(np.zeros_like(w.get_value()), name="v")
    t = pytensor.shared(np.int64(0), name="t")
    new_t, new_m, new_v = t + 1, b1 * m + (1 - b1) * dw, b2 * v + (1 - b2) * dw**2
    m_use, v_use = (m, v) if old_moments else (new_m, new_v)
    t_use = t if old_t else new_t
    if correct:
        m_use, v_use = m_use / (1 - b1**t_use), v_use / (1 - b2**t_use)
    return [(m, new_m), (v, new_v), (t, new_t), (w, w - lr * m_use / (pt.sqrt(v_use) + eps))]


# check name -> (reference solution, [(typical mistake, words the feedback must contain)])
def _pearson(mu, factors):
    a, b = mu - mu.mean(0), factors - factors.mean(0)
    return (a.T @ b) / np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))


def _mixture(Z, mu, logvar, sigma_of=lambda lv: np.exp(0.5 * lv), reduce=np.mean):
    sigma = sigma_of(logvar)
    d = (Z[:, None, :] - mu[None]) / sigma[None]
    each = np.exp(-0.5 * np.sum(d**2, axis=2)) / np.prod(np.sqrt(2 * np.pi) * sigma, axis=1)[None]
    return reduce(each, axis=1)


CASES = {
    "check_linear_forward": (
        lambda x, W, b: x @ W + b,
        [(lambda x, W, b: x @ W, "bias"), (lambda x, W, b: (x @ W + b).sum(), "shape")]),
    "check_reconstruction_bce": (
        lambda X, a: -elbo.bernoulli_log_likelihood(X, a),
        [(lambda X, a: elbo.bernoulli_log_likelihood(X, a), "sign"),
         (lambda X, a: -elbo.bernoulli_log_likelihood(X, a) / X.shape[1], "averaged over pixels"),
         (lambda X, a: -np.sum(X * np.log(elbo.sigmoid(a)) + (1 - X) * np.log(1 - elbo.sigmoid(a)), 1),
          "NaN or inf")]),
    "check_interpolation": (
        lambda z0, z1, n: np.linspace(z0, z1, n),
        [(lambda z0, z1, n: np.linspace(z0, z1, n, endpoint=False), "end points"),
         (lambda z0, z1, n: np.linspace(z1, z0, n), "reversed")]),
    "check_gaussian_kl": (
        elbo.gaussian_kl,
        [(lambda mu, lv: -elbo.gaussian_kl(mu, lv), "sign"),
         (lambda mu, lv: 0.5 * np.sum(np.exp(2 * lv) + mu**2 - 1 - 2 * lv, 1), "log sigma"),
         (lambda mu, lv: elbo.gaussian_kl(mu, lv).sum(), "shape")]),
    "check_reparameterize": (
        elbo.reparameterize,
        [(lambda mu, lv, eps: mu + np.exp(lv) * eps, "variance")]),
    "check_ppca_posterior": (
        lambda X, W, b, s2: (lambda C: ((X - b) @ W.T @ C / s2, C))(np.linalg.inv(np.eye(len(W)) + W @ W.T / s2)),
        [(lambda X, W, b, s2: ((X - b) @ W.T / s2, np.eye(len(W)) + W @ W.T / s2), "precision"),
         (lambda X, W, b, s2: (lambda C: (X @ W.T @ C / s2, C))(np.linalg.inv(np.eye(len(W)) + W @ W.T / s2)),
          "subtract the bias"),
         (lambda X, W, b, s2: (np.zeros((len(X), len(W))), np.linalg.inv(np.eye(W.shape[1]) + W.T @ W / s2)),
          "stored"),
         (lambda X, W, b, s2: np.zeros(3), "two arrays")]),
    "check_score_function_estimate": (
        lambda F, eps, lv: ((F[..., None] * eps / np.exp(0.5 * lv)).mean(0),
                            (F[..., None] * 0.5 * (eps**2 - 1)).mean(0)),
        [(lambda F, eps, lv: ((F[..., None] * eps * np.exp(0.5 * lv)).mean(0),
                              (F[..., None] * 0.5 * (eps**2 - 1)).mean(0)), "divide by sigma"),
         (lambda F, eps, lv: ((F[..., None] * eps / np.exp(0.5 * lv)).mean(0),
                              (F[..., None] * 0.5 * eps**2).mean(0)), "-1 is missing"),
         (lambda F, eps, lv: ((F[..., None] * eps / np.exp(0.5 * lv)).sum(0),
                              (F[..., None] * 0.5 * (eps**2 - 1)).sum(0)), "summed")]),
    "check_leave_one_out_baseline": (
        lambda F: F - (F.sum(0) - F) / (len(F) - 1),
        [(lambda F: F - F.mean(0), "itself"),
         (lambda F: F - (F.sum(0) - F) / len(F), "K - 1"),
         (lambda F: (F - (F.sum(0) - F) / (len(F) - 1)).mean(0), "shape")]),
    "check_gaussian_entropy": (
        lambda lv: 0.5 * np.sum(np.log(2 * np.pi * np.e) + lv, axis=1),
        [(lambda lv: 0.5 * np.sum(lv, axis=1), "constant"),
         (lambda lv: 0.5 * np.sum(np.log(2 * np.pi) + lv, axis=1), "2 pi e")]),
    "check_linear_backward": (
        layers.linear_backward,
        [(lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.mean(0)), "sums dout over the batch"),
         (lambda dout, c: (dout @ c[1].T, dout.T @ c[0], dout.sum(0)), "W's shape")]),
    "check_dlogvar": (
        lambda lv, eps, dZ: dZ * eps * 0.5 * np.exp(0.5 * lv) + 0.5 * (np.exp(lv) - 1),
        [(lambda lv, eps, dZ: dZ * eps * 0.5 * np.exp(0.5 * lv), "KL term"),
         (lambda lv, eps, dZ: dZ * eps * np.exp(0.5 * lv) + 0.5 * (np.exp(lv) - 1), "sigma / 2")]),
    "check_adam_update": (
        optim.adam,
        [(lambda w, dw, c: None, "return config"),
         (lambda w, dw, c: (optim.sgd(w, dw, {"lr": c["lr"]}), c)[1], "adam_update")]),
    # lesson 03b
    "check_inverse_cdf_values": (
        lambda n: norm.ppf((np.arange(n) + 0.5) / n),
        [(lambda n: np.linspace(-3, 3, n), "linear grid"),
         (lambda n: norm.cdf((np.arange(n) + 0.5) / n), "norm.ppf")]),
    "check_cell_prior_mass": (
        lambda b: np.outer(np.diff(norm.cdf(b)), np.diff(norm.cdf(b))),
        [(lambda b: np.add.outer(np.diff(norm.cdf(b)), np.diff(norm.cdf(b))), "product"),
         (lambda b: np.outer(np.diff(norm.pdf(b)), np.diff(norm.pdf(b))), "norm.cdf")]),
    "check_nearest_code_other_digit": (
        lambda c, y: float(np.mean(y[_nearest_other(c)] != y)),
        [(lambda c, y: float(np.mean(y[cdist(c, c).argmin(1)] != y)), "own nearest neighbour"),
         (lambda c, y: float(np.sum(y[_nearest_other(c)] != y)), "a fraction")]),
    # lesson 04: symbolic (PyTensor)
    "check_pytensor_log_likelihood": (
        lambda X, a: (X * a - _pt().softplus(a)).sum(axis=1),
        [(lambda X, a: (X * _pt().log(_pt().sigmoid(a)) + (1 - X) * _pt().log(1 - _pt().sigmoid(a))).sum(axis=1),
          "softplus"),
         (lambda X, a: (X * a - _pt().log1p(_pt().exp(a))).sum(axis=1), "softplus"),
         (lambda X, a: (_pt().softplus(a) - X * a).sum(axis=1), "sign"),
         (lambda X, a: (X * a - _pt().softplus(a)).mean(axis=1), "averaged over pixels"),
         (lambda X, a: (X * a - _pt().softplus(a)).sum(axis=0), "shape"),
         (lambda X, a: np.zeros(4), "not a symbolic")]),
    "check_pytensor_kl_logsigma": (
        lambda mu, s: 0.5 * (_pt().exp(2 * s) + mu**2 - 1 - 2 * s).sum(axis=1),
        [(lambda mu, s: 0.5 * (_pt().exp(s) + mu**2 - 1 - s).sum(axis=1), "log-variance formula"),
         (lambda mu, s: 0.5 * (_pt().exp(2 * s) + mu**2 - 1 - s).sum(axis=1), "2 logsigma"),
         (lambda mu, s: 0.5 * (_pt().exp(2 * s) + mu**2 - 1 - 2 * s).mean(axis=1), "averaged")]),
    "check_pytensor_adam_updates": (
        _adam_updates,
        [(lambda *a: _adam_updates(*a, old_moments=True), "old values"),
         (lambda *a: _adam_updates(*a, old_t=True), "t \\+ 1"),
         (lambda *a: [pair for i, pair in enumerate(_adam_updates(*a)) if i != 2], "never updated"),
         (lambda *a: _adam_updates(*a, correct=False), "bias correction"),
         (lambda *a: _adam_updates(*a)[3:], "only w is updated"),
         (lambda *a: _adam_updates(*a)[:3], "w is not among")]),
    # lesson 05: PyTorch
    "check_torch_reparameterize": (
        lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * eps,
        [(lambda mu, lv, eps: mu + torch.exp(lv) * eps, "variance"),
         (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "autograd")]),
    "check_torch_loss": (
        lambda a, X, mu, lv: (F.binary_cross_entropy_with_logits(a, X, reduction="sum") / len(X)
                              - 0.5 * torch.sum(1 + lv - mu**2 - lv.exp()) / len(X)),
        [(lambda a, X, mu, lv: (F.binary_cross_entropy(torch.sigmoid(a), X)
                                - 0.5 * torch.sum(1 + lv - mu**2 - lv.exp()) / len(X)), "averaged over pixels"),
         (lambda a, X, mu, lv: (F.binary_cross_entropy_with_logits(a, X, reduction="sum")
                                - 0.5 * torch.sum(1 + lv - mu**2 - lv.exp())), "summed over the batch")]),
    "check_torch_checkpoint": (
        lambda m: {"config": m.config.to_dict(), "state_dict": m.state_dict()},
        [(lambda m: {"config": m.config, "state_dict": m.state_dict()}, "weights_only"),
         (lambda m: m, "not a dict"),
         (lambda m: {"state_dict": m.state_dict()}, "lacks")]),
    "check_factor_correlation": (
        _pearson,
        [(lambda mu, f: mu.T @ f / np.outer(np.linalg.norm(mu, axis=0), np.linalg.norm(f, axis=0)), "centred"),
         (lambda mu, f: (mu - mu.mean(0)).T @ (f - f.mean(0)) / len(mu), "covariance"),
         (lambda mu, f: _pearson(mu, f).T, r"\(L, F\)"),
         (lambda mu, f: np.corrcoef(mu.T, f.T), r"\[:L, L:\]")]),
    "check_active_units": (
        lambda mu, threshold: int(np.sum(mu.var(axis=0) > threshold)),
        [(lambda mu, threshold: int(np.sum(mu.std(axis=0) > threshold)), "variance"),
         (lambda mu, threshold: int(np.sum(mu.var(axis=0) > 0.01)), "threshold argument"),
         (lambda mu, threshold: int(np.sum(mu.var(axis=0) <= threshold)), "inactive"),
         (lambda mu, threshold: int(np.sum(mu.var(axis=1) > threshold)), "axis=0"),
         (lambda mu, threshold: mu.var(axis=0) > threshold, "an int")]),
    "check_aggregate_posterior_density": (
        _mixture,
        [(lambda Z, mu, lv: _mixture(Z, mu, lv, sigma_of=np.exp), "exp\\(logvar / 2\\)"),
         (lambda Z, mu, lv: _mixture(Z, mu, lv, reduce=np.sum), "average the N components"),
         (lambda Z, mu, lv: np.log(_mixture(Z, mu, lv)), "not its log")]),
    # lesson 07
    "check_continuous_bernoulli_log_normalizer": (
        elbo.continuous_bernoulli_log_normalizer,
        [(lambda a: np.log(2 * np.arctanh(1 - 2 * elbo.sigmoid(a)) / (1 - 2 * elbo.sigmoid(a))), "0/0"),
         (lambda a: np.log(a / np.tanh(a / 2)), "0/0"),
         (lambda a: np.where(a == 0, np.log(2.0), np.log(2 * np.arctanh(1 - 2 * elbo.sigmoid(a))
                                                          / (1 - 2 * elbo.sigmoid(a)))), "large \\|a\\|"),
         (lambda a: np.exp(elbo.continuous_bernoulli_log_normalizer(a)), "return its log"),
         (lambda lam: np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)), "not lambda"),
         (lambda a: elbo.continuous_bernoulli_log_normalizer(a) - np.log(2.0), "factor 2"),
         (lambda a: np.log(a) - np.log(np.tanh(a / 2)), "negative")]),
    "check_bits_per_dim": (
        lambda lp, D, levels=None: -lp / (D * np.log(2)) + (np.log2(levels) if levels else 0.0),
        [(lambda lp, D, levels=None: lp / (D * np.log(2)), "sign"),
         (lambda lp, D, levels=None: -lp / D, "nats per dimension"),
         (lambda lp, D, levels=None: -lp / (D * np.log(10)), "base 2"),
         (lambda lp, D, levels=None: -lp / (D * np.log(2)), "add log2\\(levels\\)"),
         (lambda lp, D, levels=None: -lp / (784 * np.log(2)) + (8.0 if levels else 0.0), "not a fixed 784"),
         (lambda lp, D, levels=None: np.sum(-lp) / (D * np.log(2)), "same shape")]),
    "check_optimal_gaussian_logvar": (
        lambda X, M: np.log(np.mean((X - M) ** 2, axis=0)),
        [(lambda X, M: 0.5 * np.log(np.mean((X - M) ** 2, axis=0)), "log sigma"),
         (lambda X, M: np.log(np.var(X - M, axis=0)), "np.var"),
         (lambda X, M: np.log(np.mean((X - M) ** 2, axis=1)), "axis=0"),
         (lambda X, M: np.full(X.shape[1], np.log(np.mean((X - M) ** 2))), "pixels too"),
         (lambda X, M: np.mean((X - M) ** 2, axis=0), "its log")]),
    # lesson 08
    "check_iwae_bound": (
        lambda lw: elbo.logsumexp(lw, axis=1) - np.log(lw.shape[1]),
        [(lambda lw: np.log(np.mean(np.exp(lw), axis=1)), "log-sum-exp"),
         (lambda lw: lw.mean(axis=1), "ELBO"),
         (lambda lw: elbo.logsumexp(lw, axis=1), "subtract log K"),
         (lambda lw: np.log(np.mean(np.exp(lw - lw.max(axis=1, keepdims=True)), axis=1)), "add the max back"),
         (lambda lw: elbo.logsumexp(lw, axis=0) - np.log(lw.shape[0]), "axis=1")]),
    "check_k_sample_elbo": (
        lambda X, mu, lv, eps, dec: elbo.elbo_estimate(X, mu, lv, eps.transpose(1, 0, 2), dec),
        [(lambda X, mu, lv, eps, dec: np.sum(
            X * np.log(p := elbo.sigmoid(dec((mu[:, None] + np.exp(0.5 * lv)[:, None] * eps).reshape(
                -1, mu.shape[1])).reshape(eps.shape[0], eps.shape[1], -1)).mean(axis=1))
            + (1 - X) * np.log1p(-p), axis=1) - elbo.gaussian_kl(mu, lv), "mean output"),
         (lambda X, mu, lv, eps, dec: eps.shape[1] * (elbo.elbo_estimate(X, mu, lv, eps.transpose(1, 0, 2), dec)
                                                      + elbo.gaussian_kl(mu, lv)) - elbo.gaussian_kl(mu, lv),
          "summed log p"),
         (lambda X, mu, lv, eps, dec: elbo.elbo_estimate(X, mu, lv, eps.transpose(1, 0, 2), dec)
          - (eps.shape[1] - 1) * elbo.gaussian_kl(mu, lv), "counted K times"),
         (lambda X, mu, lv, eps, dec: elbo.elbo_estimate(X, mu, 2 * lv, eps.transpose(1, 0, 2), dec)
          + elbo.gaussian_kl(mu, 2 * lv) - elbo.gaussian_kl(mu, lv), "variance"),
         (lambda X, mu, lv, eps, dec: np.sum(
             X[None] * (a := dec((mu[:, None] + np.exp(0.5 * lv)[:, None] * eps).reshape(-1, mu.shape[1])).reshape(
                 eps.shape[1], eps.shape[0], -1)) - elbo.softplus(a), axis=2).mean(axis=0)
          - elbo.gaussian_kl(mu, lv), "different order"),
         (lambda X, mu, lv, eps, dec: elbo.elbo_estimate(X, mu, lv, eps, dec), "sample axis in the middle"),
         (lambda X, mu, lv, eps, dec: np.array([
             elbo.elbo_estimate(X[n:n + 1], mu[n:n + 1], lv[n:n + 1], eps[n][:, None, :], dec)[0]
             for n in range(len(X))]), "in one call")]),
    "check_effective_sample_size": (
        lambda lw: 1.0 / np.sum(elbo.softmax(lw, axis=1) ** 2, axis=1),
        [(lambda lw: 1.0 / np.sum(np.exp(lw) ** 2, axis=1), "normalise the weights first"),
         (lambda lw: 1.0 / np.sum((lw / lw.sum(axis=1, keepdims=True)) ** 2, axis=1), "exponentiate first"),
         (lambda lw: np.exp(lw).sum(axis=1) ** 2 / np.sum(np.exp(lw) ** 2, axis=1), "shifted"),
         (lambda lw: 1.0 / np.sum(elbo.softmax(lw, axis=1) ** 2, axis=1) / lw.shape[1], "ESS / K"),
         (lambda lw: 1.0 / np.sum(elbo.softmax(lw, axis=0) ** 2, axis=0), "axis=1")]),
}

def _collapse_beta(S, sigma2):
    """Bisect beta on the linear VAE: above it no latent dimension keeps a KL over 0.01 nats."""
    from vae_teach import linear_vae

    low, high = 0.1, 10.0
    for _ in range(8):
        beta = 0.5 * (low + high)
        fit = linear_vae.train(S, sigma2, S.shape[0], kl_weight=beta, steps=1500, lr=0.05)
        low, high = (beta, high) if fit.kl.max() > 0.01 else (low, beta)
    return 0.5 * (low + high)


def _kl_nl(mu, logvar):
    return 0.5 * (np.exp(logvar) + mu * mu - 1 - logvar)


CASES.update({
    "check_collapsed_kl": (
        lambda lam, s2: 0.5 * np.log(np.maximum(lam / s2, 1.0)),
        [(lambda lam, s2: 0.5 * np.log(lam / s2), "no dimension collapses"),
         (lambda lam, s2: 0.5 * np.maximum(lam - s2, 0), "squared length")]),
    "check_free_bits_term": (
        lambda mu, lv, lam: float(np.sum(np.maximum(_kl_nl(mu, lv).mean(axis=0), lam))),
        [(lambda mu, lv, lam: float(np.mean(np.sum(np.maximum(_kl_nl(mu, lv), lam), axis=1))), "per image"),
         (lambda mu, lv, lam: float(_kl_nl(mu, lv).mean(axis=0).sum()), "plain KL")]),
    "check_collapse_beta": (
        _collapse_beta,
        [(lambda S, s2: 0.6, "first dimension collapses"), (lambda S, s2: 6.0, "not within 10%")]),
})


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_check_accepts_the_reference_solution(check_name, capsys):
    reference, _ = CASES[check_name]
    assert getattr(exercises, check_name)(reference) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_check_rejects_typical_mistakes_with_targeted_feedback(check_name):
    _, mistakes = CASES[check_name]
    for wrong, words in mistakes:
        with pytest.raises(exercises.ExerciseMistake, match=words):
            getattr(exercises, check_name)(wrong)


@pytest.mark.parametrize("check_name", sorted(CASES))
def test_check_reports_an_unfinished_stub_without_crashing(check_name, capsys):
    assert getattr(exercises, check_name)(stub) is False
    assert exercises.NOT_IMPLEMENTED in capsys.readouterr().out


def test_adam_check_catches_a_missing_bias_correction():
    def adam_without_correction(w, dw, config):
        m = config.setdefault("m", np.zeros_like(w))
        v = config.setdefault("v", np.zeros_like(w))
        m[:] = 0.9 * m + 0.1 * dw
        v[:] = 0.999 * v + 0.001 * dw * dw
        w -= config["lr"] * m / (np.sqrt(v) + 1e-8)
        return config

    with pytest.raises(exercises.ExerciseMistake, match="bias correction"):
        exercises.check_adam_update(adam_without_correction)


def test_every_check_is_tested():
    checks = {name for name in dir(exercises) if name.startswith("check_")}
    assert checks == set(CASES)
