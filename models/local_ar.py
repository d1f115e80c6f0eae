"""A VAE whose likelihood is a local autoregressive model (PixelVAE / NeLLoC style).

Encoder and latent are the MLP VAE's. The decoder MLP maps z to `features` numbers per pixel;
a small causal network then gives each pixel's likelihood parameters from those features and
the already-coded pixels of a local window:

    context(i, j) = the pixels above in rows i - r .. i - 1 (columns j - r .. j + r) and left of
                    (i, j) in row i (columns j - r .. j - 1), zero outside the image;
    head(i, j)    = Linear(ReLU(Linear(ReLU(Linear([context, features(i, j)])))))

The head is a per-pixel MLP with weights shared by every position (a masked convolution of
kernel 2r + 1 followed by two 1x1 convolutions, written as what it is): 2r(r + 1) context pixels
and the pixel's features in, which is also what its integer form runs
(frozen_local_ar.py). Radius 2 (12 neighbours): NeLLoC's ablation finds most of the local gain
within 2-3 pixels, and the decode runs one network step per pixel position, so the head stays
small (its cost is paid 784 times per image on both sides).

The interface is the MLP VAE's (posterior_raw, likelihood_params(z), log_likelihood(x, params),
sample_x(z)), so the objectives, reverse half-asleep and evaluation apply unchanged; here the
"params" of z are the features, and log_likelihood runs the head over x's own context.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .vae import _mlp, discretised_logistic_log_prob, to_input, with_coder_floor
from .local_ar_config import LocalARConfig, context_offsets
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN


def causal_context(images: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) -> (B, H, W, neighbours): each pixel's causal window, zero outside the image."""
    height, width = images.shape[1:]
    padded = F.pad(images, (radius, radius, radius, 0))
    return torch.stack([padded[:, radius + di : radius + di + height, radius + dj : radius + dj + width]
                        for di, dj in context_offsets(radius)], dim=-1)


class LocalARVAE(nn.Module):
    def __init__(self, config: LocalARConfig):
        super().__init__()
        self.config = config
        self.encoder = _mlp(config.pixels, config.hidden, 2 * config.latent)
        self.decoder = _mlp(config.latent, config.hidden, config.features * config.pixels)
        neighbours = len(context_offsets(config.radius))
        self.head = _mlp(neighbours + config.features, config.head, config.outputs)
        if config.likelihood == "logistic":
            # Start wide (scale ~55 levels around mid-grey): a pixel the model is sure it is not
            # costs the coder's floor, which passes no gradient, so a narrow start learns "all
            # black" and stays there.
            with torch.no_grad():
                self.head[-1].bias.copy_(torch.tensor([0.5, 4.0]))

    def posterior_raw(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(to_input(x_uint8, self.config))
        return h[:, : self.config.latent], h[:, self.config.latent :]

    def likelihood_params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        return {"features": self.decoder(z).reshape(-1, c.height, c.width, c.features)}

    def pixel_params(self, x_uint8: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        x_input = to_input(x_uint8, c).reshape(-1, c.height, c.width)
        out = self.head(torch.cat([causal_context(x_input, c.radius), features], dim=-1)).reshape(len(x_input), c.pixels, c.outputs)
        return self._named(out[..., 0], out[..., 1:])

    def _named(self, first: torch.Tensor, rest: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config.likelihood == "bernoulli":
            return {"logits": first}
        return {"mean": 255.0 * first, "log_scale": rest[..., 0].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)}

    def log_likelihood(self, x_uint8: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(x|z) in nats per image, under the distribution the coder codes with."""
        pixel = self.pixel_params(x_uint8, params["features"])
        x = x_uint8.reshape(x_uint8.shape[0], -1)
        if self.config.likelihood == "bernoulli":
            log_prob = -F.binary_cross_entropy_with_logits(pixel["logits"], x.float(), reduction="none")
            return with_coder_floor(log_prob, 2).sum(-1)
        return with_coder_floor(discretised_logistic_log_prob(x, pixel["mean"], pixel["log_scale"]), 256).sum(-1)

    @torch.no_grad()
    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z) as uint8 images (B, H, W), pixel by pixel in raster order."""
        c = self.config
        features = self.likelihood_params(z)["features"]
        x = torch.zeros((len(z), c.height, c.width), dtype=torch.uint8, device=z.device)
        padded = torch.zeros((len(z), c.height + c.radius, c.width + 2 * c.radius), device=z.device)
        offsets = context_offsets(c.radius)
        for i in range(c.height):
            for j in range(c.width):
                # the window of (i, j) in the padded image, whose pixel (i, j) is at (i + r, j + r)
                context = torch.stack([padded[:, i + c.radius + di, j + c.radius + dj] for di, dj in offsets], dim=1)
                out = self.head(torch.cat([context, features[:, i, j]], dim=1))
                x[:, i, j] = self._draw(self._named(out[:, 0], out[:, 1:]), generator)
                padded[:, i + c.radius, j + c.radius] = to_input(x[:, i, j], c).reshape(-1)
        return x

    def _draw(self, params: dict[str, torch.Tensor], generator) -> torch.Tensor:
        """One pixel per image from its parameters."""
        if self.config.likelihood == "bernoulli":
            u = torch.rand(params["logits"].shape, generator=generator).to(params["logits"].device)
            return (u < torch.sigmoid(params["logits"])).to(torch.uint8)
        u = torch.rand(params["mean"].shape, generator=generator).to(params["mean"].device).clamp(1e-6, 1 - 1e-6)
        sample = params["mean"] + torch.exp(params["log_scale"]) * (torch.log(u) - torch.log1p(-u))
        return sample.round().clamp(0, 255).to(torch.uint8)
