"""Weights that reach each likelihood's hard cases, shared by the backends' agreement tests."""

import numpy as np


def with_hard_cases(params: dict, likelihood: str, input_dim: int) -> dict:
    """``params`` changed in place (and returned) so that the agreement tests see the hard cases.

    The learned Gaussian gets a log-variance that differs from pixel to pixel; the
    continuous Bernoulli a small output layer, so that some logits lie in its series
    branch (|a| < 1e-2), the first pixel's at exactly 0, and the others just beyond it.
    """
    if likelihood == "gaussian-learned":
        params["out_logvar"] = np.random.default_rng(2).normal(-1.0, 0.5, input_dim)
    if likelihood == "continuous-bernoulli":
        params["out_W"] *= 1e-3
        params["out_W"][:, 0] = 0.0
        params["out_b"] = np.linspace(-2e-2, 2e-2, input_dim)
        params["out_b"][0] = 0.0
    return params
