"""The proximity problem, measured: does nearness of codes follow nearness of images?

Metrics of a code space, on plain arrays, so that the same functions measure
an autoencoder's codes g(x) (lesson 01) and a VAE's means mu(x):

- ``distance_rank_correlation(X, codes)``: Spearman's rank correlation of the
  pixel distance with the code distance, over all pairs of images.
- ``nearest_neighbour_other_label(points, labels)``: how often the nearest
  point (code, or image) belongs to another class.
- ``pixel_neighbour_code_ratio(X, codes)``: for each image, how far apart in
  code space it and its nearest pixel-space neighbour are, in units of the
  median code distance of a pair.
- ``proximity_metrics(X, codes, labels)``: the three above as one dict.
- ``median_neighbour_gap(codes)`` and ``between_clusters(codes, labels)``:
  the empty space between classes, in units of the typical gap between codes;
  ``empty_points(codes)``: the emptiest points inside 2-D codes' convex hull.
- ``decoder_entropy(logits)``: how sure a Bernoulli decoder is of its image.
- ``knn_judge(X, X_ref, y_ref)``: which digit an image looks like, by the
  majority of its nearest reference images, and how many of them agree.

Defined in notebook 01; re-run on the VAE of lesson 03b.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from vae_teach.elbo import sigmoid, softplus


def _pairs(A: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or len(A) < 3:
        raise ValueError(f"{name} must have shape (N, K) with N >= 3, got {A.shape}.")
    return A


def _same_length(A: np.ndarray, B: np.ndarray, names: str) -> None:
    if len(A) != len(B):
        raise ValueError(f"{names} must have the same number of rows, got {len(A)} and {len(B)}.")


def distance_rank_correlation(X: np.ndarray, codes: np.ndarray) -> float:
    """Spearman's rho between ||x_i - x_j|| and ||z_i - z_j|| over all pairs i < j.

    Inputs: X (N, D) images, codes (N, F). Returns a float in [-1, 1]: 1 when
    the codes order every pair as the pixels do.
    """
    X, codes = _pairs(X, "X"), _pairs(codes, "codes")
    _same_length(X, codes, "X and codes")
    return float(spearmanr(pdist(X), pdist(codes))[0])


def _nearest_other(points: np.ndarray) -> np.ndarray:
    """Index of each point's nearest other point, (N,)."""
    return cKDTree(points).query(points, k=2)[1][:, 1]


def nearest_neighbour_other_label(points: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of points whose nearest other point carries another label.

    Inputs: points (N, K) (codes, or images for the pixel baseline), labels (N,).
    """
    points, labels = _pairs(points, "points"), np.asarray(labels)
    _same_length(points, labels, "points and labels")
    return float(np.mean(labels[_nearest_other(points)] != labels))


def pixel_neighbour_code_ratio(X: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each image, the code distance to its nearest pixel-space neighbour / the median pair's.

    Inputs: X (N, D), codes (N, F). Returns: ratio (N,) (> 1: the image that
    looks most like it has a code farther away than a typical pair's), and
    pixel_nn (N,), the index of each image's nearest neighbour in pixel space.
    """
    X, codes = _pairs(X, "X"), _pairs(codes, "codes")
    _same_length(X, codes, "X and codes")
    pixel_nn = _nearest_other(X)
    d_code = np.linalg.norm(codes - codes[pixel_nn], axis=1)
    return d_code / np.median(pdist(codes)), pixel_nn


def proximity_metrics(X: np.ndarray, codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The proximity problem in three numbers, for any encoder's codes of the images X.

    Returns {"rank_correlation": rho of pixel and code distances,
    "nearest_code_other_label": fraction whose nearest code is another class's,
    "pixel_neighbour_far_in_code": fraction whose nearest pixel neighbour's
    code is farther than the median pair's}. Lesson 01 reads them for the
    autoencoder; the same call on a VAE's mu(x) compares the two.
    """
    ratio, _ = pixel_neighbour_code_ratio(X, codes)
    return {"rank_correlation": distance_rank_correlation(X, codes),
            "nearest_code_other_label": nearest_neighbour_other_label(codes, labels),
            "pixel_neighbour_far_in_code": float(np.mean(ratio > 1))}


def median_neighbour_gap(codes: np.ndarray) -> float:
    """The median distance from a code to its nearest other code: the unit of 'far' in code space."""
    codes = _pairs(codes, "codes")
    return float(np.median(cKDTree(codes).query(codes, k=2)[0][:, 1]))


def between_clusters(codes: np.ndarray, labels: np.ndarray, n: int = 8,
                     n_steps: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The emptiest points between two classes' clusters of codes.

    For every pair of classes (a, b), walk the straight segment from the mean
    code of a to the mean code of b (``n_steps`` points) and take the point
    equally far from the nearest code of a and the nearest code of b: the
    middle of the space between the two clusters along that line. Return the
    ``n`` such points farthest from every code (of any class).

    Inputs: codes (N, F), labels (N,) with at least two classes.
    Returns: Z (n, F) the points, pairs (n, 2) their classes (a < b), and
    distance (n,) from each point to its nearest code, in median gaps
    (``median_neighbour_gap``), largest first.
    """
    codes, labels = _pairs(codes, "codes"), np.asarray(labels)
    _same_length(codes, labels, "codes and labels")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError("between_clusters needs codes of at least two classes.")
    tree, gap = cKDTree(codes), median_neighbour_gap(codes)
    trees = [cKDTree(codes[labels == c]) for c in classes]
    centroids = np.array([codes[labels == c].mean(axis=0) for c in classes])   # (C, F)
    t = np.linspace(0.0, 1.0, n_steps)[:, None]
    found = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            segment = (1 - t) * centroids[i] + t * centroids[j]                # (n_steps, F)
            k = int(np.argmin(np.abs(trees[i].query(segment)[0] - trees[j].query(segment)[0])))
            found.append((tree.query(segment[k])[0] / gap, (classes[i], classes[j]), segment[k]))
    found.sort(key=lambda f: -f[0])
    found = found[:n]
    return (np.array([f[2] for f in found]), np.array([f[1] for f in found]),
            np.array([f[0] for f in found]))


def decoder_entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy of the Bernoulli image a decoder outputs, summed over pixels: (N, D) logits -> (N,) nats.

    H = sum_d softplus(a_d) - a_d sigmoid(a_d): 0 for a decoder sure of every
    pixel, D log 2 for one that answers 0.5 everywhere. It is the BCE of the
    decoder's mean against itself.
    """
    a = np.asarray(logits, dtype=np.float64)
    return np.sum(softplus(a) - a * sigmoid(a), axis=-1)


def knn_judge(X: np.ndarray, X_ref: np.ndarray, y_ref: np.ndarray,
              k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Which class each image looks like: the majority label of its k nearest reference images.

    Nearness is the cosine distance (the angle between pixel vectors), so a
    faint image is not drawn to the thin 1s as it is in Euclidean distance.
    Inputs: X (N, D), X_ref (M, D), y_ref (M,) integer labels.
    Returns: label (N,), and share (N,) the fraction of the k that agree with it
    (1: all of them; near 1/k ... 1/2: the neighbours are split).
    """
    X, X_ref, y_ref = np.atleast_2d(np.asarray(X, float)), np.asarray(X_ref, float), np.asarray(y_ref)
    _same_length(X_ref, y_ref, "X_ref and y_ref")
    if not 1 <= k <= len(X_ref):
        raise ValueError(f"k must be between 1 and len(X_ref) = {len(X_ref)}, got {k}.")
    def unit(A):
        return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)

    cosine_distance = 1.0 - unit(X) @ unit(X_ref).T                                  # (N, M)
    nearest = np.argsort(cosine_distance, axis=1, kind="stable")[:, :k]              # (N, k)
    votes = y_ref[nearest]
    label = np.array([np.bincount(v).argmax() for v in votes])
    return label, np.mean(votes == label[:, None], axis=1)


def empty_points(codes: np.ndarray, n_points: int = 8, grid_size: int = 60,
                 min_apart: float = 0.08) -> tuple[np.ndarray, np.ndarray, float]:
    """The emptiest places among 2-D codes, chosen by a rule rather than by eye.

    Lays a grid_size x grid_size grid over the codes' bounding box, keeps the
    points inside their convex hull, and takes the ``n_points`` farthest from
    every code, each at least ``min_apart`` x the box's diagonal from the others.
    codes: (N, 2). Returns: Z_empty (n_points, 2); their distances to the nearest
    code in gaps (n_points,), largest first; gap, ``median_neighbour_gap(codes)``.
    Lesson 03b compares an autoencoder's with a VAE's.
    """
    from scipy.spatial import Delaunay

    codes = _pairs(codes, "codes")
    if codes.shape[1] != 2:
        raise ValueError(f"empty_points needs 2-D codes (N, 2), got shape {codes.shape}.")
    tree = cKDTree(codes)
    gap = median_neighbour_gap(codes)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    axes = [np.linspace(lo[k], hi[k], grid_size) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)   # (grid_size², 2)
    grid = grid[Delaunay(codes).find_simplex(grid) >= 0]          # inside the convex hull
    distance = tree.query(grid)[0]
    spacing = min_apart * np.linalg.norm(hi - lo)
    chosen: list[int] = []
    for i in np.argsort(-distance):
        if all(np.linalg.norm(grid[i] - grid[j]) > spacing for j in chosen):
            chosen.append(i)
        if len(chosen) == n_points:
            break
    return grid[chosen], distance[chosen] / gap, gap
