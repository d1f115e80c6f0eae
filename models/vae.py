"""The paper's MLP VAE: encoder and decoder with two hidden layers of width 500 (ReLU), a
diagonal Gaussian posterior, a standard normal prior, and a Bernoulli or discretised logistic
likelihood over 8-bit levels.

The likelihood parameters the decoder returns are exactly what bbans codes with:
Bernoulli logits, or a logistic mean (unconstrained) and log-scale in level units (0..255).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN, VAEConfig
from .vae_config import LIKELIHOOD_PRECISION

def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def to_input(x: torch.Tensor, config: VAEConfig) -> torch.Tensor:
    """uint8 images (B, H, W) -> float network input in [0, 1], shape (B, pixels)."""
    x = x.reshape(x.shape[0], -1).float()
    return x if config.likelihood == "bernoulli" else x / 255.0


class MLPVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = _mlp(config.pixels, config.hidden, 2 * config.latent)
        out = config.pixels if config.likelihood == "bernoulli" else 2 * config.pixels
        self.decoder = _mlp(config.latent, config.hidden, out)

    # The posterior std is softplus(raw) + 1e-4: K-step inference optimises `raw` directly.
    def posterior_raw(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(to_input(x_uint8, self.config))
        return h[:, : self.config.latent], h[:, self.config.latent :]

    def likelihood_params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.decoder(z)
        if self.config.likelihood == "bernoulli":
            return {"logits": h}
        n = self.config.pixels
        return {"mean": 255.0 * h[:, :n], "log_scale": h[:, n:].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)}

    def log_likelihood(self, x_uint8: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(x|z) in nats per image, under the distribution the coder codes with."""
        x = x_uint8.reshape(x_uint8.shape[0], -1)
        if self.config.likelihood == "bernoulli":
            log_prob = -F.binary_cross_entropy_with_logits(params["logits"], x.float(), reduction="none")
            return with_coder_floor(log_prob, 2).sum(-1)
        return with_coder_floor(discretised_logistic_log_prob(x, params["mean"], params["log_scale"]), 256).sum(-1)

    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z) as uint8 images (B, H, W)."""
        params = self.likelihood_params(z)
        shape = (z.shape[0], self.config.height, self.config.width)
        if self.config.likelihood == "bernoulli":
            u = torch.rand(params["logits"].shape, generator=generator).to(z.device)
            return (u < torch.sigmoid(params["logits"])).to(torch.uint8).reshape(shape)
        u = torch.rand(params["mean"].shape, generator=generator).to(z.device).clamp(1e-6, 1 - 1e-6)
        sample = params["mean"] + torch.exp(params["log_scale"]) * (torch.log(u) - torch.log1p(-u))
        return sample.round().clamp(0, 255).to(torch.uint8).reshape(shape)


def with_coder_floor(log_prob: torch.Tensor, n_symbols: int) -> torch.Tensor:
    """log of (1 - n / 2^p) P + 2^-p: the probability the coder really gives a symbol.

    The coder's integer rule (bbans/tables.py) gives every one of n symbols a frequency of at
    least 1 out of 2^p (p = LIKELIHOOD_PRECISION), the rest in proportion to P. So no pixel
    costs more than p bits, however sure the model was of another value. Using the same
    distribution here keeps the reported -ELBO equal to what an archive spends, and bounds the
    loss (and gradient) of a surprising pixel in training.
    """
    top = float(2**LIKELIHOOD_PRECISION)
    return torch.logaddexp(log_prob + math.log1p(-n_symbols / top), torch.tensor(-math.log(top)))


def posterior_std(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + 1e-4


def discretised_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of a logistic rounded to levels 0..255 with open end bins (nats, elementwise).

    Same CDF as bbans.DiscretisedLogistic: sigmoid((k +- 0.5 - mean) / scale).
    """
    x = x.float()
    inv_scale = torch.exp(-log_scale)
    upper = (x + 0.5 - mean) * inv_scale
    lower = (x - 0.5 - mean) * inv_scale
    log_cdf_upper = F.logsigmoid(upper)
    log_sf_lower = F.logsigmoid(-lower)
    # log(sigmoid(u) - sigmoid(l)) = log(sigmoid(u)) + log(1 - exp(l - u)) + log(sigmoid(-l))
    #                                 - ... written stably: sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(l - u))
    middle = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper).clamp(max=-1e-12))
    return torch.where(x <= 0, log_cdf_upper, torch.where(x >= 255, log_sf_lower, middle))


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) per image, nats."""
    return 0.5 * (mean.pow(2) + std.pow(2) - 1.0 - 2.0 * torch.log(std)).sum(-1)
