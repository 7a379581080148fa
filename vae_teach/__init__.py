"""vae_teach: the companion package of the vae-teach notebook series.

Modules (import what you need; nothing heavy runs on import):

- ``data``: dataset loaders, splits, binarisation, minibatches
- ``elbo``: reference NumPy maths (KL, likelihoods, reparameterisation, ELBO, IWAE)
- ``numpy_vae``: the from-scratch VAE (layers, model, optimisers, gradient check)
- ``interface``: the protocol every backend's model meets
- ``training``: the shared epoch loop and its history
- ``evaluate``: test ELBO and importance-sampled log-likelihood, for any backend
- ``plotting``: image grids, loss curves, latent scatter, 2-D manifold
- ``cli``: the ``vae-teach`` command
"""

__version__ = "0.1.0"
