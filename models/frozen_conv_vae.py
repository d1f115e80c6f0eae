"""The convolutional VAE (models/conv_vae.py), frozen for coding on the exact integer path.

Every convolution is an IntegerConv2d (integer_conv.py): integer weights with one power-of-two
scale per output channel, every partial sum proven below 2^53, requantisation by IEEE operations
on single values. Space-to-depth and depth-to-space are permutations of integers, ReLU is a clip
at 0, and a residual block adds two integers of the same fixed point (then clips), so the whole
network gives the same integers on every machine. Fixed point as the other models: latents in
2^-16 units, activations in 2^-16 units clipped to [-256, 256), likelihood parameters (means,
log-scales, coupling coefficients) in 2^-12 units.

Bits back, the posterior and K-step inference (paper Algorithm 2) are the MLP VAE's (this class
extends FrozenMLPVAE): what differs is the networks, and the likelihood, whose colour channels
are coupled (G's mean moves with R, B's with R and G) and coded by bbans.DiscretisedLogisticRGB,
R first. K-step inference runs the decoder forward and backward on integers.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from bbzip import bbans
from bbzip.bbans.distributions import PARAM_BITS
from bbzip.bbans.lookup import QUANTILE_BITS, bucket_centres

from .conv_vae_config import COEFF_LIMIT, COUPLING_CENTRE, ConvVAEConfig
from .frozen_mlp import LATENT_LIMIT, MEAN_RANGE, Z_LIMIT, FrozenMLPVAE, _fixed, _output_gradient, _Pixels
from .integer_conv import IntegerConv2d, quantise_conv
from .integer_mlp import ACTIVATION_BITS, ACTIVATION_MAX, GRADIENT_BITS, GRADIENT_MAX, FrozenModelError, IntegerLayer, relu_passes
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN

KERNEL, PADDING = 3, 1
MEAN_CENTRE = 127.5  # the trained model's mean is 127.5 + 127.5 h (conv_vae.py), folded into the last layer
LANES_PER_IMAGE = 8  # rANS lanes an image codes on (lanes_per_unit: fewer decode steps, ~5 bits a lane)
_CHUNK = 64  # images per pass through the networks: their widest unfolded input is ~1 MB an image


def space_to_depth(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, 4C, H/2, W/2) as torch's pixel_unshuffle(x, 2): channel 4c + 2i + j
    holds x[c, 2h + i, 2w + j]."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def depth_to_space(x: np.ndarray) -> np.ndarray:
    """(N, 4C, H, W) -> (N, C, 2H, 2W) as torch's pixel_shuffle(x, 2), the inverse of space_to_depth."""
    n, c4, h, w = x.shape
    return x.reshape(n, c4 // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c4 // 4, 2 * h, 2 * w)


def _parameter_bounds(channels: int) -> tuple[list[float], list[float]]:
    """Clip bounds (2^-12 units) of each likelihood parameter: means, log-scales, coefficients."""
    low = [float(MEAN_RANGE[0])] * channels + [LOG_SCALE_MIN * (1 << PARAM_BITS)] * channels
    high = [float(MEAN_RANGE[1])] * channels + [LOG_SCALE_MAX * (1 << PARAM_BITS)] * channels
    if channels == 3:
        low += [-COEFF_LIMIT * (1 << PARAM_BITS)] * 3
        high += [COEFF_LIMIT * (1 << PARAM_BITS)] * 3
    return low, high


class FrozenConvVAE(FrozenMLPVAE):
    """The integer form of models.conv_vae.ConvVAE (architecture "conv-vae")."""

    architecture = "conv-vae"
    keeps_for_check = False  # (its batch_codec is its own: its check computes everything again)
    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig, layers: dict[str, IntegerConv2d]):
        super().__init__(config, [], [])
        self.layers = layers

    # -- the layers, freezing and the file form ---------------------------------------------------
    @staticmethod
    def _layout(config: ConvVAEConfig) -> dict:
        """name (the torch module's) -> (in channels, out channels, in_bits, in_max, out_bits,
        low, high), in file order. Residual streams are signed; the layers before a ReLU clip at
        0; the posterior layer gives 2^-16 units, the last decoder layer 2^-12."""
        f, k = config.filters, config.latent_channels
        relu = (0.0, ACTIVATION_MAX)
        stream = (-ACTIVATION_MAX, ACTIVATION_MAX)
        hidden = (ACTIVATION_BITS, ACTIVATION_MAX, ACTIVATION_BITS)
        low, high = _parameter_bounds(config.channels)
        per_output = (np.repeat(low, 4), np.repeat(high, 4))  # parameter p is outputs 4p..4p+3 (depth-to-space)
        layout = {"encoder.conv_in1": (4 * config.channels, f, 0, 255.0, ACTIVATION_BITS, *relu),
                  "encoder.conv_in2": (4 * f, f, *hidden, *stream)}
        for side in ("encoder", "decoder"):
            if side == "decoder":
                layout["decoder.conv_in"] = (k, f, QUANTILE_BITS, float(Z_LIMIT), ACTIVATION_BITS, *stream)
            for i in range(config.blocks):
                layout[f"{side}.blocks.{i}.conv1"] = (f, f, *hidden, *relu)
                layout[f"{side}.blocks.{i}.conv2"] = (f, f, *hidden, *stream)
            if side == "encoder":
                layout["encoder.conv_out"] = (f, 2 * k, *hidden[:2], QUANTILE_BITS, -float(LATENT_LIMIT), float(LATENT_LIMIT))
        layout["decoder.conv_up1"] = (f, 4 * f, *hidden, *relu)
        layout["decoder.conv_up2"] = (f, 4 * config.outputs, ACTIVATION_BITS, ACTIVATION_MAX, PARAM_BITS, *per_output)
        return layout

    @staticmethod
    def _folded(config: ConvVAEConfig, name: str, weight: np.ndarray, bias: np.ndarray):
        """The float model's fixed input and output maps, folded into a layer's (weight, bias):
        the encoder reads x / 255; the decoder's means are 127.5 + 127.5 h."""
        weight, bias = weight.copy(), bias.copy()
        if name == "encoder.conv_in1":
            weight /= 255.0
        if name == "decoder.conv_up2":
            means = slice(0, 4 * config.channels)
            weight[means] *= MEAN_CENTRE
            bias[means] = MEAN_CENTRE * bias[means] + MEAN_CENTRE
        return weight, bias

    @staticmethod
    def _unfolded(config: ConvVAEConfig, name: str, weight: np.ndarray, bias: np.ndarray):
        """The inverse of _folded."""
        if name == "encoder.conv_in1":
            weight = weight * 255.0
        if name == "decoder.conv_up2":
            means = slice(0, 4 * config.channels)
            weight, bias = weight.copy(), bias.copy()
            weight[means] /= MEAN_CENTRE
            bias[means] = (bias[means] - MEAN_CENTRE) / MEAN_CENTRE
        return weight, bias

    @classmethod
    def freeze(cls, model) -> "FrozenConvVAE":
        config = model.config
        layers = {}
        for name, (_, _, in_bits, in_max, out_bits, low, high) in cls._layout(config).items():
            conv = model.get_submodule(name)
            weight, bias = cls._folded(config, name, conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy())
            layers[name] = quantise_conv(weight, bias, PADDING, in_bits, in_max, out_bits, low, high)
        return cls(config, layers)

    def float_state(self) -> dict[str, np.ndarray]:
        state = {}
        for name, conv in self.layers.items():
            layer = conv.layer
            scale = np.ldexp(1.0, -layer.weight_bits)
            weight = (layer.weight * scale).T.reshape(conv.out_channels, conv.in_channels, KERNEL, KERNEL)
            bias = np.ldexp(layer.bias, -(layer.weight_bits + layer.in_bits))
            state[f"{name}.weight"], state[f"{name}.bias"] = self._unfolded(self.config, name, weight, bias)
        return state

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict]:
        tensors = {}
        for name, conv in self.layers.items():
            layer = conv.layer
            tensors[f"{name}.weight"] = np.ascontiguousarray(
                layer.weight.T.reshape(conv.out_channels, conv.in_channels, KERNEL, KERNEL), dtype=np.int32)
            tensors[f"{name}.bias"] = layer.bias.astype(np.int64)
            tensors[f"{name}.weight_bits"] = layer.weight_bits.astype(np.int64)
        return tensors, {"config": self.config.to_dict()}

    @classmethod
    def from_tensors(cls, config: ConvVAEConfig, tensors: dict[str, np.ndarray]) -> "FrozenConvVAE":
        layers = {}
        for name, (n_in, n_out, in_bits, in_max, out_bits, low, high) in cls._layout(config).items():
            weight, bias, bits = (tensors.get(f"{name}.{part}") for part in ("weight", "bias", "weight_bits"))
            if weight is None or bias is None or bits is None or weight.shape != (n_out, n_in, KERNEL, KERNEL) \
                    or bias.shape != (n_out,) or bits.shape != (n_out,):
                raise ValueError(f"{name}: tensors missing or of the wrong shape for {config}")
            if not all(np.issubdtype(t.dtype, np.integer) for t in (weight, bias, bits)):
                raise ValueError(f"{name}: integer tensors expected")
            try:
                layer = IntegerLayer(weight.reshape(n_out, -1).T.astype(np.float64), bias.astype(np.float64), bits,
                                     in_bits, out_bits, in_max, low, high)
            except FrozenModelError as error:
                raise ValueError(f"{name}: {error}") from None
            layers[name] = IntegerConv2d(layer, n_in, KERNEL, PADDING)
        return cls(config, layers)

    def layer_specs(self):
        return [(name, conv.layer) for name, conv in self.layers.items()]

    # -- the networks -----------------------------------------------------------------------------
    def _residual(self, side: str, h: np.ndarray, trace: list | None = None) -> np.ndarray:
        """The residual blocks of one side: h + conv2(relu(conv1(relu(h)))), clipped. With a
        trace, each block's (input, conv1's output, the sum before clipping) is appended."""
        for i in range(self.config.blocks):
            inner = self.layers[f"{side}.blocks.{i}.conv1"].forward(np.maximum(h, 0.0))
            total = h + self.layers[f"{side}.blocks.{i}.conv2"].forward(inner)
            if trace is not None:
                trace.append((h, inner, total))
            h = np.clip(total, -ACTIVATION_MAX, ACTIVATION_MAX)
        return h

    def _chunked(self, function, values: np.ndarray, *more: np.ndarray):
        """function on runs of _CHUNK images (what one pass holds stays small), concatenated."""
        parts = [function(values[lo : lo + _CHUNK], *(m[lo : lo + _CHUNK] for m in more))
                 for lo in range(0, len(values), _CHUNK)]
        return tuple(np.concatenate(p) for p in zip(*parts)) if isinstance(parts[0], tuple) else np.concatenate(parts)

    def encode_images(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and raw std (float64 integers, 2^-16 units) of symbols (B, values)."""
        return self._chunked(self._encode, symbols)

    def _encode(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        x = symbols.reshape(len(symbols), c.height, c.width, c.channels).transpose(0, 3, 1, 2).astype(np.float64)
        h = self.layers["encoder.conv_in1"].forward(space_to_depth(x))
        h = self.layers["encoder.conv_in2"].forward(space_to_depth(h))
        out = self.layers["encoder.conv_out"].forward(np.maximum(self._residual("encoder", h), 0.0))
        k = c.latent_channels
        return out[:, :k].reshape(len(x), -1), out[:, k:].reshape(len(x), -1)

    def _decode(self, z: np.ndarray, trace: list | None = None) -> np.ndarray:
        """z (B, latent) in 2^-16 units -> likelihood parameters (B, H, W, outputs) in 2^-12
        units. With a trace, what the backward pass needs is appended to it."""
        c = self.config
        z_map = np.clip(z.astype(np.float64), -Z_LIMIT, Z_LIMIT).reshape(len(z), *c.latent_shape)
        stream = self.layers["decoder.conv_in"].forward(z_map)
        h = self._residual("decoder", stream, trace)
        up = self.layers["decoder.conv_up1"].forward(np.maximum(h, 0.0))
        out = self.layers["decoder.conv_up2"].forward(depth_to_space(up))
        if trace is not None:
            trace.append((z_map, stream, h, up, out))
        return depth_to_space(out).transpose(0, 2, 3, 1)

    def parameters_of(self, z_fixed: np.ndarray) -> np.ndarray:
        """Every pixel's likelihood parameters (B, H, W, outputs), int64 in 2^-12 units."""
        return self._chunked(self._decode, z_fixed).astype(np.int64)

    # -- the likelihood ---------------------------------------------------------------------------
    def _coupled(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(means, log-scales, coefficients) as bbans.DiscretisedLogisticRGB takes them: it adds
        a * value to a later channel's mean, the model a * (value - COUPLING_CENTRE), so the
        centre's share (an exact integer product) comes off the means first."""
        k = self.config.channels
        mean, log_scale = params[..., :k].copy(), params[..., k : 2 * k]
        if k == 1:
            return mean[..., 0], log_scale[..., 0], None
        coeffs = params[..., 6:9]
        mean[..., 1] -= coeffs[..., 0] * COUPLING_CENTRE
        mean[..., 2] -= (coeffs[..., 1] + coeffs[..., 2]) * COUPLING_CENTRE
        return mean, log_scale, coeffs

    def likelihood(self, z_fixed: np.ndarray, precision: int):
        """The pixels' distribution given z: bbans.DiscretisedLogisticRGB over (B, H*W, 3), or
        a DiscretisedLogistic over (B, H*W) for grey."""
        params = self.parameters_of(z_fixed).reshape(len(z_fixed), self.config.pixels, self.config.outputs)
        mean, log_scale, coeffs = self._coupled(params)
        if coeffs is None:
            return bbans.distributions.DiscretisedLogistic(mean, log_scale, precision)
        return bbans.distributions.DiscretisedLogisticRGB(mean, log_scale, coeffs, precision)

    def pixel_distribution(self, z_fixed: np.ndarray, symbols: np.ndarray, precision: int):
        distribution = self.likelihood(z_fixed, precision)
        return distribution if self.config.channels == 1 else _CoupledIntervals(distribution)

    def likelihood_codec(self, z_fixed: np.ndarray, precision: int, lanes: int = 1) -> bbans.Codec:
        """The pixels' codec given z, on `lanes` lanes an image (each takes a run of its pixels):
        symbols (images x lanes, values / lanes)."""
        rows = len(z_fixed) * lanes
        mean, log_scale, coeffs = self._coupled(self.parameters_of(z_fixed).reshape(rows, -1, self.config.outputs))
        if coeffs is None:
            return bbans.DiscretisedLogistic(mean, log_scale, precision)
        codec = bbans.DiscretisedLogisticRGB(mean, log_scale, coeffs, precision)

        def push(message, symbols):
            return codec.push(message, np.asarray(symbols).reshape(rows, -1, 3))

        def pop(message):
            message, values = codec.pop(message)
            return message, values.reshape(rows, -1)

        return bbans.Codec(push, pop)

    # -- bits back, on several lanes an image -----------------------------------------------------
    @property
    def lanes_per_unit(self) -> int:
        """rANS lanes one image codes on (models/stream.py): its latents and its pixels are each
        cut into this many runs, coded side by side, so a batch takes a step per value of a run,
        not per value of an image (the decoder's steps are Python's; each lane costs the few bits
        of its final head)."""
        return math.gcd(LANES_PER_IMAGE, self.config.latent, self.config.pixels)

    def batch_codec(self, settings, first_index: int, n_images: int) -> bbans.Codec:
        """Bits back (the MLP VAE's) with every array in the lane layout: an image's (values,)
        as (lanes, values / lanes), a reshape of the images' rows."""
        lanes, centres = self.lanes_per_unit, bucket_centres(settings.bucket_bits)
        rows = n_images * lanes

        def posterior(on_lanes):
            mean, std = self.posterior(on_lanes.reshape(n_images, -1), settings.k_steps, settings.lr, settings.seed,
                                       first_index)
            return bbans.BucketedGaussian(mean.reshape(rows, -1), std.reshape(rows, -1), settings.bucket_bits,
                                          settings.posterior_precision)

        def likelihood(z_index):
            return self.likelihood_codec(centres[z_index].reshape(n_images, -1), settings.likelihood_precision, lanes)

        prior = bbans.BucketPrior(settings.bucket_bits, (rows, self.config.latent // lanes))
        inner = bbans.bits_back(prior, likelihood, posterior)

        def push(message, symbols):
            return inner.push(message, np.asarray(symbols).reshape(rows, -1))

        def pop(message):
            message, symbols = inner.pop(message)
            return message, symbols.reshape(n_images, -1)

        return bbans.Codec(push, pop)

    # -- K-step inference -------------------------------------------------------------------------
    def likelihood_gradient(self, pixels, z):
        """d(-log p(x|z))/dz (float64, real units): the decoder forward and backward on integers."""
        return self._chunked(self._gradient, pixels.symbols, z)

    def _gradient(self, symbols: np.ndarray, z: np.ndarray) -> np.ndarray:
        c, layers = self.config, self.layers
        n = len(z)
        trace = []
        params = self._decode(z, trace).astype(np.int64)
        z_map, stream, h, up, out = trace.pop()
        flat = params.reshape(n, c.pixels, c.outputs)
        mean, log_scale, coeffs = self._coupled(flat)
        values = symbols.reshape(n, c.pixels, c.channels).astype(np.int64)
        effective = mean.reshape(n, c.pixels, c.channels).copy()
        if coeffs is not None:
            effective[..., 1] += coeffs[..., 0] * values[..., 0]
            effective[..., 2] += coeffs[..., 1] * values[..., 0] + coeffs[..., 2] * values[..., 1]
        logistic = SimpleNamespace(likelihood="logistic", pixels=c.dims)
        grad = _output_gradient(logistic, _Pixels(symbols), np.concatenate([effective.reshape(n, -1),
                                                                            log_scale.reshape(n, -1)], axis=1))
        grad_mean = grad[:, : c.dims].reshape(n, c.pixels, c.channels)
        parts = [grad_mean, grad[:, c.dims :].reshape(n, c.pixels, c.channels)]
        if coeffs is not None:
            red, green = (values - COUPLING_CENTRE)[..., 0], (values - COUPLING_CENTRE)[..., 1]
            parts.append(np.stack([grad_mean[..., 1] * red, grad_mean[..., 2] * red, grad_mean[..., 2] * green], axis=-1))
        grad = np.concatenate(parts, axis=-1).reshape(n, c.height, c.width, c.outputs).transpose(0, 3, 1, 2)
        grad = space_to_depth(np.clip(_fixed(grad, GRADIENT_BITS), -GRADIENT_MAX, GRADIENT_MAX))
        last = layers["decoder.conv_up2"].layer
        grad *= (out > last.low[None, :, None, None]) & (out < last.high[None, :, None, None])
        grad = space_to_depth(layers["decoder.conv_up2"].backward(grad, (n, c.filters, *grad.shape[2:])))
        grad *= relu_passes(up)
        grad = layers["decoder.conv_up1"].backward(grad, h.shape) * (h > 0)
        for i in reversed(range(c.blocks)):
            block_in, inner, total = trace[i]
            grad *= np.abs(total) < ACTIVATION_MAX  # a clipped sum passes no gradient
            branch = layers[f"decoder.blocks.{i}.conv2"].backward(grad, inner.shape)
            branch *= relu_passes(inner)
            branch = layers[f"decoder.blocks.{i}.conv1"].backward(branch, block_in.shape) * (block_in > 0)
            grad = np.clip(grad + branch, -GRADIENT_MAX, GRADIENT_MAX)
        grad *= np.abs(stream) < ACTIVATION_MAX
        grad = layers["decoder.conv_in"].backward(grad, z_map.shape)
        return grad.reshape(n, -1) / float(1 << GRADIENT_BITS)


class _CoupledIntervals:
    """A DiscretisedLogisticRGB's interval(symbols) for symbols (B, H*W*3), each channel given
    the true earlier channels: what codelength_bits reads."""

    def __init__(self, distribution):
        self.distribution = distribution

    def interval(self, symbols: np.ndarray):
        values = np.asarray(symbols, dtype=np.int64).reshape(*self.distribution.mean.shape)
        parts = [self.distribution.channel(c, values).interval(values[..., c]) for c in range(3)]
        start, freq = (np.stack([part[i] for part in parts], axis=-1).reshape(len(values), -1) for i in range(2))
        return start, freq
