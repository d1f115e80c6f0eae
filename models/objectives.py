"""Training objectives, all returning per-image values in nats (lower is better for losses).

- `negative_elbo`: the usual VAE loss, one reparameterised sample, analytic KL.
- Encoder-only objectives for `train-encoder` (decoder frozen by the caller):
  reverse half-asleep (paper eq. 21), sleep (wake-sleep's forward KL on model samples), and
  the denoising regulariser of Shu et al. (paper Table 1).
"""
from __future__ import annotations

import math

import torch

from .vae import MLPVAE, gaussian_kl, posterior_std


def _device(model) -> torch.device:
    """Where the model's parameters are: noise is drawn on the CPU (the same on every device) and
    moved there."""
    return next(model.parameters()).device


def negative_elbo_from(model: MLPVAE, x: torch.Tensor, mean, raw, generator=None) -> torch.Tensor:
    """Negative ELBO of x (nats per image) under the posterior N(mean, softplus(raw))."""
    std = posterior_std(raw)
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    z = mean + std * eps
    return -model.log_likelihood(x, model.likelihood_params(z)) + gaussian_kl(mean, std)


def negative_elbo(model: MLPVAE, x: torch.Tensor, generator=None) -> torch.Tensor:
    mean, raw = model.posterior_raw(x)
    return negative_elbo_from(model, x, mean, raw, generator)


@torch.no_grad()
def sample_model(model: MLPVAE, n: int, generator=None, from_data: torch.Tensor | None = None) -> torch.Tensor:
    """x ~ p(x) (z ~ N(0, I)), or with `from_data`: z ~ q(z|x') for data x' (the aggregate
    posterior; when n exceeds the data, as with alpha > 0.5, the data images are used in turn
    again, each time with fresh noise)."""
    if from_data is None:
        z = torch.randn((n, model.config.latent), generator=generator).to(_device(model))
    else:
        mean, raw = model.posterior_raw(from_data[torch.arange(n) % len(from_data)])
        z = mean + posterior_std(raw) * torch.randn(mean.shape, generator=generator).to(mean.device)
    return model.sample_x(z, generator)


def reverse_half_asleep(model, x, alpha: float, generator=None, samples_from: str = "prior") -> torch.Tensor:
    """Mean negative ELBO over m(x) = alpha p(x) + (1 - alpha) p_data(x) (paper eq. 21).

    A batch of n data images is joined with round(n * alpha / (1 - alpha)) model samples, so that
    alpha is the fraction of model samples (alpha = 0.5: n data + n samples, as the authors' code).
    alpha = 1 uses model samples only (reverse sleep); alpha = 0 is ordinary amortised training.
    """
    n = x.shape[0]
    if alpha >= 1.0:
        n_model, data = n, x[:0]
    else:
        n_model, data = int(round(n * alpha / (1.0 - alpha))), x
    parts = [data]
    if n_model:
        parts.append(sample_model(model, n_model, generator, from_data=x if samples_from == "aggregate" else None))
    return negative_elbo(model, torch.cat(parts), generator).mean()


def sleep(model, x, generator=None) -> torch.Tensor:
    """-log q(z|x) on (z, x) ~ p(z) p(x|z): the sleep phase of wake-sleep (forward KL)."""
    with torch.no_grad():
        z = torch.randn((x.shape[0], model.config.latent), generator=generator).to(_device(model))
        x_model = model.sample_x(z, generator)
    mean, raw = model.posterior_raw(x_model)
    std = posterior_std(raw)
    log_q = -0.5 * (((z - mean) / std) ** 2 + 2 * torch.log(std) + math.log(2 * math.pi)).sum(-1)
    return -log_q.mean()


def denoising(model, x, sigma: float, weight: float = 0.5, generator=None) -> torch.Tensor:
    """Shu et al.: weight * E_eps[KL(q(z|x+eps) || p(z|x))] + (1 - weight) * KL(q(z|x) || p(z|x)).

    Up to a constant in the encoder, each KL is the negative ELBO of x with the posterior computed
    from the (noised) input. Noise is added to the network input in [0, 1] units.
    """
    from .vae import to_input

    clean = negative_elbo(model, x, generator)
    if hasattr(model, "posterior_of_noisy"):  # an encoder that does not read flat images
        mean, raw = model.posterior_of_noisy(x, sigma, generator)
    else:
        inputs = to_input(x, model.config)
        h = model.encoder(inputs + sigma * torch.randn(inputs.shape, generator=generator).to(inputs.device))
        mean, raw = h[:, : model.config.latent], h[:, model.config.latent :]
    noisy = negative_elbo_from(model, x, mean, raw, generator)
    return (weight * noisy + (1 - weight) * clean).mean()
