"""vae_teach: the companion package of the vae-teach notebook series.

Modules (import what you need; nothing heavy runs on import):

- ``data``: dataset loaders, splits, binarisation, minibatches
- ``elbo``: reference NumPy maths (KL, likelihoods, reparameterisation, ELBO, IWAE)
- ``linear_gaussian``: the linear-Gaussian model, whose log p(x) and posterior are exact
- ``gradient_estimators``: reparameterisation and score-function gradient estimators
- ``autoencoder``: the deterministic autoencoder of lesson 01
- ``numpy_vae``: the from-scratch VAE (layers, model, optimisers, gradient check)
- ``interface``: the protocol every backend's model meets
- ``training``: the shared epoch loop and its history
- ``evaluate``: test ELBO and importance-sampled log-likelihood, for any backend
- ``diagnostics``: rate, distortion, active units, I(x; z), for any backend
- ``plotting``: image grids, loss curves, latent scatter, 2-D manifold
- ``pytensor_vae``, ``torch_vae``: the same model in PyTensor and PyTorch
- ``backends``: pick a backend by name
- ``exercises``, ``student``: exercise checks, and student versions of the lessons
- ``series``: run the lessons headless to HTML, execute a lesson from its .md source
- ``threads``: the one thread-count setting (threadpoolctl)
- ``cli``: the ``vae-teach`` command
"""

__version__ = "0.1.0"
