"""The deterministic autoencoder of lesson 01: gradients against centred differences, shapes, training."""

import numpy as np
import pytest

from vae_teach import elbo
from vae_teach.autoencoder import Autoencoder, autoencoder_param_shapes, gradient_errors, train
from vae_teach.numpy_vae.gradcheck import centred_difference, relative_error
from vae_teach.training import History

TOLERANCE = 1e-6  # the bar for float64 centred differences; correct code gives ~1e-8


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("hidden_dims", [(), (6,), (6, 5)])
def test_every_gradient_matches_centred_differences(rng, activation, hidden_dims):
    model = Autoencoder(8, hidden_dims, 3, activation=activation, seed=3, dtype=np.float64)
    X = rng.uniform(size=(5, 8))
    errors = gradient_errors(model, X)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst} off by relative {errors[worst]:.1e}"


def test_gradients_match_an_independent_finite_difference_loop(rng):
    """The same check written out without ``gradient_errors``, on every entry of every parameter."""
    model = Autoencoder(6, (4,), 2, seed=1, dtype=np.float64)
    X = rng.uniform(size=(3, 6))
    _, grads = model.loss_and_grads(X)

    def loss():
        return model.loss_and_grads(X)[0]

    for name, w in model.params.items():
        numeric = np.array([centred_difference(loss, w, i) for i in np.ndindex(w.shape)]).reshape(w.shape)
        err = relative_error(numeric, grads[name])
        assert err < TOLERANCE, f"gradient of {name} off by relative {err:.1e}"


def test_gradient_check_catches_a_wrong_backward(rng, monkeypatch):
    """The check must fail a plausible bug: the ReLU's gradient passed everywhere, not only where x > 0."""
    model = Autoencoder(6, (5,), 2, seed=0, dtype=np.float64)
    monkeypatch.setattr(model, "_act_backward", lambda dout, cache: dout)
    errors = gradient_errors(model, rng.uniform(size=(4, 6)))
    assert errors["enc0_W"] > 1e-3 and errors["dec0_W"] > 1e-3
    assert errors["out_W"] < TOLERANCE  # the output layer's gradient does not go through the bug


def test_gradient_check_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradient_errors(Autoencoder(4, (3,), 2), np.zeros((2, 4)))


def test_loss_is_the_mean_bce_from_the_reference_maths(rng):
    model = Autoencoder(10, (7,), 3, seed=2, dtype=np.float64)
    X = rng.uniform(size=(6, 10))
    logits = model.decode_logits(model.encode(X))
    expected = -elbo.bernoulli_log_likelihood(X, logits)                    # (N,)
    np.testing.assert_allclose(model.reconstruction_bce(X), expected, rtol=1e-12)
    loss, _ = model.loss_and_grads(X)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-12)
    np.testing.assert_allclose(model.decode(model.encode(X)), elbo.sigmoid(logits), rtol=1e-12)


def test_shapes_dtypes_names_and_param_round_trip(rng):
    model = Autoencoder(10, (7, 5), 3, seed=1)
    assert list(model.params) == ["enc0_W", "enc0_b", "enc1_W", "enc1_b", "code_W", "code_b",
                                  "dec0_W", "dec0_b", "dec1_W", "dec1_b", "out_W", "out_b"]
    assert {k: v.shape for k, v in model.params.items()} == autoencoder_param_shapes(10, (7, 5), 3)
    assert model.params["dec0_W"].shape == (3, 5) and model.params["out_W"].shape == (7, 10)
    X = rng.uniform(size=(6, 10))
    codes = model.encode(X)
    assert codes.shape == (6, 3) and codes.dtype == np.float32
    X_mean = model.decode(codes)
    assert X_mean.shape == (6, 10) and X_mean.dtype == np.float32
    assert np.all((X_mean > 0) & (X_mean < 1))
    assert model.reconstruction_bce(X).shape == (6,)
    loss, grads = model.loss_and_grads(X)
    assert isinstance(loss, float)
    assert all(grads[k].shape == v.shape for k, v in model.params.items())

    other = Autoencoder(10, (7, 5), 3, seed=99, dtype=np.float64)
    other.set_params(model.get_params())
    np.testing.assert_allclose(other.encode(X), model.encode(X), rtol=1e-5, atol=1e-6)
    params = model.get_params()
    params["code_W"] = params["code_W"][:, :2]
    with pytest.raises(ValueError, match="do not fit"):
        other.set_params(params)


def test_same_seed_same_weights_and_bad_inputs_are_refused():
    a, b = Autoencoder(5, (4,), 2, seed=3), Autoencoder(5, (4,), 2, seed=3)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    with pytest.raises(ValueError, match=r"X must have shape \(N, 5\)"):
        a.encode(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"codes must have shape \(N, 2\)"):
        a.decode(np.zeros(2))
    with pytest.raises(ValueError, match="activation"):
        Autoencoder(5, (4,), 2, activation="sigmoid")
    with pytest.raises(ValueError, match="positive"):
        Autoencoder(5, (4,), 0)


def test_training_lowers_the_loss_and_is_seeded(rng):
    X = (rng.uniform(size=(200, 16)) < np.linspace(0.1, 0.9, 16)).astype(np.float32)
    X_test = X[:50]
    model = Autoencoder(16, (12,), 2, seed=0)
    before = float(model.reconstruction_bce(X_test).mean())
    history = train(model, X, epochs=5, batch_size=20, lr=1e-2, seed=0, X_test=X_test, progress=False)
    after = float(model.reconstruction_bce(X_test).mean())
    assert isinstance(history, History)
    assert history.epoch == [1, 2, 3, 4, 5] and len(history.step_loss) == 5 * 10
    assert after < before - 0.5, f"training should lower the loss: {before:.2f} -> {after:.2f} nats"
    np.testing.assert_allclose(history.test_elbo[-1], -after, rtol=1e-6)   # test_elbo holds -BCE
    assert history.train_elbo[-1] > history.train_elbo[0]

    again = Autoencoder(16, (12,), 2, seed=0)
    train(again, X, epochs=5, batch_size=20, lr=1e-2, seed=0, progress=False)
    for name in model.params:
        np.testing.assert_array_equal(model.params[name], again.params[name])
