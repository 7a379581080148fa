"""The PyTorch backend against the NumPy reference, and its protocol, training and checkpoints.

Float64 with identical weights and identical noise: ELBOs agree to round-off,
autograd's gradients agree with NumpyVAE's hand-written backward pass (so this
also tests that backward pass against torch autograd), and ten steps of each
optimiser give the same weights as ``vae_teach.numpy_vae.optim``; the same for
every likelihood (lesson 07) and for the IWAE objective (lesson 08).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import re
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from likelihood_cases import with_hard_cases  # noqa: E402  (tests/likelihood_cases.py)

from vae_teach import torch_vae as tv  # noqa: E402
from vae_teach.elbo import (  # noqa: E402
    bernoulli_log_likelihood,
    continuous_bernoulli_log_normalizer,
    continuous_bernoulli_log_normalizer_grad,
    continuous_bernoulli_mean,
    likelihood_mean,
    log_importance_weights,
)
from vae_teach.elbo import log_likelihood as elbo_log_likelihood  # noqa: E402
from vae_teach.evaluate import dataset_elbo  # noqa: E402
from vae_teach.interface import (  # noqa: E402
    LIKELIHOODS,
    VAEConfig,
    VAEModel,
    draw_noise,
    param_shapes,
)
from vae_teach.numpy_vae.gradcheck import relative_error  # noqa: E402
from vae_teach.numpy_vae.model import NumpyVAE  # noqa: E402
from vae_teach.numpy_vae.optim import DEFAULT_LR, Optimizer  # noqa: E402
from vae_teach.training import History, TrainingDivergedError  # noqa: E402

N, D, L = 6, 12, 3
CONFIGS = [
    VAEConfig(input_dim=D, hidden_dims=hidden, latent_dim=L, activation=activation, scale=scale)
    for activation, scale, hidden in itertools.product(("relu", "tanh"), ("logvar", "logsigma"), ((7,), (7, 5)))
]
CONFIG_IDS = [f"{c.activation}-{c.scale}-{len(c.hidden_dims)}hidden" for c in CONFIGS]
# Hyperparameters large enough that ten steps move every weight visibly.
OPTIMIZER_SETTINGS = {"sgd": dict(lr=0.1, l2=1e-2), "adagrad": dict(lr=0.05, l2=1e-3),
                      "adam": dict(lr=1e-2, l2=1e-3)}


def _data(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((N, D))                 # (N, D) in [0, 1]


def _pair(config: VAEConfig, dtype=np.float64, seed: int = 1) -> tuple[NumpyVAE, tv.TorchModel]:
    """A float64 NumPy reference and a torch model given its weights through set_params."""
    reference = NumpyVAE(config, seed=seed, dtype=np.float64)
    model = tv.TorchModel(config, seed=seed + 100, dtype=dtype, device="cpu")   # other weights...
    model.set_params(reference.get_params())                                     # ...replaced
    return reference, model


def _scaled_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: the error relative to the array's scale, not entry by entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ----- float64 agreement with the NumPy reference ---------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_per_example_elbo_agrees_with_numpy(config):
    reference, model = _pair(config)
    X = _data()
    for eps in (draw_noise(3, 2, N, L), draw_noise(4, 1, N, L)[0]):   # (K, N, L) and (N, L)
        expected = reference.elbo_with_noise(X, eps)
        err = relative_error(model.elbo_with_noise(X, eps), expected)
        assert err < 1e-10, f"per-example ELBOs differ by a relative {err:.1e}; float64 round-off is ~1e-15"
    err = relative_error(model.elbo(X, n_samples=3, seed=7), reference.elbo(X, n_samples=3, seed=7))
    assert err < 1e-10, f"elbo(X, n_samples, seed) differs by {err:.1e}: the backends must share draw_noise"


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_autograd_gradients_agree_with_numpy_backward_pass(config):
    reference, model = _pair(config)
    X, eps = _data(), draw_noise(5, 2, N, L)
    loss_ref, grads_ref = reference.loss_and_grads(X, eps)
    loss, grads = model.loss_and_grads(X, eps)
    assert relative_error(loss, loss_ref) < 1e-12, f"losses differ: {loss} vs {loss_ref}"
    assert list(grads) == list(param_shapes(config)), f"gradient names {list(grads)}"
    for name, expected in grads_ref.items():
        assert grads[name].shape == expected.shape, f"{name}: {grads[name].shape} vs {expected.shape}"
        err = relative_error(grads[name], expected)
        assert err < 1e-8, f"gradient of {name} differs from the NumPy backward pass by {err:.1e} (expect ~1e-14)"


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "for-loop"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=[CONFIG_IDS[0], CONFIG_IDS[-1]])
def test_optimizer_steps_agree_with_numpy(config, optimizer, fused):
    hyper = OPTIMIZER_SETTINGS[optimizer]
    reference, model = _pair(config)
    opt = Optimizer(optimizer, **hyper)
    step = tv.make_train_step(model, optimizer, fused=fused, **hyper)
    X, initial = _data(), reference.get_params()
    for s in range(10):
        eps = draw_noise(100 + s, 2, N, L)                                # the same noise each step
        loss_ref, grads = reference.loss_and_grads(X, eps)
        opt.step(reference.params, grads)
        loss = step(X, eps)
        assert relative_error(loss, loss_ref) < 1e-6, f"step {s}: loss {loss} vs {loss_ref}"
    params, expected = model.get_params(), reference.get_params()
    for name in expected:
        assert not np.allclose(expected[name], initial[name]), f"{name} did not move"
        err = relative_error(params[name], expected[name])
        assert err < 1e-6, f"after 10 {optimizer} steps {name} differs by a relative {err:.1e}"


# ----- float32 --------------------------------------------------------------
# float32 rounds each operation to a relative 6e-8. An ELBO is a few matmuls and
# sums over at most 12 terms, so ~100 roundings: 1e-5 relative leaves room and
# still fails for any real bug (those show as 1e-3 or more). Gradients are
# compared to their array's scale: entries near zero are sums whose terms cancel
# and have no relative accuracy in float32. Ten optimiser steps compound the
# error, and Adagrad and Adam divide by sqrt of the squared gradients, which
# magnifies it for small gradients: 1e-4.
@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=[CONFIG_IDS[0], CONFIG_IDS[-1]])
def test_float32_agrees_within_float32_round_off(config):
    reference, model = _pair(config, dtype=np.float32)
    X, eps = _data(), draw_noise(5, 2, N, L)
    elbo = model.elbo_with_noise(X, eps)
    assert elbo.dtype == np.float32
    assert relative_error(elbo, reference.elbo_with_noise(X, eps)) < 1e-5
    _, grads_ref = reference.loss_and_grads(X, eps)
    _, grads = model.loss_and_grads(X, eps)
    for name, expected in grads_ref.items():
        assert grads[name].dtype == np.float32
        assert _scaled_error(grads[name], expected) < 1e-5, f"float32 gradient of {name}"
    for optimizer, hyper in OPTIMIZER_SETTINGS.items():
        reference, model = _pair(config, dtype=np.float32)
        opt, step = Optimizer(optimizer, **hyper), tv.make_train_step(model, optimizer, **hyper)
        for s in range(10):
            eps = draw_noise(100 + s, 2, N, L)
            opt.step(reference.params, reference.loss_and_grads(X, eps)[1])
            step(X, eps)
        params = model.get_params()
        for name, expected in reference.params.items():
            assert _scaled_error(params[name], expected) < 1e-4, f"float32 {optimizer}: {name}"


# ----- the protocol -----------------------------------------------------------
def test_protocol_shapes_and_dtypes():
    config = CONFIGS[1]
    model = tv.TorchModel(config, seed=0)
    assert isinstance(model, VAEModel)
    assert model.latent_dim == L and model.config == config and model.dtype == np.float32
    X = _data()
    mu, logvar = model.encode(X)
    assert mu.shape == logvar.shape == (N, L) and mu.dtype == np.float32
    X_mean = model.decode(mu)
    assert X_mean.shape == (N, D) and np.all((X_mean > 0) & (X_mean < 1))
    assert model.log_likelihood(X, mu).shape == (N,)
    assert model.elbo(X, n_samples=2, seed=0).shape == (N,)
    logits, mu_t, logvar_t = model.module(torch.as_tensor(X, dtype=torch.float32))   # eps from randn_like
    assert logits.shape == (N, D) and mu_t.shape == logvar_t.shape == (N, L)


def test_log_likelihood_is_stable_from_logits():
    config = CONFIGS[0]
    reference, model = _pair(config)
    params = reference.get_params()
    params["out_b"] = np.where(np.arange(D) % 2 == 0, 80.0, -80.0)      # sigmoid rounds to 0 or 1
    reference.set_params(params)
    model.set_params(params)
    X, Z = _data(), draw_noise(0, 1, N, L)[0]
    log_px = model.log_likelihood(X, Z)
    assert np.all(np.isfinite(log_px)), "log p(x|z) must come from logits, not rounded probabilities"
    expected = bernoulli_log_likelihood(X, reference.decode_logits(Z))
    assert relative_error(log_px, expected) < 1e-10


def test_a_seed_gives_numpy_vaes_weights_and_leaves_torch_rng_alone():
    config = CONFIGS[3]
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    model = tv.TorchModel(config, seed=3)
    assert torch.equal(torch.rand(3), before), "building a model must not draw from torch's global RNG"
    expected = NumpyVAE(config, seed=3).get_params()
    params = model.get_params()
    assert list(params) == list(param_shapes(config))
    for name in expected:
        np.testing.assert_array_equal(params[name], expected[name], err_msg=name)


def test_layers_are_named_as_the_shared_parameters():
    config = CONFIGS[-1]                                                # logsigma, 2 hidden
    module = tv.TorchVAE(config)
    assert list(module.state_dict()) == [f"{n}.{p}" for n in
                                         ("enc0", "enc1", "mu", "logsigma", "dec0", "dec1", "out")
                                         for p in ("weight", "bias")]
    params = module.get_params()
    np.testing.assert_array_equal(params["enc0_W"], module.enc0.weight.detach().numpy().T)
    assert params["enc0_W"].shape == (D, 7) and module.dec0.in_features == L
    assert module.dec1.out_features == 7 and module.out.in_features == 7   # decoder sizes reversed


def test_logsigma_head_doubles_into_logvar():
    module = tv.TorchVAE(CONFIGS[2], dtype=torch.float64)               # relu, logsigma, 1 hidden
    x = torch.as_tensor(_data())
    _, logvar = module.encode(x)
    log_sigma = module.logsigma(module.activation(module.enc0(x)))
    torch.testing.assert_close(logvar, 2 * log_sigma)


def test_set_params_rejects_wrong_shapes_clearly():
    config = CONFIGS[0]
    model = tv.TorchModel(config)
    params = model.get_params()
    bad = dict(params, enc0_W=params["enc0_W"].T)                        # torch's (out, in) layout
    with pytest.raises(ValueError, match=re.escape("'enc0_W' has shape (7, 12), expected (12, 7)")):
        model.set_params(bad)
    missing = {k: v for k, v in params.items() if k != "out_b"}
    with pytest.raises(ValueError, match="missing 'out_b'"):
        model.set_params(missing)
    np.testing.assert_array_equal(model.get_params()["enc0_W"], params["enc0_W"])


def test_set_params_casts_and_get_params_copies():
    model = tv.TorchModel(CONFIGS[0], dtype=np.float32)
    params = {k: v.astype(np.float64) for k, v in NumpyVAE(CONFIGS[0], seed=9).get_params().items()}
    model.set_params(params)
    got = model.get_params()
    assert all(v.dtype == np.float32 for v in got.values())
    got["out_b"][:] = 123.0
    assert not np.any(model.get_params()["out_b"] == 123.0), "get_params must return copies"


def test_loss_function_mean_is_the_mean_of_per_example_terms():
    module = tv.TorchVAE(CONFIGS[0], dtype=torch.float64)
    x = torch.as_tensor(_data())
    eps = torch.as_tensor(draw_noise(0, 3, N, L))                        # (K, N, L)
    logits, mu, logvar = module(x, eps)
    assert logits.shape == (3, N, D)
    per_example = tv.loss_function(logits, x, mu, logvar, reduction="none")
    assert per_example.shape == (N,)
    torch.testing.assert_close(tv.loss_function(logits, x, mu, logvar), per_example.mean())
    with pytest.raises(ValueError, match="reduction"):
        tv.loss_function(logits, x, mu, logvar, reduction="sum")


def test_noise_shape_is_checked():
    model = tv.TorchModel(CONFIGS[0])
    with pytest.raises(ValueError, match=r"eps must have shape \(K, N, L\)"):
        model.elbo_with_noise(_data(), np.zeros((1, N, L + 1)))


def test_default_device():
    assert tv.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert tv.TorchModel(CONFIGS[0], device="cpu").device.type == "cpu"


def test_make_optimizer():
    module = tv.TorchVAE(CONFIGS[0], device="cpu")
    for name, cls in tv.OPTIMIZERS.items():
        opt = tv.make_optimizer(module, name, l2=0.5)
        assert isinstance(opt, cls)
        assert opt.param_groups[0]["lr"] == DEFAULT_LR[name] and opt.param_groups[0]["weight_decay"] == 0.5
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'"):
        tv.make_optimizer(module, "rmsprop")


def test_import_without_torch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)                     # `import torch` now fails
    monkeypatch.delitem(sys.modules, "vae_teach.torch_vae")
    with pytest.raises(ImportError, match=re.escape("pip install 'vae_teach[torch]'")):
        importlib.import_module("vae_teach.torch_vae")


# ----- training -----------------------------------------------------------------
def _binary_data(n: int, seed: int = 0) -> np.ndarray:
    """Images with structure to learn: each pixel on with its own probability."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, D)) < np.linspace(0.05, 0.95, D)).astype(np.float32)


def test_training_improves_the_elbo():
    model = tv.TorchModel(VAEConfig(input_dim=D, hidden_dims=(16,), latent_dim=2), seed=0, device="cpu")
    X_train, X_test = _binary_data(256), _binary_data(64, seed=1)
    before = float(np.mean(dataset_elbo(model, X_test)))
    history = tv.train(model, X_train, epochs=4, batch_size=32, lr=1e-2, X_test=X_test, progress=False)
    assert isinstance(history, History)
    assert history.epoch == [1, 2, 3, 4] and len(history.step_loss) == 4 * 8
    assert len(history.test_elbo) == len(history.train_elbo) == len(history.examples_per_second) == 4
    assert history.test_elbo[-1] > before + 1.0, f"test ELBO {before:.2f} -> {history.test_elbo}"
    assert history.train_elbo[-1] > history.train_elbo[0]


def test_training_is_reproducible_and_takes_a_module():
    X = _binary_data(100)
    runs = []
    for _ in range(2):
        module = tv.TorchVAE(CONFIGS[0], seed=0, device="cpu")
        runs.append(tv.train(module, X, epochs=2, batch_size=16, binarize="dynamic", progress=False))
    assert runs[0].step_loss == runs[1].step_loss
    history = tv.train(tv.TorchModel(CONFIGS[0]), X, epochs=1, binarize="static", progress=False)
    assert np.isfinite(history.train_elbo[0])
    with pytest.raises(ValueError, match="binarize"):
        tv.train(tv.TorchModel(CONFIGS[0]), X, epochs=1, binarize="otsu", progress=False)


def test_divergence_names_the_step_and_the_learning_rate():
    model = tv.TorchModel(CONFIGS[0], device="cpu")
    with pytest.raises(TrainingDivergedError, match=r"at step \d+ \(epoch 1\) with learning rate 1e\+08"):
        tv.train(model, _binary_data(64), epochs=2, batch_size=8, optimizer="sgd", lr=1e8, progress=False)


# ----- checkpoints ----------------------------------------------------------------
def test_checkpoint_round_trip_resumes_training_exactly(tmp_path):
    config = CONFIGS[-1]
    X = _data()
    noise = [draw_noise(200 + s, 1, N, L) for s in range(6)]
    straight = tv.TorchModel(config, seed=0, dtype=np.float64, device="cpu")
    step = tv.make_train_step(straight, "adam", lr=1e-2)
    for eps in noise:
        step(X, eps)

    model = tv.TorchModel(config, seed=0, dtype=np.float64, device="cpu")
    opt = tv.make_optimizer(model.module, "adam", lr=1e-2)
    step = tv.make_train_step(model, opt)
    for eps in noise[:3]:
        step(X, eps)
    history = History(step_loss=[1.5, 1.25], epoch=[1])
    path = tv.save_checkpoint(model, tmp_path / "vae.pt", optimizer=opt, history=history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt"], "no temporary file may be left"

    restored = tv.load_checkpoint(path, device="cpu")
    assert restored.model.config == config and restored.model.dtype == np.float64
    assert restored.history == history
    for name, value in model.get_params().items():
        np.testing.assert_array_equal(restored.model.get_params()[name], value, err_msg=name)
    opt = tv.make_optimizer(restored.model.module, "adam", lr=1e-2)
    opt.load_state_dict(restored.optimizer_state)
    step = tv.make_train_step(restored.model, opt)
    for eps in noise[3:]:
        step(X, eps)
    for name, value in straight.get_params().items():
        np.testing.assert_array_equal(restored.model.get_params()[name], value, err_msg=name)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        tv.load_checkpoint(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.pt: the file is corrupt or truncated"):
        tv.load_checkpoint(garbage)
    good = tv.save_checkpoint(tv.TorchModel(CONFIGS[0]), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt: the file is corrupt or truncated"):
        tv.load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="other.pt is not a vae_teach torch checkpoint"):
        tv.load_checkpoint(other)


# ----- the likelihoods (lesson 07) and the IWAE objective (lesson 08) ---------------
LIKELIHOOD_CONFIGS = [CONFIGS[0], CONFIGS[-1]]                     # relu-logvar-1hidden, tanh-logsigma-2hidden


def _likelihood_pair(likelihood: str, config: VAEConfig = CONFIGS[0], dtype=np.float64
                     ) -> tuple[NumpyVAE, tv.TorchModel]:
    """A float64 NumPy reference and a torch model with the same weights, under ``likelihood``,
    chosen to reach its hard cases (``with_hard_cases``)."""
    config = dataclasses.replace(config, likelihood=likelihood, output_logvar=-1.5)
    reference = NumpyVAE(config, seed=1, dtype=np.float64)
    params = with_hard_cases(reference.get_params(), likelihood, D)
    reference.set_params(params)
    model = tv.TorchModel(config, seed=101, dtype=dtype, device="cpu")       # other weights...
    model.set_params(params)                                                 # ...replaced
    return reference, model


@pytest.mark.parametrize("objective", tv.OBJECTIVES)
@pytest.mark.parametrize("config", LIKELIHOOD_CONFIGS, ids=[CONFIG_IDS[0], CONFIG_IDS[-1]])
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_every_likelihood_and_objective_agrees_with_numpy(likelihood, config, objective):
    reference, model = _likelihood_pair(likelihood, config)
    X, eps = _data(), draw_noise(6, 4, N, L)                            # K = 4
    if likelihood == "continuous-bernoulli":
        logits = reference.decode_logits(reference.encode(X)[0] + eps[0])
        small = np.mean(np.abs(logits) < 1e-2)
        assert 0.1 < small < 0.9, f"{small:.0%} of the logits in the series branch: the test needs both branches"
    bound, reference_bound = ((model.elbo_with_noise, reference.elbo_with_noise) if objective == "elbo"
                              else (model.iwae_with_noise, reference.iwae_with_noise))
    err = relative_error(bound(X, eps), reference_bound(X, eps))
    assert err < 1e-10, f"per-example {objective} differs by a relative {err:.1e}; float64 round-off is ~1e-15"
    loss_ref, grads_ref = reference.loss_and_grads(X, eps, objective=objective)
    loss, grads = model.loss_and_grads(X, eps, objective=objective)
    assert relative_error(loss, loss_ref) < 1e-12, f"losses differ: {loss} vs {loss_ref}"
    assert list(grads) == list(param_shapes(model.config)), f"gradient names {list(grads)}"
    for name, expected in grads_ref.items():
        assert np.all(np.isfinite(grads[name])), f"{likelihood}/{objective}: the gradient of {name} is not finite"
        err = relative_error(grads[name], expected)
        assert err < 1e-8, (f"{likelihood}/{objective}: the gradient of {name} differs from the NumPy "
                            f"backward pass by {err:.1e} (expect ~1e-14)")


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_decode_and_log_likelihood_follow_the_likelihood(likelihood):
    reference, model = _likelihood_pair(likelihood)
    X, Z = _data(), draw_noise(0, 1, N, L)[0]
    logits = reference.decode_logits(Z)
    X_mean = model.decode(Z)
    err = relative_error(X_mean, likelihood_mean(logits, likelihood))
    assert err < 1e-12, f"decode is not {likelihood}'s mean: relative error {err:.1e}"
    assert np.all((X_mean > 0) & (X_mean < 1))
    logvar = reference.output_logvar
    err = relative_error(model.log_likelihood(X, Z), elbo_log_likelihood(X, logits, likelihood, logvar))
    assert err < 1e-12, f"log_likelihood under {likelihood} differs by {err:.1e}"


def test_continuous_bernoulli_is_stable_and_finite_at_and_near_zero_logits():
    # Both sides of the series' threshold 1e-2, 0 itself, and far out, where e^-|a| underflows.
    a = np.array([0.0, 1e-300, -1e-12, 3e-3, -5e-3, 0.0099999, -0.01, 0.0100001, 0.5, -2.0, 40.0, -800.0])
    for dtype in (torch.float64, torch.float32):
        logits = torch.tensor(a, dtype=dtype, requires_grad=True)
        log_c = tv.continuous_bernoulli_log_normalizer(logits)
        (log_c_grad,) = torch.autograd.grad(log_c.sum(), logits)
        mean = tv.continuous_bernoulli_mean(logits)
        (mean_grad,) = torch.autograd.grad(mean.sum(), logits)
        for what, t in (("log C", log_c), ("d log C / da", log_c_grad), ("the mean", mean),
                        ("d mean / da", mean_grad)):
            bad = a[~torch.isfinite(t).numpy()]
            assert bad.size == 0, f"{dtype}: {what} is NaN or inf at a = {bad} (torch.where's gradient trap?)"
        a_rounded = logits.detach().numpy()                               # a as this dtype holds it
        err = relative_error(log_c.detach().numpy(), continuous_bernoulli_log_normalizer(a_rounded))
        assert err < (1e-14 if dtype == torch.float64 else 1e-6), f"{dtype}: log C off by {err:.1e}"
        # 1/a - 1/sinh(a) cancels to ~a/6 just above |a| = 1e-2: autograd sums terms of ~100 there, so
        # float32's 6e-8 leaves an absolute error of ~1e-5, which against the array's scale (0.22, at
        # a = -2) is 1e-5 to 5e-5 depending on how the CPU's vectorised exp and log round (3.4e-5 on
        # an AMD EPYC): the bound is the round-off's, as for the mean below
        err = relative_error(log_c_grad.numpy(), continuous_bernoulli_log_normalizer_grad(a_rounded))
        assert err < (1e-12 if dtype == torch.float64 else 1e-4), f"{dtype}: d log C / da off by {err:.1e}"
        # the mean's 1 / (1 - e^-a) - 1/a cancels ~100 - 100 to ~1/2 just above |a| = 1e-2:
        # float32's 6e-8 becomes ~1e-5 there, in NumPy's formula as in this one
        err = relative_error(mean.detach().numpy(), continuous_bernoulli_mean(a_rounded))
        assert err < (1e-14 if dtype == torch.float64 else 1e-4), f"{dtype}: the mean off by {err:.1e}"


def test_out_logvar_is_a_parameter_that_moves_like_a_weight(tmp_path):
    config = VAEConfig(D, (7,), L, likelihood="gaussian-learned", output_logvar=-2.0)
    model = tv.TorchModel(config, seed=0, dtype=np.float64, device="cpu")
    module = model.module
    assert any(p is module.out_logvar for p in module.parameters()), "out_logvar must be an nn.Parameter"
    assert "out_logvar" in module.state_dict() and list(model.get_params())[-1] == "out_logvar"
    np.testing.assert_array_equal(model.get_params()["out_logvar"], np.full(D, -2.0))
    params = model.get_params()
    params["out_logvar"] = np.linspace(-3, 1, D)
    model.set_params(params)
    np.testing.assert_array_equal(module.out_logvar.detach().numpy(), np.linspace(-3, 1, D))
    # ten Adam steps on the IWAE objective move out_logvar exactly as NumPy's optimiser does
    reference = NumpyVAE(config, seed=0, dtype=np.float64)
    reference.set_params(params)
    hyper = OPTIMIZER_SETTINGS["adam"]
    opt, step = Optimizer("adam", **hyper), tv.make_train_step(model, "adam", objective="iwae", **hyper)
    X = _data()
    for s in range(10):
        eps = draw_noise(300 + s, 3, N, L)
        loss_ref, grads = reference.loss_and_grads(X, eps, objective="iwae")
        opt.step(reference.params, grads)
        loss = step(X, eps)
        assert relative_error(loss, loss_ref) < 1e-6, f"step {s}: IWAE loss {loss} vs {loss_ref}"
    got = model.get_params()
    assert not np.allclose(got["out_logvar"], params["out_logvar"]), "out_logvar did not move"
    for name, expected in reference.params.items():
        err = relative_error(got[name], expected)
        assert err < 1e-6, f"after 10 Adam steps on the IWAE bound {name} differs by {err:.1e}"
    restored = tv.load_checkpoint(tv.save_checkpoint(model, tmp_path / "gaussian.pt"), device="cpu").model
    np.testing.assert_array_equal(restored.get_params()["out_logvar"], got["out_logvar"])


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_loss_functions_mean_is_the_mean_of_per_example_terms_for_every_likelihood(likelihood):
    module = tv.TorchVAE(dataclasses.replace(CONFIGS[0], likelihood=likelihood), dtype=torch.float64)
    x = torch.as_tensor(_data())
    eps = torch.as_tensor(draw_noise(0, 3, N, L))                        # (K, N, L)
    logits, mu, logvar = module(x, eps)
    options = {"likelihood": likelihood, "output_logvar": module.output_logvar}
    per_example = tv.loss_function(logits, x, mu, logvar, reduction="none", **options)
    torch.testing.assert_close(tv.loss_function(logits, x, mu, logvar, **options), per_example.mean())
    per_example = tv.iwae_loss_function(logits, x, mu, logvar, eps, reduction="none", **options)
    assert per_example.shape == (N,)
    torch.testing.assert_close(tv.iwae_loss_function(logits, x, mu, logvar, eps, **options), per_example.mean())
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        tv.log_likelihood(logits, x, "poisson")


def test_iwae_with_one_sample_is_the_elbo_with_a_monte_carlo_kl():
    _, model = _likelihood_pair("bernoulli")
    X, eps = _data(), draw_noise(8, 1, N, L)
    mu, logvar = model.encode(X)
    Z = mu + np.exp(0.5 * logvar) * eps[0]
    log_w = log_importance_weights(model.log_likelihood(X, Z)[None], Z[None], mu, logvar)   # (1, N)
    np.testing.assert_allclose(model.iwae_with_noise(X, eps), log_w[0], rtol=1e-12)
    iwae_4 = model.iwae_with_noise(X, draw_noise(8, 4, N, L))
    assert np.all(np.isfinite(iwae_4)) and iwae_4.shape == (N,)


def test_a_bad_objective_is_named_in_the_error():
    model = tv.TorchModel(CONFIGS[0], device="cpu")
    message = r"objective must be one of \('elbo', 'iwae'\), got 'vimco'"
    with pytest.raises(ValueError, match=message):
        model.loss_and_grads(_data(), draw_noise(0, 2, N, L), objective="vimco")
    with pytest.raises(ValueError, match=message):
        tv.make_train_step(model, "adam", objective="vimco")
    with pytest.raises(ValueError, match=message):
        tv.train(model, _binary_data(32), epochs=1, objective="vimco", progress=False)


def test_training_on_the_iwae_bound_runs_and_differs_from_the_elbo():
    X = _binary_data(64)
    runs = {objective: tv.train(tv.TorchModel(CONFIGS[0], seed=0, device="cpu"), X, epochs=2, batch_size=16,
                                n_samples=4, objective=objective, progress=False)
            for objective in tv.OBJECTIVES}
    assert all(np.all(np.isfinite(h.step_loss)) for h in runs.values())
    assert runs["elbo"].step_loss[0] > runs["iwae"].step_loss[0], "IWAE_4 >= ELBO: its loss must start lower"
    assert runs["elbo"].step_loss != runs["iwae"].step_loss


def _eight_bit_data(n: int, seed: int = 0) -> np.ndarray:
    """(n, D) images with 8-bit intensities k / 255, rows all different."""
    return (np.random.default_rng(seed).integers(0, 256, (n, D)) / 255).astype(np.float32)


def test_dequantize_redraws_the_noise_within_each_level_every_epoch(monkeypatch):
    X = _eight_bit_data(40)
    seen = []
    original = tv._train_step

    def recording_step(module, opt, x, eps, *args):
        seen.append(x.detach().numpy().astype(np.float64).copy())
        return original(module, opt, x, eps, *args)

    monkeypatch.setattr(tv, "_train_step", recording_step)
    config = dataclasses.replace(CONFIGS[0], likelihood="continuous-bernoulli")
    history = tv.train(tv.TorchModel(config, seed=0, device="cpu"), X, epochs=3, batch_size=len(X),
                       binarize="dequantize", progress=False)
    assert len(seen) == 3                                                 # one batch, the whole set, an epoch
    levels = np.rint(X.astype(np.float64) * 255)
    expected_rows = levels[np.lexsort(levels.T)]
    noise = []
    for x in seen:                                                        # rows in the epoch's random order
        k = np.floor(x * 256)
        order = np.lexsort(k.T)
        np.testing.assert_array_equal(k[order], expected_rows, err_msg="x must lie in [k/256, (k+1)/256)")
        noise.append((x * 256 - k)[order])                               # u ~ U(0, 1), per pixel
    assert all(0.3 < u.mean() < 0.7 for u in noise), "the noise within a level should be uniform on [0, 1)"
    assert not np.allclose(noise[0], noise[1]) and not np.allclose(noise[1], noise[2]), \
        "dequantize must draw new noise every epoch"
    monkeypatch.undo()
    plain = tv.train(tv.TorchModel(config, seed=0, device="cpu"), X, epochs=3, batch_size=len(X), progress=False)
    assert history.step_loss != plain.step_loss, "binarize='dequantize' trained on the raw data"
    with pytest.raises(ValueError, match="expects 8-bit images"):
        tv.train(tv.TorchModel(config), _data(), epochs=1, binarize="dequantize", progress=False)
    with pytest.raises(ValueError, match="binarize must be one of"):
        tv.train(tv.TorchModel(config), X, epochs=1, binarize="dequantise", progress=False)


# ----- beta, free bits and schedules (notebook 09) ----------------------------
def _free_bits_between(reference, X):
    """A lambda between the two smallest per-dimension mean KLs: one dimension held, the others not."""
    mu, logvar = reference.encode(X)
    kl = np.sort(0.5 * np.mean(np.exp(logvar) + mu * mu - 1 - logvar, axis=0))
    return float(0.5 * (kl[0] + kl[1]))


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=[CONFIG_IDS[0], CONFIG_IDS[-1]])
def test_beta_and_free_bits_loss_and_gradients_agree_with_numpy(config):
    reference, model = _pair(config)
    X, eps = _data(), draw_noise(6, 2, N, L)
    lam = _free_bits_between(reference, X)
    for kl_weight, free_bits in ((0.25, 0.0), (3.0, 0.0), (0.5, lam), (1.0, 10.0)):
        loss_ref, grads_ref = reference.loss_and_grads(X, eps, kl_weight=kl_weight, free_bits=free_bits)
        loss, grads = model.loss_and_grads(X, eps, kl_weight=kl_weight, free_bits=free_bits)
        assert relative_error(loss, loss_ref) < 1e-12, f"beta={kl_weight}, lambda={free_bits}: {loss} vs {loss_ref}"
        for name, expected in grads_ref.items():
            err = relative_error(grads[name], expected)
            assert err < 1e-8, (f"beta={kl_weight}, lambda={free_bits}: gradient of {name} differs from the NumPy "
                                f"backward pass by {err:.1e} (expect ~1e-14)")


def test_beta_and_free_bits_optimizer_steps_agree_with_numpy():
    config, hyper = CONFIGS[0], OPTIMIZER_SETTINGS["adam"]
    reference, model = _pair(config)
    opt = Optimizer("adam", **hyper)
    step = tv.make_train_step(model, "adam", kl_weight=0.5, free_bits=0.2, **hyper)
    X = _data()
    for s in range(5):
        eps = draw_noise(200 + s, 2, N, L)
        loss_ref, grads = reference.loss_and_grads(X, eps, kl_weight=0.5, free_bits=0.2)
        opt.step(reference.params, grads)
        assert relative_error(step(X, eps), loss_ref) < 1e-6, f"step {s}"
    for name, expected in reference.get_params().items():
        assert relative_error(model.get_params()[name], expected) < 1e-6, f"{name} after 5 steps"


def test_train_takes_a_schedule_and_free_bits_and_refuses_bad_ones():
    from vae_teach.schedules import cyclical, linear_warmup

    config = CONFIGS[0]
    X = np.random.default_rng(0).random((40, D))
    model = tv.TorchModel(config, seed=0, dtype=np.float64, device="cpu")
    history = tv.train(model, X, epochs=2, batch_size=10, kl_weight=cyclical(1.0, 8, 2), free_bits=0.1,
                       progress=False)
    assert len(history.step_loss) == 8 and np.all(np.isfinite(history.step_loss))
    with pytest.raises(ValueError, match="longer than the training"):
        tv.train(model, X, epochs=1, batch_size=10, kl_weight=linear_warmup(1.0, 5), progress=False)
    with pytest.raises(ValueError, match=r"beta \(the KL weight\) must be a finite number >= 0"):
        tv.train(model, X, epochs=1, batch_size=10, kl_weight=-0.5, progress=False)
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        tv.train(model, X, epochs=1, batch_size=10, free_bits=-1.0, progress=False)
    with pytest.raises(ValueError, match="ELBO objective only"):
        tv.train(model, X, epochs=1, batch_size=10, objective="iwae", kl_weight=0.5, progress=False)
    with pytest.raises(ValueError, match="reduction='mean'"):
        tv.loss_function(torch.zeros(2, D), torch.zeros(2, D), torch.zeros(2, L), torch.zeros(2, L),
                         reduction="none", free_bits=0.1)
