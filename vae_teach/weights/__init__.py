"""Shipped weights: small trained models that pages start from, and how they were made.

``faces_2d``: the latent explorer's default (``apps/latent_explorer.ipynb``),
a NumPy VAE with a 2-D latent space and one hidden layer of 128 units,
trained for 10 epochs on ``load_dataset("synthetic-faces")``. Each model is
two files beside this module: ``NAME.npz`` (the weights under the shared
names) and ``NAME.json`` (its ``VAEConfig``, dataset and training settings).

``python -m vae_teach.weights`` trains and writes them again (seeded, about
ten seconds); ``load("faces_2d")`` reads them back. Nothing runs on import.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
FACES_2D = {"name": "faces_2d", "dataset": "synthetic-faces", "hidden_dims": [128], "latent_dim": 2,
            "epochs": 10, "batch_size": 100, "lr": 3e-3, "seed": 0}
"""How ``faces_2d`` is trained: ``write_faces_2d`` reads these settings."""


def paths(name: str, folder=None) -> tuple[Path, Path]:
    """The weights file (.npz) and the settings file (.json) of ``name``."""
    folder = FOLDER if folder is None else Path(folder)
    return folder / f"{name}.npz", folder / f"{name}.json"


def write_faces_2d(folder=None, progress: bool = False) -> Path:
    """Train ``faces_2d`` as ``FACES_2D`` says (seeded) and write its two files; returns the .npz path."""
    import json

    from vae_teach.data import load_dataset
    from vae_teach.files import save_npz, write_text_atomically
    from vae_teach.interface import VAEConfig
    from vae_teach.numpy_vae import NumpyVAE, train

    spec = FACES_2D
    data = load_dataset(spec["dataset"])
    config = VAEConfig(input_dim=data.X_train.shape[1], hidden_dims=tuple(spec["hidden_dims"]),
                       latent_dim=spec["latent_dim"])
    model = NumpyVAE(config, seed=spec["seed"])
    history = train(model, data.X_train, epochs=spec["epochs"], batch_size=spec["batch_size"], lr=spec["lr"],
                    seed=spec["seed"], X_test=data.X_test, progress=progress)
    weights, settings = paths(spec["name"], folder)
    weights.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(settings, json.dumps({**spec, "backend": "numpy", "config": config.to_dict(),
                                                "test_elbo_nats_per_image": history.test_elbo[-1]}, indent=1))
    save_npz(weights, model.get_params())
    return weights


def load(name: str = "faces_2d", folder=None):
    """The shipped model ``name`` as a protocol model, and its settings dict (dataset, config, ...).

    Raises FileNotFoundError, saying how to make the files, if they are missing;
    ValueError if they are damaged or do not fit each other.
    """
    from vae_teach.backends import make_model
    from vae_teach.files import load_npz, read_json
    from vae_teach.interface import VAEConfig

    weights, settings = paths(name, folder)
    for path in (weights, settings):
        if not path.is_file():
            raise FileNotFoundError(f"the shipped weights {name!r} are missing: no {path}. Write them with "
                                    f"`python -m vae_teach.weights` (trains for about ten seconds), or "
                                    f"reinstall vae_teach.")
    spec = read_json(settings, "weights settings", required=("backend", "dataset", "config"))
    model = make_model(spec["backend"], VAEConfig.from_dict(spec["config"]))
    model.set_params(load_npz(weights, f"{name} weights"))
    return model, spec
