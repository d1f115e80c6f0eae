"""Evaluation: test bpd as -ELBO, the optimal-inference oracle (paper eq. 13), and IWAE."""
from __future__ import annotations

import math

import numpy as np
import torch

from .objectives import negative_elbo
from .vae import MLPVAE, posterior_std


def _batches(images: np.ndarray, batch_size: int, model):
    """The images in batches, on the model's device."""
    device = next(model.parameters()).device
    for i in range(0, len(images), batch_size):
        yield torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)


def values_per_image(config) -> int:
    """Coded values (pixels x channels) per image: what bits per dimension divide by."""
    return getattr(config, "dims", config.pixels)


def _to_bpd(nats_per_image: float, model: MLPVAE) -> float:
    return nats_per_image / (values_per_image(model.config) * math.log(2.0))


@torch.no_grad()
def elbo_bpd(model: MLPVAE, images: np.ndarray, samples: int = 10, seed: int = 0, batch_size: int = 1000) -> float:
    """-ELBO in bits per dimension, averaged over `samples` posterior samples (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for x in _batches(images, batch_size, model):
        total += sum(negative_elbo(model, x, generator).sum().item() for _ in range(samples)) / samples
    return _to_bpd(total / len(images), model)


@torch.no_grad()
@torch.no_grad()
def iwae_bpd(model: MLPVAE, images: np.ndarray, k: int = 100, seed: int = 0, batch_size: int = 100) -> float:
    """-log p(x) estimated by the importance-weighted bound with k samples, bits per dimension."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for x in _batches(images, batch_size, model):
        mean, raw = model.posterior_raw(x)
        std = posterior_std(raw)
        weights = []
        for _ in range(k):
            eps = torch.randn(mean.shape, generator=generator).to(mean.device)
            z = mean + std * eps
            log_p_x = model.log_likelihood(x, model.likelihood_params(z))
            log_p_z = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_q = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(-1) - torch.log(std).sum(-1)
            weights.append(log_p_x + log_p_z - log_q)
        log_mean = torch.logsumexp(torch.stack(weights), 0) - math.log(k)
        total += -log_mean.sum().item()
    return _to_bpd(total / len(images), model)


def optimal_inference_bpd(model: MLPVAE, images: np.ndarray, epochs: int = 100, lr: float = 5e-4,
                          batch_size: int = 100, seed: int = 0, samples: int = 10) -> float:
    """The oracle of paper eq. 13: train a copy of the encoder on the test images themselves.

    Its gap to `elbo_bpd` is the amortised inference generalisation gap.
    """
    import copy

    from .train import train_encoder

    oracle = copy.deepcopy(model)
    train_encoder(oracle, images, "reverse-half-asleep", alpha=0.0, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return elbo_bpd(oracle, images, samples=samples, seed=seed)
