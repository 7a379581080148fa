"""Tests of vae_teach.faces: the drawn faces, their factors, and the correlation measure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_teach import faces  # noqa: E402
from vae_teach.data import Dataset, dataset_status, known_datasets, load_dataset  # noqa: E402

H, W = faces.IMAGE_SHAPE


def one_face(**factors) -> np.ndarray:
    """The face with the given factors (the others at 0), as (H, W)."""
    row = np.array([[factors.get(name, 0.0) for name in faces.FACTOR_NAMES]])
    return faces.render_faces(row).reshape(H, W)


def changed_pixels(name) -> np.ndarray:
    """(H, W) bool: the pixels that differ between factor ``name`` = -1 and = +1."""
    return np.abs(one_face(**{name: -1.0}) - one_face(**{name: 1.0})) > 1e-3


@pytest.fixture(scope="module")
def small():
    return faces.synthetic_faces(n_images=300, n_test=50, seed=3)


def test_shapes_dtype_range_and_split(small):
    assert small.X_train.shape == (250, H * W) and small.X_test.shape == (50, H * W)
    assert small.X_train.dtype == np.float32
    assert small.factors_train.shape == (250, 3) and small.factors_test.shape == (50, 3)
    assert small.factor_names == ("expression", "pose", "lighting")
    assert small.image_shape == (28, 20), "the faces have Frey's size"
    for X in (small.X_train, small.X_test):
        assert 0.0 <= X.min() and X.max() <= 1.0
        assert X.max() - X.min() > 0.5, "a face has dark features on light skin"
    assert np.all(np.abs(small.factors_train) <= 1.0)
    assert small.y_train is None and small.y_test is None
    assert isinstance(small, Dataset), "a FacesDataset is a Dataset: every lesson tool takes it"


def test_the_same_seed_gives_the_same_faces_and_another_seed_others(small):
    again = faces.synthetic_faces(n_images=300, n_test=50, seed=3)
    np.testing.assert_array_equal(small.X_train, again.X_train)
    np.testing.assert_array_equal(small.factors_test, again.factors_test)
    other = faces.synthetic_faces(n_images=300, n_test=50, seed=4)
    assert not np.allclose(small.factors_train, other.factors_train)
    assert not np.allclose(small.X_train, other.X_train)


def test_the_images_are_rendered_from_the_returned_factors(small):
    np.testing.assert_array_equal(faces.render_faces(small.factors_test), small.X_test)


def test_the_default_dataset_is_what_load_dataset_returns():
    data = load_dataset("synthetic-faces")
    assert isinstance(data, faces.FacesDataset)
    assert data.X_train.shape == (3600, 560) and data.X_test.shape == (400, 560)
    assert data.factors_train.shape == (3600, 3)
    assert "synthetic-faces" in known_datasets()
    status = {s.name: s for s in dataset_status()}["synthetic-faces"]
    assert status.found and "generated" in status.location
    binary = load_dataset("synthetic-faces", binarize="threshold")
    assert isinstance(binary, faces.FacesDataset), "binarising keeps the factors"
    assert set(np.unique(binary.X_train)) <= {0.0, 1.0}
    np.testing.assert_array_equal(binary.factors_test, data.factors_test)
    with pytest.raises(ValueError, match="drawn"):
        load_dataset("synthetic-faces", path="/somewhere")


def test_expression_changes_only_the_mouth():
    changed = changed_pixels("expression")
    rows = np.flatnonzero(changed.any(axis=1))
    assert changed.sum() > 30, f"a smile and a frown should differ in many pixels, got {changed.sum()}"
    assert rows.min() >= 17 and rows.max() <= 23, f"expression changed rows {rows.min()}..{rows.max()}"
    smile, frown = one_face(expression=1.0), one_face(expression=-1.0)
    # a smile is a U: the mouth's middle lies lower than its corners, and a frown the other way round
    middle, corner = W // 2, W // 2 - 4
    # rows 15-24 lie inside the head at these columns: dark there is the mouth
    lowest_dark_row = lambda image, col: int(np.flatnonzero(image[15:25, col] < 0.3).max()) + 15  # noqa: E731
    assert lowest_dark_row(smile, middle) > lowest_dark_row(smile, corner)
    assert lowest_dark_row(frown, middle) < lowest_dark_row(frown, corner)


def test_pose_moves_the_features_sideways():
    left, right = one_face(pose=-1.0), one_face(pose=1.0)
    eye_row = 10                                                   # the eyes' centre row (y = 11 in pixels)
    dark_cols = lambda image: 3 + np.flatnonzero(image[eye_row, 3:17] < 0.3)  # inside the head  # noqa: E731
    shift = dark_cols(right).mean() - dark_cols(left).mean()
    assert 3.0 < shift < 7.0, f"the eyes should move about 5 pixels between pose -1 and +1, got {shift:.1f}"
    assert changed_pixels("pose").sum() > 100


def test_lighting_is_a_gradient_across_the_skin():
    dark_left, dark_right = one_face(lighting=-1.0), one_face(lighting=1.0)
    cheek_row = 15
    assert dark_right[cheek_row, 15] > dark_right[cheek_row, 4] + 0.15, "lighting +1: brighter on the right"
    assert dark_left[cheek_row, 4] > dark_left[cheek_row, 15] + 0.15, "lighting -1: brighter on the left"
    background = one_face()[0, 0]
    assert dark_left[0, 0] == dark_right[0, 0] == background, "lighting leaves the background alone"


def test_each_factor_matters_and_none_is_constant(small):
    for name in faces.FACTOR_NAMES:
        assert changed_pixels(name).any(), name
    assert np.all(small.X_train.std(axis=0).max() > 0.1)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        faces.render_faces(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n_test"):
        faces.synthetic_faces(n_images=10, n_test=10)
    with pytest.raises(ValueError, match="28, 20"):
        faces.render_faces(np.zeros((1, 3)), image_shape=(28, 28))
    np.testing.assert_array_equal(faces.render_faces(np.full((1, 3), 5.0)), faces.render_faces(np.ones((1, 3))))


def test_factor_correlations_against_numpy():
    rng = np.random.default_rng(0)
    factors = rng.uniform(-1, 1, size=(500, 3))
    mu = np.c_[2 * factors[:, 1] + 0.1 * rng.normal(size=500), -factors[:, 0], np.zeros(500),
               rng.normal(size=500)]                                            # (N, 4)
    corr = faces.factor_correlations(mu, factors)
    assert corr.shape == (4, 3)
    expected = np.corrcoef(mu[:, [0, 1, 3]].T, factors.T)[:3, 3:]
    np.testing.assert_allclose(corr[[0, 1, 3]], expected, atol=1e-12)
    assert corr[0, 1] > 0.99 and corr[1, 0] == pytest.approx(-1.0)
    np.testing.assert_array_equal(corr[2], 0.0), "a constant latent dimension correlates with nothing"
    with pytest.raises(ValueError, match="same N"):
        faces.factor_correlations(mu[:10], factors)


def test_correlation_figure_labels_every_cell():
    corr = np.array([[0.95, -0.1, 0.0], [0.2, -0.99, 0.05]])
    fig = faces.correlation_figure(corr)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["+0.95", "-0.10", "+0.00", "+0.20", "-0.99", "+0.05"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(faces.FACTOR_NAMES)
    plt.close(fig)
    with pytest.raises(ValueError, match="factor names"):
        faces.correlation_figure(corr, factor_names=("a", "b"))
