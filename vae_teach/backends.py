"""Pick a backend by name: build its model and find its training function.

Each backend module offers a model class meeting ``interface.VAEModel`` and a
``train(model, X_train, *, epochs, batch_size, optimizer, lr, l2, seed,
X_test, binarize, progress) -> History`` function. Backend modules are
imported only when asked for, so a missing optional dependency (PyTensor,
PyTorch) fails with its own clear message, and only for that backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vae_teach.interface import VAEConfig, VAEModel

# name -> (module, model class name, install hint)
BACKENDS = {
    "numpy": ("vae_teach.numpy_vae", "NumpyVAE", "it needs only numpy"),
    "pytensor": ("vae_teach.pytensor_vae", "PytensorVAE", "pip install 'vae_teach[pytensor]'"),
    "torch": ("vae_teach.torch_vae", "TorchModel", "pip install 'vae_teach[torch]'"),
}


def _module(backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}.")
    module_name, _, hint = BACKENDS[backend]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"the {backend} backend could not be imported ({exc}); {hint}.") from exc


def make_model(backend: str, config: VAEConfig, seed: int = 0, **options) -> VAEModel:
    """A new model of ``backend`` with the architecture ``config`` and initial weights ``seed``."""
    module = _module(backend)
    return getattr(module, BACKENDS[backend][1])(config, seed=seed, **options)


def trainer(backend: str) -> Callable:
    """The backend's ``train(model, X_train, **options) -> History`` function."""
    return _module(backend).train
