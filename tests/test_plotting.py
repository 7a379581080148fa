"""Tests for vae_teach.plotting: what is drawn, where, and from which latent points."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vae_teach import plotting  # noqa: E402

H, W = 4, 3
D = H * W


class FakeModel:
    """Meets the protocol's encode/decode; records what it was given.

    encode: mu = first L pixels scaled, logvar = zeros. decode: every pixel of
    image n is sigmoid(sum of z_n), so images are constant and tell z apart.
    """

    def __init__(self, latent_dim=2, input_dim=D):
        self.latent_dim = latent_dim
        self.input_dim = input_dim
        self.encoded, self.decoded = [], []

    def encode(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.encoded.append(X.copy())
        mu = 3.0 * X[:, :self.latent_dim] - 1.0 + np.arange(self.latent_dim)  # (N, L)
        return mu, np.zeros_like(mu)

    def decode(self, Z):
        Z = np.asarray(Z, dtype=np.float64)
        self.decoded.append(Z.copy())
        value = 1.0 / (1.0 + np.exp(-Z.sum(axis=1, keepdims=True)))          # (N, 1)
        return np.repeat(value, self.input_dim, axis=1)                         # (N, D)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def constant_images(n, value_of=lambda k: k + 1.0):
    """n images (n, D) where image k is the constant value_of(k)."""
    return np.array([np.full(D, value_of(k)) for k in range(n)])


def the_image(fig) -> np.ndarray:
    images = [c for ax in fig.axes for c in ax.get_children() if isinstance(c, AxesImage)]
    assert len(images) == 1, f"expected one image on the figure, found {len(images)}"
    return np.asarray(images[0].get_array())


# ----- tile_images, image_grid --------------------------------------------
def test_tile_images_places_each_image_and_pads():
    images = constant_images(7)                               # 3 columns: rows of 3, 3, 1
    pad = 2
    tiled = plotting.tile_images(images, (H, W), n_cols=3, pad=pad, pad_value=-1.0)
    assert tiled.shape == (3 * (H + pad) - pad, 3 * (W + pad) - pad), f"got {tiled.shape}"
    for k in range(7):
        top, left = (k // 3) * (H + pad), (k % 3) * (W + pad)
        block = tiled[top:top + H, left:left + W]
        np.testing.assert_array_equal(block, k + 1.0, err_msg=f"image {k} misplaced")
    # The padding rows/columns and the empty cells of the partial last row hold pad_value.
    assert np.all(tiled[H:H + pad, :] == -1.0), "padding row between image rows"
    assert np.all(tiled[:, W:W + pad] == -1.0), "padding column between image columns"
    assert np.all(tiled[2 * (H + pad):, W + pad:] == -1.0), "empty cells of the partial last row"
    assert np.sum(tiled != -1.0) == 7 * D, "every pixel of every image, and nothing else"


def test_tile_images_keeps_pixel_layout_and_accepts_3d():
    image = np.arange(D, dtype=float) / D                     # distinct pixels, row-major
    tiled = plotting.tile_images(image[None], (H, W), pad=1)
    np.testing.assert_array_equal(tiled, image.reshape(H, W))
    tiled_3d = plotting.tile_images(image.reshape(1, H, W), (H, W))
    np.testing.assert_array_equal(tiled_3d, tiled)


def test_tile_images_fewer_images_than_columns_makes_one_short_row():
    tiled = plotting.tile_images(constant_images(2), (H, W), n_cols=10, pad=1)
    assert tiled.shape == (H, 2 * W + 1), f"got {tiled.shape}"


def test_tile_images_rejects_wrong_image_size():
    with pytest.raises(ValueError, match=r"D = 12 pixels.*\(5, 5\) holds 25"):
        plotting.tile_images(constant_images(3), (5, 5))
    with pytest.raises(ValueError, match="image_shape must be"):
        plotting.tile_images(constant_images(3), (12,))


def test_image_grid_shows_the_tiling_on_fixed_range():
    images = constant_images(5, lambda k: k / 4)
    fig = plotting.image_grid(images, (H, W), n_cols=2, title="five")
    np.testing.assert_array_equal(the_image(fig), plotting.tile_images(images, (H, W), n_cols=2))
    im = [c for c in fig.axes[0].get_children() if isinstance(c, AxesImage)][0]
    assert im.get_clim() == (0.0, 1.0), "pixels map to colours on the fixed range [0, 1]"
    assert fig.axes[0].get_title() == "five"


def test_image_grid_draws_on_given_axes():
    fig, axes = plt.subplots(1, 2)
    returned = plotting.image_grid(constant_images(3, lambda k: 0.5), (H, W), ax=axes[1])
    assert returned is fig
    assert not any(isinstance(c, AxesImage) for c in axes[0].get_children())
    assert any(isinstance(c, AxesImage) for c in axes[1].get_children())


# ----- reconstructions, prior_samples -------------------------------------
def test_reconstructions_decode_the_posterior_mean():
    model = FakeModel()
    X = np.random.default_rng(0).uniform(size=(15, D))
    fig = plotting.reconstructions(model, X, (H, W), n=6)
    np.testing.assert_array_equal(model.encoded[0], X[:6])
    mu, _ = model.encode(X[:6])
    np.testing.assert_allclose(model.decoded[0], mu, err_msg="decode must get mu, not a sample")
    expected = plotting.tile_images(np.concatenate([X[:6], model.decode(mu)]), (H, W), n_cols=6)
    np.testing.assert_allclose(the_image(fig), expected)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 2 and "input" in labels[0], f"rows must be labelled, got {labels}"


def test_reconstructions_rejects_wrong_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        plotting.reconstructions(FakeModel(), np.zeros((3, D)), (H + 1, W))


def test_prior_samples_are_seeded_standard_normal():
    model = FakeModel(latent_dim=3)
    a = the_image(plotting.prior_samples(model, (H, W), n=12, seed=7, n_cols=4))
    b = the_image(plotting.prior_samples(model, (H, W), n=12, seed=7, n_cols=4))
    c = the_image(plotting.prior_samples(model, (H, W), n=12, seed=8, n_cols=4))
    np.testing.assert_array_equal(a, b, err_msg="same seed, same images")
    assert not np.allclose(a, c), "a different seed must give different images"
    np.testing.assert_array_equal(
        model.decoded[0], np.random.default_rng(7).standard_normal((12, 3)),
        err_msg="Z must be default_rng(seed).standard_normal((n, L))")


def test_prior_samples_rejects_decoder_of_other_size():
    with pytest.raises(ValueError, match=r"decode returned shape \(4, 12\), expected \(4, 20\)"):
        plotting.prior_samples(FakeModel(), (4, 5), n=4)


# ----- loss_curves ----------------------------------------------------------
class FakeHistory:
    def __init__(self, train, test=(), step_loss=()):
        self.epoch = list(range(1, len(train) + 1))
        self.train_elbo, self.test_elbo, self.step_loss = list(train), list(test), list(step_loss)


def test_loss_curves_one_solid_train_and_one_dashed_test_line_per_run():
    histories = {
        "a": FakeHistory([-200.0, -150.0, -140.0], [-210.0, -160.0, -150.0]),
        "b": FakeHistory([-190.0, -170.0]),                           # no test ELBO
        "c": {"epoch": [1, 2], "train_elbo": [-180.0, -175.0], "test_elbo": [-185.0, -181.0],
              "step_loss": []},                                       # a dict works too
    }
    fig = plotting.loss_curves(histories)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == ["a: test", "a: train", "b: train", "c: test", "c: train"]
    train = {"a": [-200.0, -150.0, -140.0], "b": [-190.0, -170.0], "c": [-180.0, -175.0]}
    for name, elbo in train.items():
        assert lines[f"{name}: train"].get_linestyle() == "-"
        np.testing.assert_array_equal(lines[f"{name}: train"].get_ydata(), elbo)
    assert lines["a: test"].get_linestyle() == "--"
    assert lines["a: test"].get_color() == lines["a: train"].get_color(), "a run keeps its colour"
    np.testing.assert_array_equal(lines["a: test"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["a: test"].get_ydata(), [-210.0, -160.0, -150.0])
    assert ax.get_ylabel() == "ELBO (nats per image)"
    assert ax.get_xlabel() == "epoch"
    assert ax.get_legend() is not None


def test_loss_curves_per_step_plots_smoothed_negative_loss():
    step_loss = np.arange(1.0, 11.0)                           # losses 1..10
    fig = plotting.loss_curves({"run": FakeHistory([-1.0], step_loss=step_loss)}, per="step", window=4)
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(4, 11))
    expected = [-np.mean(step_loss[t - 4:t]) for t in range(4, 11)]
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert fig.axes[0].get_ylabel() == "ELBO (nats per image)"
    assert "step" in fig.axes[0].get_xlabel()


def test_loss_curves_accepts_a_single_history_and_rejects_bad_input():
    fig = plotting.loss_curves(FakeHistory([-3.0, -2.0]))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["run: train"]
    with pytest.raises(ValueError, match="per must be"):
        plotting.loss_curves({"a": FakeHistory([-1.0])}, per="batch")
    with pytest.raises(ValueError, match="train_elbo"):
        plotting.loss_curves({"a": {"epoch": [1], "test_elbo": [], "step_loss": []}})
    with pytest.raises(ValueError, match="one test ELBO per epoch"):
        plotting.loss_curves({"a": FakeHistory([-1.0, -2.0], [-1.0])})


def test_moving_average():
    np.testing.assert_allclose(plotting.moving_average([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(plotting.moving_average([1, 2, 3], 10), [2.0])  # window capped


# ----- latent_scatter -------------------------------------------------------
def test_latent_scatter_plots_the_posterior_means_of_chosen_dims():
    model = FakeModel(latent_dim=4)
    X = np.random.default_rng(1).uniform(size=(50, D))
    y = np.arange(50) % 10
    fig = plotting.latent_scatter(model, X, y, dims=(3, 1))
    ax = fig.axes[0]
    (collection,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    mu, _ = model.encode(X)
    np.testing.assert_allclose(collection.get_offsets(), mu[:, [3, 1]])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$z_{4}$", "$z_{2}$")
    assert len(fig.axes) == 2, "a colorbar names the labels"
    colorbar_labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert colorbar_labels == [str(d) for d in range(10)], f"got {colorbar_labels}"
    # Each point's colour is its label's tab10 colour.
    fig.canvas.draw()                                          # colours are mapped at draw time
    tab10 = np.array(plt.get_cmap("tab10").colors)
    np.testing.assert_allclose(collection.get_facecolors()[:, :3], tab10[y])


def test_latent_scatter_default_dims_and_subset():
    model = FakeModel(latent_dim=2)
    X = np.random.default_rng(2).uniform(size=(40, D))
    fig = plotting.latent_scatter(model, X, max_points=15, seed=3)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$z_{1}$", "$z_{2}$")
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 15
    idx = np.sort(np.random.default_rng(3).choice(40, 15, replace=False))
    np.testing.assert_allclose(offsets, model.encode(X[idx])[0])


def test_latent_scatter_errors():
    X = np.zeros((5, D))
    with pytest.raises(ValueError, match="latent_dim >= 2.*latent_dim = 1"):
        plotting.latent_scatter(FakeModel(latent_dim=1), X)
    with pytest.raises(ValueError, match="dims must be"):
        plotting.latent_scatter(FakeModel(latent_dim=3), X, dims=(0, 3))
    with pytest.raises(ValueError, match="dims must be"):
        plotting.latent_scatter(FakeModel(latent_dim=3), X, dims=(1, 1))
    with pytest.raises(ValueError, match="4 labels but X has 5"):
        plotting.latent_scatter(FakeModel(), X, y=np.arange(4))


# ----- latent_grid, manifold_2d ---------------------------------------------
def test_latent_grid_inverse_cdf_is_equal_prior_mass_and_symmetric():
    n = 7
    Z = plotting.latent_grid(n, "inverse_cdf")
    assert Z.shape == (n * n, 2)
    values = norm.ppf((np.arange(n) + 0.5) / n)
    np.testing.assert_allclose(np.unique(Z[:, 0]), values)
    np.testing.assert_allclose(values, -values[::-1], atol=1e-12, err_msg="symmetric about 0")
    # Cells between consecutive borders ppf(i / n) each hold prior mass 1/n per axis.
    borders = norm.cdf(np.concatenate([[-np.inf], (values[1:] + values[:-1]) / 2, [np.inf]]))
    assert np.all(np.diff(borders) > 0)
    np.testing.assert_allclose(norm.cdf(values), (np.arange(n) + 0.5) / n)


def test_latent_grid_orientation():
    n = 5
    Z = plotting.latent_grid(n, "linear", span=2.0).reshape(n, n, 2)   # (row, column, z)
    np.testing.assert_allclose(Z[0, :, 0], np.linspace(-2, 2, n), err_msg="z_1 increases left to right")
    np.testing.assert_allclose(Z[:, 0, 1], np.linspace(2, -2, n), err_msg="z_2 decreases top to bottom")
    assert np.all(Z[:, :, 0] == Z[0, :, 0]) and np.all(Z[:, :, 1] == Z[:, :1, 1])


def test_latent_grid_linear_spans_and_errors():
    Z = plotting.latent_grid(4, "linear", span=1.5)
    assert Z.min() == -1.5 and Z.max() == 1.5
    with pytest.raises(ValueError, match="grid must be one of"):
        plotting.latent_grid(4, "log")
    with pytest.raises(ValueError, match="n >= 2"):
        plotting.latent_grid(1)


@pytest.mark.parametrize("grid", ["inverse_cdf", "linear"])
def test_manifold_2d_decodes_exactly_the_grid(grid):
    model = FakeModel()
    n = 6
    fig = plotting.manifold_2d(model, (H, W), n=n, grid=grid, span=2.5)
    (Z,) = model.decoded
    np.testing.assert_array_equal(Z, plotting.latent_grid(n, grid, span=2.5))
    tiled = the_image(fig)
    assert tiled.shape == (n * (H + 1) - 1, n * (W + 1) - 1), f"got {tiled.shape}"
    # The top-left image is z = (min z_1, max z_2), the bottom-right (max z_1, min z_2).
    np.testing.assert_allclose(tiled[:H, :W], model.decode(Z[:1])[0].reshape(H, W))
    np.testing.assert_allclose(tiled[-H:, -W:], model.decode(Z[-1:])[0].reshape(H, W))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$z_{1}$", "$z_{2}$")
    values = plotting.latent_grid(n, grid, span=2.5)[:n, 0]
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    ylabels = [t.get_text() for t in ax.get_yticklabels()]
    assert xlabels[0] == f"{values[0]:.2f}" and xlabels[-1] == f"{values[-1]:.2f}"
    assert ylabels[0] == f"{values[-1]:.2f}" and ylabels[-1] == f"{values[0]:.2f}", "z_2 high at top"
    np.testing.assert_allclose(ax.get_xticks()[[0, -1]], [(W - 1) / 2, (n - 1) * (W + 1) + (W - 1) / 2])


def test_manifold_2d_higher_latent_dim_fixes_the_others_at_zero():
    model = FakeModel(latent_dim=4)
    plotting.manifold_2d(model, (H, W), n=3, dims=(2, 0))
    (Z,) = model.decoded
    plane = plotting.latent_grid(3)
    np.testing.assert_array_equal(Z[:, 2], plane[:, 0])
    np.testing.assert_array_equal(Z[:, 0], plane[:, 1])
    np.testing.assert_array_equal(Z[:, [1, 3]], 0.0)


def test_manifold_2d_errors():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        plotting.manifold_2d(FakeModel(latent_dim=1), (H, W), n=3)
    with pytest.raises(ValueError, match="expected \\(9, 16\\)"):
        plotting.manifold_2d(FakeModel(), (4, 4), n=3)


def test_with_the_numpy_vae():
    from vae_teach.interface import VAEConfig
    from vae_teach.numpy_vae.model import NumpyVAE

    model = NumpyVAE(VAEConfig(input_dim=D, hidden_dims=(8,), latent_dim=2))
    X = np.random.default_rng(0).uniform(size=(20, D))
    plotting.reconstructions(model, X, (H, W), n=5)
    plotting.prior_samples(model, (H, W), n=8)
    plotting.latent_scatter(model, X, np.arange(20) % 3)
    tiled = the_image(plotting.manifold_2d(model, (H, W), n=4))
    assert tiled.shape == (4 * (H + 1) - 1, 4 * (W + 1) - 1)
    assert np.all((tiled >= 0) & (tiled <= 1)), "decoder means are probabilities"
