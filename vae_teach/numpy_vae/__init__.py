"""The from-scratch NumPy VAE: layers, model, optimisers, gradient check, training."""

from vae_teach.numpy_vae.model import NumpyVAE
from vae_teach.numpy_vae.optim import Optimizer
from vae_teach.numpy_vae.train import train

__all__ = ["NumpyVAE", "Optimizer", "train"]
