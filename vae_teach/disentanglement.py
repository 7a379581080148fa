"""Disentanglement: how well each known generative factor sits in one latent dimension.

The scores compare a representation, codes (N, L) (a VAE's posterior means),
with the factors that generated the same N examples, factors (N, F): the
synthetic faces' expression, pose and lighting (``vae_teach.faces``, floats in
[-1, 1]), or integer labels. A factor column is *discrete* when all its values
are whole numbers (integer labels, as given) and *continuous* otherwise; pass
``discrete=`` to say so explicitly.

- ``mutual_information_gap(codes, factors, n_bins)``: the MIG of Chen et al. (2018),
  "Isolating Sources of Disentanglement in Variational Autoencoders", section 4:

      MIG = 1/F sum_k [ I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k) ] / H(v_k),

  j(k) = argmax_j I(z_j; v_k). As in their reference code and in
  disentanglement_lib (Locatello et al., 2019), each code dimension is cut into
  ``n_bins`` equal-width bins over its observed range and I is the plug-in
  (histogram) mutual information, in nats; continuous factors are cut the same
  way, discrete ones are used as given. 1: each factor is in one dimension
  alone; 0: no factor is in one dimension more than in another.
- ``separated_attribute_predictability(codes, factors)``: SAP, Kumar et al. (2018),
  "Variational Inference of Disentangled Latent Concepts from Unlabeled
  Observations", section 3: a score matrix S (L, F) holding, for every latent
  dimension alone, how well it predicts each factor -- the R^2 of a linear
  regression for a continuous factor (the squared Pearson correlation), the
  balanced accuracy of a threshold classifier for a discrete one -- and
  SAP = 1/F sum_k (top-1 - top-2 of S[:, k]).
- ``scores(model, X, factors)``: both for a protocol model's encoder means.

Both are invariant to permuting the code dimensions, and to rescaling or
shifting one (MIG up to a sample that lands exactly on a bin edge). Nothing runs on import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_teach import checks
from vae_teach.faces import factor_correlations

N_BINS = 20
"""Equal-width bins per code dimension: disentanglement_lib's MIG default."""


@dataclass(frozen=True)
class MIG:
    """The Mutual Information Gap and what it was computed from.

    score: the mean of ``gaps``, in [0, 1]; gaps: (F,) each factor's normalised
    gap; mutual_information: (L, F) I(z_j; v_k) in nats; factor_entropy: (F,)
    H(v_k) in nats (of the discretised factor).
    """

    score: float
    gaps: np.ndarray
    mutual_information: np.ndarray
    factor_entropy: np.ndarray


@dataclass(frozen=True)
class SAP:
    """The Separated Attribute Predictability score and its score matrix.

    score: the mean of ``gaps``; gaps: (F,) top-1 minus top-2 of each column of
    ``score_matrix``; score_matrix: (L, F) R^2 (continuous factor) or balanced
    accuracy (discrete factor) of each latent dimension alone.
    """

    score: float
    gaps: np.ndarray
    score_matrix: np.ndarray


@dataclass(frozen=True)
class DisentanglementScores:
    """Both scores of one representation: ``mig`` (:class:`MIG`) and ``sap`` (:class:`SAP`)."""

    mig: MIG
    sap: SAP


def _inputs(codes, factors, discrete):
    """Check codes (N, L) and factors (N, F); return them as float64 and the (F,) discrete flags."""
    codes = checks.matrix(codes, "codes", dtype=np.float64)
    factors = checks.matrix(factors, "factors", dtype=np.float64)
    checks.same_rows(codes=codes, factors=factors)
    if len(codes) < 2:
        raise ValueError(f"codes and factors need at least 2 examples (rows), got {len(codes)}: "
                         f"the scores compare how values vary across examples.")
    spread = factors.max(axis=0) - factors.min(axis=0)
    if np.any(spread == 0):
        k = int(np.flatnonzero(spread == 0)[0])
        raise ValueError(f"factors column {k} is constant (every value {factors[0, k]:g}): a factor that "
                         f"never varies has zero entropy and nothing to predict; drop that column.")
    if discrete is None:
        discrete = np.all(factors == np.round(factors), axis=0)
    else:
        discrete = np.asarray(discrete, dtype=bool).reshape(-1)
        if discrete.shape != (factors.shape[1],):
            raise ValueError(f"discrete must hold one flag per factor, {factors.shape[1]}, got "
                             f"{discrete.size}: e.g. discrete=[False] * {factors.shape[1]}.")
    return codes, factors, discrete


def discretize(values, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin index of every entry of each column: (N, K) floats -> (N, K) ints in [0, n_bins).

    The bins split [min, max] of each column into ``n_bins`` equal parts; the
    maximum goes in the last bin (np.histogram's edges, as disentanglement_lib
    uses). A constant column is all bin 0.
    """
    values = np.asarray(values, dtype=np.float64)
    lo, hi = values.min(axis=0), values.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    bins = np.floor((values - lo) / width * n_bins).astype(np.int64)
    return np.clip(bins, 0, n_bins - 1)


def _labels(column: np.ndarray) -> np.ndarray:
    """Any column of values as labels 0 .. K-1 (K distinct values)."""
    return np.unique(column, return_inverse=True)[1].reshape(-1)


def _entropy(labels: np.ndarray) -> float:
    """The plug-in entropy, in nats, of labels 0 .. K-1."""
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """The plug-in mutual information, in nats, of two label arrays (N,): H(a) + H(b) - H(a, b)."""
    joint = a * (b.max() + 1) + b
    return max(_entropy(a) + _entropy(b) - _entropy(_labels(joint)), 0.0)


def _factor_labels(factors, discrete, n_bins) -> np.ndarray:
    """(N, F) labels: discrete factors as given, continuous ones in n_bins equal-width bins."""
    binned = discretize(factors, n_bins)
    return np.stack([_labels(factors[:, k]) if discrete[k] else _labels(binned[:, k])
                     for k in range(factors.shape[1])], axis=1)


def _top_two_gap(S: np.ndarray) -> np.ndarray:
    """(F,) the largest minus the second largest entry of each column of S (L, F); the largest alone if L = 1."""
    if len(S) < 2:
        return S[0].copy()
    top = np.sort(S, axis=0)
    return top[-1] - top[-2]


def mutual_information_gap(codes, factors, n_bins: int = N_BINS, discrete=None) -> MIG:
    """The Mutual Information Gap (Chen et al., 2018) of codes (N, L) against factors (N, F).

    Inputs: codes: (N, L) e.g. posterior means; factors: (N, F), the true factors
    of the same examples; n_bins: equal-width bins per code dimension and per
    continuous factor (>= 2); discrete: None (a factor whose values are all whole
    numbers is discrete) or (F,) flags. Discrete factors keep their own values
    as classes; continuous ones are cut into ``n_bins`` equal-width bins over
    their range, like the codes.
    Returns: a :class:`MIG`: the score in [0, 1], the (F,) gaps and the (L, F)
    mutual information I(z_j; v_k) in nats.
    """
    if checks.count(n_bins, "n_bins", minimum=1) < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}: one bin puts every example together "
                         f"and measures no information; use the default, {N_BINS}.")
    codes, factors, discrete = _inputs(codes, factors, discrete)
    code_bins = discretize(codes, n_bins)                                           # (N, L)
    factor_labels = _factor_labels(factors, discrete, n_bins)                       # (N, F)
    L, F = codes.shape[1], factors.shape[1]
    mi = np.array([[_mutual_information(code_bins[:, j], factor_labels[:, k]) for k in range(F)]
                   for j in range(L)])                                              # (L, F)
    entropy = np.array([_entropy(factor_labels[:, k]) for k in range(F)])           # (F,)
    gaps = _top_two_gap(mi) / entropy
    return MIG(float(gaps.mean()), gaps, mi, entropy)


def _balanced_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Balanced accuracy of a threshold classifier of labels (N,) from one code dimension z (N,).

    The thresholds are the midpoints between the sorted class means of z
    (nearest class mean in one dimension; two classes: one threshold). The
    accuracy is the mean over classes of the fraction of that class predicted
    right, so always guessing one class scores 1/K, not its frequency.
    """
    K = labels.max() + 1
    counts = np.bincount(labels, minlength=K)
    means = np.bincount(labels, weights=z, minlength=K) / counts                    # (K,)
    predicted = np.argmin(np.abs(z[:, None] - means[None, :]), axis=1)             # (N,)
    right = np.bincount(labels, weights=(predicted == labels), minlength=K)
    return float(np.mean(right / counts))


def separated_attribute_predictability(codes, factors, discrete=None) -> SAP:
    """The SAP score (Kumar et al., 2018) of codes (N, L) against factors (N, F).

    Inputs: codes: (N, L); factors: (N, F); discrete: None (whole-numbered
    factors are discrete) or (F,) flags.
    S[j, k] is, for a continuous factor, the R^2 of regressing v_k linearly on
    z_j alone (= corr(z_j, v_k)^2, in [0, 1]), and for a discrete factor the
    balanced accuracy of a threshold classifier on z_j alone (1/K by chance, K
    classes). Scored on the examples given (a line and K thresholds hardly overfit).
    Returns: a :class:`SAP`: the mean over factors of top-1 minus top-2 of S[:, k],
    the (F,) gaps and S (L, F).
    """
    codes, factors, discrete = _inputs(codes, factors, discrete)
    columns = []
    for k in range(factors.shape[1]):
        if discrete[k]:
            labels = _labels(factors[:, k])
            columns.append([_balanced_accuracy(codes[:, j], labels) for j in range(codes.shape[1])])
        else:
            # R^2 of the least-squares line v_k ~ a z_j + b is corr(z_j, v_k)^2 (0 for a constant z_j)
            columns.append(factor_correlations(codes, factors[:, k:k + 1])[:, 0] ** 2)
    S = np.array(columns, dtype=np.float64).T                                      # (L, F)
    gaps = _top_two_gap(S)
    return SAP(float(gaps.mean()), gaps, S)


def scores(model, X, factors, n_bins: int = N_BINS, discrete=None) -> DisentanglementScores:
    """MIG and SAP of a protocol model's posterior means for images X (N, D) with factors (N, F).

    The codes are ``model.encode(X)[0]``, mu (N, L); see
    :func:`mutual_information_gap` and :func:`separated_attribute_predictability`.
    """
    X = checks.model_images(model, X)
    mu, _ = model.encode(X)                                                         # (N, L)
    return DisentanglementScores(mutual_information_gap(mu, factors, n_bins, discrete),
                                 separated_attribute_predictability(mu, factors, discrete))
