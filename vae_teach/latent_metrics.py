"""The proximity problem, measured: do images that look alike get codes that lie close?

Lesson 01 measures it on a deterministic autoencoder; lesson 03b measures the
same numbers on a VAE (codes: the encoder's means μ(x)).

- ``proximity_metrics``: the rank correlation of pixel and code distances over
  all pairs, how often an image's nearest pixel neighbour has a code farther
  away than the median pair, and how often its nearest code is another digit.
- ``empty_points``: the points inside the codes' convex hull farthest from every
  code, spread apart, with their distances in units of the typical gap between
  neighbouring codes: the empty space a decoder was never trained on.

Defined in notebooks 01 and 03b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Proximity:
    """What ``proximity_metrics`` returns; fractions in [0, 1].

    rank_correlation: Spearman's rho of pixel distance against code distance,
    over all pairs; nn_far: fraction of images whose nearest neighbour in pixels
    has a code farther away than the median pair's; code_nn_other_digit: fraction
    whose nearest code belongs to another digit; pixel_nn_other_digit: the same
    for the nearest image in pixels (no model involved: the baseline).
    """

    rank_correlation: float
    nn_far: float
    code_nn_other_digit: float
    pixel_nn_other_digit: float


def proximity_metrics(X: np.ndarray, codes: np.ndarray, y: np.ndarray) -> Proximity:
    """Measure the proximity problem. X: (N, D) images; codes: (N, F); y: (N,) labels.

    Costs N² memory: meant for a test set of about a thousand images.
    """
    from scipy.spatial.distance import pdist, squareform
    from scipy.stats import spearmanr

    X, codes, y = np.asarray(X, dtype=np.float64), np.asarray(codes, dtype=np.float64), np.asarray(y)
    if not (len(X) == len(codes) == len(y)) or len(X) < 3:
        raise ValueError(f"X, codes and y need the same length >= 3, got {len(X)}, {len(codes)}, {len(y)}.")
    d_pixels, d_codes = pdist(X), pdist(codes)                  # (N (N - 1) / 2,): all pairs
    P, C = squareform(d_pixels), squareform(d_codes)            # (N, N)
    np.fill_diagonal(P, np.inf)
    np.fill_diagonal(C, np.inf)
    pixel_nn, code_nn = P.argmin(axis=1), C.argmin(axis=1)     # each image's nearest neighbour
    far = C[np.arange(len(X)), pixel_nn] > np.median(d_codes)
    return Proximity(rank_correlation=float(spearmanr(d_pixels, d_codes)[0]),
                     nn_far=float(np.mean(far)),
                     code_nn_other_digit=float(np.mean(y[code_nn] != y)),
                     pixel_nn_other_digit=float(np.mean(y[pixel_nn] != y)))


def empty_points(codes: np.ndarray, n_points: int = 8, grid_size: int = 60,
                 min_apart: float = 0.08) -> tuple[np.ndarray, np.ndarray, float]:
    """The emptiest places among 2-D codes, chosen by a rule rather than by eye.

    Lays a grid_size x grid_size grid over the codes' bounding box, keeps the
    points inside their convex hull, and takes the ``n_points`` farthest from
    every code, each at least ``min_apart`` x the box's diagonal from the others.
    codes: (N, 2). Returns: Z_empty (n_points, 2); their distances to the nearest
    code in gaps (n_points,), largest first; gap, the median distance from a
    code to its nearest other code.
    """
    from scipy.spatial import Delaunay, cKDTree

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"empty_points needs 2-D codes (N, 2), got shape {codes.shape}.")
    tree = cKDTree(codes)
    gap = float(np.median(tree.query(codes, k=2)[0][:, 1]))
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
