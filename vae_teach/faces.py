"""Synthetic faces: drawn procedurally, with known continuous factors.

Frey faces (28 x 20) can only be downloaded, and nothing says what varies in
them. These faces have the same size, are drawn the same on every machine
from a seed, and come with the true factors that made each image, so a
lesson can measure which latent direction learned which factor.

Each face is drawn with anti-aliased shapes (signed distance fields, one
pixel of soft edge) on a dark background:

- a head (an ellipse) lit by a ``lighting`` gradient from one side;
- two eyes and a nose that move sideways with the head turn, ``pose``;
- a mouth, a parabola whose curvature is the ``expression``: positive
  curves up at the corners (a smile), negative down (a frown).

Factors, drawn independently and uniformly in [-1, 1]:

==========  =========================================  =====================
factor      what it changes                            where in the image
==========  =========================================  =====================
expression  the mouth's curvature (smile / frown)      the mouth, rows 17-23
pose        head turn: eyes, nose, mouth shift sideways  the whole face
lighting    brightness gradient across the skin         the skin (a nuisance)
==========  =========================================  =====================

``render_faces(factors)`` draws given factors; ``synthetic_faces(...)``
draws a seeded dataset and returns a :class:`FacesDataset` (a
``vae_teach.data.Dataset`` with the factors beside the images), which is
also what ``load_dataset("synthetic-faces")`` returns.
``factor_correlations(mu, factors)`` and ``correlation_figure`` measure and
show which latent dimension carries which factor. Nothing runs on import.

Defined in notebook 06.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach.data import Dataset

IMAGE_SHAPE = (28, 20)
"""(height, width), the size of Frey's faces."""

FACTOR_NAMES = ("expression", "pose", "lighting")
"""The columns of a factors array, in order."""

N_IMAGES = 4000
N_TEST = 400
SEED = 0

# Geometry in pixels; x to the right, y down, pixel (i, j) has its centre at (j + 0.5, i + 0.5).
_BACKGROUND = 0.08
_EDGE = 1.5                      # soft edge width, pixels
_HEAD_CENTRE = (10.0, 14.0)      # (x, y)
_HEAD_AXES = (8.2, 12.2)         # semi-axes (x, y)
_HEAD_TURN = 0.8                 # the outline moves this far at pose = +-1 ...
_FEATURE_TURN = 2.6              # ... and the features this far: a turned head's parallax
_SKIN = 0.72
_LIGHTING = 0.20                 # skin brightness changes by +-this across the head
_EYE_Y, _EYE_GAP, _EYE_AXES, _EYE = 11.0, 3.3, (1.5, 1.1), 0.05
_NOSE_TOP, _NOSE_BOTTOM, _NOSE_WIDTH, _NOSE_DARKEN = 13.2, 17.0, 0.55, 0.55
_MOUTH_Y, _MOUTH_HALF_WIDTH, _MOUTH_CURVE, _MOUTH_THICKNESS, _MOUTH = 20.6, 5.2, 4.0, 1.1, 0.05
_MOUTH_SEGMENTS = 8


@dataclass(frozen=True, eq=False)
class FacesDataset(Dataset):
    """A :class:`vae_teach.data.Dataset` of synthetic faces, with the true factors.

    factors_train: (N_train, F) float64 in [-1, 1]; factors_test: (N_test, F);
    factor_names: the F column names (:data:`FACTOR_NAMES`). Labels
    (``y_train``, ``y_test``) are None: the factors are continuous.
    """

    factors_train: np.ndarray | None = None
    factors_test: np.ndarray | None = None
    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __repr__(self) -> str:
        return (
            f"FacesDataset({self.name!r}, X_train={self.X_train.shape}, X_test={self.X_test.shape}, "
            f"image_shape={self.image_shape}, factors={self.factor_names}, source={self.source!r})"
        )


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """How much of each pixel a shape covers, from its signed distance (negative inside).

    A linear ramp ``_EDGE`` pixels wide centred on the boundary: 1 inside, 0 outside.
    """
    return np.clip(0.5 - signed_distance / _EDGE, 0.0, 1.0)


def _ellipse_distance(x, y, cx, cy, ax, ay) -> np.ndarray:
    """Approximate signed distance in pixels to an ellipse, (N, H, W) from (N, 1, 1) centres.

    (f - 1) / |grad f| for f = sqrt((dx/ax)^2 + (dy/ay)^2): exact on the
    boundary to first order, which is all a one-pixel soft edge needs.
    """
    dx, dy = x - cx, y - cy
    f = np.maximum(np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2), 1e-9)
    grad = np.sqrt((dx / ax**2) ** 2 + (dy / ay**2) ** 2) / f
    return (f - 1.0) / np.maximum(grad, 1e-9)


def _segment_distance(x, y, x0, y0, x1, y1) -> np.ndarray:
    """Distance in pixels from each pixel centre to the segment (x0, y0)-(x1, y1)."""
    sx, sy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * sx + (y - y0) * sy) / np.maximum(sx * sx + sy * sy, 1e-12), 0.0, 1.0)
    return np.hypot(x - (x0 + t * sx), y - (y0 + t * sy))


def _paint(image, coverage, value):
    """Lay a shape of grey ``value`` over ``image`` with the given coverage: in place."""
    image *= 1.0 - coverage
    image += coverage * value


def render_faces(factors, image_shape=IMAGE_SHAPE) -> np.ndarray:
    """Draw one face per row of ``factors``.

    Inputs: factors: (N, 3) in [-1, 1], columns :data:`FACTOR_NAMES`
    (expression, pose, lighting); values outside are clipped.
    Returns: X: (N, H * W) float32 in [0, 1], H, W = ``image_shape``.
    The same factors give the same pixels on every machine (no randomness).
    """
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must be (N, {len(FACTOR_NAMES)}) with columns {FACTOR_NAMES}, "
                         f"got shape {factors.shape}.")
    if tuple(image_shape) != IMAGE_SHAPE:
        raise ValueError(f"the faces are drawn at {IMAGE_SHAPE} (Frey's size), got image_shape {image_shape}.")
    factors = np.clip(factors, -1.0, 1.0)
    H, W = image_shape
    N = len(factors)
    expression, pose, lighting = (factors[:, k, None, None] for k in range(3))   # (N, 1, 1) each
    y, x = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5                          # (H, W) pixel centres
    x, y = x[None], y[None]                                                       # (1, H, W)

    image = np.full((N, H, W), _BACKGROUND)
    head_x = _HEAD_CENTRE[0] + _HEAD_TURN * pose
    head = _coverage(_ellipse_distance(x, y, head_x, _HEAD_CENTRE[1], *_HEAD_AXES))
    skin = _SKIN + _LIGHTING * lighting * np.clip((x - head_x) / _HEAD_AXES[0], -1.0, 1.0)
    _paint(image, head, skin)

    face_x = _HEAD_CENTRE[0] + _FEATURE_TURN * pose                               # (N, 1, 1)
    gap = _EYE_GAP * (1.0 - 0.12 * np.abs(pose))                                  # foreshortening
    for side in (-1.0, 1.0):
        eye = _coverage(_ellipse_distance(x, y, face_x + side * gap, _EYE_Y, *_EYE_AXES))
        _paint(image, eye, _EYE)
    nose = _coverage(_segment_distance(x, y, face_x + 0.3 * pose, _NOSE_TOP,
                                       face_x + 0.9 * pose, _NOSE_BOTTOM) - _NOSE_WIDTH)
    _paint(image, nose, _NOSE_DARKEN * skin)

    # the mouth: y(u) = MOUTH_Y - CURVE * expression * u^2 for u in [-1, 1], as a polyline
    u = np.linspace(-1.0, 1.0, _MOUTH_SEGMENTS + 1)                              # (S + 1,)
    mouth_x = face_x + _MOUTH_HALF_WIDTH * (1.0 - 0.12 * np.abs(pose)) * u       # (N, 1, S + 1)
    mouth_y = _MOUTH_Y - _MOUTH_CURVE * expression * u**2 + 0.5 * _MOUTH_CURVE * expression
    distance = np.full((N, H, W), np.inf)
    for s in range(_MOUTH_SEGMENTS):
        distance = np.minimum(distance, _segment_distance(
            x, y, mouth_x[..., s:s + 1], mouth_y[..., s:s + 1],
            mouth_x[..., s + 1:s + 2], mouth_y[..., s + 1:s + 2]))
    _paint(image, _coverage(distance - _MOUTH_THICKNESS), _MOUTH)
    return np.clip(image, 0.0, 1.0).reshape(N, H * W).astype(np.float32)


def sample_factors(n: int, seed: int = SEED) -> np.ndarray:
    """n factor vectors drawn independently and uniformly in [-1, 1]: (n, 3)."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(int(n), len(FACTOR_NAMES)))


def synthetic_faces(n_images: int = N_IMAGES, n_test: int = N_TEST, seed: int = SEED,
                    test_only: bool = False) -> FacesDataset:
    """A seeded dataset of drawn faces with their factors, split into train and test.

    Inputs: n_images: how many faces in all; n_test: the last ``n_test``
    are the test set (the factors are i.i.d., so the split needs no
    shuffling); seed: the factors' seed.
    Returns: a :class:`FacesDataset`: X_train (n_images - n_test, 560) and
    X_test (n_test, 560) float32 in [0, 1], factors_train / factors_test
    (N, 3) float64. The defaults (4,000 faces, 400 for testing, seed 0)
    are what ``load_dataset("synthetic-faces")`` returns. test_only=True draws
    only the test faces (the same ones; X_train is empty, (0, 560)): what a
    page that shows the test set needs, in a tenth of the time.
    """
    if not 0 < int(n_test) < int(n_images):
        raise ValueError(f"need 0 < n_test < n_images, got n_test={n_test}, n_images={n_images}.")
    factors = sample_factors(n_images, seed)
    split = int(n_images) - int(n_test)
    if test_only:
        X = render_faces(factors[split:])
        return FacesDataset(
            name="synthetic-faces", X_train=X[:0], y_train=None, X_test=X, y_test=None,
            image_shape=IMAGE_SHAPE, source=f"drawn by vae_teach.faces (seed {seed}), test faces only",
            factors_train=factors[:0], factors_test=factors[split:], factor_names=FACTOR_NAMES)
    X = render_faces(factors)
    return FacesDataset(
        name="synthetic-faces", X_train=X[:split], y_train=None, X_test=X[split:], y_test=None,
        image_shape=IMAGE_SHAPE, source=f"drawn by vae_teach.faces (seed {seed})",
        factors_train=factors[:split], factors_test=factors[split:], factor_names=FACTOR_NAMES)


def factor_correlations(mu, factors) -> np.ndarray:
    """Pearson correlation of every latent dimension with every true factor: (L, F).

    Inputs: mu: (N, L) posterior means; factors: (N, F) the true factors of
    the same images. Entry (l, f) is corr(mu[:, l], factors[:, f]) in
    [-1, 1]; a latent dimension that does not vary at all gets 0.
    """
    mu = np.asarray(mu, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    if mu.ndim != 2 or factors.ndim != 2 or len(mu) != len(factors) or len(mu) < 2:
        raise ValueError(f"mu (N, L) and factors (N, F) need the same N >= 2 rows, got shapes "
                         f"{mu.shape} and {factors.shape}.")
    a = mu - mu.mean(axis=0)
    b = factors - factors.mean(axis=0)
    norms = np.outer(np.sqrt((a**2).sum(axis=0)), np.sqrt((b**2).sum(axis=0)))   # (L, F)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(norms > 0, (a.T @ b) / norms, 0.0)
    return np.clip(corr, -1.0, 1.0)


def correlation_figure(corr, factor_names=FACTOR_NAMES, ax=None, title=None):
    """A heat map of :func:`factor_correlations`, each cell labelled with its value. Returns the Figure.

    Rows are the latent dimensions z_1 .. z_L, columns the factors; the colour
    runs from -1 (blue) through 0 (white) to +1 (red).
    """
    import matplotlib.pyplot as plt

    corr = np.asarray(corr, dtype=np.float64)
    L, F = corr.shape
    if F != len(factor_names):
        raise ValueError(f"corr has {F} columns but {len(factor_names)} factor names were given.")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * F + 1.8, 0.45 * L + 1.3), layout="constrained")
    image = ax.imshow(corr, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
    for (l, f), value in np.ndenumerate(corr):
        ax.text(f, l, f"{value:+.2f}", ha="center", va="center", fontsize=9,
                color="white" if abs(value) > 0.6 else "black")
    ax.set_xticks(range(F), factor_names)
    ax.set_yticks(range(L), [f"$z_{{{l + 1}}}$" for l in range(L)])
    ax.figure.colorbar(image, ax=ax, label="correlation")
    ax.set_title(title or "corr(posterior mean, true factor)")
    return ax.figure
