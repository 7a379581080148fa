"""The from-scratch NumPy VAE: every backward pass against centred differences in float64."""

import numpy as np
import pytest

from vae_teach import elbo
from vae_teach.interface import VAEConfig, VAEModel
from vae_teach.numpy_vae import layers
from vae_teach.numpy_vae.gradcheck import (
    check_model_gradients,
    layer_errors,
    numerical_gradient,
    numerical_gradient_of_array,
    relative_error,
)
from vae_teach.numpy_vae.model import NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer, adagrad, adam, sgd

TOLERANCE = 1e-6  # the bar for float64 centred differences; correct code gives ~1e-8


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def assert_backward_matches(forward, backward, inputs, wrt, dout):
    """Compare backward(dout, cache)[k] with centred differences of sum(forward(*inputs) * dout)."""
    _, cache = forward(*inputs)
    analytic = backward(dout, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    for k in wrt:
        numeric = numerical_gradient_of_array(lambda: forward(*inputs)[0], inputs[k], dout)
        err = relative_error(numeric, analytic[k])
        assert err < TOLERANCE, f"{forward.__name__}: gradient of input {k} off by relative {err:.1e}"


def test_linear_backward(rng):
    x, W, b = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    assert_backward_matches(layers.linear_forward, layers.linear_backward, [x, W, b], [0, 1, 2],
                            rng.normal(size=(4, 3)))


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_activation_backward(rng, name):
    forward, backward = layers.ACTIVATION_LAYERS[name]
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # keep relu's kink away from the finite-difference step
    assert_backward_matches(forward, backward, [x], [0], rng.normal(size=(4, 6)))


def test_sigmoid_bce_backward(rng):
    logits = rng.normal(scale=3, size=(4, 7))
    X = rng.uniform(size=(4, 7))
    assert_backward_matches(layers.sigmoid_bce_forward, layers.sigmoid_bce_backward, [logits, X], [0],
                            rng.normal(size=4))


def test_sigmoid_bce_forward_is_the_negative_reference_log_likelihood(rng):
    logits, X = rng.normal(scale=30, size=(3, 5)), rng.uniform(size=(3, 5))
    nll, _ = layers.sigmoid_bce_forward(logits, X)
    np.testing.assert_allclose(nll, -elbo.bernoulli_log_likelihood(X, logits), rtol=1e-12)


def test_reparameterize_backward(rng):
    mu, logvar, eps = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    assert_backward_matches(layers.reparameterize_forward, layers.reparameterize_backward,
                            [mu, logvar, eps], [0, 1], rng.normal(size=(3, 2)))


def test_gaussian_kl_backward_and_forward(rng):
    mu, logvar = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    assert_backward_matches(layers.gaussian_kl_forward, layers.gaussian_kl_backward, [mu, logvar],
                            [0, 1], rng.normal(size=3))
    np.testing.assert_allclose(layers.gaussian_kl_forward(mu, logvar)[0], elbo.gaussian_kl(mu, logvar))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("scale", ["logvar", "logsigma"])
@pytest.mark.parametrize("hidden_dims", [(6,), (6, 5)])
def test_whole_elbo_gradient_through_reparameterisation_and_kl(rng, activation, scale, hidden_dims):
    config = VAEConfig(input_dim=8, hidden_dims=hidden_dims, latent_dim=3, activation=activation, scale=scale)
    model = NumpyVAE(config, seed=3, dtype=np.float64)
    X = rng.uniform(size=(5, 8))
    eps = rng.standard_normal((2, 5, 3))  # K = 2 samples of z per example
    errors = check_model_gradients(model, X, eps)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst} off by relative {errors[worst]:.1e}"


def test_gradient_check_catches_a_wrong_backward(rng, monkeypatch):
    """The checker must fail a plausible bug: sigma used where sigma/2 belongs (logvar vs log sigma)."""
    model = NumpyVAE(VAEConfig(input_dim=6, hidden_dims=(4,), latent_dim=2), seed=0, dtype=np.float64)
    from vae_teach.numpy_vae import model as model_module

    def wrong_backward(dz, cache):
        sigma, eps = cache
        return dz, dz * eps * sigma

    monkeypatch.setattr(model_module, "reparameterize_backward", wrong_backward)
    errors = check_model_gradients(model, rng.uniform(size=(4, 6)), rng.standard_normal((1, 4, 2)))
    assert errors["logvar_W"] > 1e-3
    assert errors["out_W"] < TOLERANCE  # the decoder's gradient does not go through the bug


def test_layer_errors_pass_a_correct_layer_and_catch_a_wrong_one(rng):
    inputs = [rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)]
    errors = layer_errors(layers.linear_forward, layers.linear_backward, inputs, ["x", "W", "b"])
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < TOLERANCE

    def wrong_linear_backward(dout, cache):  # db off by a factor of 2
        dx, dW, db = layers.linear_backward(dout, cache)
        return dx, dW, 2 * db

    errors = layer_errors(layers.linear_forward, wrong_linear_backward, inputs, ["x", "W", "b"])
    assert errors["x"] < TOLERANCE and errors["W"] < TOLERANCE and errors["b"] > 0.1
    one = layer_errors(layers.tanh_forward, layers.tanh_backward, [rng.normal(size=(3, 4))], ["x"], seed=3)
    assert one["x"] < TOLERANCE  # a backward that returns one array, not a tuple


def test_gradient_check_refuses_float32():
    model = NumpyVAE(VAEConfig(input_dim=4, hidden_dims=(3,), latent_dim=2), dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_model_gradients(model, np.zeros((2, 4)), np.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_model_elbo_matches_reference_maths(rng):
    config = VAEConfig(input_dim=10, hidden_dims=(7,), latent_dim=3)
    model = NumpyVAE(config, seed=1, dtype=np.float64)
    X = rng.uniform(size=(6, 10))
    eps = rng.standard_normal((4, 6, 3))
    mu, logvar = model.encode(X)
    expected = elbo.elbo_estimate(X, mu, logvar, eps, model.decode_logits)
    np.testing.assert_allclose(model.elbo_with_noise(X, eps), expected, rtol=1e-12)
    loss, _ = model.loss_and_grads(X, eps)
    np.testing.assert_allclose(loss, -expected.mean(), rtol=1e-12)


def test_protocol_shapes_dtypes_and_param_round_trip(rng):
    config = VAEConfig(input_dim=10, hidden_dims=(7, 5), latent_dim=3)
    model = NumpyVAE(config, seed=1)
    assert isinstance(model, VAEModel)
    X = rng.uniform(size=(6, 10))
    mu, logvar = model.encode(X)
    assert mu.shape == logvar.shape == (6, 3) and mu.dtype == np.float32
    X_mean = model.decode(mu)
    assert X_mean.shape == (6, 10) and X_mean.dtype == np.float32
    assert np.all((X_mean > 0) & (X_mean < 1))
    assert model.elbo(X, n_samples=3, seed=2).shape == (6,)
    np.testing.assert_array_equal(model.elbo(X, seed=2), model.elbo(X, seed=2))

    other = NumpyVAE(config, seed=99, dtype=np.float64)
    other.set_params(model.get_params())
    np.testing.assert_allclose(other.elbo(X, seed=2), model.elbo(X, seed=2), rtol=1e-5)
    params = model.get_params()
    params["mu_W"] = params["mu_W"][:, :2]
    with pytest.raises(ValueError, match=r"'mu_W' has shape \(5, 2\), expected \(5, 3\)"):
        other.set_params(params)
    with pytest.raises(ValueError, match="eps must have shape"):
        model.elbo_with_noise(X, np.zeros((1, 5, 3)))


def test_sgd_with_l2_is_weight_decay():
    w, dw = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    sgd(w, dw, {"lr": 0.1, "l2": 0.01})
    np.testing.assert_allclose(w, [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.5 - 0.02)])


def test_adam_first_step_moves_each_weight_by_lr():
    """After one step m/sqrt(v) = sign(g) once the bias is corrected, so |step| = lr (up to eps)."""
    w, dw = np.zeros(3), np.array([1e-3, -5.0, 2.0])
    config = adam(w, dw, {"lr": 0.01})
    np.testing.assert_allclose(w, -0.01 * np.sign(dw), rtol=1e-4)
    assert config["t"] == 1


def test_adagrad_accumulates_squared_gradients():
    w = np.zeros(2)
    config = adagrad(w, np.array([3.0, 4.0]), {"lr": 1.0})
    adagrad(w, np.array([4.0, 3.0]), config)
    np.testing.assert_allclose(config["sum_sq"], [25.0, 25.0])
    np.testing.assert_allclose(w, [-1 - 4 / 5, -1 - 3 / 5], rtol=1e-9)


def test_adam_moment_floor_keeps_moments_of_dead_pixels_at_zero():
    w = np.zeros(2, dtype=np.float32)
    config = {"lr": 1e-3, "moment_floor": 1e-30}
    adam(w, np.array([1e-20, 1.0], dtype=np.float32), config)
    for _ in range(200):  # the first entry's gradient is now exactly zero, so m decays by 0.9 a step
        adam(w, np.array([0.0, 1.0], dtype=np.float32), config)
    assert config["m"][0] == 0 and config["v"][0] == 0
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32
    assert np.all((np.abs(config["m"]) >= tiny) | (config["m"] == 0)), "a subnormal moment survived"


def test_optimizer_rejects_unknown_rule_and_updates_in_place():
    with pytest.raises(ValueError, match="choose one of"):
        Optimizer("rmsprop")
    params = {"a": np.ones(2)}
    before = params["a"]
    Optimizer("sgd", lr=0.5).step(params, {"a": np.ones(2)})
    assert params["a"] is before
    np.testing.assert_allclose(before, [0.5, 0.5])


# ----- lesson 07: the likelihoods; lesson 08: the IWAE objective and a free q(z|x)
LIKELIHOOD_NAMES = ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli"]


def _likelihood_model(rng, likelihood, hidden_dims=(7,), small_logits=False):
    config = VAEConfig(12, hidden_dims, 3, "tanh", "logvar", likelihood=likelihood, output_logvar=-1.3)
    model = NumpyVAE(config, seed=1, dtype=np.float64)
    if likelihood == "gaussian-learned":
        model.params["out_logvar"] = rng.normal(size=12) * 0.5 - 1.0
    if small_logits:  # logits within 1e-2 of 0 for some pixels: the CB normaliser's series branch
        model.params["out_W"] *= 1e-3
        model.params["out_b"][:6] = 0.0
        model.params["out_b"][6:] *= 1e-3
    return model


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("likelihood", LIKELIHOOD_NAMES)
def test_every_likelihood_and_objective_has_a_correct_gradient(rng, likelihood, objective):
    model = _likelihood_model(rng, likelihood, hidden_dims=(7, 5))
    X = rng.random((5, 12))
    errors = check_model_gradients(model, X, rng.normal(size=(4, 5, 3)), objective=objective)
    assert set(errors) == set(model.params)
    assert max(errors.values()) < TOLERANCE, errors


def test_continuous_bernoulli_gradient_is_right_where_lambda_is_one_half(rng):
    model = _likelihood_model(rng, "continuous-bernoulli", small_logits=True)
    X = rng.random((5, 12))
    eps = rng.normal(size=(2, 5, 3))
    logits = model.decode_logits(model.encode(X)[0])
    assert np.mean(np.abs(logits) < 1e-2) > 0.4          # the series branch is exercised
    errors = check_model_gradients(model, X, eps)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("likelihood", LIKELIHOOD_NAMES)
def test_likelihood_layers_backward(rng, likelihood):
    logits, X, dout = rng.normal(size=(4, 6)), rng.random((4, 6)), rng.normal(size=4)
    if likelihood == "continuous-bernoulli":
        logits[0, :3] = [0.0, 3e-3, -8e-3]
        assert_backward_matches(layers.continuous_bernoulli_nll_forward, layers.continuous_bernoulli_nll_backward,
                                [logits, X], [0], dout)
        nll, _ = layers.continuous_bernoulli_nll_forward(logits, X)
        np.testing.assert_allclose(nll, -elbo.continuous_bernoulli_log_likelihood(X, logits), rtol=1e-13)
    elif likelihood.startswith("gaussian"):
        logvar = rng.normal(size=6) if likelihood == "gaussian-learned" else np.float64(-0.7)
        logvar = np.asarray(logvar)
        assert_backward_matches(layers.sigmoid_gaussian_nll_forward, layers.sigmoid_gaussian_nll_backward,
                                [logits, X, logvar], [0], dout)
        nll, cache = layers.sigmoid_gaussian_nll_forward(logits, X, logvar)
        dlogvar = layers.sigmoid_gaussian_nll_backward(dout, cache)[1]     # (D,): summed over the batch
        numeric = numerical_gradient_of_array(
            lambda: layers.sigmoid_gaussian_nll_forward(logits, X, logvar)[0], logvar, dout)
        assert relative_error(numeric, dlogvar if logvar.ndim else dlogvar.sum()) < TOLERANCE
        np.testing.assert_allclose(nll, -elbo.log_likelihood(X, logits, likelihood, logvar), rtol=1e-13)
    else:
        assert_backward_matches(layers.sigmoid_bce_forward, layers.sigmoid_bce_backward, [logits, X], [0], dout)


@pytest.mark.parametrize("likelihood", LIKELIHOOD_NAMES)
def test_model_elbo_decode_and_log_likelihood_follow_the_config(rng, likelihood):
    model = _likelihood_model(rng, likelihood)
    X, eps = rng.random((4, 12)), rng.normal(size=(3, 4, 3))
    mu, logvar = model.encode(X)
    expected = elbo.elbo_estimate(X, mu, logvar, eps, model.decode_logits, likelihood, model.output_logvar)
    np.testing.assert_allclose(model.elbo_with_noise(X, eps), expected, rtol=1e-12)
    Z = rng.normal(size=(4, 3))
    np.testing.assert_allclose(model.decode(Z), elbo.likelihood_mean(model.decode_logits(Z), likelihood), rtol=1e-14)
    np.testing.assert_allclose(model.log_likelihood(X, Z),
                               elbo.log_likelihood(X, model.decode_logits(Z), likelihood, model.output_logvar))
    learned = likelihood == "gaussian-learned"
    assert ("out_logvar" in model.get_params()) == learned
    if learned:
        assert model.get_params()["out_logvar"].shape == (12,)
        with pytest.raises(ValueError, match="missing 'out_logvar'"):
            model.set_params({k: v for k, v in model.get_params().items() if k != "out_logvar"})
    if likelihood == "gaussian":
        assert model.output_logvar == -1.3


def test_learned_variance_starts_at_output_logvar_and_config_refuses_nonsense():
    model = NumpyVAE(VAEConfig(8, (4,), 2, likelihood="gaussian-learned", output_logvar=-2.0))
    np.testing.assert_array_equal(model.params["out_logvar"], np.full(8, -2.0, np.float32))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        VAEConfig(8, likelihood="gauss")
    with pytest.raises(ValueError, match="finite"):
        VAEConfig(8, likelihood="gaussian", output_logvar=float("nan"))
    assert VAEConfig.from_dict({"input_dim": 8, "hidden_dims": [4], "latent_dim": 2}).likelihood == "bernoulli"


def test_iwae_with_one_sample_is_the_log_weight_and_never_below_the_mean_log_weight(rng):
    model = _likelihood_model(rng, "bernoulli")
    X = rng.random((5, 12))
    eps = rng.normal(size=(6, 5, 3))
    mu, logvar = model.encode(X)
    Z = mu + np.exp(0.5 * logvar) * eps
    log_px = np.stack([model.log_likelihood(X, Z[k]) for k in range(6)])
    log_w = elbo.log_importance_weights(log_px, Z, mu, logvar)
    np.testing.assert_allclose(model.iwae_with_noise(X, eps), elbo.iwae_bound(log_w), rtol=1e-12)
    np.testing.assert_allclose(model.iwae_with_noise(X, eps[:1]), log_w[0], rtol=1e-12)
    # Jensen, sample by sample: log mean w >= mean log w (the ELBO with a Monte Carlo KL).
    assert np.all(model.iwae_with_noise(X, eps) >= log_w.mean(axis=0) - 1e-12)


def test_kl_weight_scales_the_kl_and_is_refused_for_iwae(rng):
    model = _likelihood_model(rng, "bernoulli")
    X, eps = rng.random((5, 12)), rng.normal(size=(2, 5, 3))
    loss1, _ = model.loss_and_grads(X, eps)
    loss_beta, grads = model.loss_and_grads(X, eps, kl_weight=784.0)
    kl = elbo.gaussian_kl(*model.encode(X)).mean()
    assert loss_beta - loss1 == pytest.approx(783 * kl, rel=1e-10)
    w = model.params["mu_W"]
    numeric = numerical_gradient(lambda: model.loss_and_grads(X, eps, kl_weight=784.0)[0], w)
    assert relative_error(numeric, grads["mu_W"]) < TOLERANCE
    with pytest.raises(ValueError, match="ELBO objective only"):
        model.loss_and_grads(X, eps, objective="iwae", kl_weight=2.0)
    with pytest.raises(ValueError, match="objective must be one of"):
        model.loss_and_grads(X, eps, objective="vimco")


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
def test_latent_elbo_and_grads_match_centred_differences_and_the_encoder_path(rng, likelihood):
    model = _likelihood_model(rng, likelihood)
    X, eps = rng.random((4, 12)), rng.normal(size=(3, 4, 3))
    mu, logvar = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 0.3
    value, dmu, dlogvar = model.latent_elbo_and_grads(X, mu, logvar, eps)
    for array, analytic in ((mu, dmu), (logvar, dlogvar)):
        numeric = numerical_gradient(lambda: float(model.latent_elbo_and_grads(X, mu, logvar, eps)[0].sum()), array)
        assert relative_error(numeric, analytic) < TOLERANCE
    mu_enc, logvar_enc = model.encode(X)
    np.testing.assert_allclose(model.latent_elbo_and_grads(X, mu_enc, logvar_enc, eps)[0],
                               model.elbo_with_noise(X, eps), rtol=1e-13)
    params_before = model.get_params()
    model.latent_elbo_and_grads(X, mu, logvar, eps)
    for name, value in model.get_params().items():           # the decoder is held fixed
        np.testing.assert_array_equal(value, params_before[name])
    with pytest.raises(ValueError, match=r"shape \(N, L\) = \(4, 3\)"):
        model.latent_elbo_and_grads(X, mu[:, :2], logvar, eps)


@pytest.mark.parametrize("free_bits", [0.05, 0.08, 5.0])
def test_free_bits_term_and_its_gradient(rng, free_bits):
    # Kingma et al. (2016): the KL term is sum_l max(lambda, mean_n KL_nl); with lambda between the
    # dimensions' KLs some are held (no gradient) and some are not; lambda = 5 holds all of them.
    model = _likelihood_model(rng, "bernoulli")
    X, eps = rng.random((5, 12)), rng.normal(size=(2, 5, 3))
    loss, grads = model.loss_and_grads(X, eps, kl_weight=2.0, free_bits=free_bits)
    mu, logvar = model.encode(X)
    kl_per_dim = 0.5 * np.mean(np.exp(logvar) + mu**2 - 1 - logvar, axis=0)
    plain, plain_grads = model.loss_and_grads(X, eps, kl_weight=0.0)
    assert loss - plain == pytest.approx(2.0 * np.maximum(kl_per_dim, free_bits).sum(), rel=1e-10)
    for name in ("mu_W", "logvar_W", "enc0_W", "logvar_b"):
        w = model.params[name]
        numeric = numerical_gradient(lambda: model.loss_and_grads(X, eps, kl_weight=2.0, free_bits=free_bits)[0], w)
        assert relative_error(numeric, grads[name]) < TOLERANCE, name
    held = kl_per_dim <= free_bits
    if held.all():                                      # every dimension held: the KL adds no gradient at all
        assert all(np.array_equal(grads[k], plain_grads[k]) for k in grads)
    else:
        assert not np.allclose(grads["mu_W"], plain_grads["mu_W"])


@pytest.mark.parametrize("kwargs, match", [
    ({"kl_weight": -1.0}, "kl_weight must be a finite number >= 0"),
    ({"free_bits": -0.5}, "free_bits must be a finite number >= 0"),
    ({"objective": "iwae", "free_bits": 0.5}, "ELBO objective only"),
])
def test_bad_kl_settings_say_what_to_do(rng, kwargs, match):
    model = _likelihood_model(rng, "bernoulli")
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(rng.random((5, 12)), rng.normal(size=(2, 5, 3)), **kwargs)
