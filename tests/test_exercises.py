"""Every exercise check accepts the reference solution, rejects a typical mistake with a
targeted message, and reports an unfinished stub as "not implemented yet"."""

import numpy as np
import pytest

from vae_teach import elbo, exercises
from vae_teach.numpy_vae import layers, optim


def stub(*args):
    raise NotImplementedError()


# check name -> (reference solution, [(typical mistake, words the feedback must contain)])
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
}


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
