"""How good are a model's samples? Distances between generated and real images in a feature space.

The features come from a network trained on the real images (``vae_teach.classifier``'s
last hidden layer), as FID's come from an Inception network; the scores are not
comparable with published FIDs, which use that network and 50,000 samples.

- ``frechet_distance(F_real, F_fake)``: the Fréchet (2-Wasserstein) distance between
  Gaussians fitted to the two feature sets, |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2)
  (Heusel et al., 2017: FID's formula).
- ``kernel_distance(F_real, F_fake)``: the unbiased squared MMD with the cubic polynomial
  kernel k(a, b) = (a.b / d + 1)^3, averaged over random subsets, with its standard
  error (Bińkowski et al., 2018: KID's formula). Unbiased: about 0 for two samples of one
  distribution, and it may come out slightly negative.
- ``precision_recall(F_real, F_fake, k)``: Kynkäänniemi et al. (2019): each set's manifold
  is the union of balls reaching every point's k-th nearest neighbour within its set;
  precision is the fraction of fake points inside the real manifold (are samples
  realistic?), recall the fraction of real points inside the fake one (is the variety
  covered?).
- ``sample_quality(model, X_real, classifier, ...)``: all of these for a VAE's prior
  samples, over repeated draws, each with its standard error over the draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from vae_teach import checks


def _features(F, name) -> np.ndarray:
    F = checks.matrix(F, name, dtype=np.float64)
    if len(F) < 2:
        raise ValueError(f"{name} must hold at least 2 feature vectors to fit a mean and a covariance, got "
                         f"{checks.describe(F)}.")
    return F


def _same_width(F_real, F_fake):
    if F_real.shape[1] != F_fake.shape[1]:
        raise ValueError(f"the two feature sets must have the same width, got {F_real.shape[1]} and "
                         f"{F_fake.shape[1]}: compute both with the same feature network.")


def frechet_distance_of_gaussians(mu1, cov1, mu2, cov2) -> float:
    """|mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)): the 2-Wasserstein distance squared."""
    covmean = linalg.sqrtm(cov1 @ cov2)
    covmean = np.real(covmean)                    # round-off can leave a tiny imaginary part
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean), 0.0))


def frechet_distance(F_real: np.ndarray, F_fake: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, d) and (M, d)."""
    F_real, F_fake = _features(F_real, "F_real"), _features(F_fake, "F_fake")
    _same_width(F_real, F_fake)
    return frechet_distance_of_gaussians(F_real.mean(axis=0), np.cov(F_real, rowvar=False),
                                         F_fake.mean(axis=0), np.cov(F_fake, rowvar=False))


def _unbiased_mmd2(K_xx, K_yy, K_xy) -> float:
    m, n = len(K_xx), len(K_yy)
    return float((K_xx.sum() - np.trace(K_xx)) / (m * (m - 1)) + (K_yy.sum() - np.trace(K_yy)) / (n * (n - 1))
                 - 2 * K_xy.mean())


@dataclass(frozen=True)
class Estimate:
    """A score: its mean over repeats and the standard error of that mean."""

    mean: float
    standard_error: float


def kernel_distance(F_real: np.ndarray, F_fake: np.ndarray, n_subsets: int = 20, subset_size: int = 500,
                    seed: int = 0) -> Estimate:
    """The unbiased squared MMD with a cubic polynomial kernel, averaged over random subsets (KID)."""
    F_real, F_fake = _features(F_real, "F_real"), _features(F_fake, "F_fake")
    _same_width(F_real, F_fake)
    if n_subsets < 1 or subset_size < 2:
        raise ValueError(f"need n_subsets >= 1 and subset_size >= 2, got {n_subsets} and {subset_size}.")
    d = F_real.shape[1]
    m = min(subset_size, len(F_real), len(F_fake))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = F_real[rng.choice(len(F_real), m, replace=False)]
        y = F_fake[rng.choice(len(F_fake), m, replace=False)]
        values.append(_unbiased_mmd2((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3))
    values = np.array(values)
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return Estimate(float(values.mean()), se)


def _kth_neighbour_radii(F: np.ndarray, k: int) -> np.ndarray:
    d2 = _squared_distances(F, F)
    return np.sqrt(np.partition(d2, k, axis=1)[:, k])          # column 0 is the point itself


def _squared_distances(A, B) -> np.ndarray:
    return np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T, 0.0)


def _fraction_inside(points, centres, radii) -> float:
    inside = _squared_distances(points, centres) <= (radii * radii)[None, :]
    return float(inside.any(axis=1).mean())


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def precision_recall(F_real: np.ndarray, F_fake: np.ndarray, k: int = 3) -> PrecisionRecall:
    """Kynkäänniemi et al.'s improved precision and recall of F_fake (M, d) against F_real (N, d)."""
    F_real, F_fake = _features(F_real, "F_real"), _features(F_fake, "F_fake")
    _same_width(F_real, F_fake)
    if not 1 <= k < min(len(F_real), len(F_fake)):
        raise ValueError(f"k must be at least 1 and below both set sizes, got {k} (Kynkäänniemi et al. use 3).")
    precision = _fraction_inside(F_fake, F_real, _kth_neighbour_radii(F_real, k))
    recall = _fraction_inside(F_real, F_fake, _kth_neighbour_radii(F_fake, k))
    return PrecisionRecall(precision, recall, k)


@dataclass(frozen=True)
class SampleQuality:
    """The scores of a model's prior samples against real images, each over ``n_draws`` draws."""

    frechet: Estimate
    kernel: Estimate
    precision: Estimate
    recall: Estimate
    n_samples: int
    n_draws: int


def _over_draws(values) -> Estimate:
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return Estimate(float(values.mean()), se)


def sample_quality(model, X_real: np.ndarray, classifier, n_samples: int = 1000, n_draws: int = 5,
                   seed: int = 0, k: int = 3) -> SampleQuality:
    """Score ``n_draws`` sets of ``n_samples`` prior samples (decoded means) of ``model`` against X_real.

    model: any protocol model (``decode``); X_real: (N, D) real images, e.g. the test set;
    classifier: a ``vae_teach.classifier.Classifier`` trained on the same dataset (its ``features``).
    Draw r uses z ~ N(0, I) from ``default_rng((seed, r))``.
    """
    if n_draws < 2:
        raise ValueError(f"n_draws must be >= 2 to give a standard error, got {n_draws}.")
    F_real = classifier.features(X_real)
    scores = {"frechet": [], "kernel": [], "precision": [], "recall": []}
    for r in range(n_draws):
        Z = np.random.default_rng((seed, r)).standard_normal((n_samples, model.latent_dim))
        F_fake = classifier.features(model.decode(Z))
        scores["frechet"].append(frechet_distance(F_real, F_fake))
        scores["kernel"].append(kernel_distance(F_real, F_fake, seed=r).mean)
        pr = precision_recall(F_real, F_fake, k)
        scores["precision"].append(pr.precision)
        scores["recall"].append(pr.recall)
    return SampleQuality(**{name: _over_draws(v) for name, v in scores.items()}, n_samples=n_samples,
                         n_draws=n_draws)
