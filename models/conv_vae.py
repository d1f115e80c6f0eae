"""The convolutional VAE (models/conv_vae_config.py says what it is), in torch.

The interface is the MLP VAE's (posterior_raw, likelihood_params(z), log_likelihood(x, params),
sample_x(z), an `encoder` module), so the objectives, reverse half-asleep, training and
evaluation apply unchanged. Images are uint8 (B, H, W) or (B, H, W, 3); latents (B, latent),
the latent map flattened channel-major.

Every convolution is 3 x 3, stride 1, zero padding 1, with a bias; the resolution changes are
torch's pixel_unshuffle / pixel_shuffle, which the integer form (models/frozen_conv_vae.py)
repeats as the same permutation of values.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .conv_vae_config import COEFF_LIMIT, COUPLING_CENTRE, ConvVAEConfig
from .vae import discretised_logistic_log_prob, with_coder_floor
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN

MEAN_CENTRE = 127.5  # a channel's mean is 127.5 + 127.5 h: h near 0 for a mid-grey pixel


def _conv(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1)


class ResidualBlock(nn.Module):
    def __init__(self, filters: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(filters, filters), _conv(filters, filters)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class ConvEncoder(nn.Module):
    """x / 255 -> space-to-depth -> conv, ReLU -> space-to-depth -> conv -> residual blocks ->
    ReLU -> conv to the posterior's mean and raw std maps."""

    def __init__(self, c: ConvVAEConfig):
        super().__init__()
        self.conv_in1 = _conv(4 * c.channels, c.filters)
        self.conv_in2 = _conv(4 * c.filters, c.filters)
        self.blocks = nn.ModuleList(ResidualBlock(c.filters) for _ in range(c.blocks))
        self.conv_out = _conv(c.filters, 2 * c.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv_in1(F.pixel_unshuffle(x, 2)))
        h = self.conv_in2(F.pixel_unshuffle(h, 2))
        for block in self.blocks:
            h = block(h)
        return self.conv_out(F.relu(h))


class ConvDecoder(nn.Module):
    """z map -> conv -> residual blocks -> ReLU -> conv, depth-to-space -> ReLU -> conv,
    depth-to-space -> every pixel's likelihood parameters."""

    def __init__(self, c: ConvVAEConfig):
        super().__init__()
        self.conv_in = _conv(c.latent_channels, c.filters)
        self.blocks = nn.ModuleList(ResidualBlock(c.filters) for _ in range(c.blocks))
        self.conv_up1 = _conv(c.filters, 4 * c.filters)
        self.conv_up2 = _conv(c.filters, 4 * c.outputs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.blocks:
            h = block(h)
        h = F.relu(F.pixel_shuffle(self.conv_up1(F.relu(h)), 2))
        return F.pixel_shuffle(self.conv_up2(h), 2)


def as_channels_first(x_uint8: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (B, H, W) or (B, H, W, C) -> float (B, C, H, W) in levels."""
    x = x_uint8.float()
    return x.unsqueeze(1) if channels == 1 and x.dim() == 3 else x.permute(0, 3, 1, 2)


class ConvVAE(nn.Module):
    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config)
        with torch.no_grad():  # start every pixel at a scale of about 7 levels, not 1
            k = config.channels
            self.decoder.conv_up2.bias[4 * k : 8 * k] = 2.0  # parameter p is outputs 4p..4p+3 (depth-to-space)

    def posterior_raw(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._posterior(as_channels_first(x_uint8, self.config.channels) / 255.0)

    def posterior_of_noisy(self, x_uint8: torch.Tensor, sigma: float, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior with N(0, sigma^2) noise on the encoder's input (x / 255): the denoising
        objective's (models/objectives.py)."""
        inputs = as_channels_first(x_uint8, self.config.channels) / 255.0
        return self._posterior(inputs + sigma * torch.randn(inputs.shape, generator=generator).to(inputs.device))

    def _posterior(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(inputs)
        k = self.config.latent_channels
        return h[:, :k].reshape(len(h), -1), h[:, k:].reshape(len(h), -1)

    def likelihood_params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        out = self.decoder(z.reshape(len(z), *c.latent_shape)).permute(0, 2, 3, 1)
        k = c.channels
        params = {"mean": MEAN_CENTRE + MEAN_CENTRE * out[..., :k],
                  "log_scale": out[..., k : 2 * k].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)}
        if k == 3:
            params["coeffs"] = out[..., 6:9].clamp(-COEFF_LIMIT, COEFF_LIMIT)
        return params

    def channel_means(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each channel's logistic mean given the earlier channels' values x (..., C) in levels."""
        mean = params["mean"]
        if self.config.channels == 1:
            return mean
        a, d = params["coeffs"], x - COUPLING_CENTRE
        return torch.stack([mean[..., 0],
                            mean[..., 1] + a[..., 0] * d[..., 0],
                            mean[..., 2] + a[..., 1] * d[..., 0] + a[..., 2] * d[..., 1]], dim=-1)

    def log_likelihood(self, x_uint8: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(x|z) in nats per image, under the distribution the coder codes with."""
        x = x_uint8.float().reshape(*params["mean"].shape)
        log_prob = discretised_logistic_log_prob(x, self.channel_means(x, params), params["log_scale"])
        return with_coder_floor(log_prob, 256).reshape(len(x), -1).sum(-1)

    @torch.no_grad()
    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z) as uint8 images, each pixel's channels in order R, G, B."""
        params = self.likelihood_params(z)
        drawn = torch.zeros(params["mean"].shape, device=z.device)
        for k in range(self.config.channels):
            mean = self.channel_means(drawn, params)[..., k]
            u = torch.rand(mean.shape, generator=generator).to(z.device).clamp(1e-6, 1 - 1e-6)
            sample = mean + torch.exp(params["log_scale"][..., k]) * (torch.log(u) - torch.log1p(-u))
            drawn[..., k] = sample.round().clamp(0, 255)
        x = drawn.to(torch.uint8)
        return x if self.config.channels > 1 else x[..., 0]
