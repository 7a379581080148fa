"""The one protocol every backend's model meets (NumPy, PyTensor, PyTorch).

Everything downstream (evaluation, plots, widgets, the CLI) talks to a model
only through these methods, on NumPy arrays:

- ``latent_dim``: L
- ``encode(X) -> (mu, logvar)``: (N, D) -> (N, L), (N, L); logvar is log sigma^2
- ``decode(Z) -> X_mean``: (N, L) -> (N, D), the likelihood's mean
  (Bernoulli probabilities; see ``vae_teach.elbo.likelihood_mean`` for the others)
- ``log_likelihood(X, Z) -> log p(x | z)``: (N, D), (N, L) -> (N,) nats,
  computed stably by the backend (from logits, never from rounded probabilities)
- ``elbo(X, n_samples=1, seed=0) -> (N,)``: per example, in nats, with the
  noise drawn by :func:`draw_noise` so every backend sees the same epsilon
- ``get_params() -> dict[str, ndarray]`` / ``set_params(dict)``: the same
  names and shapes in every backend, weights as (in, out) so ``X @ W + b``.

Parameter names (see :func:`param_shapes`): hidden layers ``enc0_W``,
``enc0_b``, ... then the heads ``mu_W``, ``mu_b`` and ``logvar_W``,
``logvar_b`` (``logsigma_W``, ``logsigma_b`` in the log-sigma
parameterisation), then ``dec0_W``, ``dec0_b``, ... and ``out_W``, ``out_b``,
and, for the Gaussian likelihood with a learned variance, ``out_logvar`` (D,):
one log sigma^2 per pixel, shared by all images.

The decoder's output layer gives logits a (N, D); the likelihood
(``VAEConfig.likelihood``, lesson 07) turns them into p(x | z):
"bernoulli" (mean sigmoid(a)), "gaussian" (mean sigmoid(a), fixed variance
exp(output_logvar)), "gaussian-learned" (mean sigmoid(a), variance
exp(out_logvar), learned) and "continuous-bernoulli" (shape sigmoid(a)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np

ACTIVATIONS = ("relu", "tanh")
SCALE_PARAMETERISATIONS = ("logvar", "logsigma")
LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli")


@dataclass(frozen=True)
class VAEConfig:
    """The architecture shared by all three backends.

    input_dim: D pixels; hidden_dims: encoder hidden sizes (the decoder uses
    them reversed); latent_dim: L; activation: "relu" or "tanh";
    scale: "logvar" (encoder outputs log sigma^2) or "logsigma" (log sigma,
    as the classic Theano code did); likelihood: the decoder's p(x | z), one of
    ``LIKELIHOODS`` (lesson 07); output_logvar: log sigma^2 of the Gaussian
    likelihood, fixed for "gaussian", the initial value of ``out_logvar`` for
    "gaussian-learned", unused otherwise.
    """

    input_dim: int
    hidden_dims: tuple[int, ...] = (400,)
    latent_dim: int = 20
    activation: str = "relu"
    scale: str = "logvar"
    likelihood: str = "bernoulli"
    output_logvar: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if self.input_dim <= 0 or self.latent_dim <= 0 or any(h <= 0 for h in self.hidden_dims):
            raise ValueError(
                f"VAEConfig sizes must be positive, got input_dim={self.input_dim}, "
                f"hidden_dims={self.hidden_dims}, latent_dim={self.latent_dim}."
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if self.scale not in SCALE_PARAMETERISATIONS:
            raise ValueError(f"scale must be one of {SCALE_PARAMETERISATIONS}, got {self.scale!r}.")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}.")
        object.__setattr__(self, "output_logvar", float(self.output_logvar))
        if not np.isfinite(self.output_logvar):
            raise ValueError(f"output_logvar must be a finite log-variance, got {self.output_logvar}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """The inverse of ``to_dict``; configs saved before lesson 07 (no likelihood) load as Bernoulli."""
        return cls(**d)


def param_shapes(config: VAEConfig) -> dict[str, tuple[int, ...]]:
    """The ordered parameter names and shapes every backend uses."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = config.input_dim
    for i, h in enumerate(config.hidden_dims):
        shapes[f"enc{i}_W"], shapes[f"enc{i}_b"] = (fan_in, h), (h,)
        fan_in = h
    L = config.latent_dim
    shapes["mu_W"], shapes["mu_b"] = (fan_in, L), (L,)
    scale = config.scale
    shapes[f"{scale}_W"], shapes[f"{scale}_b"] = (fan_in, L), (L,)
    fan_in = L
    for i, h in enumerate(reversed(config.hidden_dims)):
        shapes[f"dec{i}_W"], shapes[f"dec{i}_b"] = (fan_in, h), (h,)
        fan_in = h
    shapes["out_W"], shapes["out_b"] = (fan_in, config.input_dim), (config.input_dim,)
    if config.likelihood == "gaussian-learned":
        shapes["out_logvar"] = (config.input_dim,)
    return shapes


def init_params(config: VAEConfig, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Initial weights, drawn as torch.nn.Linear draws them: U(-1/sqrt(fan_in), +).

    The same seed gives the same weights for every backend, which load them
    through ``set_params``. A learned ``out_logvar`` starts at
    ``config.output_logvar`` everywhere.
    """
    rng = np.random.default_rng(seed)
    shapes = param_shapes(config)
    params = {}
    for name, shape in shapes.items():
        if name == "out_logvar":
            params[name] = np.full(shape, config.output_logvar, dtype=dtype)
            continue
        fan_in = shapes[name[:-1] + "W"][0]  # a bias shares its layer's fan-in
        bound = 1.0 / np.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def draw_noise(seed: int, n_samples: int, n: int, latent_dim: int, dtype=np.float64) -> np.ndarray:
    """Standard normal epsilon, (K, N, L), drawn the same way by every backend."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, n, latent_dim)).astype(dtype)


def check_params(config: VAEConfig, params: dict[str, np.ndarray]) -> None:
    """Raise a ValueError naming every missing, extra, misshapen or non-finite parameter
    (with the shape expected and the shape got); a TypeError if ``params`` is not a dict of arrays."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays by the shared names (as get_params() returns), "
                        f"got {type(params).__name__}.")
    expected = param_shapes(config)
    problems = []
    for name, value in params.items():
        value = np.asarray(value)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"parameter {name!r} must be an array of numbers, got dtype {value.dtype}.")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            problems.append(f"{name!r} has NaN or infinite entries (weights of a diverged run?)")
    for name in expected.keys() - params.keys():
        problems.append(f"missing {name!r} (expected shape {expected[name]})")
    for name in params.keys() - expected.keys():
        problems.append(f"unexpected {name!r}")
    for name in expected.keys() & params.keys():
        if tuple(np.shape(params[name])) != expected[name]:
            problems.append(f"{name!r} has shape {tuple(np.shape(params[name]))}, expected {expected[name]}")
    if problems:
        raise ValueError(
            "These parameters do not fit the model's config "
            f"({config.to_dict()}): " + "; ".join(sorted(problems))
            + ". Build the model with the config the weights were trained with."
        )


@runtime_checkable
class VAEModel(Protocol):
    """What every backend's model offers. See the module docstring."""

    config: VAEConfig

    @property
    def latent_dim(self) -> int: ...

    def encode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def decode(self, Z: np.ndarray) -> np.ndarray: ...

    def log_likelihood(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray: ...

    def elbo(self, X: np.ndarray, n_samples: int = 1, seed: int = 0) -> np.ndarray: ...

    def get_params(self) -> dict[str, np.ndarray]: ...

    def set_params(self, params: dict[str, np.ndarray]) -> None: ...
