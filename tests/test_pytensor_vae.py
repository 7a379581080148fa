"""The PyTensor VAE against the NumPy reference: same weights, same noise, same numbers.

PyTensor compiles every function (seconds each, the first time on a machine;
its cache then makes later runs fast), so the models are built once per
module and shared by the tests, which keep to small sizes (D=12, L=3): one
model per likelihood (lesson 07), whose functions serve both objectives'
tests (ELBO and IWAE, lesson 08).
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from likelihood_cases import with_hard_cases  # tests/likelihood_cases.py

# pytensor_vae is imported before anything imports pytensor, so that PyTensor compiles into
# vae_teach's directory (see the module's docstring), never into the home directory.
from vae_teach import elbo as reference
from vae_teach import pytensor_vae
from vae_teach.interface import (
    LIKELIHOODS,
    VAEConfig,
    VAEModel,
    draw_noise,
    param_shapes,
)
from vae_teach.numpy_vae import train as numpy_train
from vae_teach.numpy_vae.gradcheck import relative_error
from vae_teach.numpy_vae.model import NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.pytensor_vae import PytensorVAE, graph_text

if importlib.util.find_spec("pytensor") is None:  # find_spec does not import it
    pytest.skip("the PyTensor backend needs pytensor: pip install 'vae_teach[pytensor]'", allow_module_level=True)

# Performance notes from PyTensor's backends, not about our code: Numba's np.dot on transposed
# views (in the gradient graph) and the C backend without a BLAS library to link to (pip installs).
pytestmark = [pytest.mark.filterwarnings(r"ignore:np.dot\(\) is faster on contiguous arrays"),
              pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS installation")]

D, L, N = 12, 3, 8
CONFIGS = [VAEConfig(D, hidden, L, activation, scale)
           for activation in ("relu", "tanh") for scale in ("logvar", "logsigma") for hidden in ((6,), (6, 5))]
OPTIMIZERS = [("sgd", {"lr": 0.05, "l2": 1e-2}), ("adagrad", {"lr": 0.05}),
              ("adam", {"lr": 0.01, "moment_floor": 1e-30})]

# float64: both backends compute the same sums in different orders and agree to ~1e-16 (measured);
# the bars leave room for longer sums and for libm differences (Numba's exp/log1p vs NumPy's).
ELBO_RTOL_64, GRAD_RTOL_64, PARAM_RTOL_64 = 1e-10, 1e-8, 1e-6
# float32: round-off is ~6e-8 per operation and grows with the length of the sums (12 pixels,
# a batch of 8); both backends round, differently, so ELBOs, gradients and parameters after 10
# steps agree to ~2e-7 (measured): bars 1e-5. A gradient entry can be a sum whose terms cancel,
# which makes its elementwise relative error unbounded, so each gradient is compared relative to
# its largest entry (floor=max|g|) and each parameter relative to at least 1e-3.
ELBO_RTOL_32 = GRAD_RTOL_32 = PARAM_RTOL_32 = 1e-5

# The float64 tests check the graph's maths against NumPy's. They compile it in PyTensor's
# FAST_COMPILE mode (Python implementations of each operation, few rewrites): no code generation,
# about 2 s a model instead of about 50 s cold in the default Numba backend (measured on 2 cores).
# The float32 tests, which are what the lessons run, use the default backend, and
# test_every_compile_mode_gives_the_same_elbo ties the modes together in float64.
MATHS_MODE = "FAST_COMPILE"


def config_id(config):
    return f"{config.activation}-{config.scale}-{len(config.hidden_dims)}layer"


_MODELS: dict = {}


def shared_model(config, dtype="float64", mode=MATHS_MODE) -> PytensorVAE:
    """One compiled model per (config, dtype, mode), for the whole module: compiling is slow."""
    key = (config, dtype, mode)
    if key not in _MODELS:
        _MODELS[key] = PytensorVAE(config, seed=3, dtype=dtype, mode=mode)
    return _MODELS[key]


def data(seed=0, n=N, k=2):
    """X (n, D) in [0, 1] and eps (k, n, L)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, D)), rng.standard_normal((k, n, L))


def twin(config, dtype="float64"):
    """The shared PyTensor model and a NumpyVAE, both holding new random weights (the same).
    float64: compiled in MATHS_MODE; float32: in PyTensor's default mode, as the lessons run it."""
    model = shared_model(config, dtype, MATHS_MODE if dtype == "float64" else None)
    ref = NumpyVAE(config, seed=11, dtype=np.dtype(dtype))
    model.set_params(ref.get_params())
    return model, ref


# ----- the model's maths against the NumPy reference --------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_elbo_matches_numpy_in_float64(config):
    model, ref = twin(config)
    X, eps = data()
    err = relative_error(model.elbo_with_noise(X, eps), ref.elbo_with_noise(X, eps))
    assert err < ELBO_RTOL_64, f"elbo_with_noise differs from NumpyVAE by relative {err:.1e} (expected < 1e-10)"
    err = relative_error(model.elbo(X, n_samples=3, seed=5), ref.elbo(X, n_samples=3, seed=5))
    assert err < ELBO_RTOL_64, f"elbo(n_samples=3, seed=5) differs by relative {err:.1e} (expected < 1e-10)"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_gradients_match_numpy_in_float64(config):
    model, ref = twin(config)
    X, eps = data(1)
    loss, grads = model.loss_and_grads(X, eps)
    ref_loss, ref_grads = ref.loss_and_grads(X, eps)
    assert abs(loss - ref_loss) < ELBO_RTOL_64 * abs(ref_loss), f"loss {loss} != NumPy's {ref_loss}"
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert grads[name].shape == ref_grads[name].shape, f"{name}: shape {grads[name].shape}"
        err = relative_error(grads[name], ref_grads[name])
        assert err < GRAD_RTOL_64, f"gradient of {name} differs from NumPy's by relative {err:.1e} (expected < 1e-8)"


def run_optimizer(model, ref, optimizer, hyper, steps=10):
    """`steps` steps of both backends with the same noise; returns the PyTensor and NumPy losses."""
    step = model.make_train_step(optimizer, **hyper)
    opt = Optimizer(optimizer, **hyper)
    losses, ref_losses = [], []
    for k in range(steps):
        X, eps = data(100 + k)
        losses.append(step(X, eps.astype(model.dtype)))
        ref_loss, grads = ref.loss_and_grads(X, eps)
        opt.step(ref.params, grads)
        ref_losses.append(ref_loss)
    return np.array(losses), np.array(ref_losses)


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=config_id)
@pytest.mark.parametrize("optimizer, hyper", OPTIMIZERS, ids=[o for o, _ in OPTIMIZERS])
def test_ten_optimizer_steps_match_numpy_in_float64(config, optimizer, hyper):
    model, ref = twin(config)
    losses, ref_losses = run_optimizer(model, ref, optimizer, hyper)
    assert relative_error(losses, ref_losses) < PARAM_RTOL_64, f"losses {losses} != NumPy's {ref_losses}"
    params = model.get_params()
    for name, value in ref.params.items():
        err = relative_error(params[name], value)
        assert err < PARAM_RTOL_64, f"{optimizer}: {name} after 10 steps off by relative {err:.1e} (expected < 1e-6)"


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=config_id)
def test_elbo_and_gradients_match_numpy_in_float32(config):
    model, ref = twin(config, "float32")
    X, eps = data(2)
    err = relative_error(model.elbo_with_noise(X, eps), ref.elbo_with_noise(X, eps))
    assert err < ELBO_RTOL_32, f"float32 ELBO differs by relative {err:.1e} (expected < 1e-5)"
    _, grads = model.loss_and_grads(X, eps)
    _, ref_grads = ref.loss_and_grads(X, eps)
    for name, g in ref_grads.items():
        assert grads[name].dtype == np.float32, f"{name} has dtype {grads[name].dtype}, not float32"
        err = relative_error(grads[name], g, floor=float(np.max(np.abs(g))))
        assert err < GRAD_RTOL_32, f"float32 gradient of {name} off by {err:.1e} of its largest entry (expected < 1e-5)"


@pytest.mark.parametrize("optimizer, hyper", OPTIMIZERS, ids=[o for o, _ in OPTIMIZERS])
def test_ten_optimizer_steps_match_numpy_in_float32(optimizer, hyper):
    model, ref = twin(CONFIGS[-1], "float32")
    losses, ref_losses = run_optimizer(model, ref, optimizer, hyper)
    assert relative_error(losses, ref_losses) < ELBO_RTOL_32, f"losses {losses} != NumPy's {ref_losses}"
    params = model.get_params()
    for name, value in ref.params.items():
        assert params[name].dtype == np.float32, f"{name} became {params[name].dtype}"
        err = relative_error(params[name], value, floor=1e-3)
        assert err < PARAM_RTOL_32, f"{optimizer}: {name} after 10 steps off by relative {err:.1e} (expected < 1e-5)"


def test_every_compile_mode_gives_the_same_elbo():
    """Numba (PyTensor 3's default, what the lessons run), the C backend, and FAST_COMPILE (which the
    float64 maths tests use) compute the same ELBO in float64, to round-off. (The float32 tests
    check the default mode's gradients and optimiser steps against NumPy's.)"""
    X, _ = data(3)
    models = {mode: shared_model(CONFIGS[1], mode=mode) for mode in ("NUMBA", "CVM", MATHS_MODE)}
    params = models["NUMBA"].get_params()
    numba_elbo = models["NUMBA"].elbo(X, n_samples=3, seed=5)
    for mode in ("CVM", MATHS_MODE):
        models[mode].set_params(params)
        err = relative_error(models[mode].elbo(X, n_samples=3, seed=5), numba_elbo)
        assert err < 1e-12, f"{mode} and NUMBA ELBOs differ by relative {err:.1e} (expected round-off, < 1e-12)"


# ----- the protocol -----------------------------------------------------------
def test_meets_the_protocol_with_numpy_arrays_of_the_right_shapes():
    model = shared_model(CONFIGS[0])
    assert isinstance(model, VAEModel)
    assert model.latent_dim == L
    X, eps = data(4)
    mu, logvar = model.encode(X)
    assert mu.shape == logvar.shape == (N, L) and mu.dtype == np.float64
    Z = mu + np.exp(0.5 * logvar) * eps[0]
    X_mean = model.decode(Z)
    assert X_mean.shape == (N, D) and np.all((X_mean > 0) & (X_mean < 1))
    np.testing.assert_allclose(X_mean, reference.sigmoid(model.decode_logits(Z)), rtol=1e-12)
    np.testing.assert_allclose(model.log_likelihood(X, Z),
                               reference.bernoulli_log_likelihood(X, model.decode_logits(Z)), rtol=1e-12)
    assert model.elbo(X, n_samples=2, seed=0).shape == (N,)
    # elbo(seed) draws its noise with interface.draw_noise, as every backend does
    np.testing.assert_array_equal(model.elbo(X, n_samples=2, seed=7),
                                  model.elbo_with_noise(X, draw_noise(7, 2, N, L)))


def test_same_seed_gives_numpys_initial_weights_and_get_params_returns_copies():
    config = CONFIGS[2]
    model = PytensorVAE(config, seed=42, dtype="float64")  # no compilation: only shared variables
    ref = NumpyVAE(config, seed=42, dtype=np.float64)
    params = model.get_params()
    assert list(params) == list(ref.params), "parameter names or order differ from NumpyVAE's"
    for name, value in ref.params.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)
    params["mu_W"][:] = 0
    assert np.any(model.get_params()["mu_W"] != 0), "get_params must return copies"


def test_set_params_rejects_wrong_shapes_and_names():
    model = shared_model(CONFIGS[0])
    params = model.get_params()
    with pytest.raises(ValueError, match=r"'enc0_W' has shape \(5, 6\), expected \(12, 6\)"):
        model.set_params({**params, "enc0_W": np.zeros((5, 6))})
    with pytest.raises(ValueError, match="missing 'out_b'"):
        model.set_params({k: v for k, v in params.items() if k != "out_b"})
    np.testing.assert_array_equal(model.get_params()["enc0_W"], params["enc0_W"])  # unchanged


def test_set_params_casts_to_the_models_dtype():
    model = PytensorVAE(CONFIGS[0], seed=0, dtype="float32")
    model.set_params(NumpyVAE(CONFIGS[0], seed=1, dtype=np.float64).get_params())
    assert all(v.dtype == np.float32 for v in model.get_params().values())


def test_bad_inputs_say_what_shape_was_expected():
    model = shared_model(CONFIGS[0])
    X, eps = data()
    with pytest.raises(ValueError, match=r"eps must have shape \(K, N, L\)"):
        model.elbo_with_noise(X, eps[:, :3])
    with pytest.raises(ValueError, match=r"X must have 12 pixels .* pass an array of shape \(N, 12\)"):
        model.encode(X[:, :5])
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'"):
        model.make_train_step("rmsprop")
    with pytest.raises(TypeError, match="sgd takes no option"):
        model.make_train_step("sgd", beta1=0.9)


# ----- training -----------------------------------------------------------------
def test_the_in_graph_noise_is_seeded():
    X, _ = data(5)
    losses = []
    for _ in range(2):
        model = shared_model(CONFIGS[0])
        model.set_params(NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64).get_params())
        step = model.make_train_step("adam", noise_seed=9)
        losses.append([step(X) for _ in range(3)])
    assert losses[0] == losses[1], f"same seed, different losses: {losses}"
    assert len(set(losses[0])) == 3
    model = shared_model(CONFIGS[0])
    model.set_params(NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64).get_params())
    assert model.make_train_step("adam", noise_seed=10)(X) != losses[0][0], "another seed, same noise"


def test_a_new_setting_reuses_the_compiled_step(monkeypatch):
    """lr, l2 and Adam's betas are shared variables, not constants in the graph: a new setting
    compiles nothing (the same step and compiled function serve it), and its steps equal those of
    a step compiled afresh, on a new model, for that setting, and NumPy's."""
    import pytensor

    config, start = CONFIGS[0], NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64).get_params()
    settings = {"sgd": ({"lr": 0.05, "l2": 1e-2}, {"lr": 0.2, "l2": 0.5}),
                "adam": ({"lr": 0.01}, {"lr": 0.03, "l2": 0.1, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6})}
    for optimizer, (first, second) in settings.items():
        model = shared_model(config)
        model.set_params(start)
        step = model.make_train_step(optimizer, **first)
        run_optimizer(model, NumpyVAE(config, seed=0, dtype=np.float64), optimizer, first, steps=2)
        compiled = step.function(random_noise=False)

        compiles = []
        real_function = pytensor.function
        monkeypatch.setattr(pytensor, "function", lambda *a, **k: compiles.append(1) or real_function(*a, **k))
        model.set_params(start)
        ref = NumpyVAE(config, seed=0, dtype=np.float64)
        ref.set_params(start)
        losses, ref_losses = run_optimizer(model, ref, optimizer, second, steps=3)
        monkeypatch.undo()
        assert not compiles, f"{optimizer}: a new lr/l2/beta setting compiled {len(compiles)} function(s)"
        again = model.make_train_step(optimizer, **second)
        assert again is step and again.function(random_noise=False) is compiled, "the compiled step is reused"
        assert again.hyperparameters == {**pytensor_vae.OPTIMIZER_OPTIONS[optimizer], **second,
                                         "l2": second.get("l2", 0.0)}

        fresh = PytensorVAE(config, seed=3, dtype="float64", mode=MATHS_MODE)
        fresh.set_params(start)
        fresh_losses, _ = run_optimizer(fresh, NumpyVAE(config, seed=0, dtype=np.float64), optimizer, second,
                                        steps=3)
        np.testing.assert_array_equal(losses, fresh_losses, err_msg=f"{optimizer}: reused step != fresh step")
        for name, value in fresh.get_params().items():
            np.testing.assert_array_equal(model.get_params()[name], value, err_msg=f"{optimizer}: {name}")
        assert relative_error(losses, ref_losses) < PARAM_RTOL_64, f"{optimizer}: {losses} != NumPy's {ref_losses}"
        for name, value in ref.params.items():
            err = relative_error(model.get_params()[name], value)
            assert err < PARAM_RTOL_64, f"{optimizer}: {name} off NumPy's by relative {err:.1e} with the new setting"


def structured_data(n, seed):
    """Binary images near one of three prototypes: something a VAE can learn in a few epochs."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(0).uniform(size=(3, D)) > 0.5
    flips = rng.uniform(size=(n, D)) < 0.05
    return (prototypes[rng.integers(0, 3, n)] ^ flips).astype(np.float64)


def test_training_improves_the_elbo():
    model = shared_model(CONFIGS[0])
    model.set_params(NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64).get_params())
    X_train, X_test = structured_data(300, 1), structured_data(100, 2)
    before = float(np.mean(model.elbo(X_test)))
    history = pytensor_vae.train(model, X_train, epochs=4, batch_size=50, lr=1e-2, X_test=X_test,
                                 progress=False)
    assert len(history.step_loss) == 4 * 6 and len(history.test_elbo) == 4
    assert history.test_elbo[-1] > before + 1.0, f"test ELBO {before:.2f} -> {history.test_elbo} nats per image"


def test_train_matches_numpys_train_in_float64():
    """Same weights, same minibatches (fit's seed) and, in float64, the same noise: PyTensor's
    random generator (NumPy's Generator, or Numba's copy of it) draws NumPy's standard normals."""
    model = shared_model(CONFIGS[0])
    ref = NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64)
    model.set_params(ref.get_params())
    X_train = structured_data(100, 3)
    options = {"epochs": 2, "batch_size": 25, "lr": 1e-2, "seed": 4, "progress": False}
    history = pytensor_vae.train(model, X_train, **options)
    ref_history = numpy_train(ref, X_train, **options)
    err = relative_error(history.step_loss, ref_history.step_loss)
    assert err < PARAM_RTOL_64, f"step losses differ by relative {err:.1e} (expected < 1e-6)"


def test_graph_text_shows_the_graph_before_and_after_rewrites():
    model = shared_model(CONFIGS[0], mode=None)  # the default mode's rewrites, as lesson 04 shows them
    written, rewritten = graph_text(model, rewritten=False), graph_text(model, rewritten=True)
    assert "Softplus" in written and "enc0_W" in written
    assert "Composite" in rewritten, "PyTensor's rewrites should fuse elementwise operations"
    assert written != rewritten


# ----- the likelihoods (lesson 07) and the IWAE objective (lesson 08) --------------
# One model per likelihood (the Bernoulli's is CONFIGS[0]'s, already compiled), each compiling
# elbo, iwae, their two loss_and_grads and decode: the tests below share them.
LIKELIHOOD_CONFIGS = {likelihood: VAEConfig(D, (6,), L, "relu", "logvar", likelihood,
                                            output_logvar=-1.5 if likelihood.startswith("gaussian") else 0.0)
                      for likelihood in LIKELIHOODS}
assert LIKELIHOOD_CONFIGS["bernoulli"] == CONFIGS[0]


def likelihood_twin(likelihood):
    """As ``twin``, under ``likelihood``, with weights that reach its hard cases (``with_hard_cases``)."""
    config = LIKELIHOOD_CONFIGS[likelihood]
    model = shared_model(config)
    ref = NumpyVAE(config, seed=11, dtype=np.float64)
    params = with_hard_cases(ref.get_params(), likelihood, D)
    ref.set_params(params)
    model.set_params(params)
    return model, ref


@pytest.mark.parametrize("objective", pytensor_vae.OBJECTIVES)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_every_likelihood_and_objective_matches_numpy_in_float64(likelihood, objective):
    model, ref = likelihood_twin(likelihood)
    X, _ = data(6)
    eps = draw_noise(6, 4, N, L)                                                   # K = 4
    if likelihood == "continuous-bernoulli":
        small = np.mean(np.abs(ref.decode_logits(ref.encode(X)[0] + eps[0])) < 1e-2)
        assert 0.1 < small < 0.9, f"{small:.0%} of the logits in the series branch: the test needs both branches"
    bound, ref_bound = ((model.elbo_with_noise, ref.elbo_with_noise) if objective == "elbo"
                        else (model.iwae_with_noise, ref.iwae_with_noise))
    err = relative_error(bound(X, eps), ref_bound(X, eps))
    assert err < ELBO_RTOL_64, f"per-example {objective} differs from NumPy's by relative {err:.1e} (expected < 1e-10)"
    loss, grads = model.loss_and_grads(X, eps, objective=objective)
    ref_loss, ref_grads = ref.loss_and_grads(X, eps, objective=objective)
    assert abs(loss - ref_loss) < ELBO_RTOL_64 * abs(ref_loss), f"{objective} loss {loss} != NumPy's {ref_loss}"
    assert list(grads) == list(param_shapes(model.config)), f"gradient names {list(grads)}"
    for name in ref_grads:
        assert np.all(np.isfinite(grads[name])), f"{likelihood}/{objective}: the gradient of {name} is not finite"
        err = relative_error(grads[name], ref_grads[name])
        assert err < GRAD_RTOL_64, (f"{likelihood}/{objective}: the gradient of {name} differs from NumPy's by "
                                    f"relative {err:.1e} (expected < 1e-8)")


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_decode_is_the_likelihoods_mean(likelihood):
    model, ref = likelihood_twin(likelihood)
    if likelihood == "continuous-bernoulli":   # logits ~ out_b: 0, both sides of 1e-2, and far out
        params = ref.get_params()
        params["out_W"] *= 1e-9
        params["out_b"] = np.array([0.0, 3e-3, -5e-3, 0.0099999, -0.01, 0.0100001, 0.5, -2.0, 40.0, -40.0,
                                    800.0, -800.0])
        ref.set_params(params)
        model.set_params(params)
    Z = draw_noise(0, 1, N, L)[0]
    X_mean = model.decode(Z)
    err = relative_error(X_mean, reference.likelihood_mean(ref.decode_logits(Z), likelihood))
    assert err < 1e-12, f"decode is not the {likelihood} likelihood's mean: relative error {err:.1e}"
    assert np.all((X_mean >= 0) & (X_mean <= 1))


def test_out_logvar_is_a_shared_parameter_initialised_from_the_config():
    config = VAEConfig(D, (6,), L, likelihood="gaussian-learned", output_logvar=-2.0)
    model = PytensorVAE(config, seed=42, dtype="float64")  # no compilation: only shared variables
    params = model.get_params()
    assert list(params) == list(param_shapes(config)) and list(params)[-1] == "out_logvar"
    np.testing.assert_array_equal(params["out_logvar"], np.full(D, -2.0))
    model.set_params({**params, "out_logvar": np.linspace(-3, 1, D)})
    np.testing.assert_array_equal(model.get_params()["out_logvar"], np.linspace(-3, 1, D))
    with pytest.raises(ValueError, match="missing 'out_logvar'"):
        model.set_params({k: v for k, v in params.items() if k != "out_logvar"})


def test_a_bad_objective_is_named_in_the_error():
    model = shared_model(CONFIGS[0])
    X, eps = data()
    message = r"objective must be one of \('elbo', 'iwae'\), got 'vimco'"
    with pytest.raises(ValueError, match=message):
        model.loss_and_grads(X, eps, objective="vimco")
    with pytest.raises(ValueError, match=message):
        model.make_train_step("adam", objective="vimco")
    with pytest.raises(ValueError, match=message):
        pytensor_vae.train(model, X, epochs=1, objective="vimco", progress=False)


def test_iwae_training_on_dequantised_data_matches_numpys_train_in_float64():
    """The IWAE_3 step, with a learned Gaussian variance, on data dequantised afresh every epoch
    (by ``vae_teach.training.fit``, which both backends share): the same step losses as NumPy's."""
    config = LIKELIHOOD_CONFIGS["gaussian-learned"]
    model = shared_model(config)
    ref = NumpyVAE(config, seed=0, dtype=np.float64)
    model.set_params(ref.get_params())
    X_train = structured_data(60, 3)                                  # 0 and 1: 8-bit levels 0 and 255
    options = {"epochs": 2, "batch_size": 20, "lr": 1e-2, "seed": 4, "n_samples": 3, "objective": "iwae",
               "binarize": "dequantize", "progress": False}
    history = pytensor_vae.train(model, X_train, **options)
    ref_history = numpy_train(ref, X_train, **options)
    err = relative_error(history.step_loss, ref_history.step_loss)
    assert err < PARAM_RTOL_64, f"step losses differ by relative {err:.1e} (expected < 1e-6)"
    out_logvar = model.get_params()["out_logvar"]
    assert not np.allclose(out_logvar, config.output_logvar), "out_logvar was not trained"
    err = relative_error(out_logvar, ref.params["out_logvar"])
    assert err < PARAM_RTOL_64, f"out_logvar after training differs by relative {err:.1e} (expected < 1e-6)"
    plain = numpy_train(NumpyVAE(config, seed=0, dtype=np.float64), X_train, **{**options, "binarize": None})
    assert plain.step_loss != ref_history.step_loss, "dequantize must change the data"


# ----- where compiled code goes and what importing needs --------------------------
def run_python(code, tmp_path, **env):
    """Run `code` in a fresh interpreter with HOME in tmp_path; returns the completed process."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTENSOR_FLAGS", "PYTENSORRC", pytensor_vae.COMPILEDIR_ENV_VAR)}
    clean.update(HOME=str(tmp_path / "home"), **env)
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)


def test_compiled_code_goes_where_asked_and_nothing_into_home(tmp_path):
    target = tmp_path / "pytensor-cache"
    result = run_python(f"""
        import numpy as np
        from vae_teach.interface import VAEConfig
        from vae_teach.pytensor_vae import PytensorVAE, compiledir
        model = PytensorVAE(VAEConfig(4, (3,), 2), dtype="float64")
        model.encode(np.zeros((2, 4)))
        assert str(compiledir()) == {str(target)!r}, compiledir()
        """, tmp_path, **{pytensor_vae.COMPILEDIR_ENV_VAR: str(target)})
    assert result.returncode == 0, result.stderr
    written = [p.name for p in target.iterdir()]
    assert "numba" in written and list((target / "numba").iterdir()), f"no compiled code in {target}: {written}"
    assert not list((tmp_path / "home").iterdir()), "something was written into the home directory"


def test_default_compiledir_is_under_the_working_directory(tmp_path):
    result = run_python("""
        from vae_teach import pytensor_vae
        import pytensor  # imported by hand after vae_teach.pytensor_vae: it uses the same directory
        print(pytensor.config.base_compiledir, pytensor_vae.compiledir())
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / ".cache" / "pytensor")] * 2, result.stdout
    assert not list((tmp_path / "home").iterdir())


def test_importing_does_not_import_pytensor(tmp_path):
    result = run_python("""
        import sys
        import vae_teach.pytensor_vae
        assert "pytensor" not in sys.modules
        """, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_missing_pytensor_says_how_to_install_it(monkeypatch):
    shared_model(CONFIGS[0])  # the compile directory is configured; now hide PyTensor
    monkeypatch.setitem(sys.modules, "pytensor", None)
    monkeypatch.setitem(sys.modules, "pytensor.tensor", None)
    with pytest.raises(ImportError, match=r"pip install 'vae_teach\[pytensor\]'"):
        PytensorVAE(CONFIGS[0])


def test_an_unwritable_compiledir_is_named_in_the_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.delitem(sys.modules, "pytensor", raising=False)  # as if PyTensor were not imported yet
    with pytest.raises(OSError, match=f"cannot create PyTensor's compile directory {blocker / 'cache'}"):
        pytensor_vae.configure_compiledir(blocker / "cache")


def test_asking_for_another_compiledir_after_pytensor_was_imported_raises(tmp_path):
    shared_model(CONFIGS[0])
    with pytest.raises(RuntimeError, match="PyTensor reads the directory only when first imported"):
        pytensor_vae.configure_compiledir(tmp_path / "elsewhere")
    assert pytensor_vae.configure_compiledir(pytensor_vae.compiledir()) == pytensor_vae.compiledir()


# ----- beta, free bits and schedules (notebook 09) ----------------------------
def _free_bits_between(ref, X, eps):
    """A lambda between the two smallest per-dimension mean KLs: one dimension held, the others not."""
    mu, logvar = ref.encode(X)
    kl = np.sort(0.5 * np.mean(np.exp(logvar) + mu * mu - 1 - logvar, axis=0))
    return float(0.5 * (kl[0] + kl[1]))


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=config_id)
def test_beta_and_free_bits_loss_and_gradients_match_numpy_in_float64(config):
    model, ref = twin(config)
    X, eps = data(2)
    lam = _free_bits_between(ref, X, eps)
    for kl_weight, free_bits in ((0.25, 0.0), (3.0, 0.0), (0.5, lam), (1.0, 10.0)):
        loss, grads = model.loss_and_grads(X, eps, kl_weight=kl_weight, free_bits=free_bits)
        ref_loss, ref_grads = ref.loss_and_grads(X, eps, kl_weight=kl_weight, free_bits=free_bits)
        assert abs(loss - ref_loss) < ELBO_RTOL_64 * abs(ref_loss), \
            f"beta={kl_weight}, lambda={free_bits}: loss {loss} != NumPy's {ref_loss}"
        for name in ref_grads:
            err = relative_error(grads[name], ref_grads[name])
            assert err < GRAD_RTOL_64, (f"beta={kl_weight}, lambda={free_bits}: gradient of {name} differs from "
                                        f"NumPy's by relative {err:.1e} (expected < 1e-8)")
    # beta and lambda are shared variables: new values, one compiled function
    assert list(model._functions).count("loss_and_grads") == 1
    loss, _ = model.loss_and_grads(X, eps)                       # back to the ELBO
    assert abs(loss + np.mean(ref.elbo_with_noise(X, eps))) < ELBO_RTOL_64 * abs(loss)


def test_train_with_a_warmup_and_free_bits_matches_numpys_train_in_float64():
    from vae_teach.schedules import linear_warmup

    model = shared_model(CONFIGS[0])
    ref = NumpyVAE(CONFIGS[0], seed=0, dtype=np.float64)
    model.set_params(ref.get_params())
    X_train = structured_data(100, 3)
    options = {"epochs": 2, "batch_size": 25, "lr": 1e-2, "seed": 4, "progress": False,
               "kl_weight": linear_warmup(1.0, 6), "free_bits": 0.05}
    history = pytensor_vae.train(model, X_train, **options)
    ref_history = numpy_train(ref, X_train, **options)
    err = relative_error(history.step_loss, ref_history.step_loss)
    assert err < PARAM_RTOL_64, f"step losses differ by relative {err:.1e} (expected < 1e-6)"
    assert history.step_loss[0] < history.step_loss[-1] + 50     # beta = 0 at the first step: finite


def test_bad_beta_free_bits_and_warmup_are_refused_clearly():
    from vae_teach.schedules import linear_warmup

    model, _ = twin(CONFIGS[0])
    X, eps = data()
    with pytest.raises(ValueError, match="kl_weight must be a finite number >= 0"):
        model.loss_and_grads(X, eps, kl_weight=-1.0)
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        model.loss_and_grads(X, eps, free_bits=-0.1)
    with pytest.raises(ValueError, match="ELBO objective only"):
        model.loss_and_grads(X, eps, objective="iwae", kl_weight=0.5)
    with pytest.raises(ValueError, match="longer than the training"):
        pytensor_vae.train(model, structured_data(50, 0), epochs=1, batch_size=25, kl_weight=linear_warmup(1.0, 3),
                           progress=False)
