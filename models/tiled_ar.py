"""The tiled local autoregressive VAE (models/tiled_ar_config.py says what it is), in torch.

Every network is a per-position MLP written as Linear layers on channel-last tensors: the
encoder on each stride x stride block, the decoder on each block's latent, the head on each
pixel's causal window. That is a convolution with stride equal to its kernel (encoder, decoder)
or a masked convolution followed by 1x1 convolutions (head), and it is what the integer form
runs, row by row.

The interface is the MLP VAE's (posterior_raw, likelihood_params(z), log_likelihood(x, params),
sample_x(z)) on tiles: x is (B, tile, tile) or (B, tile, tile, 3) uint8 and z is (B, latent), so
the objectives, reverse half-asleep, training and evaluation apply unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .tiled_ar_config import DIFFERENCE_UNIT, MID_LEVEL, TiledARConfig, context_offsets
from .vae import _mlp, discretised_logistic_log_prob, with_coder_floor
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN

COEFF_LIMIT = 4.0  # the coder clips the colour coupling coefficients to +-4 (bbans)
LOGIT_LIMIT = 16.0  # mixture logits are clipped to +-16 (the integer head's bounds) ...
LOGIT_SPREAD = 8.0  # ... and a component more than 8 below the largest counts as 8 below (bbans)


def reference_levels(context: torch.Tensor, config: TiledARConfig) -> torch.Tensor:
    """(B, H, W, neighbours x C) context of tile rows 0..H-1 -> (B, H, W, C): each pixel's
    reference per channel, the floor of the mean of its left and upper neighbours; on the
    tile's first row its left neighbour, in its first column its upper one, and mid-grey for
    its first pixel (a neighbour outside the tile is not there, not black)."""
    k, offsets = config.channels, context_offsets(config.radius)
    left, up = offsets.index((0, -1)), offsets.index((-1, 0))
    west, north = context[..., left * k : (left + 1) * k], context[..., up * k : (up + 1) * k]
    top, first = edge_flags(context.shape[1], context.shape[2], context.device)
    top, first = top[..., None].bool(), first[..., None].bool()
    inside = torch.div(west + north, 2, rounding_mode="floor")
    return torch.where(top & first, MID_LEVEL, torch.where(top, west, torch.where(first, north, inside)))


def edge_flags(height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) floats: 1 on the tile's first row, and 1 in its first column."""
    rows = torch.arange(height, device=device)[:, None].expand(height, width)
    columns = torch.arange(width, device=device)[None, :].expand(height, width)
    return (rows == 0).float(), (columns == 0).float()


def as_channels_last(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 tiles (B, T, T) or (B, T, T, C) -> (B, T, T, C)."""
    return x.unsqueeze(-1) if x.dim() == 3 and channels == 1 else x


def tile_context(x: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, T, T, C) float -> (B, T, T, neighbours x C): each pixel's causal window (neighbour-
    major, channel-minor), zero outside the tile."""
    height, width = x.shape[1:3]
    padded = F.pad(x, (0, 0, radius, radius, radius, 0))
    return torch.cat([padded[:, radius + di : radius + di + height, radius + dj : radius + dj + width]
                      for di, dj in context_offsets(radius)], dim=-1)


class TiledARVAE(nn.Module):
    def __init__(self, config: TiledARConfig):
        super().__init__()
        self.config = c = config
        block_values = c.stride * c.stride * c.channels
        if c.latent_channels:
            self.encoder = _mlp(block_values, c.hidden, 2 * c.latent_channels)
            self.decoder = _mlp(c.latent_channels, c.hidden, c.stride * c.stride * c.features)
        self.head = _mlp(c.head_inputs, c.head, c.outputs)
        # A linear path from the head's input to its output: a local linear predictor (the mean
        # near a mix of the neighbours) that the MLP corrects, rather than rebuilds through ReLUs.
        self.skip = nn.Linear(c.head_inputs, c.outputs, bias=False)
        with torch.no_grad():
            self.skip.weight.zero_()
            # Start at the reference with a scale of about 7 levels (a mixture's components
            # from about 3 to 20 levels) and no colour coupling.
            bias = torch.zeros(c.outputs)
            k, m = c.channels, c.mixtures
            bias[k * m : 2 * k * m] = (2.0 + torch.linspace(-1.0, 1.0, m) if m > 1 else torch.full((1,), 2.0)).repeat(k)
            self.head[-1].bias.copy_(bias)

    # -- latent --------------------------------------------------------------------------------
    def _blocks(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, T[, C]) -> (B, T/s, T/s, s*s*C) in [0, 1]."""
        c = self.config
        x = as_channels_last(x_uint8, c.channels).float() / 255.0
        b, s, n = x.shape[0], c.stride, c.blocks
        return x.reshape(b, n, s, n, s, c.channels).permute(0, 1, 3, 2, 4, 5).reshape(b, n, n, -1)

    def posterior_raw(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.config.latent_channels:
            empty = torch.zeros((len(x_uint8), 0), device=x_uint8.device)
            return empty, empty
        h = self.encoder(self._blocks(x_uint8))
        k = self.config.latent_channels
        return h[..., :k].reshape(len(h), -1), h[..., k:].reshape(len(h), -1)

    def likelihood_params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        n, s = c.blocks, c.stride
        if not c.latent_channels:
            return {"features": torch.zeros((len(z), c.tile, c.tile, 0), device=z.device)}
        h = self.decoder(z.reshape(len(z), n, n, c.latent_channels))
        features = h.reshape(len(z), n, n, s, s, c.features).permute(0, 1, 3, 2, 4, 5)
        return {"features": features.reshape(len(z), c.tile, c.tile, c.features)}

    # -- likelihood ----------------------------------------------------------------------------
    def head_input(self, x_uint8: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(head input, reference): the head reads each neighbour's difference from the pixel's
        reference (DIFFERENCE_UNIT levels a unit), the reference (x / 255), whether the pixel is
        on the tile's first row and in its first column (0 or 1), and the features."""
        c = self.config
        x = as_channels_last(x_uint8, c.channels).float()
        context = tile_context(x, c.radius)
        reference = reference_levels(context, c)
        differences = (context - reference.repeat(1, 1, 1, c.neighbours)) / DIFFERENCE_UNIT
        flags = torch.stack(edge_flags(x.shape[1], x.shape[2], x.device), dim=-1).expand(len(x), -1, -1, -1)
        return torch.cat([differences, reference / 255.0, flags, features], dim=-1), reference

    def pixel_params(self, x_uint8: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs, reference = self.head_input(x_uint8, features)
        return self._named(self.head(inputs) + self.skip(inputs), reference)

    def _named(self, out: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head's outputs by name, each (..., rows, M): means (levels) and log-scales per
        channel, the coupling coefficients (RGB), the mixture logits (with a mixture)."""
        k, m = self.config.channels, self.config.mixtures

        def rows(first: int, count: int) -> torch.Tensor:
            return out[..., first : first + count * m].unflatten(-1, (count, m))

        params = {"mean": reference[..., None] + DIFFERENCE_UNIT * rows(0, k), "reference": reference,
                  "log_scale": rows(k * m, k).clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)}
        if k == 3:
            params["coeffs"] = rows(2 * k * m, 3).clamp(-COEFF_LIMIT, COEFF_LIMIT)
        if m > 1:
            params["logits"] = rows(self.config.outputs - k * m, k).clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        return params

    def channel_means(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each channel's component means (..., C, M) given the earlier channels' values x
        (..., C) in levels: G's move with R's difference from its reference, B's with R's and
        G's, each component by its own coefficients."""
        mean = params["mean"]
        if self.config.channels == 1:
            return mean
        a, d = params["coeffs"], (x - params["reference"])[..., None]
        return torch.stack([mean[..., 0, :],
                            mean[..., 1, :] + a[..., 0, :] * d[..., 0, :],
                            mean[..., 2, :] + a[..., 1, :] * d[..., 0, :] + a[..., 2, :] * d[..., 1, :]], dim=-2)

    @staticmethod
    def log_weights(params: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """log mixture weights (..., C, M) as the coder forms them, or None without a mixture."""
        if "logits" not in params:
            return None
        logits = params["logits"]
        relative = (logits - logits.max(dim=-1, keepdim=True).values).clamp(min=-LOGIT_SPREAD)
        return F.log_softmax(relative, dim=-1)

    def log_likelihood(self, x_uint8: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(x|z) in nats per tile, under the distribution the coder codes with."""
        pixel = self.pixel_params(x_uint8, params["features"])
        x = as_channels_last(x_uint8, self.config.channels).float()
        means = self.channel_means(x, pixel)
        log_prob = discretised_logistic_log_prob(x[..., None].expand_as(means), means, pixel["log_scale"])
        log_weights = self.log_weights(pixel)
        log_prob = log_prob[..., 0] if log_weights is None else torch.logsumexp(log_prob + log_weights, dim=-1)
        return with_coder_floor(log_prob, 256).reshape(len(x), -1).sum(-1)

    @torch.no_grad()
    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z) as uint8 tiles, pixel by pixel in raster order (each pixel's channels in
        order R, G, B)."""
        c = self.config
        features = self.likelihood_params(z)["features"]
        x = torch.zeros((len(z), c.tile, c.tile, c.channels), dtype=torch.uint8, device=z.device)
        for i in range(c.tile):
            for j in range(c.tile):
                # The window of (i, j) only needs rows i - r .. i; recomputing a band keeps it simple.
                top = max(0, i - c.radius)
                band = self.pixel_params(x[:, top : i + 1], features[:, top : i + 1])
                params = {name: value[:, i - top, j] for name, value in band.items()}
                x[:, i, j] = self._draw(params, generator)
        return x if c.channels > 1 else x[..., 0]

    def _draw(self, params: dict[str, torch.Tensor], generator) -> torch.Tensor:
        shape = params["mean"].shape[:-1]  # (..., C)
        drawn = torch.zeros(shape, device=params["mean"].device)
        log_weights = self.log_weights(params)
        for k in range(self.config.channels):
            means, log_scales = self.channel_means(drawn, params)[..., k, :], params["log_scale"][..., k, :]
            if log_weights is None:
                component = torch.zeros(shape[:-1] + (1,), dtype=torch.long, device=means.device)
            else:
                component = torch.multinomial(log_weights[..., k, :].exp().reshape(-1, means.shape[-1]), 1,
                                              generator=generator).reshape(shape[:-1] + (1,))
            mean = means.gather(-1, component)[..., 0]
            scale = log_scales.gather(-1, component)[..., 0].exp()
            u = torch.rand(mean.shape, generator=generator).to(mean.device).clamp(1e-6, 1 - 1e-6)
            drawn[..., k] = (mean + scale * (torch.log(u) - torch.log1p(-u))).round().clamp(0, 255)
        return drawn.to(torch.uint8)
