"""The tiled local autoregressive VAE (models/tiled_ar.py), frozen for coding on the exact
integer path.

To the coding machinery (bits back, K-step inference, blocks and streams) a tile is an image:
symbols (tiles, pixels x channels) in raster order, each pixel's channels together. Cutting
images of any size into tiles and back is models/tiling.py's job.

Every network is a per-position integer MLP (integer_mlp.py) run on rows: the encoder on each
stride x stride block's values, the decoder on each block's latent, the head (and its linear
skip) on each pixel's causal window and features. Fixed point as the other models: latents in
2^-16 units, activations and features in 2^-16 units, context pixels as pixel x 2^16, likelihood
parameters (means, log-scales, colour coupling coefficients) in 2^-12 units.

- Encoding knows every pixel: the head runs on every pixel of a chunk of tiles at once, and the
  values are pushed last first, so the decoder pops them pixel by pixel, R, G, B within a pixel.
- Decoding runs the head once per step of the wavefront (models/wavefront.py: every pixel
  whose window is complete, in every tile of the batch), then pops each channel in turn: G's
  mean moves with the R just popped, B's with R and G (PixelCNN++'s coupling, the same integer
  products as bbans.DiscretisedLogisticRGB). Pixels outside their image are not coded.

A model with a latent codes by bits back, one lane per tile (the posterior's), so its tiles
decode in raster order, one pixel position at a time, padding included.
"""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from bbzip import bbans
from bbzip.bbans.distributions import PARAM_BITS

from .frozen_mlp import MEAN_RANGE, Z_LIMIT, LATENT_LIMIT, FrozenMLPVAE, _fixed, _output_gradient, _Pixels
from . import stream
from .integer_mlp import ACTIVATION_BITS, ACTIVATION_MAX, GRADIENT_BITS, GRADIENT_MAX, SideBySide, clip_in_place, relu_passes
from .tiled_ar_config import DIFFERENCE_UNIT, EDGE_FLAGS, MID_LEVEL, TiledARConfig, context_offsets
from .tile_intervals import TileIntervals, tile_digests
from .wavefront import Wavefront, full_extents, inside_image
from .vae_config import LOG_SCALE_MAX, LOG_SCALE_MIN
from bbzip.bbans.lookup import QUANTILE_BITS

COEFF_LIMIT = 4 << PARAM_BITS  # bbans clips the colour coupling to +-4
LOGIT_LIMIT = 16 << PARAM_BITS  # mixture logits (models/tiled_ar.py: LOGIT_LIMIT)
# What a lane's final head costs over the information it holds (bbans/packing.py: its length),
# counted in a tile's codelength: a tile of a smooth photo is a few kilobits, its lanes a few
# hundred bits.
LANE_HEAD_BITS = 5
# The share of a block's wavefront steps on which compress's check runs the decoder's network
# again, where it pops intervals the encoder computed (models/tile_intervals.py): a change that
# makes the encoder's intervals differ from the decoder's anywhere shows on every step, one
# that touches a few values is found with this chance each.
RECOMPUTED_STEPS = 1 / 8
_HEAD_ROWS = 1 << 11  # pixel rows per pass of the head over tiles (cache-sized: _ranges)


def _parameter_bounds(config: TiledARConfig) -> tuple[np.ndarray, np.ndarray]:
    """Clip bounds of the head's outputs (2^-12 units), in their order (TiledARConfig.outputs):
    means, log-scales, coefficients, mixture logits."""
    rows = config.channels * config.mixtures
    low = [float(MEAN_RANGE[0])] * rows + [LOG_SCALE_MIN * (1 << PARAM_BITS)] * rows
    high = [float(MEAN_RANGE[1])] * rows + [LOG_SCALE_MAX * (1 << PARAM_BITS)] * rows
    if config.channels == 3:
        low += [-float(COEFF_LIMIT)] * 3 * config.mixtures
        high += [float(COEFF_LIMIT)] * 3 * config.mixtures
    if config.mixtures > 1:
        low += [-float(LOGIT_LIMIT)] * rows
        high += [float(LOGIT_LIMIT)] * rows
    return np.array(low), np.array(high)


class FrozenTiledARVAE(FrozenMLPVAE):
    """The integer form of models.tiled_ar.TiledARVAE (architecture "tiled-ar-vae")."""

    architecture = "tiled-ar-vae"
    keeps_for_check = False  # (its check takes the fallback's intervals instead: batch_codec's `known`)
    config_class = TiledARConfig
    _without_bias = ("skip.0",)

    def __init__(self, config: TiledARConfig, encoder, decoder, head, skip):
        super().__init__(config, encoder, decoder)
        self.head = head
        self.skip = skip
        self._first_and_skip = SideBySide([head[0], skip])  # both read the head's inputs
        self.low, self.high = _parameter_bounds(config)
        r, size = config.radius, config.tile
        # Each pixel's window as flat indices into a zero-padded canvas (r rows above, r columns
        # either side), and each pixel's own place there.
        self.padded_width = padded_width = size + 2 * r
        self.canvas_pixels = (size + r) * padded_width
        rows, columns = np.divmod(np.arange(config.pixels), size)
        self.rows, self.columns = rows, columns
        self.places = (rows + r) * padded_width + columns + r
        offsets = context_offsets(r)
        self.windows = np.stack([self.places + di * padded_width + dj for di, dj in offsets], axis=1)
        self.left, self.up = offsets.index((0, -1)), offsets.index((-1, 0))
        self.top, self.first = rows == 0, columns == 0
        self.wavefront = Wavefront(size, r)
        self._squares = {}  # side -> this model in tiles of that side (_square_model)

    def with_tile(self, tile: int) -> "FrozenTiledARVAE":
        """The same model coding in tiles of `tile`: the head reads a pixel's window whatever
        the tile, so the tile is how the model codes (larger: fewer pixels at a tile's edge,
        without context; more steps a block), not what it learned. Only a model without a
        latent: a latent's blocks are laid out in the tile."""
        if self.has_latent:
            raise ValueError("the tile of a model with a latent is fixed by its training")
        return FrozenTiledARVAE(replace(self.config, tile=tile), self.encoder, self.decoder, self.head, self.skip)

    # -- freezing and the file form ---------------------------------------------------------
    @staticmethod
    def _torch_name(name: str) -> str:
        return "skip" if name == "skip.0" else FrozenMLPVAE._torch_name(name)

    @staticmethod
    def _scale_factors(config, name: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        weight, bias = np.ones((n_in, n_out)), np.ones(n_out)
        differences = config.neighbours * config.channels
        if name == "encoder.0":
            weight *= 1.0 / 255.0  # the encoder reads x / 255
        if name in ("head.0", "skip.0"):
            # The head reads differences / DIFFERENCE_UNIT and the reference / 255; it gets both
            # as levels x 2^16, that is in its input's 2^-16 units.
            weight[:differences] *= 1.0 / DIFFERENCE_UNIT
            weight[differences : differences + config.channels] *= 1.0 / 255.0
        if name in ("head.2", "skip.0"):
            means = config.channels * config.mixtures
            weight[:, :means] *= DIFFERENCE_UNIT  # the means are reference + unit x h
            bias[:means] *= DIFFERENCE_UNIT
        return weight, bias

    @classmethod
    def _assembled(cls, config, layers: dict) -> "FrozenTiledARVAE":
        networks = ([layers[f"{network}.{i}"] for i in range(3) if f"{network}.{i}" in layers]
                    for network in ("encoder", "decoder", "head"))
        return cls(config, *networks, layers["skip.0"])

    def layer_specs(self):
        return super().layer_specs() + [(f"head.{i}", layer) for i, layer in enumerate(self.head)] + \
               [("skip.0", self.skip)]

    @classmethod
    def _layout(cls, config: TiledARConfig) -> dict:
        c = config
        relu = (0.0, ACTIVATION_MAX)
        act = (ACTIVATION_BITS, ACTIVATION_MAX, ACTIVATION_BITS)
        low, high = _parameter_bounds(c)
        # The head's last layer and the skip are each clipped to twice the bounds, their sum to
        # the bounds: each part alone may lie outside them.
        wide = (low - (high - low), high + (high - low))
        block = c.stride * c.stride
        head = {
            "head.0": (c.head_inputs, c.head, *act, *relu),
            "head.1": (c.head, c.head, *act, *relu),
            "head.2": (c.head, c.outputs, ACTIVATION_BITS, ACTIVATION_MAX, PARAM_BITS, *wide),
            "skip.0": (c.head_inputs, c.outputs, ACTIVATION_BITS, ACTIVATION_MAX, PARAM_BITS, *wide),
        }
        if not c.latent_channels:
            return head
        return {
            "encoder.0": (block * c.channels, c.hidden, 0, 255.0, ACTIVATION_BITS, *relu),
            "encoder.1": (c.hidden, c.hidden, *act, *relu),
            "encoder.2": (c.hidden, 2 * c.latent_channels, ACTIVATION_BITS, ACTIVATION_MAX, QUANTILE_BITS,
                          -LATENT_LIMIT, LATENT_LIMIT),
            "decoder.0": (c.latent_channels, c.hidden, QUANTILE_BITS, Z_LIMIT, ACTIVATION_BITS, *relu),
            "decoder.1": (c.hidden, c.hidden, *act, *relu),
            "decoder.2": (c.hidden, block * c.features, *act, -ACTIVATION_MAX, ACTIVATION_MAX),
            **head,
        }

    # -- latent ---------------------------------------------------------------------------------
    def _block_rows(self, array: np.ndarray, depth: int) -> np.ndarray:
        """(B, pixels x depth) in raster order -> (B x blocks^2, stride^2 x depth), block by block."""
        c = self.config
        n, s = c.blocks, c.stride
        array = array.reshape(len(array), n, s, n, s, depth).transpose(0, 1, 3, 2, 4, 5)
        return array.reshape(-1, s * s * depth)

    def _raster(self, rows: np.ndarray, tiles: int, depth: int) -> np.ndarray:
        """The inverse of _block_rows: (B x blocks^2, stride^2 x depth) -> (B, pixels, depth)."""
        c = self.config
        n, s = c.blocks, c.stride
        return rows.reshape(tiles, n, n, s, s, depth).transpose(0, 1, 3, 2, 4, 5).reshape(tiles, c.pixels, depth)

    def encode_images(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self._block_rows(symbols.astype(np.float64), self.config.channels)
        for layer in self.encoder:
            h = layer.forward(h)
        k, tiles = self.config.latent_channels, len(symbols)
        return h[:, :k].reshape(tiles, -1), h[:, k:].reshape(tiles, -1)

    def decode_latents(self, z: np.ndarray) -> list[np.ndarray]:
        """Every decoder layer's output, one row per latent block (B x blocks^2 rows)."""
        outputs = [np.clip(z.astype(np.float64), -Z_LIMIT, Z_LIMIT).reshape(-1, self.config.latent_channels)]
        for layer in self.decoder:
            outputs.append(layer.forward(outputs[-1]))
        return outputs[1:]

    def features(self, z_fixed: np.ndarray) -> np.ndarray:
        """(B, pixels, features) float64 integers in 2^-16 units (no features without a latent)."""
        if not self.config.latent_channels:
            return np.zeros((len(z_fixed), self.config.pixels, 0))
        return self._raster(self.decode_latents(z_fixed)[-1], len(z_fixed), self.config.features)

    # -- the head -------------------------------------------------------------------------------
    def _canvas(self, symbols: np.ndarray) -> np.ndarray:
        """(B, canvas pixels, C) float64: tiles on the zero-padded canvas their windows read."""
        c = self.config
        tiles = len(symbols)
        canvas = np.zeros((tiles, self.canvas_pixels, c.channels))
        canvas[:, self.places] = symbols.reshape(tiles, c.pixels, c.channels)
        return canvas

    def _reference(self, window: np.ndarray, top, first) -> np.ndarray:
        """(rows, neighbours, C) windows -> (rows, C): the floor of the mean of the left and
        upper neighbours, the one there is on the tile's first row (`top`) or column (`first`),
        mid-grey at its first pixel (models/tiled_ar.py: reference_levels). `top` and `first`
        are one bool for all rows, or one per row (rows, 1)."""
        west, north = window[:, self.left, :], window[:, self.up, :]
        if isinstance(top, bool):  # one pixel position for all rows (a decode step): no selection
            if top or first:
                return np.full_like(west, float(MID_LEVEL)) if top and first else (west if top else north).copy()
            return np.floor((west + north) * 0.5)
        inside = np.floor((west + north) * 0.5)
        return np.where(top & first, float(MID_LEVEL), np.where(top, west, np.where(first, north, inside)))

    def _fill_inputs(self, window: np.ndarray, reference: np.ndarray, top, first, features: np.ndarray,
                     out: np.ndarray) -> None:
        """The head's inputs of rows of windows (rows, neighbours, C): differences from the
        reference and the reference (levels x 2^16), the edge flags (1 is 2^16), then the
        features (2^-16 units). `top` and `first` as for _reference, or (rows,)."""
        rows, c = len(window), self.config
        differences = c.neighbours * c.channels
        flags = differences + c.channels
        # written in place: the first columns of each row are contiguous, so the reshape is a view
        np.subtract(window, reference[:, None, :], out=out[:, :differences].reshape(rows, c.neighbours, c.channels))
        out[:, differences:flags] = reference
        out[:, flags] = top
        out[:, flags + 1] = first
        out[:, : flags + EDGE_FLAGS] *= float(1 << ACTIVATION_BITS)
        out[:, flags + EDGE_FLAGS :] = features

    def head_inputs(self, canvas: np.ndarray, features: np.ndarray, pixels: slice = slice(None)
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (B x pixels, head inputs), references (B x pixels, C) in levels) of a range of
        pixels of tiles on their canvas (_canvas); `features` (B, pixels, features) of them."""
        c = self.config
        # np.take, not indexing: numpy's fancy indexing along a middle axis is the slow general path
        window = np.take(canvas, self.windows[pixels], axis=1).reshape(-1, c.neighbours, c.channels)
        top, first = np.tile(self.top[pixels], len(canvas)), np.tile(self.first[pixels], len(canvas))
        reference = self._reference(window, top[:, None], first[:, None])
        inputs = np.empty((len(window), c.head_inputs))
        self._fill_inputs(window, reference, top, first, features.reshape(len(window), -1), inputs)
        return inputs, reference

    def head_forward(self, inputs: np.ndarray) -> list[np.ndarray]:
        """[hidden 1, hidden 2, head output, skip output, parameters] for rows of inputs: the
        parameters are the sum of head and skip, clipped (means relative to the reference)."""
        h1, skip = self._first_and_skip.forward(inputs)
        h2 = self.head[1].forward(h1)
        out = self.head[2].forward(h2)
        params = clip_in_place(out + skip, self.low, self.high)
        return [h1, h2, out, skip, params]

    def _chunks(self, n: int, side: int | None = None) -> list[slice]:
        """Slices of n tiles (of a top-left square of `side`, default the whole tile) whose
        pixels make a cache-sized pass of the head, or one tile (_ranges cuts it further)."""
        step = max(1, _HEAD_ROWS // (side * side if side else self.config.pixels))
        return [slice(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def _ranges(self, extent: tuple[int, int] | None = None) -> list[slice | np.ndarray]:
        """A tile's pixels, each piece a cache-sized pass of the head for one tile (a pass over
        a whole tile of 256, 65,536 rows of a hundred values each, runs from main memory): all
        of them, or with `extent` (rows, columns) those of the tile's top-left rows x columns."""
        t = self.config.tile
        rows, columns = (t, t) if extent is None else extent
        if columns == t:
            count = rows * t
            return [slice(first, min(first + _HEAD_ROWS, count)) for first in range(0, count, _HEAD_ROWS)]
        pixels = (np.arange(rows)[:, None] * t + np.arange(columns)).ravel()
        return [pixels[first : first + _HEAD_ROWS] for first in range(0, len(pixels), _HEAD_ROWS)]

    def _head_passes(self, symbols: np.ndarray, features: np.ndarray, extents: np.ndarray | None = None):
        """(tiles, pixels, parameters (tiles, pixels, outputs), references (tiles, pixels, C)),
        int64, of symbols (B, pixels x channels) and features (B, pixels, features), a
        cache-sized pass at a time: tiles (a slice) and pixels (a slice or indices) are what
        each pass covers. With the tiles' extents (B, 2), only pixels inside some tile of the
        pass's image are covered: the last tiles of an image mostly lie outside it, and their
        pixels there are never coded (a photo of 512x341 in tiles of 256 is half again as many
        pixels on its tiles)."""
        c = self.config
        for tiles in self._chunks(len(symbols)):
            canvas = self._canvas(symbols[tiles])
            extent = None if extents is None else tuple(int(v) for v in extents[tiles].max(axis=0))
            for pixels in self._ranges(extent):
                inputs, reference = self.head_inputs(canvas, features[tiles, pixels], pixels)
                shape = (len(canvas), -1)
                yield (tiles, pixels, self.head_forward(inputs)[-1].astype(np.int64).reshape(*shape, c.outputs),
                       reference.astype(np.int64).reshape(*shape, c.channels))

    def _coded_side(self, extents: np.ndarray | None) -> int:
        """The side of the top-left square of a tile that holds every coded pixel of tiles of
        these extents and all of their windows (`radius` columns right of the widest): images
        smaller than a tile (a 32x32 one in a tile of 128) need the head over that square only.
        A multiple of the stride, as every tile is."""
        c = self.config
        if extents is None or not len(extents):
            return c.tile
        rows, columns = (int(v) for v in extents.max(axis=0))
        side = max(rows, columns + c.radius, 1)
        return min(c.tile, -(-side // c.stride) * c.stride)

    def block_square(self, extents: np.ndarray) -> "TileSquare | None":
        """How a block of tiles of these extents codes (records since archive format 7,
        models/stream.py): where every coded pixel and its window lie in a top-left square
        smaller than the tile (images smaller than a tile), as tiles of that square, whose
        wavefront has fewer lanes and steps; None (whole tiles) otherwise, and for a model with
        a latent. Each lane of a tile costs its head's bits and, early in a block, a word from
        the virtual bottom, so lanes that a small image leaves empty are not free."""
        if self.has_latent or not len(extents):
            return None
        side = self._coded_side(extents)
        return TileSquare(self, self._square_model(side)) if side < self.config.tile else None

    def _square_model(self, side: int) -> "FrozenTiledARVAE":
        """This model in tiles of `side` (its windows and edge flags are those of the top-left
        square of its own tiles), made once per side."""
        if side not in self._squares:
            self._squares[side] = self.with_tile(side)
        return self._squares[side]

    def _parameters(self, symbols: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(parameters (B, pixels, outputs), references (B, pixels, C)), int64, of every pixel of
        symbols (B, pixels x channels)."""
        c = self.config
        params = np.empty((len(symbols), c.pixels, c.outputs), dtype=np.int64)
        references = np.empty((len(symbols), c.pixels, c.channels), dtype=np.int64)
        for tiles, pixels, part, reference in self._head_passes(symbols, features):
            params[tiles, pixels], references[tiles, pixels] = part, reference
        return params, references

    def _columns(self, params: np.ndarray, first: int, count: int) -> np.ndarray:
        """count rows of the mixture's components (..., count, M) of the parameters' columns
        from `first` on (TiledARConfig.outputs has their order)."""
        m = self.config.mixtures
        return params[..., first : first + count * m].reshape(params.shape[:-1] + (count, m))

    def _effective(self, params: np.ndarray, reference: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(means, log-scales), each (..., channels, M) int64 in 2^-12 units, of each channel's
        components given the pixel's values (..., channels) int64: the reference plus the
        head's mean, G's and B's then moved by the coupling with the earlier channels'
        differences from theirs."""
        k = self.config.channels
        base = self._columns(params, 0, k) + (reference << PARAM_BITS)[..., None]
        mean = np.stack([self._coupled(base, params, reference, values, channel) for channel in range(k)], axis=-2)
        return mean, self._columns(params, k * self.config.mixtures, k)

    def _coupled(self, base, params, reference, values, channel: int) -> np.ndarray:
        """Channel's component means (..., M): its base means (reference + head), G's moved by
        a0 (R - its reference), B's by a1 (R - ...) + a2 (G - ...), each component by its own
        coefficients: integers (2^-12 units) as bbans's DiscretisedLogisticRGB computes them."""
        if channel == 0:
            return base[..., 0, :]
        a = self._columns(params, 2 * self.config.channels * self.config.mixtures, 3)
        red = (values[..., 0] - reference[..., 0])[..., None]
        if channel == 1:
            return base[..., 1, :] + a[..., 0, :] * red
        return base[..., 2, :] + a[..., 1, :] * red + a[..., 2, :] * (values[..., 1] - reference[..., 1])[..., None]

    def _logits(self, params: np.ndarray) -> np.ndarray:
        k = self.config.channels
        return self._columns(params, self.config.outputs - k * self.config.mixtures, k)

    def _distribution(self, params, reference, values, precision: int):
        """The distributions of every value (flattened per tile: pixel-major, channel-minor)."""
        mean, log_scale = self._effective(params, reference, values)
        tiles, m = len(mean), self.config.mixtures
        if m == 1:
            return bbans.distributions.DiscretisedLogistic(mean.reshape(tiles, -1), log_scale.reshape(tiles, -1), precision)
        return bbans.distributions.DiscretisedLogisticMixture(mean.reshape(tiles, -1, m), log_scale.reshape(tiles, -1, m),
                                                              self._logits(params).reshape(tiles, -1, m), precision)

    def _channel_distributions(self, params: np.ndarray, reference: np.ndarray, precision: int):
        """For a decoder that pops a pixel's channels one by one: a function of (values so
        far, channel) that gives the channel's distribution; scales and weights computed once."""
        k, m = self.config.channels, self.config.mixtures
        base = self._columns(params, 0, k) + (reference << PARAM_BITS)[..., None]
        inverse_scales = bbans.distributions.LogisticScales.shared()(self._columns(params, k * m, k))
        if m == 1:
            def channel_distribution(values, channel):
                mean = self._coupled(base, params, reference, values, channel)[..., 0]
                return bbans.distributions.DiscretisedLogistic.with_inverse_scales(mean, inverse_scales[..., channel, 0],
                                                                                   precision)
            return channel_distribution
        mixture = bbans.distributions.DiscretisedLogisticMixture
        weights = mixture.weights(self._logits(params))

        def channel_mixture(values, channel):
            mean = self._coupled(base, params, reference, values, channel)
            return mixture.with_weights(mean, inverse_scales[..., channel, :], weights[..., channel, :], precision)
        return channel_mixture

    def pixel_distribution(self, z_fixed, symbols, precision: int):
        symbols = symbols.astype(np.int64)
        params, reference = self._parameters(symbols, self.features(z_fixed))
        return self._distribution(params, reference, symbols.reshape(reference.shape), precision)

    def likelihood_codec(self, z_fixed, precision: int) -> bbans.Codec:
        c = self.config
        features = self.features(z_fixed)

        def push(message, symbols):
            symbols = symbols.astype(np.int64)
            params, reference = self._parameters(symbols, features)
            distribution = self._distribution(params, reference, symbols.reshape(reference.shape), precision)
            return bbans.from_distribution(distribution).push(message, symbols)

        def pop(message):
            lanes, k = len(features), c.channels
            canvas = np.zeros((lanes, self.canvas_pixels, k))
            inputs = np.empty((lanes, c.head_inputs))
            values = np.zeros((lanes, k), dtype=np.int64)
            for pixel in range(c.pixels):
                window = canvas[:, self.windows[pixel]]
                top, first = bool(self.top[pixel]), bool(self.first[pixel])
                reference = self._reference(window, top, first)
                self._fill_inputs(window, reference, top, first, features[:, pixel], inputs)
                params = self.head_forward(inputs)[-1].astype(np.int64)
                channel_distribution = self._channel_distributions(params, reference.astype(np.int64), precision)
                for channel in range(k):
                    message, values[:, channel] = bbans.pop_symbol(message, channel_distribution(values, channel))
                canvas[:, self.places[pixel]] = values
            return message, canvas[:, self.places].reshape(lanes, -1).astype(np.int64)

        return bbans.Codec(push, pop)

    # -- without a latent: the likelihood alone, in a wavefront --------------------------------
    @property
    def has_latent(self) -> bool:
        """Whether tiles are coded by bits back (a latent) or by the likelihood alone."""
        return self.config.latent_channels > 0

    @property
    def lanes_per_unit(self) -> int:
        """rANS lanes one tile codes on (models/stream.py gives each batch its lanes)."""
        return 1 if self.has_latent else self.wavefront.lanes

    @property
    def ramp_growth(self) -> float | None:
        """How fast models/stream.py widens its batches: bits back's ramp with a latent; without
        one, each new tile needs a word per lane from the stack, and a tile pushes at least
        values / 64 words (half a bit a value: smooth photos take one or more), so batches can
        grow by that over the lanes (from 1 tile, the only one whose lanes start on virtual
        words). A faster ramp pulls virtual words for smooth images: 32 bits a lane."""
        if self.has_latent:
            return stream.BITS_BACK_GROWTH
        return max(2.0, float(self.config.dims // (64 * self.lanes_per_unit)))

    def batch_codec(self, settings, first_index: int, n_images: int, extents: np.ndarray | None = None,
                    known: TileIntervals | None = None) -> bbans.Codec:
        """`known`: the batch's intervals (`intervals`), where they were already computed for
        these tiles at the settings' precision (the fallback's codelength): pushing then runs no
        network, and a check against the tiles they were computed from runs it on a share of
        its steps (_decoded_wavefront)."""
        if self.has_latent:
            return super().batch_codec(settings, first_index, n_images)
        extents = full_extents(n_images, self.config.tile) if extents is None else extents
        return self._wavefront_codec(extents, settings.likelihood_precision, known)

    def _wavefront_codec(self, extents: np.ndarray, precision: int, known=None) -> bbans.Codec:
        """Tiles (symbols (n, pixels x channels)) on n x lanes_per_unit lanes, step by step."""
        c, wave = self.config, self.wavefront
        k = c.channels

        def push(message, symbols):
            start, freq, _ = self.intervals(symbols, precision, extents) if known is None else known
            head, tail = message.head.copy(), message.tail
            for step in wave.each_step(extents, reverse=True):
                for channel in reversed(range(k)):
                    lanes = bbans.Message(head[step.lanes], tail).push(
                        start[step.tiles, step.pixels, channel], freq[step.tiles, step.pixels, channel], precision)
                    head[step.lanes], tail = lanes.head, lanes.tail
            return bbans.Message(head, tail)

        def pop(message):
            return self._decoded_wavefront(message, extents, precision)

        def check(message, symbols):
            pushed = known if known is not None and known.digests is not None else None  # (cut to a square: none)
            if pushed is not None and not np.array_equal(tile_digests(symbols, extents, precision), pushed.digests):
                raise bbans.CorruptStream("the intervals to check against were computed from other tiles")
            return self._decoded_wavefront(message, extents, precision, symbols.reshape(len(extents), c.pixels, k), pushed)

        return bbans.Codec(push, pop, check)

    def _decoded_wavefront(self, message, extents: np.ndarray, precision: int, expected: np.ndarray | None = None,
                           known: TileIntervals | None = None):
        """The wavefront's pop: (message, tiles' symbols (n, pixels x channels)). With
        `expected` (n, pixels, channels), each step pops the values it holds instead of
        searching for them (bbans.pop_interval: CorruptStream where the message holds others),
        by the intervals the decoder's own network gives on its own steps, so what passes is
        what pop gives. With their `known` intervals too (what the encoder pushed: models/
        tile_intervals.py), it pops those, and runs the network only on a share of the steps
        (RECOMPUTED_STEPS, at random), whose intervals must be the known ones."""
        wave, k = self.wavefront, self.config.channels
        canvas = np.zeros((len(extents), self.canvas_pixels, k), dtype=np.uint8)
        head, tail = message.head.copy(), message.tail
        recomputed = np.random.default_rng().random(wave.steps) < RECOMPUTED_STEPS if known is not None else None
        for number, step in enumerate(wave.each_step(extents)):
            if len(step.tiles):
                lanes = bbans.Message(head[step.lanes], tail)
                if expected is None:
                    channel_distribution = self._channel_distributions(*self._step_parameters(canvas, step), precision)
                    values = np.zeros((len(step.tiles), k), dtype=np.int64)
                    for channel in range(k):
                        lanes, values[:, channel] = bbans.pop_symbol(lanes, channel_distribution(values, channel))
                else:
                    values = expected[step.tiles, step.pixels].astype(np.int64)
                    start, freq = (None, None) if known is None else \
                        (known.start[step.tiles, step.pixels], known.freq[step.tiles, step.pixels])
                    if known is None or recomputed[number]:
                        start, freq = self._step_intervals(canvas, step, values, precision, start, freq)
                    for channel in range(k):
                        lanes = bbans.pop_interval(lanes, start[:, channel], freq[:, channel], precision)
                head[step.lanes], tail = lanes.head, lanes.tail
                canvas[step.tiles, self.places[step.pixels]] = values
            self._fill_outside(canvas, step, extents)
        return bbans.Message(head, tail), canvas[:, self.places].reshape(len(extents), -1).astype(np.int64)

    def _step_intervals(self, canvas: np.ndarray, step, values: np.ndarray, precision: int, start=None, freq=None):
        """(start, freq) (pixels, channels) of a step's values, by the network on the canvas; where
        `start` and `freq` were given, CorruptStream unless they are those."""
        channel_distribution = self._channel_distributions(*self._step_parameters(canvas, step), precision)
        found = [channel_distribution(values, channel).interval(values[:, channel]) for channel in range(values.shape[1])]
        computed = tuple(np.stack(bounds, axis=1) for bounds in zip(*found))
        if start is not None and not (np.array_equal(computed[0], start) and np.array_equal(computed[1], freq)):
            raise bbans.CorruptStream("the intervals pushed are not those the decoder's network gives")
        return computed

    def _step_parameters(self, canvas: np.ndarray, step) -> tuple[np.ndarray, np.ndarray]:
        """(parameters, references) int64 of the pixels of a wavefront step, from the canvas."""
        c = self.config
        # one take over the canvas's flat pixels, not indexing it by tile and pixel (the slow general path)
        places = step.tiles[:, None] * canvas.shape[1] + self.windows[step.pixels]
        window = np.take(canvas.reshape(-1, c.channels), places, axis=0).astype(np.float64)
        top, first = self.top[step.pixels], self.first[step.pixels]
        reference = self._reference(window, top[:, None], first[:, None])
        inputs = np.empty((len(window), c.head_inputs))
        self._fill_inputs(window, reference, top, first, np.zeros((len(window), 0)), inputs)
        return self.head_forward(inputs)[-1].astype(np.int64), reference.astype(np.int64)

    def _fill_outside(self, canvas: np.ndarray, step, extents: np.ndarray) -> None:
        """Give a step's pixels outside their image what edge repetition gave them: the left
        neighbour's value past the image's width, else the upper one's (each a step or three
        earlier)."""
        if not len(step.outside_tiles):
            return
        places = self.places[step.outside_pixels]
        past_width = self.columns[step.outside_pixels] >= extents[step.outside_tiles, 1]
        source = np.where(past_width, places - 1, places - self.padded_width)
        canvas[step.outside_tiles, places] = canvas[step.outside_tiles, source]

    def intervals(self, symbols: np.ndarray, precision: int, extents: np.ndarray | None = None) -> TileIntervals:
        """The intervals of every value of tiles coded without a latent, computed a chunk of
        tiles at a time: the parameters of a block's tiles at once would take gigabytes (512
        tiles of 128^2 pixels, 9 int64 numbers a pixel). They depend on the tiles alone, so what
        one pass computes another can reuse (batch_codec's `known`), with the digest of each
        tile they were computed from. With the tiles' extents, only the values inside them are
        exact (_coded_side); the others are never coded."""
        c = self.config
        start = np.empty((len(symbols), c.pixels, c.channels), dtype=np.uint32)
        freq = np.empty_like(start)
        side = self._coded_side(extents)
        for tiles in self._chunks(len(symbols), side):
            part = None if extents is None else extents[tiles]
            start[tiles], freq[tiles] = self._chunk_intervals(symbols[tiles], precision, side, part)
        return TileIntervals(start, freq, tile_digests(symbols, extents, precision))

    def _chunk_intervals(self, chunk: np.ndarray, precision: int, side: int | None = None,
                         extents: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(start, freq), each (tiles, pixels, channels), of one chunk of tiles (_chunks): of
        every pixel, or with `side` of those of the top-left square of that side, or with the
        tiles' extents of those inside them (_head_passes); the others are given the whole
        range (zero bits: they lie outside the images and are not coded)."""
        c = self.config
        n, k = len(chunk), c.channels
        start = np.zeros((n, c.pixels, k), dtype=np.uint32)
        freq = np.full((n, c.pixels, k), 1 << precision, dtype=np.uint32)
        if side is not None and side < c.tile:
            t = c.tile
            square = chunk.reshape(n, t, t, k)[:, :side, :side].reshape(n, -1)
            inner = self._square_model(side)._chunk_intervals(square, precision, extents=extents)
            for whole, part in zip((start, freq), inner):
                whole.reshape(n, t, t, k)[:, :side, :side] = part.reshape(n, side, side, k)
            return start, freq
        values = chunk.astype(np.int64).reshape(n, c.pixels, k)
        for tiles, pixels, params, reference in self._head_passes(values, np.zeros((n, c.pixels, 0)), extents):
            part = values[tiles, pixels]
            found = self._distribution(params, reference, part, precision).interval(part.reshape(len(part), -1))
            start[tiles, pixels], freq[tiles, pixels] = (bound.reshape(part.shape) for bound in found)
        return start, freq

    def codelength_bits(self, symbols: np.ndarray, settings, extents: np.ndarray | None = None) -> np.ndarray:
        """Per tile, a chunk of tiles at a time."""
        if self.has_latent:
            return super().codelength_bits(symbols, settings)
        precision, bits = settings.likelihood_precision, np.empty(len(symbols))
        side = self._coded_side(extents)
        for tiles in self._chunks(len(symbols), side):
            part = None if extents is None else extents[tiles]
            bits[tiles] = self.pixel_bits(self._chunk_intervals(symbols[tiles], precision, side, part)[1], precision,
                                          part).sum(axis=1)
        return bits + self._lane_head_bits(extents)

    def codelength_of(self, freq: np.ndarray, precision: int, extents: np.ndarray | None = None) -> np.ndarray:
        """Per tile, the bits of tiles whose intervals have these widths (`intervals`): what
        codelength_bits gives for them."""
        return self.pixel_bits(freq, precision, extents).sum(axis=1) + self._lane_head_bits(extents)

    def _lane_head_bits(self, extents: np.ndarray | None) -> int:
        """The final heads' bits of a tile coded in a block of tiles of these extents: whether
        the block codes squares is the whole block's (block_square), not a chunk's."""
        square = None if extents is None else self.block_square(extents)
        return LANE_HEAD_BITS * (square.model if square else self).lanes_per_unit

    def pixel_bits(self, freq: np.ndarray, precision: int, extents: np.ndarray | None = None) -> np.ndarray:
        """(tiles, pixels): each pixel's bits, of tiles whose intervals have these widths; with
        the tiles' extents, none for a pixel outside its image (not coded)."""
        per_pixel = (precision - np.log2(freq)).sum(axis=2)
        if extents is not None:
            per_pixel *= inside_image(self.rows, self.columns, extents)
        return per_pixel

    # -- K-step inference -----------------------------------------------------------------------
    def likelihood_gradient(self, pixels, z):
        """d(-log p(x|z))/dz (float64, real units): head, skip and decoder, forward and backward
        on integers, in chunks of tiles."""
        c = self.config
        tiles = len(z)
        hidden1, hidden2, feature_rows = self.decode_latents(z)
        features = self._raster(feature_rows, tiles, c.features)
        grad_features = np.empty_like(features)
        context = (c.neighbours + 1) * c.channels + EDGE_FLAGS
        logistic = SimpleNamespace(likelihood="logistic", pixels=c.dims)
        for chunk in self._chunks(tiles):  # whole tiles: the gradient sums over a tile's pixels
            lo, hi = chunk.start, chunk.stop
            symbols = pixels.symbols[lo:hi]
            inputs, reference = self.head_inputs(self._canvas(symbols), features[lo:hi])
            h1, h2, out, skip, params = self.head_forward(inputs)
            params = params.astype(np.int64).reshape(hi - lo, c.pixels, c.outputs)
            values = symbols.reshape(hi - lo, c.pixels, c.channels)
            reference = reference.astype(np.int64).reshape(values.shape)
            mean, log_scale = self._effective(params, reference, values)
            flat = np.concatenate([mean.reshape(hi - lo, -1), log_scale.reshape(hi - lo, -1)], axis=1)
            grad = _output_gradient(logistic, _Pixels(symbols), flat)
            grad_mean = grad[:, : c.dims].reshape(hi - lo, c.pixels, c.channels)
            grad_log_scale = grad[:, c.dims :].reshape(hi - lo, c.pixels, c.channels)
            parts = [grad_mean, grad_log_scale]
            if c.channels == 3:
                red, green = (values - reference)[..., 0], (values - reference)[..., 1]
                parts.append(np.stack([grad_mean[..., 1] * red, grad_mean[..., 2] * red, grad_mean[..., 2] * green], axis=-1))
            grad = np.concatenate(parts, axis=-1).reshape(-1, c.outputs)
            grad = np.clip(_fixed(grad, GRADIENT_BITS), -GRADIENT_MAX, GRADIENT_MAX)
            grad *= (params.reshape(-1, c.outputs) > self.low) & (params.reshape(-1, c.outputs) < self.high)
            skip_grad = self.skip.backward(grad * ((skip > self.skip.low) & (skip < self.skip.high)))
            grad = self.head[2].backward(grad * ((out > self.head[2].low) & (out < self.head[2].high)))
            grad *= relu_passes(h2)
            grad = self.head[1].backward(grad)
            grad *= relu_passes(h1)
            grad = np.clip(self.head[0].backward(grad) + skip_grad, -GRADIENT_MAX, GRADIENT_MAX)
            grad_features[lo:hi] = grad[:, context:].reshape(hi - lo, c.pixels, c.features)
        grad = self._block_rows(grad_features, c.features)
        grad *= (feature_rows > -ACTIVATION_MAX) & (feature_rows < ACTIVATION_MAX)
        grad = self.decoder[2].backward(grad)
        grad *= relu_passes(hidden2)
        grad = self.decoder[1].backward(grad)
        grad *= relu_passes(hidden1)
        return self.decoder[0].backward(grad).reshape(tiles, -1) / float(1 << GRADIENT_BITS)


class TileSquare:
    """Tiles of a model (`whole`) seen as tiles of the top-left square its `model` codes (the
    same model in tiles of the square's side): symbols and intervals cut to the square, and
    decoded squares made whole tiles again as the encoder's were, by repeating each image's
    last row and column (models/tiling.py)."""

    def __init__(self, whole: FrozenTiledARVAE, model: FrozenTiledARVAE):
        self.model = model
        self.tile, self.side, self.channels = whole.config.tile, model.config.tile, whole.config.channels

    def cut(self, symbols: np.ndarray) -> np.ndarray:
        """(n, tile^2 x channels) -> (n, side^2 x channels)."""
        return self._corner(symbols).reshape(len(symbols), -1)

    def cut_known(self, known: TileIntervals | None) -> TileIntervals | None:
        """Intervals of whole tiles cut to the square: those of the square's own model, which
        the encoder pushes, but not what the square model computed (no digests: a check
        recomputes them)."""
        if known is None:
            return None
        start, freq = (self._corner(part).reshape(len(part), self.side * self.side, -1) for part in (known.start, known.freq))
        return TileIntervals(start, freq, None)

    def _corner(self, tiles: np.ndarray) -> np.ndarray:
        """(n, side, side, channels): the top-left square of tiles given as (n, ...) rows."""
        t, s = self.tile, self.side
        return np.ascontiguousarray(tiles.reshape(len(tiles), t, t, self.channels)[:, :s, :s])

    def whole(self, squares: np.ndarray, extents: np.ndarray) -> np.ndarray:
        """(n, side^2 x channels) decoded squares -> (n, tile^2 x channels): each tile's image
        part (its extents, within the square) with its last row and column repeated."""
        n, t, s = len(squares), self.tile, self.side
        rows = np.minimum(np.arange(t)[None, :], extents[:, :1] - 1)
        columns = np.minimum(np.arange(t)[None, :], extents[:, 1:] - 1)
        square = squares.reshape(n, s, s, self.channels)
        return square[np.arange(n)[:, None, None], rows[:, :, None], columns[:, None, :]].reshape(n, -1)
