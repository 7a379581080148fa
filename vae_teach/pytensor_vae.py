"""The VAE as a PyTensor graph: symbolic inputs -> graph -> ``pytensor.function`` with updates.

The same MLP VAE as ``vae_teach.numpy_vae`` (same parameter names, shapes,
initial weights and maths), written once as a symbolic graph: PyTensor derives
the gradients (``pytensor.grad``), rewrites the graph (fusing elementwise
operations, making softplus stable, updating in place) and compiles it, and
the optimiser's update rule becomes part of one compiled training function.

- ``PytensorVAE``: the model; meets ``vae_teach.interface.VAEModel``. Every
  likelihood of ``vae_teach.interface.LIKELIHOODS`` (notebook 07; the learned
  Gaussian variance is the shared variable ``out_logvar``), and besides the
  ELBO the IWAE bound (``iwae_with_noise``, ``loss_and_grads(objective="iwae")``,
  notebook 08).
- ``PytensorVAE.make_train_step``: one compiled optimiser step (sgd, adagrad, adam), whose
  hyper-parameters are shared variables: a new setting compiles nothing.
- ``train``: the shared epoch loop (``vae_teach.training.fit``) around that step.
- ``graph_text``: the ELBO graph as text, before and after PyTensor's rewrites.

The dtype is explicit everywhere in the graph (inputs, shared variables,
constants), whatever ``pytensor.config.floatX`` says. In float32 PyTensor's
sums still accumulate in float64 (``Sum{acc=float64}`` in the compiled graph),
so its float32 numbers differ from NumPy's in the last digits. The training
noise comes from ``pytensor.tensor.random.shared_rng`` (PyTensor 3 deprecates
``RandomStream``).

Compile modes: ``mode=None`` is PyTensor's default, which in PyTensor 3 is the
Numba backend (``"NUMBA"``); ``"CVM"`` is the classic C backend (needs a C++
compiler). Any mode name or ``pytensor.compile.mode.Mode`` is passed through.

Where compiled code goes. PyTensor caches compiled Numba functions and C
modules under its ``base_compiledir``, which it reads once, when ``pytensor``
is first imported (from ``$PYTENSOR_FLAGS`` or a ``.pytensorrc`` file; its own
default is ``~/.pytensor``), and cannot change afterwards. So this module does
not import PyTensor until a model is built, and first chooses the directory,
in this order:

1. the ``compiledir`` argument (of ``PytensorVAE`` or ``configure_compiledir``);
2. ``$VAE_TEACH_PYTENSOR_COMPILEDIR``;
3. a ``base_compiledir`` you gave PyTensor yourself (``$PYTENSOR_FLAGS`` or ``.pytensorrc``);
4. ``.cache/pytensor`` under the current working directory (git ignores ``.cache/``).

It hands the choice to PyTensor through ``$PYTENSOR_FLAGS`` (child processes
inherit it): importing this module sets it (and writes nothing), so a plain
``import pytensor`` after ``import vae_teach.pytensor_vae`` uses the same
directory; building a model creates the directory or says why it cannot.
``compiledir()`` says which directory is in use. If PyTensor was imported
before this module, its directory is already fixed: an explicit request for
another one raises, otherwise a warning names the directory PyTensor uses.

Defined in notebook 04; the likelihoods in notebook 07; the IWAE objective in notebook 08.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from vae_teach import checks
from vae_teach.elbo import LOG_2PI
from vae_teach.evaluate import dataset_elbo
from vae_teach.interface import VAEConfig, check_params, draw_noise, init_params
from vae_teach.numpy_vae.optim import DEFAULT_LR
from vae_teach.schedules import as_schedule, is_elbo
from vae_teach.training import History, fit

COMPILEDIR_ENV_VAR = "VAE_TEACH_PYTENSOR_COMPILEDIR"
DEFAULT_COMPILEDIR = Path(".cache", "pytensor")  # relative to the working directory
INSTALL_HINT = "pip install 'vae_teach[pytensor]'"

# The hyperparameters each rule accepts besides lr and l2, with torch.optim's defaults.
OPTIMIZER_OPTIONS = {
    "sgd": {},
    "adagrad": {"eps": 1e-10},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "moment_floor": 0.0},
}

# The compiled functions of a model, by name (see PytensorVAE.function).
FUNCTIONS = ("encode", "decode_logits", "decode", "log_likelihood", "elbo", "loss_and_grads", "iwae",
             "iwae_loss_and_grads")
OBJECTIVES = ("elbo", "iwae")
CB_SERIES_BELOW = 1e-2   # |a| below which the continuous Bernoulli uses its Taylor series (as vae_teach.elbo)

_USER_PYTENSOR_FLAGS = os.getenv("PYTENSOR_FLAGS", "")  # as set before this module added to them
_compiledir: Path | None = None  # the directory last handed to PyTensor through $PYTENSOR_FLAGS
_configured = False              # whether configure_compiledir has checked it


# ----- the compile directory ---------------------------------------------
def _flags(text: str) -> dict[str, str]:
    """Parse a PYTENSOR_FLAGS string as PyTensor does: comma-separated key=value."""
    splitter = shlex.shlex(text, posix=True)
    splitter.whitespace, splitter.whitespace_split = ",", True
    pairs = (item.strip().split("=", 1) for item in splitter)
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def _rc_base_compiledir() -> str | None:
    """base_compiledir from the .pytensorrc files PyTensor would read, if one sets it."""
    files = [Path(f).expanduser() for f in os.getenv("PYTENSORRC", "~/.pytensorrc").split(os.pathsep)]
    rc = configparser.RawConfigParser()
    try:
        rc.read(files)
    except configparser.Error:  # PyTensor will report a broken file itself
        return None
    return rc.get("global", "base_compiledir", fallback=None)


def _select(path) -> tuple[Path, str, bool]:
    """(directory, where the choice came from, whether someone asked for it), in the documented order."""
    if path is not None:
        return Path(path).expanduser().resolve(), "the compiledir argument", True
    if os.getenv(COMPILEDIR_ENV_VAR):
        return Path(os.environ[COMPILEDIR_ENV_VAR]).expanduser().resolve(), f"${COMPILEDIR_ENV_VAR}", True
    own = _flags(_USER_PYTENSOR_FLAGS).get("base_compiledir")
    if own:
        return Path(own).expanduser().resolve(), "base_compiledir in $PYTENSOR_FLAGS", True
    own = _rc_base_compiledir()
    if own:
        return Path(own).expanduser().resolve(), "base_compiledir in your .pytensorrc", True
    return (Path.cwd() / DEFAULT_COMPILEDIR).resolve(), f"the default ./{DEFAULT_COMPILEDIR}", False


def _hand_to_pytensor(path: Path) -> None:
    """Put base_compiledir=path in $PYTENSOR_FLAGS, where PyTensor's import will read it."""
    global _compiledir
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        filter(None, [_USER_PYTENSOR_FLAGS, f"base_compiledir={shlex.quote(str(path))}"]))
    _compiledir = path


def _ensure_writable(path: Path, source: str) -> None:
    remedy = f"Pass compiledir=... or set ${COMPILEDIR_ENV_VAR} to a directory you can write to."
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create PyTensor's compile directory {path} (from {source}): {error}. "
                      f"{remedy}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"PyTensor's compile directory {path} (from {source}) is not writable. {remedy}")


def _pytensor_if_imported():
    """The pytensor module if something imported it already, else None."""
    return sys.modules.get("pytensor")


def configure_compiledir(path: str | os.PathLike | None = None) -> Path:
    """Choose where PyTensor writes compiled code; it must run before PyTensor is imported.

    path: the directory (created if missing); None follows the order in the
    module docstring. Returns: the directory PyTensor uses (absolute).
    Raises: OSError if it cannot be created or written; RuntimeError if
    PyTensor was already imported with another directory than one asked for.
    """
    global _configured
    target, source, asked = _select(path)
    pytensor = _pytensor_if_imported()
    if pytensor is not None:  # too late: PyTensor fixed base_compiledir when it was imported
        in_use = Path(pytensor.config.base_compiledir).resolve()
        if in_use != target:
            message = (f"PyTensor was imported before vae_teach could choose its compile directory, so it "
                       f"compiles into {in_use}, not {target} (from {source}). PyTensor reads the "
                       "directory only when first imported: restart Python and import "
                       "vae_teach.pytensor_vae before pytensor.")
            if asked:
                raise RuntimeError(message)
            warnings.warn(message, stacklevel=2)
        _configured = True
        return in_use
    _ensure_writable(target, source)
    _hand_to_pytensor(target)
    _configured = True
    return target


def compiledir() -> Path:
    """The directory PyTensor compiles into (it makes numba/ and compiledir_*/ inside), or will once imported."""
    pytensor = _pytensor_if_imported()
    if pytensor is not None:
        return Path(pytensor.config.base_compiledir).resolve()
    return _compiledir if _compiledir is not None else _select(None)[0]


def _import_pytensor():
    """Check the compile directory (once), then import PyTensor: (pytensor, pytensor.tensor)."""
    if not _configured:
        configure_compiledir()
    try:
        import pytensor
        import pytensor.tensor as pt
    except ImportError as error:
        raise ImportError(f"vae_teach.pytensor_vae needs PyTensor, which is not installed: {INSTALL_HINT}"
                          ) from error
    return pytensor, pt


def quiet_install_notes() -> None:
    """Silence two notes from PyTensor's backends about how they were installed, not about the model:
    a pip install links no BLAS library for the C backend, and Numba remarks on transposed matrices
    while it compiles. They appear on some machines only, or only with an empty cache."""
    import logging

    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")
    warnings.filterwarnings("ignore", message=r"np.dot\(\) is faster on contiguous arrays")
    logging.getLogger("pytensor.tensor.blas").setLevel(logging.ERROR)


# Only an environment variable, no file: so that a plain `import pytensor` after
# importing this module uses the chosen directory too.
if _pytensor_if_imported() is None:
    try:
        _hand_to_pytensor(_select(None)[0])
    except OSError:  # e.g. the working directory was deleted; configure_compiledir will say so
        pass


def _check_objective(objective: str) -> None:
    checks.choice(objective, "objective", OBJECTIVES)


# ----- the model ---------------------------------------------------------
class PytensorVAE:
    """A VAE whose gradients PyTensor derives from the symbolic ELBO.

    Parameters: config: the architecture (``VAEConfig``); seed: initial
    weights' seed (the same weights as ``NumpyVAE`` for the same seed) and the
    default noise seed of ``make_train_step``; dtype: "float32" for speed,
    "float64" for checks (the graph's dtype, whatever ``pytensor.config.floatX``);
    mode: PyTensor compile mode for every function (None: PyTensor's default,
    Numba; "NUMBA"; "CVM", the C backend); compiledir: see ``configure_compiledir``.
    Functions are compiled on first use and kept; ``compile_seconds`` records
    how long each took. Meets the protocol in ``vae_teach.interface``.
    """

    backend = "pytensor"

    def __init__(self, config: VAEConfig, seed: int = 0, dtype="float32", mode=None,
                 compiledir: str | os.PathLike | None = None):
        if compiledir is not None:
            configure_compiledir(compiledir)
        self._pytensor, self._pt = _import_pytensor()
        self.config = config
        self.seed = seed
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        self.mode = mode
        self.params = {name: self._pytensor.shared(value, name=name)
                       for name, value in init_params(config, seed=seed, dtype=self.dtype).items()}
        self._functions: dict = {}
        self._train_steps: dict = {}
        self.compile_seconds: dict[str, float] = {}
        pt = self._pt
        # The symbolic inputs and the per-example ELBO, built once.
        self._X = pt.matrix("X", dtype=self.dtype)            # (N, D)
        self._Z = pt.matrix("Z", dtype=self.dtype)            # (N, L)
        self._eps = pt.tensor3("eps", dtype=self.dtype)       # (K, N, L)
        self._elbo = self._elbo_graph(self._X, self._eps)     # (N,)
        # beta and lambda of loss_and_grads: shared, so new values need no new compilation (notebook 09)
        self._kl_options = self._kl_shared("loss")

    # ----- the graph ----------------------------------------------------
    def _const(self, value):
        """A constant of the model's dtype (a bare Python float like 1e-8 would upcast float32 to float64)."""
        return self._pt.constant(np.asarray(value, dtype=self.dtype))

    def _activation(self, a):
        return self._pt.maximum(a, self._const(0)) if self.config.activation == "relu" else self._pt.tanh(a)

    def _encoder(self, X):
        """X: (N, D) -> mu, logvar: (N, L), (N, L)."""
        p, h = self.params, X
        for i in range(len(self.config.hidden_dims)):
            h = self._activation(h @ p[f"enc{i}_W"] + p[f"enc{i}_b"])
        mu = h @ p["mu_W"] + p["mu_b"]
        scale = self.config.scale
        s = h @ p[f"{scale}_W"] + p[f"{scale}_b"]
        logvar = self._const(2) * s if scale == "logsigma" else s     # log sigma^2 = 2 log sigma
        return mu, logvar

    def _decoder_logits(self, Z):
        """Z: (M, L) -> logits: (M, D)."""
        p, h = self.params, Z
        for i in range(len(self.config.hidden_dims)):
            h = self._activation(h @ p[f"dec{i}_W"] + p[f"dec{i}_b"])
        return h @ p["out_W"] + p["out_b"]

    def _output_logvar(self):
        """The Gaussian likelihood's log sigma^2: the shared ``out_logvar`` (D,) when learned,
        else the config's fixed scalar, as a constant."""
        if self.config.likelihood == "gaussian-learned":
            return self.params["out_logvar"]
        return self._const(self.config.output_logvar)

    def _log_likelihood(self, X, logits):
        """log p(x|z) under the config's likelihood, from logits: (..., N, D) -> (..., N).

        "bernoulli": sum_d x a - softplus(a); "gaussian", "gaussian-learned":
        log N(x; sigmoid(a), exp(logvar)); "continuous-bernoulli": the Bernoulli
        formula + log C(a). As ``vae_teach.elbo.log_likelihood``; notebook 07.
        """
        pt, c, likelihood = self._pt, self._const, self.config.likelihood
        if likelihood in ("gaussian", "gaussian-learned"):
            logvar = self._output_logvar()                                  # () or (D,)
            sq = (X - pt.sigmoid(logits)) ** 2
            return c(-0.5) * (c(LOG_2PI) + logvar + sq * pt.exp(-logvar)).sum(axis=-1)
        bernoulli = X * logits - pt.softplus(logits)
        if likelihood == "continuous-bernoulli":
            bernoulli = bernoulli + self._cb_log_normalizer(logits)
        return bernoulli.sum(axis=-1)

    def _cb_log_normalizer(self, a):
        """log C(a) = log(a / tanh(a/2)) of the continuous Bernoulli, elementwise, as
        ``vae_teach.elbo.continuous_bernoulli_log_normalizer`` (series for |a| < 1e-2).

        ``pt.switch`` differentiates both branches and multiplies the unused
        one's gradient by 0, and 0 * inf = NaN: so each branch gets an input
        that is safe for it (1 for the direct formula near 0, 0 for the series).
        """
        pt, c = self._pt, self._const
        abs_a = abs(a)
        small = pt.lt(abs_a, c(CB_SERIES_BELOW))
        safe = pt.switch(small, c(1), abs_a)                            # keeps log and expm1 away from 0
        direct = pt.log(safe) - pt.log(-pt.expm1(-safe)) + pt.log1p(pt.exp(-safe))
        a_small = pt.switch(small, a, c(0))
        a2 = a_small * a_small
        series = c(np.log(2.0)) + a2 / c(12) - c(7) * a2 * a2 / c(1440)
        return pt.switch(small, series, direct)

    def _likelihood_mean(self, logits):
        """E[x | z] from logits: sigmoid(a), but for the continuous Bernoulli
        1 / (1 - e^-a) - 1/a (series 1/2 + a/12 - a^3/720 for |a| < 1e-2), with
        t = 1 - e^-|a|: 1/t for a > 0, 1 - 1/t for a < 0, so e^|a| never overflows."""
        pt, c = self._pt, self._const
        if self.config.likelihood != "continuous-bernoulli":
            return pt.sigmoid(logits)
        small = pt.lt(abs(logits), c(CB_SERIES_BELOW))
        safe = pt.switch(small, c(1), logits)
        inv_t = c(-1) / pt.expm1(-abs(safe))                            # 1 / (1 - e^-|a|)
        direct = pt.switch(pt.gt(safe, c(0)), inv_t, c(1) - inv_t) - c(1) / safe
        a = pt.switch(small, logits, c(0))
        series = c(0.5) + a / c(12) - a * a * a / c(720)
        return pt.switch(small, series, direct)

    def _sample_graph(self, X, eps):
        """Encoder, reparameterisation and decoder: X (N, D), eps (K, N, L) ->
        mu, logvar (N, L), Z (K, N, L), log p(x|z) (K, N)."""
        pt, c = self._pt, self._const
        mu, logvar = self._encoder(X)
        Z = mu + pt.exp(c(0.5) * logvar) * eps                         # (K, N, L)
        K, N, L = eps.shape
        logits = self._decoder_logits(Z.reshape((K * N, L))).reshape((K, N, X.shape[1]))
        return mu, logvar, Z, self._log_likelihood(X, logits)          # ..., (K, N)

    def _elbo_graph(self, X, eps):
        """Per-example ELBO: X (N, D), eps (K, N, L) -> (N,) nats; mean over K of log p(x|z) - KL."""
        pt, c = self._pt, self._const
        mu, logvar, _, log_px = self._sample_graph(X, eps)
        kl = c(0.5) * (pt.exp(logvar) + mu * mu - c(1) - logvar).sum(axis=-1)   # (N,)
        return log_px.mean(axis=0) - kl

    def _iwae_graph(self, X, eps):
        """Per-example IWAE_K = log 1/K sum_k w_k: X (N, D), eps (K, N, L) -> (N,) nats.

        log w = log p(x|z) + log N(z; 0, I) - log N(z; mu, sigma^2), and with
        z = mu + sigma eps, log q = -1/2 sum_l (log 2 pi + logvar_l + eps_l^2).
        The log-mean-exp shifts out the max over k, which carries no gradient
        (``zero_grad``: its two contributions cancel), so that neither the
        value nor the gradient, softmax(log w), under- or overflows. Notebook 08.
        """
        pt, c = self._pt, self._const
        _, logvar, Z, log_px = self._sample_graph(X, eps)
        log_prior = c(-0.5) * (c(LOG_2PI) + Z * Z).sum(axis=-1)                     # (K, N)
        log_q = c(-0.5) * (c(LOG_2PI) + logvar + eps * eps).sum(axis=-1)            # (K, N)
        log_w = log_px + log_prior - log_q
        top = self._pytensor.gradient.zero_grad(log_w.max(axis=0))                  # (N,)
        return top + pt.log(pt.exp(log_w - top).mean(axis=0))

    def _kl_shared(self, prefix: str):
        """Two scalar shared variables of the model's dtype: beta (1) and lambda (0)."""
        return (self._pytensor.shared(np.asarray(1.0, dtype=self.dtype), name=f"{prefix}_kl_weight"),
                self._pytensor.shared(np.asarray(0.0, dtype=self.dtype), name=f"{prefix}_free_bits"))

    def _loss_graph(self, X, eps, objective: str = "elbo", kl_options=None):
        """The scalar loss, nats per image: -mean_n ELBO_n or -mean_n IWAE_K(x_n).

        kl_options: (beta, lambda), scalar shared variables, for the ELBO only:
        mean_n NLL_n + beta * KL term, the KL term mean_n KL_n when lambda = 0 and
        Kingma et al.'s free bits sum_l max(lambda, mean_n KL_nl) when lambda > 0
        (as the NumPy backend's ``free_bits_kl_forward``; notebook 09).
        """
        if objective == "iwae":
            return -self._iwae_graph(X, eps).mean()
        if kl_options is None:
            return -self._elbo_graph(X, eps).mean()
        pt, c = self._pt, self._const
        kl_weight, free_bits = kl_options
        mu, logvar, _, log_px = self._sample_graph(X, eps)
        kl_nl = c(0.5) * (pt.exp(logvar) + mu * mu - c(1) - logvar)            # (N, L)
        kl_term = pt.switch(pt.gt(free_bits, c(0)), pt.maximum(kl_nl.mean(axis=0), free_bits).sum(),
                            kl_nl.sum(axis=-1).mean())
        return -log_px.mean(axis=0).mean() + kl_weight * kl_term

    def _graph(self, key: str):
        """The symbolic inputs and outputs of the function ``key``."""
        X, Z, eps = self._X, self._Z, self._eps
        if key == "encode":
            return [X], list(self._encoder(X))
        if key == "decode_logits":
            return [Z], self._decoder_logits(Z)
        if key == "decode":
            return [Z], self._likelihood_mean(self._decoder_logits(Z))
        if key == "log_likelihood":
            return [X, Z], self._log_likelihood(X, self._decoder_logits(Z))
        if key == "elbo":
            return [X, eps], self._elbo
        if key == "iwae":
            return [X, eps], self._iwae_graph(X, eps)
        if key in ("loss_and_grads", "iwae_loss_and_grads"):
            loss = (self._loss_graph(X, eps, "iwae") if key == "iwae_loss_and_grads"
                    else self._loss_graph(X, eps, "elbo", self._kl_options))
            return [X, eps], [loss, *self._pytensor.grad(loss, list(self.params.values()))]
        raise ValueError(f"unknown function {key!r}; choose one of {FUNCTIONS}.")

    def function(self, key: str):
        """The compiled function ``key`` (one of ``FUNCTIONS``), compiled on first use and kept.

        ``pytensor.dprint(model.function("elbo"))`` shows the graph PyTensor
        compiled. ``compile_seconds[key]`` records the time ``pytensor.function``
        took; the Numba backend compiles most of the code on the first call.
        """
        if key not in self._functions:
            inputs, outputs = self._graph(key)
            start = time.perf_counter()
            self._functions[key] = self._pytensor.function(inputs, outputs, mode=self.mode, name=key)
            self.compile_seconds[key] = time.perf_counter() - start
        return self._functions[key]

    # ----- the protocol -------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def get_params(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by its shared name."""
        return {name: shared.get_value() for name, shared in self.params.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Load weights (from any backend), cast to this model's dtype."""
        check_params(self.config, params)
        params = {name: np.asarray(value) for name, value in params.items()}
        for name, value in params.items():
            self.params[name].set_value(value.astype(self.dtype, copy=True), borrow=True)

    def encode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X: (N, D) -> mu, logvar: (N, L), (N, L)."""
        mu, logvar = self.function("encode")(self._images(X))
        return mu, logvar

    def decode_logits(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> logits: (N, D), the decoder's output before the sigmoid."""
        return self.function("decode_logits")(self._latents(Z))

    def decode(self, Z: np.ndarray) -> np.ndarray:
        """Z: (N, L) -> X_mean: (N, D), the likelihood's mean (``vae_teach.elbo.likelihood_mean``):
        sigmoid(logits), but the continuous Bernoulli's own mean."""
        return self.function("decode")(self._latents(Z))

    def log_likelihood(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """log p(x | z) under the config's likelihood: (N, D), (N, L) -> (N,) nats, from logits."""
        X, Z = self._images(X), self._latents(Z)
        checks.same_rows(X=X, Z=Z)
        return self.function("log_likelihood")(X, Z)

    def elbo(self, X: np.ndarray, n_samples: int = 1, seed: int = 0) -> np.ndarray:
        """Per-example ELBO in nats, with K = n_samples draws of z: (N,)."""
        X = self._images(X)
        eps = draw_noise(checks.seed(seed), checks.count(n_samples, "n_samples"), len(X), self.latent_dim)
        return self.elbo_with_noise(X, eps)

    def elbo_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example ELBO for given noise: X (N, D), eps (K, N, L) -> (N,)."""
        X = self._images(X)
        return self.function("elbo")(X, self._noise(eps, len(X)))

    def iwae_with_noise(self, X: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Per-example IWAE bound log 1/K sum_k w_k for given noise: X (N, D), eps (K, N, L) -> (N,).

        K = 1 gives the ELBO with a Monte Carlo KL. Defined in notebook 08.
        """
        X = self._images(X)
        return self.function("iwae")(X, self._noise(eps, len(X)))

    def loss_and_grads(self, X: np.ndarray, eps: np.ndarray, objective: str = "elbo",
                       kl_weight: float = 1.0, free_bits: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
        """loss and its gradient for every parameter, nats per image.

        objective="elbo": loss = -mean_n ELBO_n, or with kl_weight = beta and
        free_bits = lambda mean_n NLL_n + beta * (the KL term, free bits when
        lambda > 0; ``_loss_graph``, notebook 09); "iwae": loss = -mean_n IWAE_K(x_n)
        (notebook 08); each a compiled function of its own.
        Inputs: X: (N, D); eps: (K, N, L) or (N, L).
        Returns: loss (float), grads (dict, names and shapes as ``get_params``).
        """
        _check_objective(objective)
        _set_kl_options(self._kl_options, objective, kl_weight, free_bits)
        X = self._images(X)
        key = "loss_and_grads" if objective == "elbo" else "iwae_loss_and_grads"
        loss, *grads = self.function(key)(X, self._noise(eps, len(X)))
        return float(loss), dict(zip(self.params, grads))

    # ----- training -----------------------------------------------------
    def make_train_step(self, optimizer: str = "adam", lr: float | None = None, l2: float = 0.0,
                        n_samples: int = 1, noise_seed: int | None = None, objective: str = "elbo",
                        kl_weight: float = 1.0, free_bits: float = 0.0, **options) -> TrainStep:
        """One optimiser step on a minibatch, compiled with its update rule: see ``TrainStep``.

        optimizer: "sgd", "adagrad" or "adam" (torch.optim's formulas, as
        ``vae_teach.numpy_vae.optim``); lr: learning rate (the rule's default if
        None); l2: weight decay, g = dw + l2 * w; n_samples: K draws of z per
        example; noise_seed: seeds the graph's random stream (default: the
        model's seed); objective: "elbo" or "iwae" (the IWAE_K bound, K the
        noise's first axis, notebook 08); kl_weight, free_bits: beta and lambda
        of ``loss_and_grads`` (``TrainStep.set_kl_options`` changes them
        without recompiling, notebook 09); options: eps for adagrad; beta1,
        beta2, eps, moment_floor for adam.

        The model keeps one step per (optimizer, n_samples, objective), compiled
        on first use: asking again returns that same step, reset (new
        hyper-parameters, beta and lambda, zeroed optimiser state, reseeded
        noise), and compiles nothing. The weights are not reset: ``set_params``
        does that.
        """
        key = (optimizer, int(n_samples), objective)
        if key not in self._train_steps:
            self._train_steps[key] = TrainStep(self, optimizer, n_samples, objective)
        step = self._train_steps[key]
        step.reset(lr=lr, l2=l2, noise_seed=noise_seed, **options)
        step.set_kl_options(kl_weight, free_bits)
        return step

    # ----- input checks (vae_teach.checks) ----------------------------
    def _images(self, X, name: str = "X") -> np.ndarray:
        """X (N, D) of this model's D, finite, in the likelihood's range, cast to the model's dtype."""
        return checks.images(X, name, self.config.input_dim, self.config.likelihood, self.dtype)

    def _latents(self, Z) -> np.ndarray:
        return checks.latents(Z, "Z", self.latent_dim, self.dtype)

    def _noise(self, eps, n) -> np.ndarray:
        return checks.noise(eps, n, self.latent_dim, self.dtype)


class TrainStep:
    """``step(X_batch, eps=None) -> loss``: one compiled optimiser step, loss = -ELBO (nats per
    image), or -IWAE_K with ``objective="iwae"``.

    With ``eps=None`` the noise (K, B, L) is drawn inside the graph from a
    seeded PyTensor random generator (``pytensor.tensor.random.shared_rng``);
    with ``eps`` given, that noise is used (the agreement tests feed every
    backend the same). The two cases are two functions, each compiled on first
    use; they share the model's weights and the optimiser's state, which are
    all PyTensor shared variables that the functions' ``updates`` change.
    ``state``: the optimiser's shared variables, by name (e.g. "m/enc0_W").

    The hyper-parameters (lr, l2 and the rule's options) are shared float64
    scalars too, not constants baked into the graph: ``set_hyperparameters``
    changes them without compiling anything, so one compiled step serves every
    setting (``PytensorVAE.make_train_step`` hands out the model's one step per
    optimiser, objective and K, reset). Defined in notebook 04.
    """

    def __init__(self, model: PytensorVAE, optimizer: str, n_samples: int = 1, objective: str = "elbo"):
        _check_objective(objective)
        if optimizer not in OPTIMIZER_OPTIONS:
            raise ValueError(f"unknown optimiser {optimizer!r}; choose one of {sorted(OPTIMIZER_OPTIONS)}.")
        checks.count(n_samples, "n_samples")
        self.model, self.optimizer, self.n_samples, self.objective = model, optimizer, n_samples, objective
        shared = model._pytensor.shared
        self._hyper = {name: shared(np.float64(value), name=name)
                       for name, value in {"lr": DEFAULT_LR[optimizer], "l2": 0.0,
                                           **OPTIMIZER_OPTIONS[optimizer]}.items()}
        self.rng = model._pt.random.shared_rng(seed=model.seed, name="noise_rng")
        self.kl_options = model._kl_shared("step")               # beta, lambda: see set_kl_options
        self.state: dict = {}
        self._functions: dict = {}

    def set_kl_options(self, kl_weight: float = 1.0, free_bits: float = 0.0) -> None:
        """beta and lambda for the next steps (shared variables: no recompilation; notebook 09)."""
        _set_kl_options(self.kl_options, self.objective, kl_weight, free_bits)

    # ----- hyper-parameters and state -----------------------------------
    @property
    def lr(self) -> float:
        return float(self._hyper["lr"].get_value())

    @property
    def l2(self) -> float:
        return float(self._hyper["l2"].get_value())

    @property
    def hyperparameters(self) -> dict[str, float]:
        """Every hyper-parameter's current value, by name (lr, l2 and the rule's options)."""
        return {name: float(var.get_value()) for name, var in self._hyper.items()}

    def set_hyperparameters(self, lr: float | None = None, l2: float | None = None, **options) -> None:
        """Change lr, l2 or the rule's options (see ``OPTIMIZER_OPTIONS``) for the next steps; compiles nothing.
        None leaves a value as it is."""
        unknown = set(options) - set(OPTIMIZER_OPTIONS[self.optimizer])
        if unknown:
            raise TypeError(f"{self.optimizer} takes no option(s) {sorted(unknown)}; it takes lr, l2"
                            + "".join(f", {k}" for k in OPTIMIZER_OPTIONS[self.optimizer]) + ".")
        if lr is not None:
            checks.positive(lr, "lr")
        if l2 is not None:
            checks.nonnegative(l2, "l2")
        for name, value in {"lr": lr, "l2": l2, **options}.items():
            if value is not None:
                self._hyper[name].set_value(np.float64(value))

    def reset(self, lr: float | None = None, l2: float = 0.0, noise_seed: int | None = None, **options) -> None:
        """Start afresh: the rule's defaults overridden by lr, l2 and options, the optimiser's state
        zeroed (Adam's step count too), the noise generator reseeded (default: the model's seed).
        The model's weights are left as they are."""
        self.set_hyperparameters(lr=DEFAULT_LR[self.optimizer] if lr is None else lr, l2=l2,
                                 **{**OPTIMIZER_OPTIONS[self.optimizer], **options})
        for var in self.state.values():
            var.set_value(np.zeros_like(var.get_value(borrow=True)))
        seed = self.model.seed if noise_seed is None else checks.seed(noise_seed, "noise_seed")
        self.rng.set_value(np.random.default_rng(seed), borrow=True)

    # ----- the compiled step --------------------------------------------
    def __call__(self, X_batch: np.ndarray, eps: np.ndarray | None = None) -> float:
        """One step on X_batch (B, D), checked; eps (K, B, L) or None. Returns the loss (see ``unchecked``)."""
        X = self.model._images(X_batch, "X_batch")
        return self.unchecked(X, None if eps is None else self.model._noise(eps, len(X)))

    def unchecked(self, X, eps=None) -> float:
        """The step without input checks (X (B, D) of the model's dtype): the training loop's, whose
        data ``train`` checked once. Returns the loss, or NaN if the gradient was not finite; a
        non-finite result means the step changed nothing (the updates are guarded in the graph)."""
        if eps is None:
            return float(self.function(random_noise=True)(X))
        return float(self.function(random_noise=False)(X, eps))

    def function(self, random_noise: bool = True):
        """The compiled step: inputs [X] (noise drawn in the graph) or [X, eps]; output the loss.
        Compiled on first use and kept: the same object for every setting of the hyper-parameters."""
        key = "random_noise" if random_noise else "given_noise"
        if key not in self._functions:
            model = self.model
            X = model._X
            updates = {}
            if random_noise:
                next_rng, eps = self.rng.normal(size=(self.n_samples, X.shape[0], model.latent_dim),
                                                dtype=model.dtype.name)
                updates[self.rng] = next_rng
                inputs = [X]
            else:
                eps = model._eps
                inputs = [X, eps]
            loss = model._loss_graph(X, eps, self.objective, None if self.objective == "iwae" else self.kl_options)
            params = list(model.params.values())
            grads = model._pytensor.grad(loss, params)
            guarded = {}
            if self.optimizer == "adam":  # one step count for all parameters
                t = self._shared_state("t")
                guarded[t] = t + 1
            for w, dw in zip(params, grads):
                guarded.update(self._updates(w, dw))
            # A step whose loss or gradient is not finite changes nothing (vae_teach.training):
            # every update is switched on one scalar, the loss and the gradient's squared norm.
            pt = model._pt
            grad_sq = pt.add(*[(dw * dw).sum() for dw in grads]) if len(grads) > 1 else (grads[0] ** 2).sum()
            grad_ok = pt.isfinite(grad_sq)
            ok = pt.and_(pt.isfinite(loss), grad_ok)
            updates.update({var: pt.switch(ok, new, var) for var, new in guarded.items()})
            loss = pt.switch(grad_ok, loss, model._const(np.nan))
            name = f"{self.optimizer}_step_{key}" + ("" if self.objective == "elbo" else f"_{self.objective}")
            start = time.perf_counter()
            self._functions[key] = model._pytensor.function(inputs, loss, updates=updates, mode=model.mode,
                                                            name=name)
            model.compile_seconds[name] = time.perf_counter() - start
        return self._functions[key]

    def _shared_state(self, kind: str, w=None):
        """The optimiser's state for parameter w (zeros like w; the step count "t" if w is None),
        created once and shared by both compiled functions."""
        key = kind if w is None else f"{kind}/{w.name}"
        if key not in self.state:
            value = np.int64(0) if w is None else np.zeros_like(w.get_value(borrow=True))
            self.state[key] = self.model._pytensor.shared(value, name=key)
        return self.state[key]

    def _updates(self, w, dw) -> dict:
        """{shared variable: its new value} for one parameter, torch.optim's formulas.

        The hyper-parameters are float64 scalars, cast to the weights' dtype where they meet an
        array; the Adam bias corrections stay in float64, as NumPy computes them."""
        pt, h = self.model._pt, self._hyper
        def cast(scalar):
            return scalar.astype(w.dtype)
        g = dw + cast(h["l2"]) * w
        if self.optimizer == "sgd":
            return {w: w - cast(h["lr"]) * g}
        if self.optimizer == "adagrad":
            sum_sq = self._shared_state("sum_sq", w)
            new_sum_sq = sum_sq + g * g
            return {sum_sq: new_sum_sq, w: w - cast(h["lr"]) * g / (pt.sqrt(new_sum_sq) + cast(h["eps"]))}
        b1, b2, floor = h["beta1"], h["beta2"], cast(h["moment_floor"])
        m, v = self._shared_state("m", w), self._shared_state("v", w)
        new_t = self._shared_state("t") + 1
        new_m = cast(b1) * m + cast(1 - b1) * g
        new_v = cast(b2) * v + cast(1 - b2) * (g * g)
        # Moments below the floor become 0, so they never become subnormal (see optim.adam); floor 0: no-op.
        new_m = pt.switch(pt.lt(abs(new_m), floor), pt.zeros_like(new_m), new_m)
        new_v = pt.switch(pt.lt(new_v, floor), pt.zeros_like(new_v), new_v)
        step_size = cast(h["lr"] / (1 - b1 ** new_t))
        root_bc2 = cast(pt.sqrt(1 - b2 ** new_t))
        return {m: new_m, v: new_v, w: w - step_size * new_m / (pt.sqrt(new_v) / root_bc2 + cast(h["eps"]))}


def _set_kl_options(shared, objective: str, kl_weight, free_bits) -> None:
    """Check beta and lambda (finite, >= 0, ELBO only) and set the two shared variables."""
    kl_weight = checks.nonnegative(kl_weight, "kl_weight")
    free_bits = checks.nonnegative(free_bits, "free_bits")
    if objective == "iwae" and (kl_weight != 1.0 or free_bits != 0.0):
        raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                         "separate KL term.")
    for variable, value in zip(shared, (kl_weight, free_bits)):
        variable.set_value(np.asarray(value, dtype=variable.dtype))


# ----- training and inspection ---------------------------------------------
def train(
    model: PytensorVAE,
    X_train: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    optimizer: str = "adam",
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
    **optimizer_options,
) -> History:
    """Train ``model`` in place and return its ``History``.

    Inputs: X_train: (N, D) in [0, 1]; optimizer: "sgd", "adagrad" or "adam";
    lr: learning rate (the rule's default if None); l2: weight decay;
    n_samples: K draws of z per example, drawn in the graph from a generator
    seeded with seed + 1 (as the NumPy backend's); objective: "elbo" or "iwae"
    (the IWAE_K bound with K = n_samples, notebook 08); kl_weight: beta, a
    float or a schedule of ``vae_teach.schedules`` (set before each step in a
    shared variable, no recompilation); free_bits: lambda, nats per latent
    dimension (notebook 09); X_test: (M, D), if
    given its ELBO is measured after every epoch, on X_test as given
    (binarise or dequantise it yourself to match ``binarize``); binarize: None,
    "static", "dynamic" or "dequantize", see ``vae_teach.training.fit``;
    optimizer_options: e.g. moment_floor for Adam.
    The data are checked once, here; a step whose loss or gradient is not finite
    changes nothing and stops training (``TrainingDivergedError``).
    """
    if not isinstance(model, PytensorVAE):
        raise TypeError(f"model must be a PytensorVAE, got {type(model).__name__}; use the train "
                        f"function of its own backend (backends.trainer(model.backend)).")
    checks.training_args(epochs=epochs, batch_size=batch_size, n_samples=n_samples, seed_value=seed,
                         lr=lr, l2=l2)
    X_train = model._images(X_train, "X_train")
    if X_test is not None:
        X_test = checks.model_images(model, X_test, "X_test")
    schedule = as_schedule(kl_weight)
    free_bits = checks.nonnegative(free_bits, "free_bits")
    if objective == "iwae" and not (is_elbo(schedule) and free_bits == 0):
        raise ValueError("kl_weight and free_bits apply to the ELBO objective only; the IWAE bound has no "
                         "separate KL term.")
    step = model.make_train_step(optimizer, lr=lr, l2=l2, n_samples=n_samples, noise_seed=seed + 1,
                                 objective=objective, free_bits=free_bits, **optimizer_options)

    def scheduled_step(X_batch: np.ndarray, beta: float) -> float:
        if objective == "elbo":
            step.set_kl_options(beta, free_bits)
        return step.unchecked(X_batch)

    evaluate = None if X_test is None else (lambda: float(np.mean(dataset_elbo(model, X_test))))
    return fit(scheduled_step, X_train, epochs=epochs, batch_size=batch_size, lr=step.lr, seed=seed,
               evaluate=evaluate, binarize=binarize, progress=progress, desc=f"pytensor {optimizer}",
               kl_weight=schedule)


def graph_text(model: PytensorVAE, rewritten: bool = False) -> str:
    """The per-example ELBO graph as ``pytensor.dprint`` text.

    rewritten=False: the graph as written (``_elbo_graph``); True: the graph
    PyTensor compiled after its rewrites (fusion, stable softplus, in-place ops),
    for the model's compile mode.
    """
    target = model.function("elbo") if rewritten else model._elbo
    return model._pytensor.dprint(target, file="str")
