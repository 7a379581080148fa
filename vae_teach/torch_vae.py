"""The VAE as a ``torch.nn.Module``: autograd writes the backward pass.

Three pieces, as in pytorch/examples' vae/main.py:

- ``TorchVAE``: the network, on tensors: ``encode``, ``reparameterize``,
  ``decode``, ``forward``. Its layers are named as the shared parameters
  (``enc0``, ``mu``, ``logvar`` or ``logsigma``, ``dec0``, ``out``), so
  ``state_dict()`` reads ``enc0.weight``, ... and ``enc0_W`` is ``enc0.weight.T``;
  with the "gaussian-learned" likelihood, the ``nn.Parameter`` ``out_logvar`` (D,).
- ``loss_function``: -ELBO, the likelihood's NLL from logits + the analytic KL;
  ``iwae_loss_function``: -IWAE_K, the importance-weighted bound.
- ``log_likelihood``: log p(x | z) from logits for every likelihood of
  ``vae_teach.interface.LIKELIHOODS`` (Bernoulli, Gaussian with a fixed or a
  learned variance, continuous Bernoulli), and ``likelihood_mean``.
- ``train``: minibatches drawn from tensors on the device, ``torch.optim``.

``TorchModel`` wraps a ``TorchVAE`` so it meets ``vae_teach.interface.VAEModel``
on NumPy arrays; ``save_checkpoint`` / ``load_checkpoint`` store it.
Nothing runs on import. Defined in notebook 05; the likelihoods in notebook
07; the IWAE objective in notebook 08.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "vae_teach.torch_vae needs PyTorch, which is not installed: pip install 'vae_teach[torch]'"
    ) from error

from tqdm.auto import tqdm

from vae_teach import checks
from vae_teach.data import quantized_levels
from vae_teach.elbo import LOG_2PI
from vae_teach.evaluate import dataset_elbo
from vae_teach.interface import (
    LIKELIHOODS,
    VAEConfig,
    check_params,
    draw_noise,
    init_params,
    param_shapes,
)
from vae_teach.numpy_vae.optim import DEFAULT_LR
from vae_teach.files import atomic_path
from vae_teach.schedules import as_schedule, is_elbo
from vae_teach.training import BINARIZATIONS, History, check_finite, guarded_loss

CHECKPOINT_FORMAT = "vae_teach.torch_vae/1"
OPTIMIZERS = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
FUSED_DEVICES = {"sgd": ("cpu", "cuda"), "adagrad": ("cpu",), "adam": ("cpu", "cuda")}  # torch 2.13
OBJECTIVES = ("elbo", "iwae")
CB_SERIES_BELOW = 1e-2   # |a| below which the continuous Bernoulli uses its Taylor series (as vae_teach.elbo)


def default_device() -> torch.device:
    """cuda when a GPU is available, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_objective(objective: str) -> None:
    checks.choice(objective, "objective", OBJECTIVES)


def _torch_dtype(dtype) -> torch.dtype:
    """torch.float32/64, np.float32/64 or "float32"/"float64" -> a torch dtype."""
    if isinstance(dtype, torch.dtype):
        result = dtype
    else:
        result = {"float32": torch.float32, "float64": torch.float64}.get(np.dtype(dtype).name)
    if result not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}.")
    return result


# ----- the likelihoods, from logits ------------------------------------------
def continuous_bernoulli_log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    """log C(a) = log(a / tanh(a / 2)), the continuous Bernoulli's normaliser, elementwise.

    As ``vae_teach.elbo.continuous_bernoulli_log_normalizer``: log|a| - log(1 - e^-|a|)
    + log(1 + e^-|a|), and log 2 + a^2/12 - 7 a^4/1440 for |a| < 1e-2. Each
    branch of ``torch.where`` gets an input that is safe for it (1 for the
    direct formula near 0, 0 for the series far from it): autograd
    differentiates both branches and multiplies the unused one's gradient by
    0, and 0 * inf = NaN. Defined in notebook 07. logits: any shape -> that shape.
    """
    abs_a = logits.abs()
    small = abs_a < CB_SERIES_BELOW
    safe = torch.where(small, torch.ones_like(abs_a), abs_a)        # keeps log and expm1 away from 0
    direct = torch.log(safe) - torch.log(-torch.expm1(-safe)) + torch.log1p(torch.exp(-safe))
    a2 = torch.where(small, logits, torch.zeros_like(logits)).square()
    series = math.log(2.0) + a2 / 12.0 - 7.0 * a2 * a2 / 1440.0
    return torch.where(small, series, direct)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] under CB(sigmoid(a)) = 1 / (1 - e^-a) - 1/a (1/2 + a/12 - a^3/720 for |a| < 1e-2).

    With t = 1 - e^-|a| (``-expm1``), 1 / (1 - e^-a) is 1/t for a > 0 and
    1 - 1/t for a < 0: only e^-|a| is ever taken, so neither the value nor the
    gradient overflows for large |a| (e^800 = inf would make inf / inf = NaN).
    Safe inputs in both branches, as ``continuous_bernoulli_log_normalizer``.
    logits: any shape -> that shape, in (0, 1).
    """
    small = logits.abs() < CB_SERIES_BELOW
    safe = torch.where(small, torch.ones_like(logits), logits)
    inv_t = -1.0 / torch.expm1(-safe.abs())                    # 1 / (1 - e^-|a|)
    direct = torch.where(safe > 0, inv_t, 1.0 - inv_t) - 1.0 / safe
    a = torch.where(small, logits, torch.zeros_like(logits))
    series = 0.5 + a / 12.0 - a.pow(3) / 720.0
    return torch.where(small, series, direct)


def log_likelihood(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli",
                   output_logvar: float | torch.Tensor = 0.0) -> torch.Tensor:
    """log p(x | z) from the decoder's logits a, summed over pixels.

    "bernoulli": sum x a - softplus(a) (``binary_cross_entropy_with_logits``);
    "gaussian", "gaussian-learned": log N(x; sigmoid(a), exp(output_logvar)),
    output_logvar a scalar or (D,); "continuous-bernoulli": the Bernoulli
    formula + log C(a). As ``vae_teach.elbo.log_likelihood``; defined in notebook 07.

    Inputs: logits: (..., N, D); x: (N, D) in [0, 1] (broadcast over the leading axes).
    Returns: (..., N) nats.
    """
    x = x.expand_as(logits)                                     # a view, no copy
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    if likelihood in ("gaussian", "gaussian-learned"):
        logvar = torch.as_tensor(output_logvar, dtype=logits.dtype, device=logits.device)   # () or (D,)
        sq = (x - torch.sigmoid(logits)).square()
        return -0.5 * (LOG_2PI + logvar + sq * torch.exp(-logvar)).sum(-1)
    if likelihood == "continuous-bernoulli":
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        return (continuous_bernoulli_log_normalizer(logits) - bce).sum(-1)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}.")


def likelihood_mean(logits: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """E[x | z] from the logits: sigmoid(a), but the continuous Bernoulli's own mean. Same shape."""
    if likelihood == "continuous-bernoulli":
        return continuous_bernoulli_mean(logits)
    if likelihood in LIKELIHOODS:
        return torch.sigmoid(logits)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}.")


# ----- the network ------------------------------------------------------
class TorchVAE(nn.Module):
    """The MLP VAE of ``VAEConfig`` as an ``nn.Module``, on tensors.

    Encoder: x -> [enc_i -> activation] * H -> heads ``mu`` and ``logvar``
    (or ``logsigma``, with logvar = 2 * logsigma). Decoder: z -> [dec_i ->
    activation] * H (reversed sizes) -> ``out`` logits, which
    ``config.likelihood`` turns into p(x | z); for "gaussian-learned" the
    module also holds ``out_logvar`` (D,), one learned log sigma^2 per pixel.
    Initial weights come from ``init_params(config, seed)``, so a seed gives
    the same weights as ``NumpyVAE``; torch's global RNG is left untouched.
    """

    def __init__(self, config: VAEConfig, seed: int = 0, dtype=torch.float32, device=None):
        super().__init__()
        self.config = config
        dtype = _torch_dtype(dtype)
        device = default_device() if device is None else torch.device(device)
        shapes = param_shapes(config)
        for name in self.layer_names:
            fan_in, fan_out = shapes[f"{name}_W"]
            # skip_init: no random draw that set_params would overwrite anyway
            self.add_module(name, nn.utils.skip_init(nn.Linear, fan_in, fan_out, device=device, dtype=dtype))
        if config.likelihood == "gaussian-learned":
            self.out_logvar = nn.Parameter(torch.empty(shapes["out_logvar"], device=device, dtype=dtype))
        self.activation = ACTIVATIONS[config.activation]()
        self.set_params(init_params(config, seed=seed, dtype=np.float64))

    @property
    def layer_names(self) -> list[str]:
        """Layer names in ``param_shapes`` order: enc0.., mu, logvar|logsigma, dec0.., out."""
        hidden = range(len(self.config.hidden_dims))
        return ([f"enc{i}" for i in hidden] + ["mu", self.config.scale]
                + [f"dec{i}" for i in hidden] + ["out"])

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.out.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.out.weight.device

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, D) -> mu, logvar: (N, L), (N, L)."""
        h = x
        for i in range(len(self.config.hidden_dims)):
            h = self.activation(getattr(self, f"enc{i}")(h))
        scale = getattr(self, self.config.scale)(h)
        logvar = 2 * scale if self.config.scale == "logsigma" else scale   # log sigma^2 = 2 log sigma
        return self.mu(h), logvar

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """z = mu + sigma * eps, sigma = exp(0.5 * logvar) a standard deviation.

        mu, logvar: (N, L); eps: (N, L) or (K, N, L), standard normal
        (drawn with ``torch.randn_like`` when None). Returns z of eps's shape.
        """
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (..., L) -> logits: (..., D), the decoder's output before the sigmoid."""
        h = z
        for i in range(len(self.config.hidden_dims)):
            h = self.activation(getattr(self, f"dec{i}")(h))
        return self.out(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (..., L) -> x_mean: (..., D), the likelihood's mean: sigmoid(logits), but
        ``continuous_bernoulli_mean(logits)`` for the continuous Bernoulli."""
        return likelihood_mean(self.decode_logits(z), self.config.likelihood)

    @property
    def output_logvar(self) -> float | torch.Tensor:
        """The Gaussian likelihood's log sigma^2: the learned (D,) ``out_logvar``, else the
        config's fixed scalar (unused by the Bernoulli likelihoods)."""
        if self.config.likelihood == "gaussian-learned":
            return self.out_logvar
        return self.config.output_logvar

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z) under this model's likelihood: logits (..., N, D), x (N, D) -> (..., N)."""
        return log_likelihood(logits, x, self.config.likelihood, self.output_logvar)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, D), eps: None, (N, L) or (K, N, L) -> logits (eps's leading
        shape + (D,)), mu (N, L), logvar (N, L)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        return self.decode_logits(z), mu, logvar

    # ----- the shared parameter names, weights as (in, out) ---------------
    def get_params(self) -> dict[str, np.ndarray]:
        """A NumPy copy of every parameter by its shared name; ``enc0_W = enc0.weight.T``."""
        params = {}
        for name in self.layer_names:
            layer = getattr(self, name)
            params[f"{name}_W"] = layer.weight.detach().cpu().numpy().T.copy()   # (in, out)
            params[f"{name}_b"] = layer.bias.detach().cpu().numpy().copy()
        if self.config.likelihood == "gaussian-learned":
            params["out_logvar"] = self.out_logvar.detach().cpu().numpy().copy()   # (D,)
        return params

    def shared_parameters(self) -> dict[str, torch.Tensor]:
        """Every parameter tensor by its shared name (``enc0_W`` is ``enc0.weight``, transposed
        on the way out by ``get_params``): what ``loss_and_grads`` reads the gradients from."""
        tensors = {}
        for name in self.layer_names:
            layer = getattr(self, name)
            tensors[f"{name}_W"], tensors[f"{name}_b"] = layer.weight, layer.bias
        if self.config.likelihood == "gaussian-learned":
            tensors["out_logvar"] = self.out_logvar
        return tensors

    @torch.no_grad()
    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Load weights by shared name (from any backend), cast to this module's dtype and device."""
        check_params(self.config, params)
        params = {name: np.asarray(value) for name, value in params.items()}
        for name in self.layer_names:
            layer = getattr(self, name)
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[f"{name}_W"].T)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(params[f"{name}_b"])))
        if self.config.likelihood == "gaussian-learned":
            self.out_logvar.copy_(torch.from_numpy(np.ascontiguousarray(params["out_logvar"])))


def loss_function(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  reduction: str = "mean", likelihood: str = "bernoulli",
                  output_logvar: float | torch.Tensor = 0.0, kl_weight: float = 1.0,
                  free_bits: float = 0.0) -> torch.Tensor:
    """-ELBO = the likelihood's NLL of x under the logits + KL(q(z|x) || N(0, I)).

    The KL in closed form, Kingma & Welling (2014), Auto-Encoding Variational
    Bayes, Appendix B: -KL = 1/2 * sum_l (1 + log sigma_l^2 - mu_l^2 - sigma_l^2).
    The NLL is computed from logits (``binary_cross_entropy_with_logits`` for
    the Bernoulli), never from rounded probabilities, summed over pixels.

    Inputs: logits: (N, D) or (K, N, D) for K samples of z; x: (N, D) in [0, 1];
    mu, logvar: (N, L). reduction: "mean" -> the loss, a scalar in nats per
    image (averaged over samples and the batch); "none" -> (N,) the
    per-example -ELBO (the NLL averaged over the K samples). likelihood,
    output_logvar: see ``log_likelihood`` (notebook 07). kl_weight: beta,
    NLL + beta KL (1: the ELBO; else no longer a bound); free_bits: lambda > 0
    replaces the batch's KL term by sum_l max(lambda, mean_n KL_nl) (Kingma et
    al., 2016), as the NumPy backend's ``free_bits_kl_forward``; reduction
    "mean" only, since the term is one number for the batch (notebook 09).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
    if free_bits and reduction != "mean":
        raise ValueError("free_bits holds each latent dimension's KL averaged over the batch: use "
                         "reduction='mean'.")
    n_samples = logits.shape[0] if logits.dim() == 3 else 1
    if reduction == "mean":
        if likelihood == "bernoulli":                           # one fused kernel: training's hot path
            x = x.expand_as(logits)                             # (K, N, D): a view, no copy
            nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / (n_samples * len(mu))
        else:
            nll = -log_likelihood(logits, x, likelihood, output_logvar).sum() / (n_samples * len(mu))
        if free_bits > 0:                                       # sum_l max(lambda, mean_n KL_nl)
            kl_per_dim = 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).mean(0)   # (L,)
            kl = torch.clamp(kl_per_dim, min=free_bits).sum()
        else:
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(mu)
        return nll + kl if kl_weight == 1 else nll + kl_weight * kl
    nll = -log_likelihood(logits, x, likelihood, output_logvar)                     # ([K,] N)
    if logits.dim() == 3:
        nll = nll.mean(0)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)          # (N,)
    return nll + kl if kl_weight == 1 else nll + kl_weight * kl


def iwae_loss_function(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                       eps: torch.Tensor, reduction: str = "mean", likelihood: str = "bernoulli",
                       output_logvar: float | torch.Tensor = 0.0) -> torch.Tensor:
    """-IWAE_K = -log 1/K sum_k w_k, the importance-weighted bound (Burda et al., 2016).

    log w_k = log p(x | z_k) + log N(z_k; 0, I) - log N(z_k; mu, sigma^2), with
    z_k = mu + sigma eps_k, so log q(z_k | x) = -1/2 sum_l (log 2 pi + logvar_l
    + eps_kl^2); combined with ``torch.logsumexp`` over the K samples. K = 1
    gives the ELBO with a one-sample Monte Carlo KL. Defined in notebook 08.

    Inputs: logits: (K, N, D), decoded from z = mu + exp(logvar / 2) * eps;
    x: (N, D); mu, logvar: (N, L); eps: (K, N, L) (or (N, L) with logits (N, D)).
    reduction: "mean" -> the loss, a scalar in nats per image; "none" -> (N,)
    the per-example -IWAE_K. likelihood, output_logvar: see ``log_likelihood``.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
    if eps.dim() == 2:                                          # one sample: K = 1
        eps = eps[None]
    if logits.dim() == 2:
        logits = logits[None]
    z = mu + torch.exp(0.5 * logvar) * eps                                  # (K, N, L)
    log_px = log_likelihood(logits, x, likelihood, output_logvar)           # (K, N)
    log_prior = -0.5 * (LOG_2PI + z.square()).sum(-1)                      # (K, N)
    log_q = -0.5 * (LOG_2PI + logvar + eps.square()).sum(-1)               # (K, N)
    iwae = torch.logsumexp(log_px + log_prior - log_q, dim=0) - math.log(eps.shape[0])   # (N,)
    return -iwae.mean() if reduction == "mean" else -iwae


# ----- the protocol, on NumPy arrays --------------------------------------
class TorchModel:
    """A ``TorchVAE`` behind the shared protocol (``vae_teach.interface.VAEModel``).

    Takes and returns NumPy arrays; the tensors live on ``device``. Build it
    from a config (``TorchModel(config, seed=0, dtype=np.float32)``) or wrap
    an existing module (``TorchModel.wrap(module)``); ``.module`` is the
    ``nn.Module``.
    """

    backend = "torch"

    def __init__(self, config: VAEConfig, seed: int = 0, dtype=np.float32, device=None):
        self.module = TorchVAE(config, seed=seed, dtype=dtype, device=device)

    @classmethod
    def wrap(cls, module: TorchVAE) -> TorchModel:
        model = cls.__new__(cls)
        model.module = module
        return model

    @property
    def config(self) -> VAEConfig:
        return self.module.config

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of what this model returns."""
        return np.dtype(str(self.module.dtype).removeprefix("torch."))

    @property
    def device(self) -> torch.device:
        return self.module.device

    def to(self, device) -> TorchModel:
        self.module.to(device)
        return self

    def get_params(self) -> dict[str, np.ndarray]:
        return self.module.get_params()

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        self.module.set_params(params)

    @torch.no_grad()
    def encode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X: (N, D) -> mu, logvar: (N, L), (N, L)."""
        mu, logvar = self.module.encode(self._images(X))
        return _numpy(mu), _numpy(logvar)

    @torch.no_grad()
    def decode(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> X_mean: (N, D), the likelihood's mean (``vae_teach.elbo.likelihood_mean``)."""
        return _numpy(self.module.decode(self._latents(Z)))

    @torch.no_grad()
    def log_likelihood(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """log p(x | z) under the config's likelihood: (N, D), (N, L) -> (N,) nats, from logits."""
        x, z = self._images(X), self._latents(Z)
        checks.same_rows(X=x, Z=z)
        return _numpy(self.module.log_likelihood(self.module.decode_logits(z), x))

    def elbo(self, X: np.ndarray, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Per-example ELBO in nats, eps from ``draw_noise`` (as every backend): (N,)."""
        x = self._images(X)
        return self.elbo_with_noise(x, draw_noise(checks.seed(seed), checks.count(n_samples, "n_samples"),
                                                  len(x), self.latent_dim))

    @torch.no_grad()
    def elbo_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example ELBO for given noise: X (N, D), eps (K, N, L) or (N, L) -> (N,)."""
        x = self._images(X)
        return _numpy(-_loss(self.module, x, self._noise(eps, len(x)), "elbo", reduction="none"))

    @torch.no_grad()
    def iwae_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example IWAE bound log 1/K sum_k w_k for given noise: X (N, D), eps (K, N, L)
        or (N, L) -> (N,) nats. K = 1 gives the ELBO with a Monte Carlo KL. Defined in notebook 08."""
        x = self._images(X)
        return _numpy(-_loss(self.module, x, self._noise(eps, len(x)), "iwae", reduction="none"))

    def loss_and_grads(self, X: np.ndarray, eps: np.ndarray, objective: str = "elbo",
                       kl_weight: float = 1.0, free_bits: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
        """loss and its gradient (by autograd) for every shared parameter.

        objective="elbo": loss = -mean_n ELBO_n (K samples, the analytic KL),
        with kl_weight (beta) and free_bits (lambda) as ``loss_function``;
        "iwae": loss = -mean_n IWAE_K(x_n) (notebook 08). Nats per image.
        Inputs: X: (N, D); eps: (K, N, L) or (N, L).
        Returns: loss (float), grads (dict, names and shapes as ``get_params``).
        """
        _check_objective(objective)
        kl_weight, free_bits = _check_kl_options(objective, kl_weight, free_bits)
        x = self._images(X)
        eps = self._noise(eps, len(x))
        module = self.module
        module.zero_grad(set_to_none=True)
        loss = _loss(module, x, eps, objective, kl_weight=kl_weight, free_bits=free_bits)
        loss.backward()
        grads = {}
        for name, tensor in module.shared_parameters().items():
            grad = _numpy(tensor.grad)
            grads[name] = (grad.T if name.endswith("_W") else grad).copy()   # weights as (in, out)
        module.zero_grad(set_to_none=True)
        return loss.item(), grads

    # ----- input checks (vae_teach.checks), then tensors on the device ------
    def _tensor(self, A) -> torch.Tensor:
        """An array or tensor as a tensor of the module's dtype, on its device (no copy if it is one)."""
        if not torch.is_tensor(A):
            A = np.asarray(A)
            if not A.flags.writeable:           # torch warns on read-only arrays (e.g. memory maps)
                A = A.copy()
        return torch.as_tensor(A, dtype=self.module.dtype, device=self.device)

    def _images(self, X, name: str = "X") -> torch.Tensor:
        """X (N, D) of this model's D, finite, in the likelihood's range, as a tensor."""
        config = self.config
        return self._tensor(checks.images(_host(X), name, config.input_dim, config.likelihood))

    def _latents(self, Z) -> torch.Tensor:
        return self._tensor(checks.latents(_host(Z), "Z", self.latent_dim))

    def _noise(self, eps, n: int) -> torch.Tensor:
        return self._tensor(checks.noise(_host(eps), n, self.latent_dim))


def _loss(module: TorchVAE, x: torch.Tensor, eps: torch.Tensor, objective: str = "elbo",
          reduction: str = "mean", kl_weight: float = 1.0, free_bits: float = 0.0) -> torch.Tensor:
    """The objective's loss (-ELBO or -IWAE_K; beta and free bits for the ELBO) under the module's
    likelihood: x (N, D), eps (K, N, L)."""
    logits, mu, logvar = module(x, eps)
    likelihood, output_logvar = module.config.likelihood, module.output_logvar
    if objective == "iwae":
        return iwae_loss_function(logits, x, mu, logvar, eps, reduction, likelihood, output_logvar)
    return loss_function(logits, x, mu, logvar, reduction, likelihood, output_logvar, kl_weight, free_bits)


def _check_kl_options(objective: str, kl_weight, free_bits) -> tuple[float, float]:
    """beta and lambda checked (finite, >= 0) and refused with the IWAE objective."""
    kl_weight = checks.nonnegative(kl_weight, "kl_weight")
    free_bits = checks.nonnegative(free_bits, "free_bits")
    if objective == "iwae" and (kl_weight != 1.0 or free_bits != 0.0):
        raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                         "separate KL term.")
    return kl_weight, free_bits


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _host(A):
    """A tensor as a NumPy array (for the checks); anything else as it is."""
    return _numpy(A) if torch.is_tensor(A) else A


def _as_model(model) -> TorchModel:
    if isinstance(model, TorchModel):
        return model
    if isinstance(model, TorchVAE):
        return TorchModel.wrap(model)
    raise TypeError(f"expected a TorchModel or TorchVAE, got {type(model).__name__}.")


# ----- training -------------------------------------------------------------
def make_optimizer(module: TorchVAE, optimizer: str = "adam", lr: float | None = None, l2: float = 0.0,
                   **options) -> torch.optim.Optimizer:
    """``torch.optim.SGD``, ``Adagrad`` or ``Adam`` over ``module``'s parameters.

    lr: the rule's default of ``vae_teach.numpy_vae.optim`` when None (the
    NumPy backend's, so both start alike); l2: ``weight_decay``, i.e. the
    gradient gains ``l2 * w``; options: passed on (e.g. ``betas``). The fused
    implementation is the default where torch has one (``fused=False`` to
    turn it off): same formulas, one kernel over all parameters.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser {optimizer!r}; choose one of {sorted(OPTIMIZERS)}.")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    device = next(module.parameters()).device.type
    if "fused" not in options and "foreach" not in options and device in FUSED_DEVICES[optimizer]:
        options["fused"] = True     # one kernel for all parameters: ~20% more examples/s on CPU
    return OPTIMIZERS[optimizer](module.parameters(), lr=lr, weight_decay=l2, **options)


def _train_step(module: TorchVAE, opt: torch.optim.Optimizer, x: torch.Tensor, eps: torch.Tensor,
                objective: str = "elbo", kl_weight: float = 1.0, free_bits: float = 0.0) -> float:
    """One optimiser step on a minibatch x (B, D) with noise eps (K, B, L); returns the loss.

    The step is taken only if the loss and the gradient's norm (one fused
    reduction, ``get_total_norm``) are finite; otherwise nothing changes and
    the loss returned is not finite (NaN for a bad gradient), for
    ``vae_teach.training.check_finite`` to stop on. One host sync a step.
    """
    opt.zero_grad(set_to_none=True)
    loss = _loss(module, x, eps, objective, kl_weight=kl_weight, free_bits=free_bits)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    value, grad_norm = torch.stack([loss.detach(), nn.utils.get_total_norm(grads).to(loss.dtype)]).tolist()
    value = guarded_loss(value, grad_norm)
    if math.isfinite(value):
        opt.step()
    return value


def make_train_step(model, optimizer="adam", lr: float | None = None, l2: float = 0.0,
                    objective: str = "elbo", kl_weight: float = 1.0, free_bits: float = 0.0,
                    **options) -> Callable[[np.ndarray, np.ndarray], float]:
    """``step(X_batch, eps) -> loss``: one step with the given noise, for agreement tests.

    model: ``TorchModel`` or ``TorchVAE``; optimizer: a name (built by
    ``make_optimizer`` with lr, l2, options) or a ``torch.optim.Optimizer``;
    objective: "elbo" or "iwae" (K = eps.shape[0]); kl_weight, free_bits:
    beta and lambda of ``loss_function``.
    X_batch: (B, D); eps: (K, B, L) NumPy. Returns: the loss before the step (float).
    """
    _check_objective(objective)
    kl_weight, free_bits = _check_kl_options(objective, kl_weight, free_bits)
    model = _as_model(model)
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else \
        make_optimizer(model.module, optimizer, lr, l2, **options)

    def step(X_batch: np.ndarray, eps: np.ndarray) -> float:
        x = model._images(X_batch, "X_batch")
        return _train_step(model.module, opt, x, model._noise(eps, len(x)), objective, kl_weight, free_bits)

    return step


def train(
    model,
    X_train,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer="adam",
    lr: float | None = None,
    l2: float = 0.0,
    n_samples: int = 1,
    objective: str = "elbo",
    kl_weight=1.0,
    free_bits: float = 0.0,
    seed: int = 0,
    X_test: np.ndarray | None = None,
    binarize: str | None = None,
    progress: bool = True,
    device=None,
    **optimizer_options,
) -> History:
    """Train ``model`` in place and return its ``History`` (ELBOs in nats per image).

    The data go to the device once, as a tensor; each epoch draws a seeded
    ``torch.randperm`` and indexes minibatches from it, with noise from the
    same ``torch.Generator``.

    Inputs: model: ``TorchModel`` or ``TorchVAE``; X_train: (N, D) in [0, 1];
    optimizer: "sgd", "adagrad", "adam" or a ``torch.optim.Optimizer`` over
    the module's parameters (e.g. restored from a checkpoint); lr: the rule's
    default if None; l2: weight decay; n_samples: K draws of z per example;
    objective: "elbo" (the K-sample ELBO) or "iwae" (the IWAE_K bound with
    K = n_samples, notebook 08); the history's "ELBO" is then the IWAE bound;
    kl_weight: beta, a float or a schedule of ``vae_teach.schedules`` (a
    callable of the optimiser step: warm-up, cyclical); free_bits: lambda,
    nats per latent dimension (notebook 09); with beta != 1 or lambda > 0 the
    history's train "ELBO" is minus that loss, not an ELBO;
    X_test: (M, D), if given its ELBO (``dataset_elbo``) is measured after
    every epoch, on X_test as given (binarise or dequantise it yourself, once,
    to match ``binarize``); binarize: None, "threshold" (x > 0.5), "static" (one
    stochastic 0/1 draw from the training generator, made once and kept; it meant
    "threshold" until lesson 07's revision), "dynamic" (0/1 resampled every epoch) or "dequantize" (x = (round(255 x) + u) / 256,
    u ~ U(0, 1) resampled every epoch, for 8-bit images and continuous
    likelihoods, notebook 07; as ``vae_teach.data.dequantize`` but drawn on the
    device from the training generator); device: move the model there first
    (default: where it is). Raises ``TrainingDivergedError`` on a NaN or infinite loss.
    """
    model = _as_model(model)
    if device is not None:
        model.to(device)
    checks.training_args(epochs=epochs, batch_size=batch_size, n_samples=n_samples, seed_value=seed,
                         lr=lr, l2=l2)
    checks.choice(binarize, "binarize", BINARIZATIONS)
    _check_objective(objective)
    schedule = as_schedule(kl_weight, epochs * math.ceil(len(X_train) / batch_size))
    free_bits = checks.nonnegative(free_bits, "free_bits")
    if objective == "iwae" and not (is_elbo(schedule) and free_bits == 0):
        raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                         "separate KL term.")
    if X_test is not None:
        X_test = checks.images(_host(X_test), "X_test", model.config.input_dim, model.config.likelihood)
    module = model.module
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else \
        make_optimizer(module, optimizer, lr, l2, **optimizer_options)
    lr = opt.param_groups[0]["lr"]
    X = model._images(X_train, "X_train")                         # (N, D), checked once, on the device
    generator = torch.Generator(device=X.device).manual_seed(seed)
    if binarize == "threshold":
        X = (X > 0.5).to(X.dtype)
    elif binarize == "static":                                     # one draw, kept for every epoch
        X = torch.bernoulli(X, generator=generator)
    elif binarize == "dequantize":
        levels = model._tensor(quantized_levels(X.cpu().numpy()))   # (N, D) integers k in 0..255, checked
    n, latent_dim = len(X), model.latent_dim
    name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__.lower()
    history = History()
    bar = tqdm(total=epochs * math.ceil(n / batch_size), desc=f"torch {name}", disable=not progress,
               leave=False)
    global_step, last_finite = 0, None
    try:
        for epoch in range(1, epochs + 1):
            module.train()
            start = time.perf_counter()
            if binarize == "dynamic":
                X_epoch = torch.bernoulli(X, generator=generator)
            elif binarize == "dequantize":                          # (k + u) / 256, u ~ U(0, 1)
                X_epoch = (levels + torch.rand(X.shape, generator=generator, dtype=X.dtype,
                                               device=X.device)) / 256
            else:
                X_epoch = X
            order = torch.randperm(n, generator=generator, device=X.device)
            loss_sum = 0.0
            for first in range(0, n, batch_size):
                x = X_epoch[order[first:first + batch_size]]        # (B, D)
                eps = torch.randn((n_samples, len(x), latent_dim), generator=generator,
                                  dtype=X.dtype, device=X.device)    # (K, B, L)
                loss = _train_step(module, opt, x, eps, objective,      # the one host sync a step
                                   float(schedule(global_step)), free_bits)
                global_step += 1
                check_finite(loss, global_step, epoch, lr, last_finite)
                last_finite = loss
                history.step_loss.append(loss)
                loss_sum += loss * len(x)
                bar.update(1)
            seconds = time.perf_counter() - start
            history.epoch.append(epoch)
            history.train_elbo.append(-loss_sum / n)
            history.seconds.append(seconds)
            history.examples_per_second.append(n / seconds)
            if X_test is not None:
                module.eval()
                history.test_elbo.append(float(np.mean(dataset_elbo(model, X_test))))
            bar.set_postfix(train_elbo=f"{history.train_elbo[-1]:.1f}")
    finally:
        bar.close()
        module.eval()
    return history


# ----- checkpoints ------------------------------------------------------------
class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` returns: the model, and what was saved with it (or None)."""

    model: TorchModel
    optimizer_state: dict | None
    history: History | None


def save_checkpoint(model, path, optimizer=None, history: History | None = None) -> Path:
    """Save config, weights (``state_dict``), optimizer state and history with ``torch.save``.

    model: ``TorchModel`` or ``TorchVAE``; optimizer: a ``torch.optim.Optimizer``
    or its ``state_dict()``. Written to a temporary file in the same folder,
    then renamed, so a crash never leaves half a checkpoint at ``path``.
    """
    model = _as_model(model)
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": model.module.state_dict(),
        "optimizer": optimizer,
        "history": None if history is None else history.to_dict(),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path, device=None) -> Checkpoint:
    """Rebuild the model saved by ``save_checkpoint`` (``torch.load(weights_only=True)``).

    device: where to put it (default: ``default_device()``). Returns a
    ``Checkpoint(model, optimizer_state, history)``; restore an optimizer with
    ``make_optimizer(ckpt.model.module, ...).load_state_dict(ckpt.optimizer_state)``.
    Raises FileNotFoundError or ValueError, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: save one with save_checkpoint(model, path).")
    device = default_device() if device is None else torch.device(device)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise ValueError(f"could not read the checkpoint {path}: the file is corrupt or truncated, or "
                         f"was not written by save_checkpoint ({type(error).__name__}, shown above)."
                         ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a vae_teach torch checkpoint (expected format "
                         f"{CHECKPOINT_FORMAT!r}); write one with save_checkpoint.")
    try:
        config = VAEConfig.from_dict(payload["config"])
        state = payload["state_dict"]
        module = TorchVAE(config, dtype=state["out.weight"].dtype, device=device)
        module.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"the checkpoint {path} is incomplete or does not match its config "
                         f"({type(error).__name__}: {error}).") from error
    history = None if payload.get("history") is None else History(**payload["history"])
    return Checkpoint(TorchModel.wrap(module), payload.get("optimizer"), history)
