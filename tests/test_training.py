"""The shared epoch loop, the NumPy training function, and the history file."""

import math

import numpy as np
import pytest

from vae_teach.data import binarize_static, load_dataset
from vae_teach.interface import VAEConfig
from vae_teach.numpy_vae import NumpyVAE, train
from vae_teach.training import History, TrainingDivergedError, fit


def test_fit_visits_every_example_once_per_epoch_in_a_seeded_order():
    X = np.arange(10, dtype=float)[:, None] / 10
    seen = []
    history = fit(lambda B: seen.append(B[:, 0].copy()) or 1.0, X, epochs=2, batch_size=4, lr=0.1,
                  seed=3, progress=False)
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]
    for epoch in (seen[:3], seen[3:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), X[:, 0])
    assert not np.array_equal(np.concatenate(seen[:3]), np.concatenate(seen[3:])), "same order twice"
    again = []
    fit(lambda B: again.append(B[:, 0].copy()) or 1.0, X, epochs=2, batch_size=4, lr=0.1, seed=3,
        progress=False)
    np.testing.assert_array_equal(np.concatenate(seen), np.concatenate(again))
    assert history.epoch == [1, 2] and len(history.step_loss) == 6 and history.train_elbo == [-1.0, -1.0]


def test_fit_records_test_elbo_each_epoch_and_weights_the_train_elbo_by_batch_size():
    X = np.zeros((5, 2))
    losses = iter([1.0, 4.0, 1.0, 4.0])  # batches of 4 then 1
    calls = []
    history = fit(lambda B: next(losses), X, epochs=2, batch_size=4, lr=0.1, progress=False,
                  evaluate=lambda: calls.append(1) or -7.0)
    assert history.train_elbo == pytest.approx([-(4 * 1 + 1 * 4) / 5] * 2)
    assert history.test_elbo == [-7.0, -7.0] and len(calls) == 2


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_fit_stops_on_a_non_finite_loss_naming_step_and_learning_rate(bad):
    losses = iter([3.0, 2.0, bad, 1.0])
    with pytest.raises(TrainingDivergedError, match=r"at step 3 \(epoch 2\) with learning rate 0.5"):
        fit(lambda B: next(losses), np.zeros((4, 3)), epochs=3, batch_size=2, lr=0.5, progress=False)


def test_fit_binarizes_dynamically_with_fresh_draws_each_epoch():
    X = np.full((200, 5), 0.3)
    batches = []
    fit(lambda B: batches.append(B) or 0.0, X, epochs=2, batch_size=200, lr=1.0, binarize="dynamic",
        progress=False)
    assert set(np.unique(np.concatenate(batches))) == {0.0, 1.0}
    assert abs(batches[0].mean() - 0.3) < 0.05
    assert not np.array_equal(batches[0], batches[1])
    with pytest.raises(ValueError, match="binarize must be one of"):
        fit(lambda B: 0.0, X, epochs=1, batch_size=10, lr=1.0, binarize="sometimes", progress=False)


def test_fit_static_is_one_seeded_stochastic_draw_kept_and_threshold_thresholds():
    X = np.full((200, 5), 0.3)
    X[:, 0] = 0.6
    runs = {}
    for binarize in ("static", "threshold"):
        for seed in (0, 0, 1):
            batches = []
            fit(lambda B: batches.append(np.sort(B, axis=0)) or 0.0, X, epochs=2, batch_size=200, lr=1.0,
                binarize=binarize, seed=seed, progress=False)
            runs.setdefault(binarize, []).append(batches)
    static = runs["static"]
    assert set(np.unique(static[0][0])) == {0.0, 1.0} and abs(static[0][0][:, 1:].mean() - 0.3) < 0.05
    np.testing.assert_array_equal(static[0][0], static[0][1])      # the same draw every epoch
    np.testing.assert_array_equal(static[0][0], static[1][0])      # ... set by the seed
    assert not np.array_equal(static[0][0], static[2][0])          # another seed, another draw
    rows = lambda B: B[np.lexsort(B.T)]                               # noqa: E731 (order-free comparison)
    batches = []
    fit(lambda B: batches.append(B) or 0.0, X, epochs=1, batch_size=200, lr=1.0, binarize="static", seed=5,
        progress=False)
    np.testing.assert_array_equal(rows(batches[0]), rows(binarize_static(X, 5)))   # the draw a notebook can redo
    threshold = runs["threshold"][0][0]
    assert np.all(threshold[:, 0] == 1.0) and np.all(threshold[:, 1:] == 0.0)   # x > 0.5, no noise


def test_history_round_trips_through_json(tmp_path):
    history = History(step_loss=[3.0, 2.5], epoch=[1], train_elbo=[-2.75], test_elbo=[-2.9],
                      seconds=[0.1], examples_per_second=[40.0])
    history.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json") == history
    assert not list(tmp_path.glob("*.tmp"))


def test_numpy_training_raises_the_elbo_on_real_digits():
    data = load_dataset("mnist-5k")
    model = NumpyVAE(VAEConfig(input_dim=784, hidden_dims=(64,), latent_dim=4), seed=0)
    history = train(model, data.X_train[:1000], epochs=4, batch_size=50, X_test=data.X_test[:200],
                    seed=0, progress=False)
    assert history.test_elbo[-1] > history.test_elbo[0] + 20, history.test_elbo
    assert history.train_elbo[-1] > -250, "4 epochs of Adam should get below 250 nats per image"
    assert model.params["out_W"].dtype == np.float32


def test_numpy_training_diverges_loudly_with_a_huge_learning_rate():
    X = load_dataset("mnist-5k").X_train[:200]
    model = NumpyVAE(VAEConfig(input_dim=784, hidden_dims=(32,), latent_dim=2), seed=0)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="learning rate 1e\\+06"):
        train(model, X, epochs=5, batch_size=50, optimizer="sgd", lr=1e6, progress=False)


def test_fit_dequantize_redraws_the_noise_every_epoch_and_keeps_each_pixel_in_its_bin():
    k = np.random.default_rng(0).integers(0, 256, size=(6, 20))
    X = (k / 255).astype(np.float32)
    epochs = []
    fit(lambda B: epochs.append(B.copy()) or 1.0, X, epochs=2, batch_size=6, lr=0.1, seed=0,
        binarize="dequantize", progress=False)
    first, second = epochs
    assert not np.array_equal(first, second), "the same noise twice"
    for batch in (first, second):            # rows are shuffled, bins are kept: compare sorted rows
        np.testing.assert_array_equal(np.sort(np.floor(batch * 256), axis=None), np.sort(k, axis=None))
    with pytest.raises(ValueError, match="'dequantize'"):
        fit(lambda B: 1.0, X, epochs=1, batch_size=6, lr=0.1, binarize="dequantise", progress=False)


def test_numpy_train_with_the_iwae_objective_improves_the_iwae_bound():
    from vae_teach.evaluate import importance_sampled_log_likelihood

    data = load_dataset("mnist-5k", binarize="threshold")
    X = data.X_train[:600]
    model = NumpyVAE(VAEConfig(784, (64,), 4), seed=0)
    before = importance_sampled_log_likelihood(model, X[:100], k=5).mean
    history = train(model, X, epochs=3, batch_size=50, lr=3e-3, n_samples=5, objective="iwae",
                    progress=False)
    after = importance_sampled_log_likelihood(model, X[:100], k=5).mean
    assert before < -500 and after > -230, (before, after)   # measured: -544 -> -211
    assert history.train_elbo[-1] > history.train_elbo[0]    # train_elbo holds -loss = IWAE_5 here
    with pytest.raises(ValueError, match="objective must be one of"):
        train(model, X, epochs=1, objective="iwea", progress=False)


def test_fit_passes_each_steps_kl_weight_from_a_schedule():
    from vae_teach.schedules import linear_warmup

    seen = []
    fit(lambda X, beta: seen.append(beta) or 1.0, np.zeros((10, 3)), epochs=2, batch_size=5, lr=0.1,
        progress=False, kl_weight=linear_warmup(1.0, 3))
    assert seen == [0.0, 1 / 3, 2 / 3, 1.0]
    with pytest.raises(ValueError, match="longer than the training"):
        fit(lambda X, beta: 1.0, np.zeros((10, 3)), epochs=1, batch_size=5, lr=0.1, progress=False,
            kl_weight=linear_warmup(1.0, 3))


def test_numpy_train_with_free_bits_keeps_more_kl_than_without():
    from vae_teach.diagnostics import kl_per_dimension
    from vae_teach.interface import VAEConfig
    from vae_teach.numpy_vae.model import NumpyVAE
    from vae_teach.numpy_vae.train import train

    X = (np.random.default_rng(0).random((200, 12)) > 0.5).astype(np.float64)   # noise: nothing to encode
    kls = {}
    for free_bits in (0.0, 0.5):
        model = NumpyVAE(VAEConfig(12, (8,), 3), seed=0, dtype=np.float64)
        train(model, X, epochs=20, batch_size=50, lr=1e-2, free_bits=free_bits, progress=False)
        kls[free_bits] = kl_per_dimension(model, X)
    assert kls[0.5].min() > 0.2 > kls[0.0].max(), f"KL per dimension: {kls}"
