"""The plain PyTorch baseline: a VAE written the way pytorch/examples' vae/main.py writes one.

This file is deliberately *not* in the style of ``vae_teach``: it is the yardstick,
the code a PyTorch user would write first, so it keeps that example's habits
(a DataLoader over a TensorDataset with shuffling, layers named fc1/fc21/fc22/
fc3/fc4, a sigmoid decoder scored with ``F.binary_cross_entropy(...,
reduction='sum')``, a loss summed over the batch, Adam with lr 1e-3, one
``loss.item()`` a step). What it leaves out: argparse and the download at import
time, the log prints every 10 batches, and the test loop, which the benchmark
replaces with ``vae_teach.evaluate.dataset_elbo`` for every implementation alike.

Sizes and the activation are arguments so that the same code also serves the
784-500-2 tanh model (pytorch/examples hard-codes 784-400-20 and ReLU).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class VAE(nn.Module):
    def __init__(self, input_dim=784, hidden_dim=400, latent_dim=20, activation="relu"):
        super().__init__()
        self.input_dim = input_dim
        self.act = F.relu if activation == "relu" else torch.tanh
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, input_dim)

    def encode(self, x):
        h1 = self.act(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = self.act(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.input_dim))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, recon_x.shape[1]), reduction="sum")
    # see Appendix B from VAE paper:
    # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # https://arxiv.org/abs/1312.6114
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def train_epoch(model, optimizer, train_loader, device="cpu"):
    """One pass over train_loader, as pytorch/examples' train(epoch). Returns the mean loss per image."""
    model.train()
    train_loss = 0
    for batch_idx, (data, _) in enumerate(train_loader):
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(train_loader.dataset)


def train(X_train, y_train, *, epochs, batch_size, hidden_dim, latent_dim, activation, seed=1,
          after_epoch=None):
    """Train the baseline for ``epochs``; returns (model, examples per second of each epoch, train loss of each).

    X_train: (N, 784) float32 in [0, 1]; y_train: (N,) labels (the loader yields them, unused).
    The seed goes to ``torch.manual_seed``, as the example's --seed (default 1).
    after_epoch: called after each epoch, once its time is taken (the benchmark's turn-taking).
    """
    torch.manual_seed(seed)
    device = torch.device("cpu")
    dataset = TensorDataset(torch.from_numpy(np.ascontiguousarray(X_train)),
                            torch.from_numpy(np.asarray(y_train, dtype=np.int64)))
    train_loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model = VAE(X_train.shape[1], hidden_dim, latent_dim, activation).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    examples_per_second, losses = [], []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        losses.append(train_epoch(model, optimizer, train_loader, device))
        examples_per_second.append(len(dataset) / (time.perf_counter() - start))
        if after_epoch is not None:
            after_epoch()
    return model, examples_per_second, losses


def shared_params(model: VAE) -> dict[str, np.ndarray]:
    """The baseline's weights under vae_teach's shared names (weights as (in, out)), for evaluation."""
    names = {"fc1": "enc0", "fc21": "mu", "fc22": "logvar", "fc3": "dec0", "fc4": "out"}
    params = {}
    for fc, name in names.items():
        layer = getattr(model, fc)
        params[f"{name}_W"] = layer.weight.detach().numpy().T.copy()
        params[f"{name}_b"] = layer.bias.detach().numpy().copy()
    return params
