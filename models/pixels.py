"""What a model codes, and the one map between pixels and its symbols.

A model declares its `Pixels`: channels, value set (two-valued or 8-bit) and image size. The
CLI and the API route and restore pixels only; turning pixels into the symbols a model codes,
and back, happens here, for every model alike.

Two-valued images are 0/s with s = 1 or 255 (a 1-bit PNG reads as 0/1, a thresholded array is
often 0/255); a two-valued model codes them as 0/1 symbols, and `scale` is what gives the pixels
back. 8-bit images are their own symbols (scale 1).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .tiling import from_tiles, tile_count, tile_extents, to_tiles

_CHUNK_VALUES = 1 << 22


def binary_scale(images) -> int | None:
    """The one definition of a two-valued image stack: 1 if its values are within {0, 1}, 255 if
    within {0, 255}, else None. Looked at a run of images at a time: np.unique of a whole stack
    would sort a copy of it, and `images` may be any stack that gives arrays for slices of
    images (cli/sources.py reads a large file's images as they are asked for); one that holds
    its answer already (`known_binary_scale`: cli/sources.py's spooled image files) gives it."""
    if hasattr(images, "known_binary_scale"):
        return images.known_binary_scale
    per_image = max(1, int(np.prod(images.shape[1:], dtype=np.int64)))
    step = max(1, _CHUNK_VALUES // per_image)
    ones = whites = False  # a 1 seen, a 255 seen (a maximum and a count: cheaper than np.unique's sort)
    for start in range(0, len(images), step):
        run = np.asarray(images[start : start + step])
        top = int(run.max(initial=0))
        if top <= 1:
            ones |= top == 1
        elif top == 255 and np.count_nonzero(run) == np.count_nonzero(run == 255):
            whites = True
        else:
            return None
        if ones and whites:
            return None
    return 255 if whites else 1


def as_zero_one(images: np.ndarray) -> tuple[np.ndarray, int]:
    """Two-valued images as 0/1 (uint8, same shape) and the scale that gives them back; a
    ValueError if they are not two-valued."""
    scale = binary_scale(images)
    if scale is None:
        raise ValueError("a two-valued (binary) model needs two-valued images (0/1 or 0/255); threshold them first")
    return (images // np.uint8(scale)).astype(np.uint8, copy=False), scale


@dataclass(frozen=True)
class CodingDefaults:
    """Settings `bbzip compress` takes by default for a value set (models/coder_choice.py and
    cli/fallback.py say what each is for)."""

    lane_share: float  # one lane per this many images of a block
    bucket_bits: int  # latent buckets: 2^bits equal-mass buckets under N(0, 1)
    block_images: int  # images per block
    quick_share: float  # the fallback sends an image to the model untried under this share of its PNG size


# The paper's buckets (10 bits binary, 12 grey). A lane costs the ~5 bits of its final head, so
# one lane per 20 binary or 2 grey images is about 0.2% of an MNIST image's bits. A block costs
# its lanes' heads and its first image's initial bits (about 250 bytes binary, 1,000 grey): blocks
# of about 250 KB / 1.2 MB of stream keep that near 0.1%. The fallback's shares follow how far
# below PNG the best classic codec goes (JPEG XL keeps binary MNIST at 0.5 of PNG, grey at 0.75).
TWO_VALUED_DEFAULTS = CodingDefaults(lane_share=1 / 20, bucket_bits=10, block_images=16384, quick_share=0.4)
EIGHT_BIT_DEFAULTS = CodingDefaults(lane_share=1 / 2, bucket_bits=12, block_images=8192, quick_share=0.8)


# A tiled model codes a block's tiles in one wavefront (models/wavefront.py), after a short ramp
# (models/stream.py), so a batch is the block. Blocks of about two megapixels (512 tiles of 64 x
# 64) give two cores several blocks each on a folder of photos, and bound what coding a block
# holds (every pixel's likelihood parameters while encoding: a few hundred MB).
# The quick share is lower than for digits: on photos JPEG XL keeps an image at 0.59 to 0.8 of
# its plain PNG size (the photo set's test/512), and the model is a few percent from it, so only
# a model codelength under half the PNG skips trying the classic codecs.
TILED_DEFAULTS = CodingDefaults(lane_share=1.0, bucket_bits=12, block_images=512, quick_share=0.5)
TILED_BLOCK_PIXELS = 1 << 21


@dataclass(frozen=True)
class Pixels:
    """The images a model codes: (N, height, width) uint8 for one channel, (N, height, width,
    channels) for more; two-valued (0/1 symbols) or 8-bit. A model of fixed size codes each
    image as it is (its unit is the image); a model of any size (height and width None) codes
    images cut into square tiles of `tile` (models/tiling.py), and its unit is a tile."""

    channels: int
    two_valued: bool
    height: int | None
    width: int | None
    tile: int | None = None

    @property
    def any_size(self) -> bool:
        return self.tile is not None

    @property
    def shape(self) -> tuple[int, ...]:
        """One unit's shape: the image's (fixed size) or a tile's (any size)."""
        height, width = (self.tile, self.tile) if self.any_size else (self.height, self.width)
        return (height, width) if self.channels == 1 else (height, width, self.channels)

    @property
    def values(self) -> int:
        """How many values one symbol takes."""
        return 2 if self.two_valued else 256

    @property
    def defaults(self) -> CodingDefaults:
        if self.any_size:
            return replace(TILED_DEFAULTS, block_images=max(1, TILED_BLOCK_PIXELS // (self.tile * self.tile)))
        return TWO_VALUED_DEFAULTS if self.two_valued else EIGHT_BIT_DEFAULTS

    def describe(self) -> str:
        depth = "two-valued" if self.two_valued else "8-bit"
        colour = {1: "grey", 3: "RGB", 4: "RGBA"}.get(self.channels, f"{self.channels}-channel")
        size = "any size" if self.any_size else f"{self.height}x{self.width}"
        return f"{depth} {colour} {size}"

    def fits_shape(self, images) -> bool:
        """Whether a uint8 stack (N, H, W[, C]) has images this model codes (by their shape)."""
        if images.dtype != np.uint8:
            return False
        if not self.any_size:
            return tuple(images.shape[1:]) == self.shape
        wanted = 3 if self.channels == 1 else 4
        return images.ndim == wanted and (self.channels == 1 or images.shape[-1] == self.channels) \
            and images.shape[1] > 0 and images.shape[2] > 0

    def scale_of(self, images) -> int | None:
        """What the symbols of these images are multiplied by to give them back: 1 or 255 for a
        two-valued model (None if the images are not two-valued), 1 for an 8-bit one."""
        return binary_scale(images) if self.two_valued else 1

    def accepts(self, images) -> bool:
        return self.fits_shape(images) and self.scale_of(images) is not None

    def units_per_image(self, height: int, width: int) -> int:
        """Units (images or tiles) one image of height x width is coded as."""
        return tile_count((height, width), self.tile) if self.any_size else 1

    def unit_extents(self, height: int, width: int, images: int = 1) -> np.ndarray | None:
        """(units, 2): the rows and columns of each unit of `images` images of height x width
        that lie inside its image (the rest of a tile is edge repetition, not coded: models/
        wavefront.py); None for a model of fixed size, whose unit is the image."""
        return np.tile(tile_extents(height, width, self.tile), (images, 1)) if self.any_size else None

    def to_units(self, images: np.ndarray) -> np.ndarray:
        """A stack of images (N, H, W[, C]) as the units the model codes, image after image."""
        if not self.any_size:
            return images
        return np.concatenate([to_tiles(image, self.tile) for image in images]) if len(images) else \
            np.zeros((0, *self.shape), dtype=np.uint8)

    def from_units(self, units: np.ndarray, height: int, width: int) -> np.ndarray:
        """The images (N, height, width[, C]) of their units (the inverse of to_units)."""
        if not self.any_size:
            return units
        per_image = self.units_per_image(height, width)
        return np.stack([from_tiles(units[lo : lo + per_image], height, width)
                         for lo in range(0, len(units), per_image)]) if len(units) else \
            np.zeros((0, height, width, *self.shape[2:]), dtype=np.uint8)

    def to_symbols(self, units: np.ndarray, scale: int | None = None) -> tuple[np.ndarray, int]:
        """(symbols (N, values per unit) uint8, scale): for a two-valued model `scale` is found
        from the units, or given (the scale of a whole record, of which these units are a
        part); a ValueError if they are not what this model codes."""
        if not self.two_valued:
            scale = 1
        elif scale is None:
            units, scale = as_zero_one(units)
        else:
            if not np.all((units == 0) | (units == scale)):
                raise ValueError(f"two-valued images of scale {scale} must be 0 or {scale}")
            units = units // np.uint8(scale)
        return units.reshape(len(units), -1).astype(np.uint8, copy=False), scale

    def from_symbols(self, symbols: np.ndarray, scale: int) -> np.ndarray:
        """The units (N, *shape) of symbols (N, values per unit) of this scale; a ValueError for
        a scale the model's images cannot have (an 8-bit model's are their own symbols)."""
        if scale not in ((1, 255) if self.two_valued else (1,)):
            raise ValueError(f"scale {scale!r} for {self.describe()} images")
        units = symbols * np.uint8(scale) if scale != 1 else symbols
        return units.astype(np.uint8, copy=False).reshape(len(symbols), *self.shape)
