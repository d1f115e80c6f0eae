"""The local autoregressive VAE (models/local_ar.py), frozen for coding on the exact integer path.

Encoder, posterior, bits-back and K-step inference are the MLP VAE's (this class extends
FrozenMLPVAE); what differs is the likelihood. The decoder MLP gives `features` numbers per pixel
from z; the head, a per-pixel integer MLP, turns a pixel's causal context (the already-coded
pixels of its window) and its features into the pixel's likelihood parameters.

- Encoding knows every pixel, so the head runs on all pixels at once (in chunks of images, so a
  batch of 1,000 images does not hold 784,000 rows of activations) and the pixels are pushed as
  any factorised likelihood's are: the last pixel first, so the decoder pops them in raster order.
- Decoding pops one pixel position at a time for every lane (image) of the batch: the head runs
  on one row per lane, from the pixels decoded so far.

Both sides compute each pixel's parameters with the same exact integer operations on the same
integers (a row of a product does not depend on the other rows), so they agree on every machine.
Fixed point as the MLP VAE: features and hidden activations in 2^-16 units, context pixels
scaled into the same units (pixel x 2^16), likelihood parameters in 2^-12 units.
"""
from __future__ import annotations

import functools

import numpy as np

from bbzip import bbans
from bbzip.bbans.distributions import PARAM_BITS
from bbzip.bbans.tables import MAX_TABLE_PRECISION, check_precision

from .frozen_mlp import LOGIT_LIMIT, MEAN_RANGE, FrozenMLPVAE, _fixed, _output_gradient, _Pixels
from .integer_mlp import ACTIVATION_BITS, ACTIVATION_MAX, GRADIENT_BITS, GRADIENT_MAX, relu_passes
from .interface import FirstLook
from .local_ar_config import LocalARConfig, context_offsets
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN

# Pixel rows per chunk of the head's passes: a chunk's activations (2 MB) stay in cache
# (measured: the head over 2,000 grey images 0.70 s in chunks of 2^15 rows, 0.48 s in 2^13).
_HEAD_ROWS = 1 << 13
# The same for K-step inference, whose chunks hold several arrays of the head's width at once
# (activations, masks, gradients) for a forward and a backward pass: smaller chunks keep them in
# a core's cache.
_GRADIENT_ROWS = 1 << 12
# The share of pixel positions on which the check runs the decoder's own steps again, beside its
# pass over every pixel at once (likelihood_codec's check).
RECOMPUTED_STEPS = 1 / 8
# first_look looks at every third pixel: on a row of 28, a slanted lattice that meets every row
# and column.
LOOK_STEP = 3


class FrozenLocalARVAE(FrozenMLPVAE):
    """The integer form of models.local_ar.LocalARVAE (architecture "local-ar-vae")."""

    architecture = "local-ar-vae"
    config_class = LocalARConfig

    def __init__(self, config: LocalARConfig, encoder, decoder, head):
        super().__init__(config, encoder, decoder)
        self.head = head
        r, width = config.radius, config.width
        # Each pixel's window as flat indices into a zero-padded canvas (r rows above, r columns
        # either side), and each pixel's own place there.
        padded_width = width + 2 * r
        self.canvas_shape = (config.height + r, padded_width)
        rows, columns = np.divmod(np.arange(config.pixels), width)
        self.places = (rows + r) * padded_width + columns + r
        self.windows = np.stack([self.places + di * padded_width + dj for di, dj in context_offsets(r)], axis=1)
        self._pixel_parts = None  # first_look's (looked at, the rest), made on its first call: only compress needs them

    # -- freezing and the file form ---------------------------------------------------------
    @staticmethod
    def _scale_factors(config, name: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        weight, bias = np.ones((n_in, n_out)), np.ones(n_out)
        logistic = config.likelihood == "logistic"
        if logistic and name == "encoder.0":
            weight *= 1.0 / 255.0  # the encoder reads x / 255
        if logistic and name == "head.0":
            # The head reads the context as x / 255; it gets pixel x 2^16, that is x in its
            # input's 2^-16 units. (Binary context is read as x: nothing to fold.)
            weight[: len(context_offsets(config.radius))] *= 1.0 / 255.0
        if logistic and name == "head.2":
            weight[:, 0] *= 255.0  # the mean is 255 h
            bias[0] *= 255.0
        return weight, bias

    @classmethod
    def _assembled(cls, config, layers: dict) -> "FrozenLocalARVAE":
        return cls(config, *([layers[f"{network}.{i}"] for i in range(3)] for network in ("encoder", "decoder", "head")))

    def layer_specs(self):
        return super().layer_specs() + [(f"head.{i}", layer) for i, layer in enumerate(self.head)]

    @classmethod
    def _layout(cls, config: LocalARConfig) -> dict:
        layout = super()._layout(config)
        hidden, head, features = config.hidden, config.head, config.features
        relu = (0.0, ACTIVATION_MAX)
        if config.likelihood == "bernoulli":
            bounds = (-float(LOGIT_LIMIT), float(LOGIT_LIMIT))
        else:
            bounds = (np.array([float(MEAN_RANGE[0]), LOG_SCALE_MIN * (1 << PARAM_BITS)]),
                      np.array([float(MEAN_RANGE[1]), LOG_SCALE_MAX * (1 << PARAM_BITS)]))
        act = (ACTIVATION_BITS, ACTIVATION_MAX, ACTIVATION_BITS)
        layout["decoder.2"] = (hidden, features * config.pixels, *act, -ACTIVATION_MAX, ACTIVATION_MAX)
        layout["head.0"] = (len(context_offsets(config.radius)) + features, head, *act, *relu)
        layout["head.1"] = (head, head, *act, *relu)
        layout["head.2"] = (head, config.outputs, ACTIVATION_BITS, ACTIVATION_MAX, PARAM_BITS, *bounds)
        return layout

    # -- the likelihood -----------------------------------------------------------------------
    def features(self, z_fixed: np.ndarray) -> np.ndarray:
        """(B, pixels, features) float64 integers in 2^-16 units."""
        return self.decode_latents(z_fixed)[-1].reshape(len(z_fixed), self.config.pixels, self.config.features)

    def head_inputs(self, symbols: np.ndarray, features: np.ndarray, pixels: np.ndarray | None = None) -> np.ndarray:
        """(B * pixels, neighbours + features): every pixel's context (x 2^16) and features;
        or only those of `pixels` (features (B, len(pixels), features))."""
        context = self._context(symbols, pixels)
        return np.concatenate([context, features], axis=2).reshape(context.shape[0] * context.shape[1], -1)

    def head_context(self, symbols: np.ndarray) -> np.ndarray:
        """(B * pixels, neighbours): every pixel's context (x 2^16), the head's first inputs."""
        context = self._context(symbols, None)
        return context.reshape(-1, context.shape[2])

    def _context(self, symbols: np.ndarray, pixels: np.ndarray | None) -> np.ndarray:
        """(B, pixels or len(pixels), neighbours): those pixels' context (x 2^16)."""
        canvas = np.zeros((len(symbols), self.canvas_shape[0] * self.canvas_shape[1]))
        canvas[:, self.places] = symbols
        windows = self.windows if pixels is None else self.windows[pixels]
        context = np.take(canvas, windows, axis=1)  # take: indexing is the slow general path
        context *= float(1 << ACTIVATION_BITS)
        return context

    def head_forward(self, inputs: np.ndarray) -> list[np.ndarray]:
        """Every head layer's output for rows of inputs; the last holds the parameters."""
        outputs = [inputs]
        for layer in self.head:
            outputs.append(layer.forward(outputs[-1]))
        return outputs[1:]

    def _image_chunks(self, n: int, rows_per_image: int | None = None, rows: int = _HEAD_ROWS):
        """Images per chunk of the head's passes: about `rows` pixel rows at a time."""
        step = max(1, rows // (rows_per_image or self.config.pixels))
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def _parameters(self, symbols: np.ndarray, features: np.ndarray, pixels: np.ndarray | None = None) -> np.ndarray:
        """(B, pixels, outputs) int64 likelihood parameters of every pixel of symbols (B, pixels),
        or of those of `pixels` (features given for them alone)."""
        count = features.shape[1]
        parts = [self.head_forward(self.head_inputs(symbols[lo:hi], features[lo:hi], pixels))[-1]
                 for lo, hi in self._image_chunks(len(symbols), count)]
        return np.concatenate(parts).astype(np.int64).reshape(len(symbols), count, -1)

    def _distribution(self, params: np.ndarray, precision: int):
        """params (..., outputs) int64 -> the distribution of those pixels."""
        if self.config.likelihood == "bernoulli":
            return bbans.distributions.Bernoulli(logits=params[..., 0], precision=precision)
        return bbans.distributions.DiscretisedLogistic(params[..., 0], params[..., 1], precision)

    def _step_distribution(self, precision: int):
        """params (lanes, outputs) int64 -> the distribution of one pixel position: _distribution's,
        with what it computes of each parameter alone looked up in a table made by the same code
        (a two-valued model's logits: bbans BernoulliLogits; a logistic's inverse scale:
        LogisticScales), rather than interpolated for every lane at every step."""
        if self.config.likelihood == "bernoulli":
            table = bbans.distributions.BernoulliLogits.shared(precision)
            return lambda params: table(params[..., 0])
        check_precision(precision, 256, MAX_TABLE_PRECISION)  # (DiscretisedLogistic's own check)
        scales = bbans.distributions.LogisticScales.shared()
        return lambda params: bbans.distributions.DiscretisedLogistic.with_inverse_scales(
            params[..., 0], scales(params[..., 1]), precision)

    def pixel_distribution(self, z_fixed, symbols, precision: int):
        return self._distribution(self._parameters(symbols.astype(np.int64), self.features(z_fixed)), precision)

    def codelength_bits(self, symbols: np.ndarray, settings) -> np.ndarray:
        return self.first_look(symbols, settings).exact(np.arange(len(symbols)))

    def first_look(self, symbols: np.ndarray, settings) -> FirstLook:
        """codelength_bits's estimate from every LOOK_STEP-th pixel (raster order) alone, their
        bits scaled up to the image (only their columns of the decoder's last layer and their
        rows of the head are computed); the exact figure adds the other pixels' bits."""
        z, bits_back = self._codelength_sample(symbols, settings)
        symbols = symbols.astype(np.int64)
        latent_bits = settings.bucket_bits * self.config.latent - bits_back
        if self._pixel_parts is None:
            looked = np.zeros(self.config.pixels, dtype=bool)
            looked[::LOOK_STEP] = True
            self._pixel_parts = [_PixelPart(np.flatnonzero(part), self.decoder[-1], self.config.features)
                                 for part in (looked, ~looked)]
        looked_at, rest_of_them = self._pixel_parts
        looked = self._pixel_bits(z, symbols, settings.likelihood_precision, looked_at)
        estimate = looked * (self.config.pixels / len(looked_at.pixels)) + latent_bits

        def exact(which: np.ndarray) -> np.ndarray:
            rest = self._pixel_bits(z[which], symbols[which], settings.likelihood_precision, rest_of_them)
            return looked[which] + rest + latent_bits[which]

        return FirstLook(estimate, exact)

    def _pixel_bits(self, z_fixed: np.ndarray, symbols: np.ndarray, precision: int, part: "_PixelPart") -> np.ndarray:
        """Per image, -log2 p of its pixels of `part` given z (int64 symbols (B, pixels))."""
        features = self.features_at(z_fixed, part.pixels, part.last_layer)
        params = self._parameters(symbols, features, part.pixels)
        _, freq = self._distribution(params, precision).interval(symbols[:, part.pixels])
        return precision * len(part.pixels) - np.log2(freq).sum(axis=1)

    def likelihood_codec(self, z_fixed, precision: int, kept: dict | None = None) -> bbans.Codec:
        """`kept` (batch_codec's): push leaves there the intervals it pushed, and a check of the
        same batch pops those instead of running the head over every pixel again (checking,
        as it always does, a share of the positions by the decoder's own steps)."""
        lanes, neighbours = len(z_fixed), self.windows.shape[1]
        all_features = functools.cache(lambda: self.features(z_fixed))  # only what the check needs where push kept its intervals

        def intervals(params, symbols):
            """(start, freq) of each pixel's value, (pixels, lanes): a pixel position's a row."""
            return tuple(np.ascontiguousarray(bound.T, dtype=np.uint32)
                         for bound in self._distribution(params, precision).interval(symbols))

        def push(message, symbols):
            params = self._parameters(symbols.astype(np.int64), all_features())
            start, freq = intervals(params, symbols)
            if kept is not None:
                steps = self._recomputed_steps()
                kept["likelihood"] = (z_fixed.copy(), start, freq, steps, params[:, steps])
            return bbans.push_intervals(message, start, freq, precision)

        def step_parameters(canvas, pixel, inputs, pixel_features):
            """int64 parameters of one pixel position for every lane, from the canvas."""
            np.multiply(canvas[:, self.windows[pixel]], float(1 << ACTIVATION_BITS), out=inputs[:, :neighbours])
            inputs[:, neighbours:] = pixel_features
            return self.head_forward(inputs)[-1].astype(np.int64)

        def pop(message):
            # One pixel position at a time, for every lane: its context is what is decoded so far.
            features = all_features()
            canvas = np.zeros((lanes, self.canvas_shape[0] * self.canvas_shape[1]))
            inputs = np.empty((lanes, neighbours + self.config.features))
            distribution = self._step_distribution(precision)
            for pixel in range(self.config.pixels):
                params = step_parameters(canvas, pixel, inputs, features[:, pixel])
                message, symbol = bbans.pop_symbol(message, distribution(params))
                canvas[:, self.places[pixel]] = symbol
            return message, canvas[:, self.places].astype(np.int64)

        def check(message, symbols):
            # What pop gives where the message should hold `symbols`: each pixel's context is then
            # known before it is popped (the decoder's, if every pixel before it popped as it
            # should), so the head runs on every pixel at once, as encoding runs it (or push kept
            # what it gave), and each pixel pops its interval unsearched (bbans.pop_interval:
            # CorruptStream where the message holds another value). On a share of the positions
            # (RECOMPUTED_STEPS, at random) the parameters are computed again the way pop computes
            # them, one position for every lane from the canvas, and must be the same.
            expected = np.asarray(symbols, dtype=np.int64).reshape(lanes, -1)
            pushed = kept.pop("likelihood", None) if kept is not None else None
            if pushed is not None and np.array_equal(pushed[0], z_fixed) and np.array_equal(kept.get("symbols"), expected):
                _, start, freq, steps, step_params = pushed
                step_features = self.features_at(z_fixed, steps)
            else:
                params = self._parameters(expected, all_features())
                start, freq = intervals(params, expected)
                steps = self._recomputed_steps()
                step_params, step_features = params[:, steps], all_features()[:, steps]
            canvas = np.zeros((lanes, self.canvas_shape[0] * self.canvas_shape[1]))
            canvas[:, self.places] = expected  # a pixel's window holds only pixels before it
            inputs = np.empty((lanes, neighbours + self.config.features))
            for i, pixel in enumerate(steps):
                if not np.array_equal(step_parameters(canvas, pixel, inputs, step_features[:, i]), step_params[:, i]):
                    raise bbans.CorruptStream("the parameters the decoder's steps give are not those it checked against")
            return bbans.pop_intervals(message, start, freq, precision), expected

        return bbans.Codec(push, pop, check)

    def _recomputed_steps(self) -> np.ndarray:
        """The pixel positions whose parameters a check computes again as the decoder does."""
        return np.flatnonzero(np.random.default_rng().random(self.config.pixels) < RECOMPUTED_STEPS)

    def features_at(self, z_fixed: np.ndarray, pixels: np.ndarray, last_layer=None) -> np.ndarray:
        """(B, len(pixels), features): the features of those pixels alone (the decoder's last
        layer for their columns only: `last_layer`, if made already, _PixelPart's)."""
        if last_layer is None:
            last_layer = self.decoder[-1].forward_columns(_feature_columns(pixels, self.config.features))
        return self.decode_latents(z_fixed, last_layer)[-1].reshape(len(z_fixed), len(pixels), self.config.features)

    def gradient_pixels(self, symbols: np.ndarray) -> "_HeadChunks":
        return _HeadChunks(self, np.asarray(symbols, dtype=np.int64))

    def likelihood_gradient(self, pixels: "_HeadChunks", z):
        """d(-log p(x|z))/dz (float64, real units): the head, then the decoder, forward and
        backward on integers; the head in chunks of images."""
        n, count = pixels.symbols.shape
        hidden1, hidden2, feature_out = self.decode_latents(z)
        features = feature_out.reshape(n, count, self.config.features)
        grad_features = np.zeros((n * count, self.config.features))  # a pixel's rows left out below stay 0
        last = self.head[-1]
        for (lo, hi), chunk_pixels, context_part in zip(pixels.chunks, pixels.output_pixels, pixels.context_parts):
            h1 = self.head[0].requantised.completed(features[lo:hi].reshape(-1, self.config.features), pixels.feature_inputs,
                                                     context_part)
            h2 = self.head[1].forward(h1)
            out = self.head[2].forward(h2)
            grad = _output_gradient(self.config, chunk_pixels, self._as_mlp_parameters(out, hi - lo))
            if self.config.outputs > 1:
                grad = np.stack(np.split(grad, self.config.outputs, axis=1), axis=2).reshape(len(out), -1)
            else:
                grad = grad.reshape(len(out), 1)
            grad = np.clip(_fixed(grad, GRADIENT_BITS), -GRADIENT_MAX, GRADIENT_MAX)
            grad *= (out > last.low) & (out < last.high)  # a clipped output passes no gradient
            # A pixel whose output gradient rounds to 0 (where the model is sure of it: most of
            # a digit's background) passes 0 back through every layer (0 times a weight, rounded,
            # is 0), so the backward pass runs on the other rows alone: the same numbers.
            live = np.flatnonzero(grad.any(axis=1))
            grad = self.head[2].backward(grad[live])
            grad *= relu_passes(np.take(h2, live, axis=0))
            grad = self.head[1].backward(grad)
            grad *= relu_passes(np.take(h1, live, axis=0))
            grad_features[lo * count : hi * count][live] = self.head[0].backward(grad, pixels.feature_inputs)
        grad = grad_features.reshape(n, -1)
        grad *= (feature_out > -ACTIVATION_MAX) & (feature_out < ACTIVATION_MAX)
        grad = self.decoder[2].backward(grad)
        grad *= relu_passes(hidden2)
        grad = self.decoder[1].backward(grad)
        grad *= relu_passes(hidden1)
        return self.decoder[0].backward(grad) / float(1 << GRADIENT_BITS)

    def _as_mlp_parameters(self, out: np.ndarray, n: int) -> np.ndarray:
        """The head's parameters (rows, outputs) laid out as the MLP VAE's (B, outputs x pixels),
        for its output gradient."""
        if self.config.outputs == 1:
            return out.reshape(n, -1)
        return np.concatenate(np.moveaxis(out.reshape(n, self.config.pixels, -1), 2, 0), axis=1)


class _HeadChunks:
    """What K-step inference needs of a batch's images at every step, made once: the chunks of
    images the head runs on, their pixels as the output gradient takes them, and the head's
    first layer summed over each pixel's context (the context is the image's, the same at every
    step; only the features change)."""

    def __init__(self, model: FrozenLocalARVAE, symbols: np.ndarray):
        self.symbols = symbols
        neighbours = model.windows.shape[1]
        self.feature_inputs = slice(neighbours, None)
        self.chunks = model._image_chunks(len(symbols), rows=_GRADIENT_ROWS)
        self.output_pixels = [_Pixels(symbols[lo:hi]) for lo, hi in self.chunks]
        first = model.head[0].requantised
        self.context_parts = [first.partial_sum(model.head_context(symbols[lo:hi]), slice(0, neighbours))
                              for lo, hi in self.chunks]


class _PixelPart:
    """Some of an image's pixels, and the decoder's last layer for their features alone."""

    def __init__(self, pixels: np.ndarray, last_layer, features: int):
        self.pixels = pixels
        self.last_layer = last_layer.forward_columns(_feature_columns(pixels, features))


def _feature_columns(pixels: np.ndarray, features: int) -> np.ndarray:
    """The columns of the decoder's last layer that give these pixels' features."""
    return (pixels[:, None] * features + np.arange(features)).ravel()
