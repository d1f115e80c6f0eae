"""K-step optimal inference (paper Algorithm 2) and the numpy parameters the coder uses.

Compressor and decompressor both call these functions on the same batch, and must get
bit-identical results. So every call here
- runs torch on one CPU thread, whatever torch.set_num_threads says elsewhere (a different
  thread count changes how matrix products are blocked, and so their rounding);
- draws its noise from a torch.Generator seeded by the caller.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .objectives import negative_elbo_from
from .vae import MLPVAE, posterior_std


@contextlib.contextmanager
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images


def optimise_posterior(model: MLPVAE, images, k_steps: int, lr: float = 5e-3, seed: int = 0):
    """Start from the encoder's q(z|x) and take K Adam steps on each image's own ELBO.

    Parameters are the posterior mean and the raw (pre-softplus) std, per image; the loss is the
    one-sample reparameterised -ELBO summed over the batch, so each image's parameters follow
    their own gradient. Returns (mean, raw) as tensors without gradients.
    """
    x = _as_tensor(images)
    with single_thread():
        with torch.no_grad():
            mean, raw = model.posterior_raw(x)
        if k_steps <= 0:
            return mean, raw
        mean = mean.clone().requires_grad_(True)
        raw = raw.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([mean, raw], lr=lr)
        generator = torch.Generator().manual_seed(seed)
        requires = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(k_steps):
                loss = negative_elbo_from(model, x, mean, raw, generator).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            for p, r in zip(model.parameters(), requires):
                p.requires_grad_(r)
        return mean.detach(), raw.detach()


def posterior_params(model: MLPVAE, images, k_steps: int = 0, lr: float = 5e-3, seed: int = 0):
    """Posterior mean and std (float64 numpy, shape (B, latent)) for bbans."""
    mean, raw = optimise_posterior(model, images, k_steps, lr, seed)
    with single_thread(), torch.no_grad():
        std = posterior_std(raw)
    return mean.double().numpy(), std.double().numpy()


def likelihood_params(model: MLPVAE, z: np.ndarray) -> dict[str, np.ndarray]:
    """Decoder output for latents z (B, latent) as float64 numpy: {'logits'} or {'mean', 'log_scale'}."""
    with single_thread(), torch.no_grad():
        params = model.likelihood_params(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)))
    return {k: v.double().numpy() for k, v in params.items()}
