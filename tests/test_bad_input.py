"""Bad input gets a clear error naming the argument and the remedy; training never dies silently;
nothing is half-written (issue #12)."""

import importlib.util
import json
import math

import numpy as np
import pytest

from vae_teach import checks, data, elbo, evaluate, files
from vae_teach.amortisation import optimise_local_posteriors
from vae_teach.cli import main
from vae_teach.interface import VAEConfig, init_params
from vae_teach.linear_gaussian import LinearGaussian
from vae_teach.numpy_vae import NumpyVAE, train
from vae_teach.training import History, TrainingDivergedError, fit

D, L, N = 12, 2, 5
CONFIG = VAEConfig(input_dim=D, hidden_dims=(8,), latent_dim=L)
rng = np.random.default_rng(0)
X_OK = rng.random((N, D))
Z_OK = rng.standard_normal((N, L))
X_NAN = X_OK.copy()
X_NAN[1, 3] = np.nan
X_255 = X_OK * 255
X_NEG = X_OK - 1.0


def numpy_model():
    return NumpyVAE(CONFIG, seed=0)


# The checks and the training loop's divergence handling sit in Python, before and after the compiled
# functions; FAST_COMPILE builds those in ~2 s where the default Numba backend takes ~50 s cold
# (tests/test_pytensor_vae.py ties the modes' numbers together).
PYTENSOR_MODE = "FAST_COMPILE"


def pytensor_model():
    if importlib.util.find_spec("pytensor") is None:   # not importorskip: vae_teach chooses the compiledir first
        pytest.skip("pip install 'vae_teach[pytensor]'")
    from vae_teach.pytensor_vae import PytensorVAE

    return PytensorVAE(CONFIG, seed=0, mode=PYTENSOR_MODE)


def torch_model():
    pytest.importorskip("torch")
    from vae_teach.torch_vae import TorchModel

    return TorchModel(CONFIG, seed=0, device="cpu")


BACKENDS = {"numpy": numpy_model, "pytensor": pytensor_model, "torch": torch_model}

# (call on a model, error type, regex the message must match: the argument and the remedy)
MODEL_CASES = {
    "nan-pixels-elbo": (lambda m: m.elbo(X_NAN), ValueError, r"X has 1 NaN or infinite.*nan_to_num"),
    "255-pixels-elbo": (lambda m: m.elbo(X_255), ValueError, r"X has pixels up to 25\d.*divide 0..255 images by 255.*load_dataset"),
    "uint8-pixels-encode": (lambda m: m.encode((X_OK * 255).astype(np.uint8)), ValueError, r"X has pixels up to \d+.*divide"),
    "negative-pixels": (lambda m: m.elbo(X_NEG), ValueError, r"X has pixels down to .*rescale them into \[0, 1\]"),
    "1d-encode": (lambda m: m.encode(X_OK[0]), ValueError, r"X must be a 2-D array \(N, 12\).*reshape\(1, -1\)"),
    "wrong-width-encode": (lambda m: m.encode(X_OK[:, :5]), ValueError, r"X must have 12 pixels.*got shape \(5, 5\)"),
    "wrong-width-decode": (lambda m: m.decode(np.zeros((3, 4))), ValueError, r"Z must have 2 latent dimensions.*shape \(3, 4\)"),
    "wrong-width-elbo": (lambda m: m.elbo(np.zeros((3, 7))), ValueError, r"X must have 12 pixels"),
    "rows-mismatch-log-likelihood": (lambda m: m.log_likelihood(X_OK[:1], Z_OK[:3]), ValueError, r"X and Z must have .*same number of rows"),
    "empty-x": (lambda m: m.encode(np.zeros((0, D))), ValueError, r"X has no rows.*at least one"),
    "object-dtype": (lambda m: m.encode(np.array([["a"] * D], dtype=object)), TypeError, r"X must be an array of real numbers.*dtype object"),
    "n-samples-zero": (lambda m: m.elbo(X_OK, n_samples=0), ValueError, r"n_samples must be >= 1"),
    "negative-seed": (lambda m: m.elbo(X_OK, seed=-1), ValueError, r"seed must be an integer >= 0.*abs\(seed\)"),
    "float-seed": (lambda m: m.elbo(X_OK, seed=0.5), TypeError, r"seed must be an integer"),
    "nan-latent-decode": (lambda m: m.decode(np.full((2, L), np.nan)), ValueError, r"Z has 4 NaN or infinite"),
    "params-wrong-shape": (lambda m: m.set_params({**m.get_params(), "mu_W": np.zeros((3, 3))}), ValueError,
                           r"'mu_W' has shape \(3, 3\), expected \(8, 2\).*config the weights were trained with"),
    "params-missing": (lambda m: m.set_params({k: v for k, v in m.get_params().items() if k != "out_b"}), ValueError,
                       r"missing 'out_b' \(expected shape \(12,\)\)"),
    "params-extra": (lambda m: m.set_params({**m.get_params(), "enc1_W": np.zeros((8, 8))}), ValueError, r"unexpected 'enc1_W'"),
    "params-nan": (lambda m: m.set_params({**m.get_params(), "out_b": np.full(D, np.nan)}), ValueError, r"'out_b' has NaN"),
    "params-not-a-dict": (lambda m: m.set_params([1, 2]), TypeError, r"params must be a dict"),
    "eps-wrong-shape": (lambda m: m.elbo_with_noise(X_OK, np.zeros((1, N, 3))), ValueError, r"eps must have shape \(K, N, L\) = \(K, 5, 2\).*draw_noise"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MODEL_CASES)
def test_every_backend_refuses_bad_input_naming_the_argument_and_the_remedy(backend, case):
    call, error, pattern = MODEL_CASES[case]
    model = BACKENDS[backend]()
    with pytest.raises(error, match=pattern):
        call(model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gaussian_likelihood_takes_any_real_pixels(backend):
    """A Gaussian is a density on every real number: no [0, 1] check for it."""
    model = BACKENDS[backend]()
    if backend == "numpy":
        model = NumpyVAE(VAEConfig(D, (8,), L, likelihood="gaussian"), seed=0)
    elif backend == "pytensor":
        from vae_teach.pytensor_vae import PytensorVAE
        model = PytensorVAE(VAEConfig(D, (8,), L, likelihood="gaussian"), seed=0, mode=PYTENSOR_MODE)
    else:
        from vae_teach.torch_vae import TorchModel
        model = TorchModel(VAEConfig(D, (8,), L, likelihood="gaussian"), seed=0, device="cpu")
    assert np.isfinite(model.elbo(X_NEG * 3)).all()
    with pytest.raises(ValueError, match="NaN"):
        model.elbo(X_NAN)


# ----- the reference maths, evaluation, data ------------------------------------------
FUNCTION_CASES = {
    "bernoulli-pixel-2": (lambda: elbo.bernoulli_log_likelihood(np.array([[2.0, 0.0]]), np.zeros((1, 2))),
                          ValueError, r"X has pixels up to 2.*bernoulli likelihood needs.*\[0, 1\].*divide"),
    "bernoulli-nan": (lambda: elbo.bernoulli_log_likelihood(X_NAN, np.zeros((N, D))), ValueError, r"X has 1 NaN"),
    "bernoulli-logits-n-by-1": (lambda: elbo.bernoulli_log_likelihood(X_OK, np.zeros((N, 1))), ValueError,
                                r"logits must have one entry per pixel, shape \(\.\.\., D\) with D = 12 as X, got shape \(5, 1\)"),
    "continuous-bernoulli-minus-1": (lambda: elbo.continuous_bernoulli_log_likelihood(np.array([[-1.0]]), np.zeros((1, 1))),
                                     ValueError, r"X has pixels down to -1.*continuous-bernoulli likelihood"),
    "log-likelihood-unknown": (lambda: elbo.log_likelihood(X_OK, np.zeros((N, D)), "laplace"), ValueError,
                               r"unknown likelihood 'laplace'.*must be one of"),
    "gaussian-nan": (lambda: elbo.gaussian_log_likelihood(X_NAN, 0.5, 0.0), ValueError, r"X has 1 NaN"),
    "gaussian-logvar-n-by-1": (lambda: elbo.gaussian_log_likelihood(X_OK, X_OK, np.zeros((N, 1))), ValueError,
                               r"logvar must be a scalar or \(\.\.\., D\) with D = 12"),
    "kl-logvar-n-by-1": (lambda: elbo.gaussian_kl(Z_OK, np.zeros((N, 1))), ValueError,
                         r"logvar must have shape \(N, L\) = \(5, 2\).*nothing is broadcast"),
    "reparameterize-logvar-n-by-1": (lambda: elbo.reparameterize(Z_OK, np.zeros((N, 1)), Z_OK), ValueError, r"logvar must have shape"),
    "iwae-1d": (lambda: elbo.iwae_bound(np.zeros(5)), ValueError, r"log_weights must be \(K, N\).*\[:, None\]"),
    "iwae-nan": (lambda: elbo.iwae_bound(np.array([[np.nan, 0.0]])), ValueError, r"log_weights has NaN"),
    "importance-weights-rows": (lambda: elbo.log_importance_weights(np.zeros((3, 1)), np.zeros((3, N, L)), Z_OK, Z_OK),
                                ValueError, r"log_px_given_z must be \(K, N\) = \(3, 5\)"),
    "binarize-static-nan": (lambda: data.binarize_static(X_NAN, 0), ValueError, r"X has 1 NaN or infinite pixels"),
    "binarize-static-255": (lambda: data.binarize_static(X_255, 0), ValueError, r"binarize_static needs .*divide 0..255"),
    "dequantize-negative": (lambda: data.dequantize(X_NEG, 0), ValueError, r"X has pixels down to.*dequantize"),
    "log-marginal-nan": (lambda: LinearGaussian.random(D, L).log_marginal(X_NAN), ValueError, r"X has 1 NaN"),
    "log-marginal-width": (lambda: LinearGaussian.random(D, L).log_marginal(X_OK[:, :3]), ValueError, r"X must have 12"),
    "linear-gaussian-q-logvar-n-by-1": (lambda: LinearGaussian.random(D, L).elbo(X_OK, Z_OK, q_logvar=np.zeros((N, 1))),
                                        ValueError, r"q_logvar must be \(N, L\) = \(5, 2\)"),
    "noise-var-negative": (lambda: LinearGaussian(np.ones((1, 2)), np.zeros(2), -1.0), ValueError, r"noise_var must be a finite number > 0"),
    "is-nan-pixels": (lambda: evaluate.importance_sampled_log_likelihood(numpy_model(), X_NAN, k=3), ValueError, r"X has 1 NaN"),
    "is-k-zero": (lambda: evaluate.importance_sampled_log_likelihood(numpy_model(), X_OK, k=0), ValueError, r"k must be >= 1"),
    "is-proposal-shape": (lambda: evaluate.importance_sampled_log_likelihood(numpy_model(), X_OK, k=2, proposal=(Z_OK, Z_OK[:, :1])),
                          ValueError, r"proposal must be \(mu, logvar\).*logvar must have shape"),
    "dataset-elbo-255": (lambda: evaluate.dataset_elbo(numpy_model(), X_255), ValueError, r"X has pixels up to"),
    "elbo-of-q-logvar": (lambda: evaluate.elbo_of_q(numpy_model(), X_OK, Z_OK, np.zeros((N, 1))), ValueError, r"logvar must have shape"),
    "local-posteriors-lr": (lambda: optimise_local_posteriors(numpy_model(), X_OK, lr=-1.0), ValueError, r"lr must be a finite number > 0"),
    "bits-per-dim-nan": (lambda: evaluate.bits_per_dim(np.nan, D), ValueError, r"log_likelihood_nats has NaN"),
}


@pytest.mark.parametrize("case", FUNCTION_CASES)
def test_functions_refuse_bad_input_naming_the_argument_and_the_remedy(case):
    call, error, pattern = FUNCTION_CASES[case]
    with pytest.raises(error, match=pattern):
        call()


# ----- training arguments ------------------------------------------------------------
TRAIN_CASES = {
    "epochs-negative": (dict(epochs=-1), ValueError, r"epochs must be >= 0"),
    "batch-size-zero": (dict(batch_size=0), ValueError, r"batch_size must be >= 1"),
    "batch-size-float": (dict(batch_size=2.5), TypeError, r"batch_size must be an integer"),
    "lr-zero": (dict(lr=0.0), ValueError, r"lr must be a finite number > 0.*try 1e-3"),
    "lr-nan": (dict(lr=math.nan), ValueError, r"lr must be a finite number > 0"),
    "n-samples-negative": (dict(n_samples=-2), ValueError, r"n_samples must be >= 1"),
    "seed-negative": (dict(seed=-3), ValueError, r"seed must be an integer >= 0"),
    "binarize-unknown": (dict(binarize="sometimes"), ValueError, r"unknown binarize 'sometimes'"),
    "objective-unknown": (dict(objective="vimco"), ValueError, r"unknown objective 'vimco'"),
    "x-train-255": (dict(X_train=X_255), ValueError, r"X_train has pixels up to .*divide"),
    "x-test-nan": (dict(X_test=X_NAN), ValueError, r"X_test has 1 NaN"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_every_backend_train_refuses_bad_arguments_before_training(backend, case):
    from vae_teach.backends import trainer

    options, error, pattern = TRAIN_CASES[case]
    model = BACKENDS[backend]()
    before = model.get_params()
    kwargs = dict(epochs=1, batch_size=2, progress=False) | options
    X = kwargs.pop("X_train", X_OK)
    with pytest.raises(error, match=pattern):
        trainer(backend)(model, X, **kwargs)
    for name, value in model.get_params().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed")


def test_unknown_backend_names_the_choices():
    from vae_teach.backends import make_model

    with pytest.raises(ValueError, match=r"unknown backend 'jax'.*numpy"):
        make_model("jax", CONFIG)


# ----- divergence --------------------------------------------------------------------
def _diverging_run(model, backend, steps):
    """A run whose every epoch is one step (N = batch size), plain SGD with a learning rate of 1e4."""
    from vae_teach.backends import trainer

    with np.errstate(all="ignore"):
        trainer(backend)(model, X_OK, epochs=steps, batch_size=N, optimizer="sgd", lr=1e4, seed=0,
                         progress=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_stops_naming_epoch_step_and_last_finite_loss_and_keeps_the_last_good_params(backend):
    model = BACKENDS[backend]()
    with pytest.raises(TrainingDivergedError) as info:
        _diverging_run(model, backend, 50)
    error = info.value
    assert error.step >= 2 and error.epoch == error.step and math.isfinite(error.last_finite_loss)
    message = str(error)
    assert f"at step {error.step} (epoch {error.epoch})" in message
    assert f"last finite loss was {error.last_finite_loss:.6g}" in message
    assert "Lower the learning rate" in message and "logvar" in message
    assert isinstance(error, RuntimeError) and isinstance(error, FloatingPointError)
    # The parameters are those before the failing step: the same run stopped one step earlier.
    good = BACKENDS[backend]()
    _diverging_run(good, backend, error.step - 1)
    for name, value in good.get_params().items():
        np.testing.assert_array_equal(model.get_params()[name], value, err_msg=name)


def test_a_nan_gradient_with_a_finite_loss_stops_training_and_changes_nothing(monkeypatch):
    model = numpy_model()
    before = model.get_params()
    real = NumpyVAE._loss_and_grads

    def nan_gradient(self, *args, **kwargs):
        loss, grads = real(self, *args, **kwargs)
        grads["enc0_W"][0, 0] = np.nan
        return loss, grads

    monkeypatch.setattr(NumpyVAE, "_loss_and_grads", nan_gradient)
    with pytest.raises(TrainingDivergedError, match=r"loss or its gradient became nan at step 1 \(epoch 1\).*no step had"):
        train(model, X_OK, epochs=2, batch_size=N, progress=False)
    for name, value in model.get_params().items():
        np.testing.assert_array_equal(value, before[name])


def test_fit_names_the_last_finite_loss():
    losses = iter([3.0, 2.5, math.inf])
    with pytest.raises(TrainingDivergedError, match=r"became inf at step 3 \(epoch 2\).*last finite loss was 2.5 "):
        fit(lambda B: next(losses), np.zeros((4, 3)), epochs=3, batch_size=2, lr=0.5, progress=False)


def test_the_cli_exits_non_zero_on_divergence_with_the_reason_on_stderr(tmp_path, capsys):
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        code = main(["train", "--latent-dim", "2", "--hidden", "16", "--epochs", "3", "--optimizer", "sgd",
                     "--lr", "1e6", "--out", str(out), "--quiet"])
    assert code != 0
    err = capsys.readouterr().err
    assert "training diverged" in err and "step" in err and "epoch" in err and "Lower the learning rate" in err
    assert not (out / "params.npz").exists()


# ----- the command line --------------------------------------------------------------
CLI_CASES = {
    "epochs": (["--epochs", "-1"], r"--epochs must be >= 0"),
    "batch-size": (["--batch-size", "0"], r"--batch-size must be >= 1"),
    "lr": (["--lr", "0"], r"--lr must be > 0"),
    "samples": (["--samples", "0"], r"--samples must be >= 1"),
    "hidden": (["--hidden", "0"], r"--hidden sizes must be >= 1"),
    "latent-dim": (["--latent-dim", "0"], r"--latent-dim must be >= 1"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_cli_refuses_bad_numbers_before_loading_anything(case, tmp_path, capsys):
    flags, pattern = CLI_CASES[case]
    out = tmp_path / "run"
    assert main(["train", *flags, "--out", str(out), "--quiet"]) == 2
    assert __import__("re").search(pattern, capsys.readouterr().err)
    assert not out.exists()


def test_the_cli_refuses_to_overwrite_a_run_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "params.npz").write_bytes(b"previous")
    assert main(["train", "--epochs", "0", "--hidden", "4", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run (params.npz)" in err and "pass --force" in err
    assert (out / "params.npz").read_bytes() == b"previous"
    assert main(["train", "--epochs", "1", "--hidden", "4", "--out", str(out), "--quiet", "--force"]) == 0
    assert files.load_npz(out / "params.npz")["out_b"].shape == (784,)


# ----- nothing half-written, loading strict ------------------------------------------
def test_an_interrupted_write_leaves_the_previous_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"
    files.save_npz(path, {"a": np.arange(3)})
    previous = path.read_bytes()

    def interrupted(file, **arrays):
        with open(file, "wb") as handle:
            handle.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.save_npz(path, {"a": np.arange(5)})
    assert path.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.npz"]


def test_an_interrupted_history_save_keeps_the_old_history(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    History(step_loss=[1.0]).save(path)
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        History(step_loss=[2.0]).save(path)
    assert History.load(path).step_loss == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_a_truncated_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "params.npz"
    files.save_npz(path, init_params(CONFIG))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"could not read the weights file .*params.npz: it is truncated"):
        files.load_npz(path)
    with pytest.raises(FileNotFoundError, match=r"no weights file at"):
        files.load_npz(tmp_path / "missing.npz")


def test_a_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled objects"):
        files.load_npz(path)


def test_a_corrupted_torch_checkpoint_is_a_clear_error(tmp_path):
    pytest.importorskip("torch")
    from vae_teach.torch_vae import load_checkpoint, save_checkpoint

    path = save_checkpoint(torch_model(), tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"could not read the checkpoint .*corrupt or truncated"):
        load_checkpoint(path, device="cpu")


def test_the_shipped_weights_load_and_a_missing_file_says_how_to_make_it(tmp_path):
    from vae_teach import weights

    model, spec = weights.load("faces_2d")
    assert model.latent_dim == 2 and spec["dataset"] == "synthetic-faces"
    with pytest.raises(FileNotFoundError, match=r"python -m vae_teach.weights"):
        weights.load("faces_2d", folder=tmp_path)


def test_checks_count_refuses_bools_and_floats():
    with pytest.raises(TypeError, match="epochs must be an integer"):
        checks.count(True, "epochs")
    with pytest.raises(TypeError, match="pass 3"):
        checks.count(3.0, "epochs")
