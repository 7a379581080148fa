"""Tests of vae_teach.widgets without a browser: what the explorer decodes, shows and skips.

The widgets are built and driven from Python (setting a slider's value
runs the same observer a browser's drag does); the browser tests in
test_browser.py drive the same widget through JupyterLab and Voila.
"""

import importlib.util
import io
import threading
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_teach import widgets  # noqa: E402
from vae_teach.backends import make_model  # noqa: E402
from vae_teach.interface import VAEConfig  # noqa: E402

pytest.importorskip("ipywidgets", reason="the explorer needs ipywidgets: pip install ipywidgets")

H, W = 4, 3
D = H * W


class FakeModel:
    """Meets the protocol's encode/decode; records every decode.

    decode: every pixel of image n is sigmoid(z_n . weights), so images tell
    z apart; encode: mu = the first L pixels, shifted. ``delay`` seconds of
    sleep per decode make it slow; ``fail_at`` makes decode raise for a z
    whose first coordinate equals it.
    """

    def __init__(self, latent_dim=2, delay=0.0, fail_at=None):
        self.latent_dim = latent_dim
        self.delay, self.fail_at = delay, fail_at
        self.decoded = []
        self.weights = 1.0 + np.arange(latent_dim)
        self.lock = threading.Lock()
        self.concurrent, self.max_concurrent = 0, 0

    def encode(self, X):
        X = np.asarray(X, dtype=np.float64)
        mu = 4.0 * X[:, :self.latent_dim] - 2.0
        return mu, np.zeros_like(mu)

    def decode(self, Z):
        with self.lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            Z = np.asarray(Z, dtype=np.float64)
            self.decoded.append(Z.copy())
            if self.fail_at is not None and np.any(np.isclose(Z[:, 0], self.fail_at)):
                raise RuntimeError("decoder exploded")
            time.sleep(self.delay)
            value = 1.0 / (1.0 + np.exp(-(Z @ self.weights)))[:, None]
            return np.repeat(value, D, axis=1)
        finally:
            with self.lock:
                self.concurrent -= 1


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.fixture
def X():
    return np.random.default_rng(0).uniform(size=(30, D))


def test_the_first_picture_is_decoded_once_at_the_sliders_z(X):
    model = FakeModel()
    explorer = widgets.latent_explorer(model, (H, W), X=X, z=[0.5, -1.0], traversal_steps=5)
    assert len(explorer.sliders) == 2
    assert [s.value for s in explorer.sliders] == [0.5, -1.0]
    assert [s.min for s in explorer.sliders] == [-3.0, -3.0] and [s.max for s in explorer.sliders] == [3.0, 3.0]
    # one decode for the picture and its strips (plus one for the first interpolation path)
    picture = [Z for Z in model.decoded if len(Z) == 1 + 2 * 5]
    assert len(picture) == 1 and explorer.renders == 1
    np.testing.assert_array_equal(picture[0][0], [0.5, -1.0])
    np.testing.assert_allclose(explorer.shown_image, model.decode(np.array([[0.5, -1.0]]))[0].reshape(H, W))
    shown = pixels(explorer.image.value)
    assert shown.shape == (H * 8, W * 8), "each pixel is an 8 x 8 block"
    expected = np.round(explorer.shown_image * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown[::8, ::8], expected)
    assert widgets.DECODED_IMAGE_CLASS in explorer.image._dom_classes
    assert all(widgets.SLIDER_CLASS in s._dom_classes for s in explorer.sliders)


def test_one_decode_per_slider_change_and_the_image_follows(X):
    model = FakeModel()
    explorer = widgets.latent_explorer(model, (H, W), X=X)
    calls = explorer.decode_calls
    before = explorer.image.value
    for k, value in enumerate([1.0, -2.0, 0.25]):
        explorer.sliders[k % 2].value = value
        assert explorer.wait_idle(5), "the redraw should finish"
        assert explorer.decode_calls == calls + k + 1, "exactly one decode per change"
        np.testing.assert_array_equal(explorer.shown_z, explorer.z)
        np.testing.assert_array_equal(model.decoded[-1][0], explorer.z)
    assert explorer.image.value != before, "the decoded image changed"
    assert explorer.last_error is None


def test_changes_during_a_slow_redraw_do_not_queue_a_backlog(X):
    model = FakeModel(delay=0.2)
    explorer = widgets.latent_explorer(model, (H, W), X=X)
    calls = explorer.decode_calls
    values = np.linspace(-2.0, 2.0, 60)
    start = time.perf_counter()
    for value in values:                      # 60 changes, far faster than one redraw each
        explorer.sliders[0].value = value
    handler_seconds = time.perf_counter() - start
    assert explorer.wait_idle(10)
    assert handler_seconds < 1.0, f"a change should only be recorded, not decoded: {handler_seconds:.2f} s"
    redraws = explorer.decode_calls - calls
    assert explorer.requests == 60
    assert 1 <= redraws <= 3, f"60 changes during slow redraws should coalesce into 2 or so, got {redraws}"
    np.testing.assert_array_equal(explorer.shown_z, [2.0, 0.0]), "the newest z is what is shown"
    np.testing.assert_array_equal(model.decoded[-1][0], [2.0, 0.0])
    assert model.max_concurrent == 1, "never two decodes at once"


def test_a_failing_decode_is_reported_in_the_widget_not_lost(X):
    model = FakeModel(fail_at=1.5)
    explorer = widgets.latent_explorer(model, (H, W), X=X)
    explorer.sliders[0].value = 1.5
    assert explorer.wait_idle(5)
    assert isinstance(explorer.last_error, RuntimeError)
    assert "decoder exploded" in explorer.status.value
    explorer.sliders[0].value = 1.0                 # the explorer keeps working afterwards
    assert explorer.wait_idle(5)
    assert explorer.last_error is None and "z = (+1.00" in explorer.status.value
    with pytest.raises(RuntimeError, match="exploded"):
        explorer.set_z([1.5, 0.0])


def test_set_z_moves_the_sliders_and_redraws_once(X):
    model = FakeModel(latent_dim=3)
    explorer = widgets.latent_explorer(model, (H, W), X=X, dims=(2, 0))
    calls = explorer.decode_calls
    explorer.set_z([0.1, 5.0, -0.7])
    assert explorer.decode_calls == calls + 1
    np.testing.assert_array_equal(explorer.z, [0.1, 3.0, -0.7]), "values beyond the range are clipped"
    np.testing.assert_array_equal(explorer.shown_z, explorer.z)
    with pytest.raises(ValueError, match="latent_dim = 3"):
        explorer.set_z([0.0, 0.0])


def test_the_marker_moves_with_z_on_the_scatter(X):
    explorer = widgets.latent_explorer(FakeModel(), (H, W), X=X)
    canvas = explorer._canvas
    col0, row0 = canvas.pixel_of([0.0, 0.0])
    col1, row1 = canvas.pixel_of([1.0, 1.0])
    assert col1 > col0 and row1 < row0, "z_1 to the right, z_2 up"
    first = pixels(explorer.scatter.value)
    explorer.set_z([1.0, 1.0])
    second = pixels(explorer.scatter.value)
    red = lambda image, col, row: tuple(image[round(row), round(col), :3])  # noqa: E731
    assert red(second, col1, row1) == (215, 25, 28) and red(first, col0, row0) == (215, 25, 28)
    assert red(second, col0, row0) != (215, 25, 28) or (col0, row0) == (col1, row1)
    far = canvas.pixel_of([100.0, -100.0])           # off the axes: clamped onto their edge
    assert canvas._box[0] <= far[0] <= canvas._box[2] and canvas._box[1] <= far[1] <= canvas._box[3]


def test_traversal_codes_and_strips():
    z = np.array([0.5, -1.0, 2.0])
    values = np.array([-1.0, 0.0, 1.0, 2.0])
    codes = widgets.traversal_codes(z, values)
    assert codes.shape == (3, 4, 3)
    for d in range(3):
        np.testing.assert_array_equal(codes[d, :, d], values)
        others = [k for k in range(3) if k != d]
        np.testing.assert_array_equal(codes[d][:, others], np.tile(z[others], (4, 1)))
    assert widgets.traversal_codes(z, values, dims=[1]).shape == (1, 4, 3)
    with pytest.raises(ValueError, match="dims"):
        widgets.traversal_codes(z, values, dims=[3])
    model = FakeModel(latent_dim=3)
    strips = widgets.traverse(model, z, values)
    assert strips.shape == (3, 4, D) and len(model.decoded) == 1, "one decode call for all strips"
    np.testing.assert_allclose(strips[1, 2], model.decode(codes[1, 2][None])[0])


def test_the_explorer_shows_the_strips_at_the_current_z(X):
    model = FakeModel()
    explorer = widgets.latent_explorer(model, (H, W), X=X, traversal_steps=5, span=2.0)
    explorer.set_z([1.0, -0.5])
    Z = model.decoded[-1]
    np.testing.assert_allclose(Z[1:].reshape(2, 5, 2), widgets.traversal_codes([1.0, -0.5], np.linspace(-2, 2, 5)))
    strip = pixels(explorer.traversal.value)
    assert strip.shape == (3 * (2 * (H + 1) - 1), 3 * (5 * (W + 1) - 1)), "2 rows of 5 images, 3x"


def test_interpolation_paths_in_latent_and_pixel_space(X):
    model = FakeModel()
    Z_path, X_latent, X_pixel = widgets.interpolation_paths(model, X[0], X[1], n=5)
    mu, _ = model.encode(X[:2])
    assert Z_path.shape == (5, 2) and X_latent.shape == (5, D) and X_pixel.shape == (5, D)
    np.testing.assert_allclose(Z_path[[0, -1]], mu)
    np.testing.assert_allclose(Z_path[2], mu.mean(axis=0))
    np.testing.assert_allclose(X_pixel[[0, -1]], X[:2])
    np.testing.assert_allclose(X_pixel[2], X[:2].mean(axis=0))
    np.testing.assert_allclose(X_latent, model.decode(Z_path))
    with pytest.raises(ValueError, match="n >= 2"):
        widgets.interpolation_paths(model, X[0], X[1], n=1)


def test_the_interpolation_controls(X):
    model = FakeModel()
    explorer = widgets.latent_explorer(model, (H, W), X=X, pair=(3, 7), n_interpolation=6)
    mu, _ = model.encode(X[[3, 7]])
    np.testing.assert_allclose(explorer.path_ends, mu)
    first = explorer.interpolation.value
    explorer.index_b.value = 9
    np.testing.assert_allclose(explorer.path_ends[1], model.encode(X[[9]])[0][0])
    assert explorer.interpolation.value != first
    explorer.path_t.value = 0.5                      # walks the sliders half way along the path
    assert explorer.wait_idle(5)
    expected = np.clip(0.5 * (explorer.path_ends[0] + explorer.path_ends[1]), -3, 3)
    np.testing.assert_allclose(explorer.z, expected)
    np.testing.assert_allclose(explorer.shown_z, expected)


def test_display_bundle_is_the_widget_with_a_stable_text(X):
    explorer = widgets.latent_explorer(FakeModel(), (H, W), X=X)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == ("LatentExplorer(latent_dim=2, sliders from -3 to 3 prior standard "
                                    "deviations, 30 posterior means shown)")
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id
    explorer.close()
    assert explorer.image.comm is None, "closing closes the children too"


def test_without_images_and_with_one_latent_dimension():
    explorer = widgets.latent_explorer(FakeModel(latent_dim=1), (H, W))
    assert len(explorer.sliders) == 1 and explorer.interpolation is None
    explorer.set_z([2.0])
    np.testing.assert_array_equal(explorer.shown_z, [2.0])


def test_clear_errors_for_wrong_inputs(X):
    with pytest.raises(ValueError, match="dims"):
        widgets.latent_explorer(FakeModel(), (H, W), dims=(0, 0))
    with pytest.raises(ValueError, match=r"X must be \(N, 12\)"):
        widgets.latent_explorer(FakeModel(), (H, W), X=X[:, :5])
    with pytest.raises(ValueError, match="color_by"):
        widgets.latent_explorer(FakeModel(), (H, W), X=X, color_by=np.zeros(3))
    with pytest.raises(ValueError, match=r"expected \(1\d*, 20\)"):
        widgets.latent_explorer(FakeModel(), (4, 5))         # the model decodes 12 pixels, not 20


def test_figures():
    model = FakeModel(latent_dim=3)
    fig = widgets.traversal_figure(model, (H, W), values=np.linspace(-2, 2, 5))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["$z_{1}$", "$z_{2}$", "$z_{3}$"]
    assert ax.get_images()[0].get_array().shape == (3 * (H + 1) - 1, 5 * (W + 1) - 1)
    x = np.random.default_rng(1).uniform(size=(2, D))
    fig = widgets.interpolation_figure(model, x[0], x[1], (H, W), n=4)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["latent path", "pixel path"]
    plt.close("all")


def test_the_static_figure_shows_what_the_explorer_shows(X):
    explorer = widgets.latent_explorer(FakeModel(latent_dim=3), (H, W), X=X, traversal_steps=5)
    explorer.set_z([1.0, -0.5, 0.0])
    fig = explorer.figure()
    decoded, scatter, strips = (ax.get_images()[0].get_array() for ax in fig.axes[:3])
    np.testing.assert_array_equal(decoded, explorer.shown_image)
    np.testing.assert_array_equal(scatter, pixels(explorer.scatter.value))     # the widget's picture, marker and all
    assert strips.shape == (3 * (H + 1) - 1, 5 * (W + 1) - 1)
    assert "z = (+1.00, -0.50, +0.00)" in fig.axes[0].get_title()
    plt.close("all")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("backend,module", [("numpy", "numpy"), ("pytensor", "pytensor"), ("torch", "torch")])
def test_every_backend_drives_the_explorer(backend, module, X):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the {backend} backend needs {module}: pip install 'vae_teach[{backend}]'")
    model = make_model(backend, VAEConfig(input_dim=D, hidden_dims=(5,), latent_dim=2), seed=1)
    explorer = widgets.latent_explorer(model, (H, W), X=X)
    explorer.sliders[1].value = 2.0
    assert explorer.wait_idle(120)
    assert explorer.last_error is None, explorer.last_error
    expected = np.asarray(model.decode(np.array([[0.0, 2.0]])))[0].reshape(H, W)
    np.testing.assert_allclose(explorer.shown_image, expected, rtol=1e-6)
